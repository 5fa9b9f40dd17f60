"""Repositories: the only place that builds queries. Each is bound to one AsyncSession."""

from __future__ import annotations

import json
import secrets
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Executable, Update, bindparam, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.crypto import TokenCipher
from bot.db.engine import retry_locked
from bot.db.fsm import FsmRecord
from bot.db.models import (
    Confirmation,
    Credential,
    Device,
    NotificationSettings,
    SentSms,
    Service,
    User,
    utcnow,
)

RUNNING = "running_confirmations"  # session.info key: the actions this session's update started
INSTANCE = "instance_id"  # session.info key: the instance whose update the session serves


def _seen_query(with_dialog: bool) -> Executable:
    """The user, their tokens and (with_dialog) one dialog row; bound: `user_id`, `dialog_key`.

    Built once: building it took more CPU than running it, on every update.
    """
    query = (
        select(User, Credential.service, Credential.token_encrypted)
        .outerjoin(Credential, Credential.user_id == User.id)
        .where(User.id == bindparam("user_id"))
    )
    if not with_dialog:
        return query
    return query.add_columns(FsmRecord.state, FsmRecord.data).outerjoin(
        FsmRecord, FsmRecord.key == bindparam("dialog_key")
    )


SEEN = {False: _seen_query(False), True: _seen_query(True)}


def _new_user_query(dialect: str) -> Executable:
    """INSERT of a user that does nothing when the user is there already (another update or
    instance created it a moment ago); bound: `id`, `chat_id`, `language_code`."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(User)
        .values(
            id=bindparam("id"),
            chat_id=bindparam("chat_id"),
            language_code=bindparam("language_code"),
            is_active=True,
        )
        .on_conflict_do_nothing(index_elements=[User.id])
    )


NEW_USER = {dialect: _new_user_query(dialect) for dialect in ("sqlite", "postgresql")}


class UserRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int) -> User | None:
        return await self.session.get(User, user_id)

    async def upsert_seen(self, user_id: int, chat_id: int, language_code: str | None) -> User:
        """The user of an update, created on first sight; chat id and language kept fresh.

        A new user is written and committed at once (see `_insert`): call it first in a session.
        """
        user = await self.get(user_id)
        if user is None:
            return await self._insert(user_id, chat_id, language_code)
        self._refresh(user, chat_id, language_code)
        return user

    async def seen_with_tokens(
        self, user_id: int, chat_id: int, language_code: str | None, dialog_key: str | None = None
    ) -> tuple[User, dict[Service, bytes], tuple[str | None, str | None] | None]:
        """`upsert_seen` plus the user's stored tokens (still encrypted) and, given its storage
        key, the (state, data) of the update's dialog ((None, None): no dialog), in one query.

        Every update needs the user and its dialog, and most need a token: one round trip to
        the database instead of three (each costs ~1 ms of CPU through aiosqlite's thread).
        The dialog is None when it was not read (no key, or a new user).
        """
        query = SEEN[dialog_key is not None]
        params = {"user_id": user_id, "dialog_key": dialog_key}
        rows: Sequence[Any] = (await self.session.execute(query, params)).all()
        if not rows:
            return await self._insert(user_id, chat_id, language_code), {}, None
        user = rows[0][0]
        self._refresh(user, chat_id, language_code)
        tokens = {Service(row[1]): row[2] for row in rows if row[1] is not None}
        dialog = (rows[0][3], rows[0][4]) if dialog_key is not None else None
        return user, tokens, dialog

    @staticmethod
    def _refresh(user: User, chat_id: int, language_code: str | None) -> None:
        if user.language_code != language_code and language_code:
            user.language_code = language_code
        if user.chat_id != chat_id and chat_id > 0:
            user.chat_id = chat_id

    async def _insert(self, user_id: int, chat_id: int, language_code: str | None) -> User:
        """Writes a new user as a statement of its own, in autocommit mode: SQLite's write lock
        is held for that statement alone, not until the event loop gets round to a COMMIT.
        While the lock is taken all the same (a burst of new users), it tries again."""
        query = NEW_USER[self.session.get_bind().dialect.name]
        params = {"id": user_id, "chat_id": chat_id, "language_code": language_code}
        await self.session.commit()  # the autocommit mode is set as a transaction begins

        async def write() -> None:
            await self.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            await self.session.execute(query, params)
            await self.session.commit()

        await retry_locked(write, self.session.rollback)
        user = await self.get(user_id)
        assert user is not None
        return user

    async def set_language(self, user: User, language: str) -> None:
        user.language = language

    async def set_active(self, user_id: int, active: bool) -> None:
        await self.session.execute(update(User).where(User.id == user_id).values(is_active=active))


class CredentialRepo:
    def __init__(self, session: AsyncSession, cipher: TokenCipher) -> None:
        self.session = session
        self.cipher = cipher

    async def _row(self, user_id: int, service: Service) -> Credential | None:
        query = select(Credential).where(
            Credential.user_id == user_id, Credential.service == service.value
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def token(self, user_id: int, service: Service) -> str | None:
        row = await self._row(user_id, service)
        return None if row is None else self.cipher.decrypt(row.token_encrypted)

    async def connected_at(self, user_id: int, service: Service) -> datetime | None:
        row = await self._row(user_id, service)
        return None if row is None else row.connected_at

    async def services(self, user_id: int) -> set[Service]:
        query = select(Credential.service).where(Credential.user_id == user_id)
        return {Service(value) for value in (await self.session.execute(query)).scalars()}

    async def save(self, user_id: int, service: Service, token: str) -> None:
        row = await self._row(user_id, service)
        blob = self.cipher.encrypt(token)
        if row is None:
            self.session.add(
                Credential(user_id=user_id, service=service.value, token_encrypted=blob)
            )
        else:
            row.token_encrypted = blob
            row.connected_at = utcnow()

    async def delete(self, user_id: int, service: Service) -> bool:
        result = await self.session.execute(
            delete(Credential).where(
                Credential.user_id == user_id, Credential.service == service.value
            )
        )
        return bool(getattr(result, "rowcount", 0))


class DeviceRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list(self, user_id: int) -> Sequence[Device]:
        query = select(Device).where(Device.user_id == user_id).order_by(Device.id)
        return (await self.session.execute(query)).scalars().all()

    async def add(self, user_id: int, device_id: str, name: str) -> Device:
        query = select(Device).where(Device.user_id == user_id, Device.device_id == device_id)
        device = (await self.session.execute(query)).scalar_one_or_none()
        if device is None:
            device = Device(user_id=user_id, device_id=device_id, name=name)
            self.session.add(device)
        else:
            device.name = name
        return device

    async def delete_all(self, user_id: int) -> None:
        await self.session.execute(delete(Device).where(Device.user_id == user_id))


def default_settings(user_id: int) -> NotificationSettings:
    """What a user gets before they change anything in /notify (contract, section 4)."""
    return NotificationSettings(
        user_id=user_id,
        codes=True,
        sms_status=True,
        devices=True,
        rent_expiry=True,
        low_balance=False,
        no_code_minutes=15,
        no_code_refund=False,
        wake_push=True,
    )


class NotificationRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int) -> NotificationSettings:
        """The user's settings, created with the defaults on first use (race-safe)."""
        settings = await self.session.get(NotificationSettings, user_id)
        if settings is not None:
            return settings
        settings = default_settings(user_id)
        try:
            async with self.session.begin_nested():
                self.session.add(settings)
        except IntegrityError:  # created a moment ago by a concurrent update
            found = await self.session.get(NotificationSettings, user_id)
            assert found is not None
            return found
        return settings


class ConfirmationRepo:
    """One-shot confirmations. `consume` is atomic: of two racing presses exactly one wins."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, user_id: int, action: str, payload: dict[str, Any]) -> str:
        """A new question; it replaces the user's open ones (their buttons stop working)."""
        await self.session.execute(self._open(user_id).values(consumed_at=utcnow()))
        confirmation_id = secrets.token_urlsafe(9)
        self.session.add(
            Confirmation(
                id=confirmation_id, user_id=user_id, action=action, payload=json.dumps(payload)
            )
        )
        await self.session.commit()
        return confirmation_id

    async def consume(
        self,
        confirmation_id: str,
        user_id: int,
        max_age: timedelta,
        action: str | None = None,
        *,
        owner: str | None = None,
    ) -> tuple[str, dict[str, Any]] | None:
        """Mark it used and return (action, payload); None if unknown, foreign, stale or used.

        With `action`, a confirmation of another action is left alone (None). The action is
        marked running on the instance `owner`, by default the session's (`INSTANCE`, set by
        DbSessionMiddleware); on none, it counts as a dead instance's.
        """
        now = utcnow()
        query = self._open(user_id, confirmation_id, action).where(
            Confirmation.created_at > now - max_age
        )
        owner = owner or self.session.info.get(INSTANCE)
        running = {"consumed_at": now, "running_since": now, "running_on": owner}
        taken = await self._take(query.values(running), confirmation_id)
        if taken is not None:  # DbSessionMiddleware clears running_since when the update is done
            self.session.info.setdefault(RUNNING, []).append(confirmation_id)
        return taken

    async def discard(
        self, confirmation_id: str, user_id: int, action: str | None = None
    ) -> tuple[str, dict[str, Any]] | None:
        """Like `consume` for a "no": (action, payload) if it was still open, else None."""
        query = self._open(user_id, confirmation_id, action).values(consumed_at=utcnow())
        return await self._take(query, confirmation_id)

    async def discard_open(self, user_id: int) -> int:
        """Closes every open confirmation of the user (/cancel); how many were open."""
        result = await self.session.execute(self._open(user_id).values(consumed_at=utcnow()))
        await self.session.commit()
        return int(getattr(result, "rowcount", 0) or 0)

    @staticmethod
    def _open(
        user_id: int, confirmation_id: str | None = None, action: str | None = None
    ) -> Update:
        query = update(Confirmation).where(
            Confirmation.user_id == user_id, Confirmation.consumed_at.is_(None)
        )
        if confirmation_id is not None:
            query = query.where(Confirmation.id == confirmation_id)
        if action is not None:
            query = query.where(Confirmation.action == action)
        return query

    async def _take(self, query: Update, confirmation_id: str) -> tuple[str, dict[str, Any]] | None:
        """Runs the guarded UPDATE; the row is ours only if exactly this call changed it."""
        result = await self.session.execute(query)
        await self.session.commit()
        if getattr(result, "rowcount", 0) != 1:
            return None
        row = await self.session.get(Confirmation, confirmation_id)
        assert row is not None
        payload = json.loads(row.payload or "{}")
        return row.action, payload if isinstance(payload, dict) else {}

    async def finish_running(self) -> None:
        """The actions this session's `consume` started are over (done, refused or failed)."""
        await self.stop_running(self.session.info.pop(RUNNING, []))

    async def stop_running(self, confirmation_ids: Sequence[str]) -> None:
        if confirmation_ids:
            await self.session.execute(
                update(Confirmation)
                .where(Confirmation.id.in_(confirmation_ids))
                .values(running_since=None, running_on=None)
            )

    async def running_owners(self) -> set[str | None]:
        """The instances running a confirmed action now (None: a row of no instance)."""
        query = select(Confirmation.running_on).where(Confirmation.running_since.is_not(None))
        return set((await self.session.scalars(query.distinct())).all())

    async def running_on(
        self, owners: Collection[str | None], limit: int = 100
    ) -> list[Confirmation]:
        """Actions marked running on one of `owners` (None: on no instance), oldest first."""
        named = [owner for owner in owners if owner is not None]
        on: ColumnElement[bool] = Confirmation.running_on.in_(named)
        if None in owners:
            on = or_(on, Confirmation.running_on.is_(None))
        query = (
            select(Confirmation)
            .where(Confirmation.running_since.is_not(None), on)
            .order_by(Confirmation.running_since)
            .limit(limit)
        )
        return list((await self.session.scalars(query)).all())

    async def take_running(self, row: Confirmation, owner: str) -> bool:
        """Moves a running action from the (dead) instance it was seen on to `owner`, so of
        several instances taking over at once exactly one settles it; commits."""
        seen = (
            Confirmation.running_on.is_(None)
            if row.running_on is None
            else Confirmation.running_on == row.running_on
        )
        result = await self.session.execute(
            update(Confirmation)
            .where(Confirmation.id == row.id, Confirmation.running_since.is_not(None), seen)
            .values(running_on=owner)
        )
        await self.session.commit()
        return getattr(result, "rowcount", 0) == 1


class SavedDeviceRepo:
    """One saved device at a time, always scoped to its owner (a pressed row id is untrusted)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int, row_id: int) -> Device | None:
        query = select(Device).where(Device.user_id == user_id, Device.id == row_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def by_device_id(self, user_id: int, device_id: str) -> Device | None:
        query = select(Device).where(Device.user_id == user_id, Device.device_id == device_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def delete(self, user_id: int, row_id: int) -> bool:
        result = await self.session.execute(
            delete(Device).where(Device.user_id == user_id, Device.id == row_id)
        )
        return bool(getattr(result, "rowcount", 0))


class SentSmsRepo:
    """SMS sent from the bot and where their card is, for the poller to keep the card current."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        *,
        user_id: int,
        sms_id: str,
        chat_id: int,
        message_id: int,
        phone: str,
        text: str,
        device_id: str = "",
        device_name: str = "",
        to_sim: int | None = None,
        status: int = 0,
    ) -> SentSms:
        row = SentSms(
            user_id=user_id,
            sms_id=sms_id,
            chat_id=chat_id,
            message_id=message_id,
            phone=phone,
            text=text,
            device_id=device_id,
            device_name=device_name,
            to_sim=to_sim,
            status=status,
        )
        self.session.add(row)
        return row

    async def get(self, user_id: int, sms_id: str) -> SentSms | None:
        query = select(SentSms).where(SentSms.user_id == user_id, SentSms.sms_id == sms_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def set_status(self, user_id: int, sms_id: str, status: int) -> bool:
        """Records the last known status; True when it changed."""
        result = await self.session.execute(
            update(SentSms)
            .where(SentSms.user_id == user_id, SentSms.sms_id == sms_id, SentSms.status != status)
            .values(status=status, updated_at=utcnow())
        )
        return bool(getattr(result, "rowcount", 0))

    async def pending(self, user_id: int, final: Sequence[int] = (3, 4, 5)) -> Sequence[SentSms]:
        """The user's SMS whose last known status is not final, oldest first."""
        query = (
            select(SentSms)
            .where(SentSms.user_id == user_id, SentSms.status.not_in(final))
            .order_by(SentSms.id)
        )
        return (await self.session.execute(query)).scalars().all()

    async def forget(self, user_id: int, sms_id: str) -> None:
        await self.session.execute(
            delete(SentSms).where(SentSms.user_id == user_id, SentSms.sms_id == sms_id)
        )
