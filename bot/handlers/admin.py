"""/admin: the operators' figures and the allowlist rules. For anyone but ADMIN_IDS the command
does not exist: its filters fail, and the update goes on as any unknown command does."""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import TYPE_CHECKING

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Access, Settings
from bot.db.access import AccessRepo, Change, Listed, subject_of
from bot.db.admin_stats import Figures, collect, publish
from bot.db.models import Service, utcnow
from bot.db.outbox_repo import OutboxRepo
from bot.db.repo import UserRepo
from bot.handlers.util import show
from bot.middlewares.errors import Ack
from bot.texts import number, service_name

if TYPE_CHECKING:
    from bot.app import Deps

# /admin subcommands that routers of their own take (registered before this one): this router
# leaves them alone, so "/admin broadcast" reaches them wherever they are in the chain
OTHERS = frozenset({"broadcast"})
NUMBER_PATTERN = "#,##0.#"


class AdminCb(CallbackData, prefix="adm"):
    action: str


async def from_admin(event: Message | CallbackQuery, settings: Settings) -> bool:
    """An operator, in their private chat with the bot."""
    chat = event.chat if isinstance(event, Message) else getattr(event.message, "chat", None)
    user = event.from_user
    private = getattr(chat, "type", "") == "private"
    return user is not None and private and settings.is_admin(user.id)


async def not_others(message: Message, command: CommandObject) -> bool:
    words = (command.args or "").split()
    return not words or words[0].lower() not in OTHERS


def refresh_keyboard() -> InlineKeyboardMarkup:
    button = InlineKeyboardButton(
        text=_("🔄 Refresh"), callback_data=AdminCb(action="refresh").pack()
    )
    return InlineKeyboardMarkup(inline_keyboard=[[button]])


def _seconds(value: float | None) -> str:
    """Seconds, one decimal at most, in the user's locale: "5 s", "0.4 s"; ru "5 с", "0,4 с"."""
    if value is None:
        return "—"
    return _("{seconds} s").format(seconds=number(value, NUMBER_PATTERN))


def _by_job(counts: dict[str, int]) -> str:
    return " · ".join(f"{job} {count}" for job, count in sorted(counts.items())) or _("none")


def figures_text(f: Figures, at: datetime) -> str:
    lines = [
        _("<b>SMS Desk: statistics</b>"),
        "",
        _("👥 Users: {all} · active in 24 h: {active} · blocked the bot: {blocked}").format(
            all=f.users, active=f.active, blocked=f.blocked
        ),
        _("🔑 API tokens: {gotsms_name} {gotsms} · {gosms_name} {gosms}").format(
            gotsms_name=service_name(Service.GOTSMS),
            gotsms=f.tokens.get(Service.GOTSMS.value, 0),
            gosms_name=service_name(Service.GOSMS),
            gosms=f.tokens.get(Service.GOSMS.value, 0),
        ),
        _("👀 Watched rentals: {rents} · SMS awaiting delivery: {sms}").format(
            rents=f.rents, sms=f.sms
        ),
        _("🔁 Users polled, by job: {jobs}").format(jobs=_by_job(f.polls)),
        _("📤 Notifications in the last hour: {count} · delay: p50 {p50}, p95 {p95}").format(
            count=f.pushes, p50=_seconds(f.p50), p95=_seconds(f.p95)
        ),
        _("📦 Waiting to be sent: {backlog} · dropped, never sent: {parked}").format(
            backlog=f.backlog, parked=f.parked
        ),
    ]
    if f.failures:
        failing = " · ".join(
            _("{job}: users: {count}, most failures in a row: {most}").format(
                job=job, count=count, most=most
            )
            for job, (count, most) in sorted(f.failures.items())
        )
        lines.append(_("⚠️ Failing polls: {jobs}").format(jobs=failing))
    else:
        lines.append(_("✅ No poll is failing."))
    b = f.budget
    lines.append(
        _(
            "⏳ GotSMS request budget (this instance, this minute): tokens: {seen} · "
            "at the reserve: {reserve} · told to wait: {held} · fewest requests left: {lowest}"
        ).format(
            seen=b.seen,
            reserve=b.at_reserve,
            held=b.held_back,
            lowest="—" if b.lowest is None else b.lowest,
        )
    )
    lines += ["", _("Updated: {time} UTC").format(time=at.strftime("%Y-%m-%d %H:%M:%S"))]
    return "\n".join(lines)


def usage_text() -> str:
    return "\n".join(
        [
            _("<b>/admin</b> — statistics, with a button to refresh them"),
            _("/admin allow &lt;ID|@username&gt; — let someone use the bot"),
            _("/admin deny &lt;ID|@username&gt; — keep someone out (never an admin)"),
            _("/admin broadcast — send an announcement to every active user"),
        ]
    )


def _who(subject: str) -> str:
    return escape(subject) if subject.startswith("@") else f"<code>{subject}</code>"


def allowed_text(subject: str, change: Change, listed: Listed) -> str:
    who = _who(subject)
    if change is Change.SAME:
        return _("{who} has access already: nothing changed.").format(who=who)
    if change is Change.FLIPPED:
        return _("✅ {who} has access again: the deny is lifted.").format(who=who)
    if listed.lists(subject):
        return _("{who} had access already (ALLOWED_USERS): the rule is stored too.").format(
            who=who
        )
    return _("✅ {who} has access now.").format(who=who)


def denied_text(subject: str, change: Change, listed: Listed) -> str:
    who = _who(subject)
    if change is Change.SAME:
        return _("{who} is denied access already: nothing changed.").format(who=who)
    if change is Change.NEW and not listed.lists(subject):
        return _(
            "⛔ {who} is denied access: they had none before either, "
            "and now ALLOWED_USERS cannot let them in."
        ).format(who=who)
    return _("⛔ {who} is denied access now.").format(who=who)


async def stop_serving(session: AsyncSession, user_id: int) -> None:
    """A denied user's tokens are no longer polled and their queued pushes dropped, as for a
    user who blocked the bot (an allow and their /start bring them back)."""
    await UserRepo(session).set_active(user_id, False)
    await OutboxRepo(session).drop_pending_of(user_id, "denied")
    await session.commit()


async def set_rule(
    message: Message, session: AsyncSession, settings: Settings, allow: bool, arg: str
) -> str:
    subject = subject_of(arg)
    if subject is None or message.from_user is None:
        return _("Give a Telegram ID or an @username: <code>/admin {word} 123456789</code>").format(
            word="allow" if allow else "deny"
        )
    ids, names = settings.allowed
    listed = Listed(ids, names, settings.admins)
    if not allow and subject.isdigit() and settings.is_admin(int(subject)):
        return _(
            "{who} is an admin (ADMIN_IDS): admins are never denied access. Nothing changed."
        ).format(who=_who(subject))
    change = await AccessRepo(session).set_rule(subject, allow, message.from_user.id)
    if not allow and settings.access is Access.ALLOWLIST and subject.isdigit():
        await stop_serving(session, int(subject))
    text = (allowed_text if allow else denied_text)(subject, change, listed)
    if settings.access is Access.OPEN:
        text += "\n\n" + _(
            "Note: ACCESS=open, so anyone may use the bot; the rules apply only with "
            "ACCESS=allowlist."
        )
    return text


async def admin(
    message: Message, command: CommandObject, session: AsyncSession, settings: Settings, deps: Deps
) -> None:
    words = (command.args or "").split()
    sub = words[0].lower() if words else ""
    if not sub:
        figures = await collect(session, deps.clients.http.rate_limits)
        publish(figures, deps.metrics)
        await message.answer(figures_text(figures, utcnow()), reply_markup=refresh_keyboard())
    elif sub in ("allow", "deny") and len(words) == 2:
        await message.answer(await set_rule(message, session, settings, sub == "allow", words[1]))
    else:
        await message.answer(usage_text())


async def refresh(query: CallbackQuery, ack: Ack, session: AsyncSession, deps: Deps) -> None:
    await ack()
    figures = await collect(session, deps.clients.http.rate_limits)
    publish(figures, deps.metrics)
    if isinstance(query.message, Message):
        await show(query.message, figures_text(figures, utcnow()), refresh_keyboard())


def router() -> Router:
    r = Router(name="admin")
    r.message.register(admin, Command("admin"), from_admin, not_others)
    r.callback_query.register(refresh, AdminCb.filter(F.action == "refresh"), from_admin)
    return r
