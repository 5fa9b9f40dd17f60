"""Tables of the background work: the outbox of pushes and the per-user polling state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base, UTCDateTime, utcnow


class OutboxItem(Base):
    """A push found by the poller, committed before it is sent; keyed so it is queued once.

    `sent_at` is set only after Telegram accepted it. `claimed_until` lets several senders share
    the table: a crashed sender's claim runs out and the row is taken again (at most one
    duplicate: the message that was in flight). `claimed_by` names the claiming instance: the
    claims of one that stopped beating are let go by a living one at once (bot/instances.py).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("user_id", "kind", "dedupe_key"),
        Index("ix_outbox_pending", "sent_at", "dropped", "not_before"),
        Index("ix_outbox_kind_dedupe_key", "kind", "dedupe_key"),  # a broadcast's rows
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(24))
    dedupe_key: Mapped[str] = mapped_column(String(160))
    payload: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))  # the instance sending it
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dropped: Mapped[str | None] = mapped_column(String(64))
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    # another chat than the user's own (a group a rent's codes are shared with)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)


class PollState(Base):
    """When to poll a user for one job next, how hot, and how it went last time."""

    __tablename__ = "poll_state"
    __table_args__ = (
        Index("ix_poll_state_job_next_at", "job", "next_at"),
        Index("ix_poll_state_job_hot_until", "job", "hot_until"),
    )

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    job: Mapped[str] = mapped_column(String(24), primary_key=True)
    next_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    hot_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    cursor: Mapped[str | None] = mapped_column(String(160))
    # the instance that leased it last: a lease (next_at within LEASE from now) of an instance
    # that stopped beating is made due at once by a living one
    leased_by: Mapped[str | None] = mapped_column(String(64))
