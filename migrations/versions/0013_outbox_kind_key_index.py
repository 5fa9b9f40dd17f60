"""an index of the outbox by kind and key (a broadcast's progress counts its rows)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 15:05:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_outbox_kind_dedupe_key", "outbox", ["kind", "dedupe_key"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_outbox_kind_dedupe_key", table_name="outbox")
