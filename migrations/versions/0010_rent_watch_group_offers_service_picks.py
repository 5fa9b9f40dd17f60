"""rent watch (no-code deadlines, refunds, wake-ups, shared groups), group offers, service
picks; the outbox's chat for pushes into a group

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 13:57:17.417018
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "group_offers",
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_group_offers_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("chat_id", "user_id", name=op.f("pk_group_offers")),
    )
    op.create_table(
        "rent_watch",
        sa.Column("rent_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("service_name", sa.String(length=128), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("made_here", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("remind_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("auto_refund", sa.Boolean(), nullable=False),
        sa.Column("got_message", sa.Boolean(), nullable=False),
        sa.Column("refund_state", sa.String(length=16), nullable=True),
        sa.Column("refunded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("wake_state", sa.String(length=16), nullable=True),
        sa.Column("wake_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("wake_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("group_chat_id", sa.BigInteger(), nullable=True),
        sa.Column("group_title", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_rent_watch_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("rent_id", name=op.f("pk_rent_watch")),
    )
    with op.batch_alter_table("rent_watch", schema=None) as batch_op:
        batch_op.create_index("ix_rent_watch_group_chat_id", ["group_chat_id"], unique=False)
        batch_op.create_index("ix_rent_watch_remind_at", ["remind_at"], unique=False)
        batch_op.create_index("ix_rent_watch_user_id", ["user_id"], unique=False)

    op.create_table(
        "service_picks",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_service_picks_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "service_id", name=op.f("pk_service_picks")),
    )
    with op.batch_alter_table("notification_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("no_code_minutes", sa.Integer(), server_default="15", nullable=False)
        )
        batch_op.add_column(
            sa.Column("no_code_refund", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("wake_push", sa.Boolean(), server_default=sa.true(), nullable=False)
        )

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chat_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("chat_id")

    with op.batch_alter_table("notification_settings", schema=None) as batch_op:
        batch_op.drop_column("wake_push")
        batch_op.drop_column("no_code_refund")
        batch_op.drop_column("no_code_minutes")

    op.drop_table("service_picks")
    with op.batch_alter_table("rent_watch", schema=None) as batch_op:
        batch_op.drop_index("ix_rent_watch_user_id")
        batch_op.drop_index("ix_rent_watch_remind_at")
        batch_op.drop_index("ix_rent_watch_group_chat_id")

    op.drop_table("rent_watch")
    op.drop_table("group_offers")
