"""confirmation payload as text

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 23:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("confirmations", schema=None) as batch_op:
        batch_op.alter_column(
            "payload",
            existing_type=sa.String(length=2048),
            type_=sa.Text(),
            existing_nullable=False,
        )


def downgrade() -> None:
    # a payload longer than 2048 characters makes PostgreSQL refuse this: such rows are cut
    with op.batch_alter_table("confirmations", schema=None) as batch_op:
        batch_op.alter_column(
            "payload",
            existing_type=sa.Text(),
            type_=sa.String(length=2048),
            existing_nullable=False,
            postgresql_using="left(payload, 2048)",
        )
