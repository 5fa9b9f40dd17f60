"""Delivers the outbox to Telegram: in order per user, paced, and marked sent only once accepted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramRetryAfter,
)
from aiogram.types import BufferedInputFile, Message
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.group_links import GroupLinkRepo
from bot.db.models import utcnow
from bot.db.outbox import OutboxItem
from bot.db.outbox_repo import Due, OutboxRepo
from bot.db.repo import UserRepo
from bot.metrics import Metrics
from bot.pace import Bucket, LocalPace, Pacing, Send
from bot.poller.broadcasts import LOADERS
from bot.poller.files import READERS
from bot.poller.pushes import RENDERERS, Document, Push, Renderer
from bot.telegram_retry import leave_429s_to_caller

log = logging.getLogger(__name__)
T = TypeVar("T")
SENDING_AT_ONCE = 25  # the global pace is 25 a second anyway
MAX_ATTEMPTS = 5  # tries of one push before it is parked (sends that never settled count too)
GONE = ("chat not found", "user is deactivated", "bot was kicked")
Pace = LocalPace  # the name the tests and benchmarks build a pace of one process by
__all__ = ["MAX_ATTEMPTS", "Bucket", "OutboxSender", "Pace", "Pacing"]


class OutboxSender:
    def __init__(
        self,
        bot: Bot,
        session_factory: async_sessionmaker[AsyncSession],
        i18n: I18n,
        renderers: Mapping[str, Renderer] = RENDERERS,
        *,
        pace: Pacing | None = None,
        batch: int = 200,
        claim_hold: timedelta = timedelta(seconds=20),
        idle: float = 0.25,
        lock: AbstractAsyncContextManager[Any] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.bot = bot
        self.metrics = metrics or Metrics()
        self.owner: str | None = None  # the instance whose claims these are (bot/instances.py)
        # the poller's writer lock on SQLite (bot/poller/writes.py); a server database takes
        # writes side by side, and a send recorded late is a send a kill doubles
        self.lock: AbstractAsyncContextManager[Any] = lock or contextlib.nullcontext()
        self.session_factory = session_factory
        self.i18n = i18n
        self.renderers = renderers
        self.pace = pace or LocalPace()
        self.batch = batch
        self.claim_hold = claim_hold
        self.idle = idle
        self._wake = asyncio.Event()
        self._in_flight: set[int] = set()
        self._slots = asyncio.Semaphore(SENDING_AT_ONCE)

    def wake(self) -> None:
        """Something was queued: look at once instead of at the next idle tick."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Delivers until `stop` is set; a send under way is finished, not cut off.

        Sends run as tasks: one slow send (Telegram's 429 wait, a retried 5xx) never holds up the
        pushes of other chats. A user's next push goes only after the one before it is settled.
        """
        sending: set[asyncio.Task[bool]] = set()
        try:
            while not stop.is_set():
                try:
                    started = await self._start_due()
                except Exception:
                    log.exception("outbox round failed")
                    started = []
                for task in started:
                    sending.add(task)
                    task.add_done_callback(lambda done: self._settled(sending, done))
                if not started:
                    await self._sleep(stop)
        finally:
            await asyncio.gather(*sending, return_exceptions=True)

    def _settled(self, sending: set[asyncio.Task[bool]], task: asyncio.Task[bool]) -> None:
        sending.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("a send ended with %s", self._why(error))  # _bounded lets none out
        self._wake.set()  # the user's next push may go now

    async def _sleep(self, stop: asyncio.Event) -> None:
        self._wake.clear()
        waits = [asyncio.ensure_future(e.wait()) for e in (self._wake, stop)]
        await asyncio.wait(waits, timeout=self.idle, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waits:
            waiter.cancel()

    async def drain_once(self) -> int:
        """Sends what is due now and waits for it: the number delivered (tests)."""
        return sum(await asyncio.gather(*await self._start_due()))

    async def _start_due(self) -> list[asyncio.Task[bool]]:
        async with self.session_factory() as session:
            due = await OutboxRepo(session).due(utcnow(), self.batch)
        waiting = [d for d in due if d.item.id not in self._in_flight]
        spent = [d for d in waiting if d.item.attempts >= MAX_ATTEMPTS]
        if spent:  # tries that never settled (crashes, failed writes) count too
            await self._park_spent(spent)
            waiting = [d for d in waiting if d.item.attempts < MAX_ATTEMPTS]
        waits = await self.pace.admit([Send(d.item.id, d.chat_id) for d in waiting])
        now = asyncio.get_running_loop().time()
        slots = {d.item.id: now + w for d, w in zip(waiting, waits, strict=True) if w is not None}
        ready = [d for d in waiting if d.item.id in slots]
        if not ready:
            return []
        async with self.lock, self.session_factory() as session:
            ids = [d.item.id for d in ready]
            claimed = await OutboxRepo(session).claim_many(
                ids, utcnow(), self.claim_hold, self.owner
            )
        mine = [d for d in ready if d.item.id in claimed]
        self._in_flight.update(d.item.id for d in mine)
        return [asyncio.create_task(self._bounded(d, slots[d.item.id])) for d in mine]

    async def _park_spent(self, spent: list[Due]) -> None:
        async with self.lock, self.session_factory() as session:
            repo = OutboxRepo(session)
            for due in spent:
                await repo.drop(due.item.id, f"gave up after {due.item.attempts} tries")
                log.warning(
                    "push %s (%s) of user %s parked: %d tries never settled",
                    due.item.id,
                    due.item.kind,
                    due.item.user_id,
                    due.item.attempts,
                )

    async def _bounded(self, due: Due, slot: float) -> bool:
        """Sends at its slot of the pace (the loop's time). A slow send may outlive its claim;
        this process never sends the same row twice.

        Whatever goes wrong ends here as one log line: the claim runs out and the row goes
        again, its try counted, until it is parked after MAX_ATTEMPTS.
        """
        send = Send(due.item.id, due.chat_id)
        give_up = asyncio.get_running_loop().time() + self.claim_hold.total_seconds() / 2
        try:
            if (kept := await self._at_slot(send, slot, give_up)) is None:
                await self._let_go(due)
                return False
            async with self._slots:  # each delivery holds a database connection while it sends
                # a wait here (slow records) must not bunch sends up: the slot is checked again
                if await self._at_slot(send, kept, give_up) is None:
                    await self._let_go(due)
                    return False
                return await self._deliver(due)
        except Exception as exc:
            log.warning(
                "push %s (%s) not settled, tried again later: %s",
                due.item.id,
                due.item.kind,
                self._why(exc),
            )
            return False
        finally:
            self._in_flight.discard(due.item.id)

    async def _at_slot(self, send: Send, slot: float, give_up: float) -> float | None:
        """Waits for the slot and returns it; one that went by meanwhile (a slow claim, a busy
        loop, a wait for a delivery slot) is asked again, so late sends never crowd those of
        other senders. None: no new slot by `give_up` (Telegram's flood wait), so the push is
        let go before another sender may claim it."""
        loop = asyncio.get_running_loop()
        while True:
            if (wait := slot - loop.time()) > 0:
                await asyncio.sleep(wait)
            if loop.time() - slot <= self.pace.late:
                return slot
            if loop.time() > give_up:
                return None
            [again] = await self.pace.admit([send])
            if again is None:  # the chat paused, or the next second taken: ask again soon
                await asyncio.sleep(self.idle)
            else:
                slot = loop.time() + again

    async def _let_go(self, due: Due) -> None:
        async with self.session_factory() as session:
            repo = OutboxRepo(session)
            await self._write(lambda: repo.retry_later(due.item.id, utcnow(), count=False))

    def _why(self, error: BaseException) -> str:
        """An error as one line, without the bot token (aiogram's errors may quote the URL)."""
        first = next(iter(str(error).splitlines()), "")  # SQLAlchemy's go on with the SQL
        return f"{type(error).__name__}: {first}".replace(self.bot.token, "<token>")

    async def _deliver(self, due: Due) -> bool:
        async with self.session_factory() as session:
            repo = OutboxRepo(session)
            payload = await self._payload(session, due)  # a failed read: tried again later
            try:
                push = await self._attach(session, due, self._render(due, payload))
            except Exception:
                log.exception("push %s (%s) cannot be rendered", due.item.id, due.item.kind)
                await self._write(lambda: repo.drop(due.item.id, "render failed"))
                return False
            return await self._send(repo, session, due, push)

    async def _attach(self, session: AsyncSession, due: Due, push: Push) -> Push:
        if push.attach is None:
            return push
        data = await READERS[due.item.kind](session, json.loads(due.item.payload))
        return replace(push, document=Document(push.attach, data))

    @staticmethod
    async def _payload(session: AsyncSession, due: Due) -> dict[str, Any]:
        """The row's payload, with what its kind reads from the database at send time."""
        payload: dict[str, Any] = json.loads(due.item.payload)
        if (load := LOADERS.get(due.item.kind)) is not None:
            payload = await load(session, payload)
        return payload

    def _render(self, due: Due, payload: Mapping[str, Any]) -> Push:
        renderer = self.renderers[due.item.kind]
        with self.i18n.context(), self.i18n.use_locale(due.locale):
            return renderer(payload)

    async def _send(self, repo: OutboxRepo, session: AsyncSession, due: Due, push: Push) -> bool:
        item = due.item
        try:
            message = await self._call(due.chat_id, push)
        except TelegramRetryAfter as exc:
            await self.pace.back_off(due.chat_id, exc.retry_after)
            later = utcnow() + timedelta(seconds=exc.retry_after)
            await self._write(lambda: repo.retry_later(item.id, later, count=False))
            return False
        except TelegramForbiddenError:
            await self._write(lambda: self._gone(repo, session, item, "blocked"))
            return False
        except TelegramMigrateToChat as moved:
            if (group := item.chat_id) is None:  # a private chat never migrates: a failure
                await self._failed(repo, due, moved)
                return False
            to = moved.migrate_to_chat_id
            await self._write(lambda: self._moved(repo, session, item.id, group, to))
            return False
        except TelegramBadRequest as exc:
            if any(reason in exc.message for reason in GONE):
                await self._write(lambda: self._gone(repo, session, item, "chat not found"))
                return False
            log.error("push %s (%s) refused by Telegram: %s", item.id, item.kind, exc.message)
            await self._write(lambda: repo.drop(item.id, "bad request"))
            return False
        except Exception as exc:  # a 5xx, the network, a 401/404/409, aiogram itself
            await self._failed(repo, due, exc)
            return False
        sent_id = message.message_id if message else push.edit_message_id
        try:
            await self._write(lambda: repo.mark_sent(item.id, sent_id))
        except Exception as exc:
            await session.rollback()
            await self._sent_unrecorded(repo, due, exc)
        return True

    async def _failed(self, repo: OutboxRepo, due: Due, error: Exception) -> None:
        """Again later with backoff; parked once it had MAX_ATTEMPTS tries (its claim counted
        this one)."""
        item, tries = due.item, due.item.attempts + 1
        if tries >= MAX_ATTEMPTS:
            log.warning(
                "push %s (%s) of user %s parked after %d tries: %s",
                item.id,
                item.kind,
                item.user_id,
                tries,
                self._why(error),
            )
            await self._write(lambda: repo.drop(item.id, f"failed {tries} times"))
            return
        delay = min(60.0, 2.0 ** min(item.attempts, 6))
        log.info("push %s: Telegram failed (%s), retry in %.0f s", item.id, self._why(error), delay)
        await self._write(lambda: repo.retry_later(item.id, utcnow() + timedelta(seconds=delay)))

    async def _sent_unrecorded(self, repo: OutboxRepo, due: Due, error: Exception) -> None:
        """Delivered, but the database refused to record it: parked, so it is not sent again
        (its message id is lost: a later edit of it sends anew)."""
        log.warning(
            "push %s (%s) was sent but not marked sent (%s); parked",
            due.item.id,
            due.item.kind,
            self._why(error),
        )
        await self._write(lambda: repo.drop(due.item.id, "sent, not recorded"))

    async def _write(self, write: Callable[[], Awaitable[T]]) -> T:
        """One write at a time with the poller's: SQLite's busy wait is slow under load."""
        async with self.lock:
            return await write()

    async def _call(self, chat_id: int, push: Push) -> Message | None:
        with leave_429s_to_caller():  # a 429 pauses the chat in the pace and queues the push again
            return await self._call_telegram(chat_id, push)

    async def _call_telegram(self, chat_id: int, push: Push) -> Message | None:
        if push.document is not None:  # the text is its caption
            document = BufferedInputFile(push.document.data, filename=push.document.filename)
            return await self.bot.send_document(
                chat_id, document, caption=push.text, reply_markup=push.reply_markup
            )
        if push.edit_message_id is None:
            return await self.bot.send_message(chat_id, push.text, reply_markup=push.reply_markup)
        try:
            result = await self.bot.edit_message_text(
                text=push.text,
                chat_id=chat_id,
                message_id=push.edit_message_id,
                reply_markup=push.reply_markup,
            )
        except TelegramBadRequest as exc:
            if "message is not modified" in exc.message:
                return None
            raise
        return result if isinstance(result, Message) else None

    @staticmethod
    async def _moved(
        repo: OutboxRepo, session: AsyncSession, item_id: int, group: int, to: int
    ) -> None:
        """A group became a supergroup: its links and pushes follow it to its new chat id."""
        await GroupLinkRepo(session).moved(group, to)
        await session.commit()
        await repo.retry_later(item_id, utcnow(), count=False)

    @staticmethod
    async def _gone(repo: OutboxRepo, session: AsyncSession, item: OutboxItem, reason: str) -> None:
        """The user blocked the bot or the chat is gone: stop polling and pushing until /start.
        A group's chat (the outbox's own chat_id): that group alone is unlinked, its owner's own
        pushes go on."""
        if item.chat_id is not None:
            log.info("group %s is gone (%s): its links are dropped", item.chat_id, reason)
            await GroupLinkRepo(session).forget_chat(item.chat_id, f"group {reason}")
            await session.commit()
            return
        user_id = item.user_id
        await UserRepo(session).set_active(user_id, False)
        await session.commit()
        await repo.drop_pending_of(user_id, reason)
