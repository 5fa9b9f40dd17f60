"""SQLAlchemy 2 typed models. Portable across SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and always returns them aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Clipped(TypeDecorator[str]):
    """A VARCHAR(length) for names that come from users or APIs: a longer value is cut to fit.

    SQLite stores any length, PostgreSQL refuses a longer value with a DataError. Clipping in
    the column type covers every write, ORM and Core alike; Python and PostgreSQL both count
    characters (code points), not bytes.
    """

    impl = String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else value[: self.length]


def clip(column: InstrumentedAttribute[str], value: str) -> str:
    """`value` as its column stores it: to compare a fresh name with the stored one."""
    length: int | None = getattr(column.type, "length", None)
    return value if length is None else value[:length]


def locale_of(language: str | None, language_code: str | None) -> str:
    """The chosen language, else Telegram's (`ru*` → ru, anything else → en)."""
    if language:
        return language
    return "ru" if (language_code or "").lower().startswith("ru") else "en"


class Service(StrEnum):
    GOSMS = "gosms"
    GOTSMS = "gotsms"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    language: Mapped[str | None] = mapped_column(String(8))
    language_code: Mapped[str | None] = mapped_column(Clipped(16))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def locale(self) -> str:
        return locale_of(self.language, self.language_code)


class Credential(Base):
    __tablename__ = "credentials"
    __table_args__ = (UniqueConstraint("user_id", "service"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    service: Mapped[str] = mapped_column(String(16))
    token_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    connected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("user_id", "device_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(Clipped(128), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NotificationSettings(Base):
    __tablename__ = "notification_settings"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    codes: Mapped[bool] = mapped_column(Boolean, default=True)
    sms_status: Mapped[bool] = mapped_column(Boolean, default=True)
    devices: Mapped[bool] = mapped_column(Boolean, default=True)
    rent_expiry: Mapped[bool] = mapped_column(Boolean, default=True)
    low_balance: Mapped[bool] = mapped_column(Boolean, default=False)
    balance_threshold: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    # a rent made here with no message this many minutes after it started: one push (0: off)
    no_code_minutes: Mapped[int] = mapped_column(Integer, default=15, server_default="15")
    # ...and refunded then, for rents made while this was on (each rent has its own switch)
    no_code_refund: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    wake_push: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class Confirmation(Base):
    """A one-shot confirmation for a paid or destructive action: consumed at most once."""

    __tablename__ = "confirmations"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text, default="")  # JSON, as long as its SMS text
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # set with consumed_at by a "yes", cleared once the update that ran the action is done: a
    # value left over after a restart marks an action the bot was killed in the middle of
    running_since: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # the instance running it (bot/instances.py): one that stops beating has its actions settled
    # by a living one; NULL (a row from before instances were recorded) counts as a dead one's
    running_on: Mapped[str | None] = mapped_column(String(64))


class Instance(Base):
    """A running process of the bot, as long as it beats (bot/instances.py)."""

    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(8))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # where its pid means something: a process of the same machine and PID namespace can tell
    # at once that it is gone
    pid_space: Mapped[str | None] = mapped_column(String(64))
    pid: Mapped[int | None] = mapped_column(Integer)


class SentSms(Base):
    """An SMS sent from the bot, with its card, so the poller can edit the card in place."""

    __tablename__ = "sent_sms"
    __table_args__ = (UniqueConstraint("user_id", "sms_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    sms_id: Mapped[str] = mapped_column(String(64))
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)
    phone: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(String(1024))
    device_id: Mapped[str] = mapped_column(String(64), default="")
    device_name: Mapped[str] = mapped_column(Clipped(128), default="")
    to_sim: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CampaignState(StrEnum):
    DRAFT = "draft"  # summed up, not yet confirmed
    RUNNING = "running"
    PAUSED = "paused"  # by the user, or by an error that makes going on pointless (`reason`)
    CANCELLED = "cancelled"
    DONE = "done"  # every row sent, failed or unknown; deliveries may still be followed


class DeviceMode(StrEnum):
    ANY = "any"  # GoSMS chooses
    ONE = "one"  # one saved device
    SPREAD = "spread"  # the saved devices in turn


class RowState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"  # marked before its request: left so by a crash, it becomes UNKNOWN
    SENT = "sent"
    FAILED = "failed"  # refused: nothing went out
    UNKNOWN = "unknown"  # the request may have gone out; never sent again by itself


class Campaign(Base):
    """One /bulk campaign: a text (or template) to many numbers, sent row by row."""

    __tablename__ = "campaigns"
    __table_args__ = ({"sqlite_autoincrement": True},)  # a deleted draft's id is never reused

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16), default=CampaignState.DRAFT, index=True)
    source: Mapped[str] = mapped_column(Clipped(128), default="")  # the file's name, or ""
    template: Mapped[str] = mapped_column(Text, default="")  # "" when every row has its text
    device_mode: Mapped[str] = mapped_column(String(8), default=DeviceMode.ANY)
    device_ids: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of GoSMS ids
    to_sim: Mapped[int | None] = mapped_column(Integer)  # 0-based, with a device only
    pace: Mapped[float] = mapped_column(Float, default=3.0)  # seconds between SMS of a device
    total: Mapped[int] = mapped_column(Integer, default=0)
    dropped: Mapped[str] = mapped_column(Text, default="[]")  # JSON [[line, value, reason], ...]
    reason: Mapped[str | None] = mapped_column(String(32))  # why it paused by itself
    chat_id: Mapped[int | None] = mapped_column(BigInteger)  # the progress card
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    leased_by: Mapped[str | None] = mapped_column(String(64))  # the instance sending it
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CampaignRow(Base):
    """One recipient of a campaign: a durable record marked before its SMS is requested."""

    __tablename__ = "campaign_rows"
    __table_args__ = (
        UniqueConstraint("campaign_id", "phone"),
        Index("ix_campaign_rows_campaign_id_state", "campaign_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    line: Mapped[int] = mapped_column(Integer)  # in the pasted list or the file, from 1
    phone: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(String(1024))  # filled in
    state: Mapped[str] = mapped_column(String(8), default=RowState.QUEUED)
    device_id: Mapped[str] = mapped_column(String(64), default="")
    sms_id: Mapped[str | None] = mapped_column(String(64))
    sms_status: Mapped[int | None] = mapped_column(Integer)  # GoSMS's, once sent
    error: Mapped[str | None] = mapped_column(Clipped(255))
    tried_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class RefundState(StrEnum):
    TRYING = "trying"  # committed before the request: after a crash checked, never sent again
    REFUNDED = "refunded"
    UNAVAILABLE = "unavailable"  # GotSMS: "Refund not available for this rent."
    FAILED = "failed"
    UNCERTAIN = "uncertain"  # the request may have gone through: the user is told to look


class WakeState(StrEnum):
    QUEUED = "queued"  # woken up, not online yet
    AWAKE = "awake"  # online: pushed once per wake-up
    OVER = "over"  # the wake-up ended (expired or online time over)
    FAILED = "failed"


class RentWatch(Base):
    """A rent the bot follows beyond its codes: the no-code deadline and refund of a rent made
    here, a wake-up until the number is online, the group its codes are shared with."""

    __tablename__ = "rent_watch"
    __table_args__ = (
        Index("ix_rent_watch_user_id", "user_id"),
        Index("ix_rent_watch_remind_at", "remind_at"),
        Index("ix_rent_watch_group_chat_id", "group_chat_id"),
    )

    rent_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    phone: Mapped[str] = mapped_column(Clipped(32), default="")
    service_id: Mapped[str] = mapped_column(String(64), default="")
    service_name: Mapped[str] = mapped_column(Clipped(128), default="")
    plan_id: Mapped[str] = mapped_column(String(64), default="")
    made_here: Mapped[bool] = mapped_column(Boolean, default=False)  # rented through the bot
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    remind_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: no reminder due
    auto_refund: Mapped[bool] = mapped_column(Boolean, default=False)
    got_message: Mapped[bool] = mapped_column(Boolean, default=False)
    refund_state: Mapped[str | None] = mapped_column(String(16))  # RefundState
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    wake_state: Mapped[str | None] = mapped_column(String(16))  # WakeState
    wake_from: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the wake-up followed
    wake_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    group_chat_id: Mapped[int | None] = mapped_column(BigInteger)  # codes shared there too
    group_title: Mapped[str] = mapped_column(Clipped(128), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class GroupOffer(Base):
    """A group where the owner sent /link: offered on their rent cards to share codes with."""

    __tablename__ = "group_offers"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    title: Mapped[str] = mapped_column(Clipped(128), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ServicePick(Base):
    """A service the user rented (the last ones first in /rent) or pinned with a star."""

    __tablename__ = "service_picks"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    service_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Clipped(128), default="")
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)


class AccessRule(Base):
    """An operator's /admin allow or deny of a Telegram id or @username (over ALLOWED_USERS)."""

    __tablename__ = "access_rules"
    __table_args__ = (UniqueConstraint("subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(64))  # "123456" or "@name" (lower case)
    allowed: Mapped[bool] = mapped_column(Boolean)
    added_by: Mapped[int] = mapped_column(BigInteger)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AccessRefusal(Base):
    """When a stranger was last told the bot is not open to them (once a day)."""

    __tablename__ = "access_refusals"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    refused_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BroadcastState(StrEnum):
    DRAFT = "draft"  # previewed, not confirmed
    SENDING = "sending"  # its pushes are in the outbox
    DONE = "done"


class Broadcast(Base):
    """An operator's announcement to every active user, sent through the outbox (kind
    "broadcast", key its id: at most once per user)."""

    __tablename__ = "broadcasts"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    admin_id: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)  # HTML as the operator wrote it, checked
    state: Mapped[str] = mapped_column(String(16), default=BroadcastState.DRAFT)
    total: Mapped[int] = mapped_column(Integer, default=0)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)  # the progress card
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class JobRun(Base):
    """When a deployment-wide job (the daily retention) last ran: claimed by one conditional
    UPDATE, so of several instances exactly one runs it each time."""

    __tablename__ = "job_runs"

    job: Mapped[str] = mapped_column(String(32), primary_key=True)
    ran_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ran_by: Mapped[str | None] = mapped_column(String(64))
