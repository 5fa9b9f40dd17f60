"""/bulk campaigns and their rows

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 09:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("device_mode", sa.String(length=8), nullable=False),
        sa.Column("device_ids", sa.Text(), nullable=False),
        sa.Column("to_sim", sa.Integer(), nullable=True),
        sa.Column("pace", sa.Float(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("dropped", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("leased_by", sa.String(length=64), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_campaigns_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_index(op.f("ix_campaigns_user_id"), "campaigns", ["user_id"], unique=False)
    op.create_index(op.f("ix_campaigns_state"), "campaigns", ["state"], unique=False)
    op.create_table(
        "campaign_rows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("text", sa.String(length=1024), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("sms_id", sa.String(length=64), nullable=True),
        sa.Column("sms_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=255), nullable=True),
        sa.Column("tried_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_rows_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_rows")),
        sa.UniqueConstraint(
            "campaign_id", "phone", name=op.f("uq_campaign_rows_campaign_id_phone")
        ),
    )
    op.create_index(
        "ix_campaign_rows_campaign_id_state",
        "campaign_rows",
        ["campaign_id", "state"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_campaign_rows_campaign_id_state", table_name="campaign_rows")
    op.drop_table("campaign_rows")
    op.drop_index(op.f("ix_campaigns_state"), table_name="campaigns")
    op.drop_index(op.f("ix_campaigns_user_id"), table_name="campaigns")
    op.drop_table("campaigns")
