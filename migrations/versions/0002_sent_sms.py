"""sent sms

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 12:28:13.745680
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sent_sms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("sms_id", sa.String(length=64), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("text", sa.String(length=1024), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("device_name", sa.String(length=128), nullable=False),
        sa.Column("to_sim", sa.Integer(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sent_sms_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sent_sms")),
        sa.UniqueConstraint("user_id", "sms_id", name=op.f("uq_sent_sms_user_id_sms_id")),
    )
    with op.batch_alter_table("sent_sms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sent_sms_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sent_sms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sent_sms_user_id"))

    op.drop_table("sent_sms")
