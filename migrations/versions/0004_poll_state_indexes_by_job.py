"""poll state indexes by job

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 14:00:38.362356
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("poll_state", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_poll_state_next_at"))
        batch_op.create_index("ix_poll_state_job_hot_until", ["job", "hot_until"], unique=False)
        batch_op.create_index("ix_poll_state_job_next_at", ["job", "next_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("poll_state", schema=None) as batch_op:
        batch_op.drop_index("ix_poll_state_job_next_at")
        batch_op.drop_index("ix_poll_state_job_hot_until")
        batch_op.create_index(batch_op.f("ix_poll_state_next_at"), ["next_at"], unique=False)
