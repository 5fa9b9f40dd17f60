"""fsm state and running actions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 10:12:41.503117
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fsm_state",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=128), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_fsm_state")),
    )
    with op.batch_alter_table("confirmations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("running_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_confirmations_running_since"), ["running_since"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("confirmations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_confirmations_running_since"))
        batch_op.drop_column("running_since")

    op.drop_table("fsm_state")
