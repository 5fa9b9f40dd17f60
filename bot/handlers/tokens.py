"""/token and /logout: connect a token (checked, stored encrypted) or disconnect it."""

from __future__ import annotations

from dataclasses import dataclass

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.clients import Clients
from bot.api.errors import ApiAuthError, ApiError, ApiPermissionError
from bot.db.crypto import TokenCipher
from bot.db.models import Service, User
from bot.db.repo import CredentialRepo
from bot.handlers.confirm import question, settle
from bot.handlers.util import delete_quietly, show, typing
from bot.keyboards.callbacks import ConfirmCb, LogoutCb, LogoutTarget, MenuCb, TokenCb
from bot.keyboards.common import logout_targets, token_services
from bot.middlewares.errors import Ack
from bot.services.credentials import (
    AccountCheck,
    check_token,
    forget,
    looks_like_token,
    store_token,
)
from bot.texts import api_error_text, money, service_name

SERVICE_WORDS = {"gotsms": Service.GOTSMS, "gosms": Service.GOSMS}
PRIVATE = F.chat.type == "private"


@dataclass(frozen=True)
class Deps:
    session: AsyncSession
    cipher: TokenCipher
    clients: Clients
    user: User


class TokenFlow(StatesGroup):
    waiting = State()


def usage() -> str:
    return _(
        "Send <code>/token gotsms YOUR_TOKEN</code> or <code>/token gosms YOUR_TOKEN</code>, "
        "or just /token and I'll ask."
    )


def connected_text(service: Service, check: AccountCheck) -> str:
    if check.balance is not None:
        text = _("✅ GotSMS is connected. Balance: {balance}.").format(balance=money(check.balance))
    elif check.missing_permission:
        text = _(
            "✅ GoSMS is connected, but this API token may not read the SMS list: "
            "enable that permission in the GoSMS panel."
        )
    else:
        text = _("✅ GoSMS is connected: {count} SMS in the account.").format(count=check.sms_total)
    return text + "\n" + _("The token is stored encrypted, and I deleted your message with it.")


def refused_text(service: Service, error: ApiError) -> str:
    if isinstance(error, ApiAuthError | ApiPermissionError):
        reason = _("{service} did not accept this token.").format(service=service_name(service))
        if error.code in (1002, 3000):
            reason = api_error_text(error)
        return "❌ " + reason + " " + _("Check it and send it again. Nothing was saved.")
    return "❌ " + api_error_text(error) + " " + _("The token was not saved.")


def _names(services: set[Service]) -> str:
    return _(" and ").join(service_name(s) for s in sorted(services)) or "—"


def logout_question(services: set[Service]) -> str:
    return ngettext(
        "Disconnect your {names} token? I will stop watching everything that belongs to it.",
        "Disconnect your {names} tokens? I will stop watching everything that belongs to them.",
        len(services),
    ).format(names=_names(services))


def disconnected_text(services: set[Service]) -> str:
    return ngettext(
        "Done: the {names} token is disconnected. Connect it again any time with /token.",
        "Done: the {names} tokens are disconnected. Connect them again any time with /token.",
        max(1, len(services)),
    ).format(names=_names(services))


def router() -> Router:
    r = Router(name="tokens")

    @r.message(Command("token"))
    async def token_command(
        message: Message,
        command: CommandObject,
        state: FSMContext,
        session: AsyncSession,
        cipher: TokenCipher,
        clients: Clients,
        user: User,
    ) -> None:
        args = (command.args or "").split()
        if not args:
            await state.clear()
            await message.answer(
                _("Which service is the token for?"), reply_markup=token_services()
            )
            return
        await delete_quietly(message)  # whatever follows /token may be a token
        service = SERVICE_WORDS.get(args[0].lower())
        if service is None or len(args) > 2:
            await message.answer(_("I couldn't read that.") + " " + usage())
            return
        if len(args) == 1:
            await ask_for_token(message, state, service)
            return
        await connect(message, service, args[1], Deps(session, cipher, clients, user))

    @r.callback_query(MenuCb.filter(F.action == "token"), F.message.chat.type == "private")
    async def token_button(query: CallbackQuery, ack: Ack, state: FSMContext) -> None:
        await ack()
        await state.clear()
        if isinstance(query.message, Message):
            await query.message.answer(
                _("Which service is the token for?"), reply_markup=token_services()
            )

    @r.callback_query(TokenCb.filter(), F.message.chat.type == "private")
    async def service_chosen(
        query: CallbackQuery, callback_data: TokenCb, ack: Ack, state: FSMContext
    ) -> None:
        await ack()
        if isinstance(query.message, Message):
            await ask_for_token(query.message, state, callback_data.service, edit=True)

    @r.message(TokenFlow.waiting, PRIVATE, F.text, ~F.text.startswith("/"))
    async def token_sent(
        message: Message,
        state: FSMContext,
        session: AsyncSession,
        cipher: TokenCipher,
        clients: Clients,
        user: User,
    ) -> None:
        await delete_quietly(message)
        data = await state.get_data()
        await state.clear()
        service = Service(data["service"])
        token = (message.text or "").strip()
        await connect(message, service, token, Deps(session, cipher, clients, user))

    @r.message(TokenFlow.waiting, PRIVATE, ~F.text)
    async def not_text(message: Message) -> None:
        await message.answer(_("Send the token as text, or /cancel."))

    @r.message(Command("logout"))
    async def logout_command(
        message: Message, session: AsyncSession, cipher: TokenCipher, user: User
    ) -> None:
        await offer_logout(message, session, cipher, user)

    @r.callback_query(MenuCb.filter(F.action == "logout"))
    async def logout_button(
        query: CallbackQuery, ack: Ack, session: AsyncSession, cipher: TokenCipher, user: User
    ) -> None:
        await ack()
        if isinstance(query.message, Message):
            await offer_logout(query.message, session, cipher, user)

    @r.callback_query(LogoutCb.filter())
    async def logout_target(
        query: CallbackQuery,
        callback_data: LogoutCb,
        ack: Ack,
        session: AsyncSession,
        cipher: TokenCipher,
        user: User,
    ) -> None:
        await ack()
        connected = await CredentialRepo(session, cipher).services(user.id)
        chosen = (
            {Service(callback_data.target.value)}
            if callback_data.target != LogoutTarget.ALL
            else connected
        )
        chosen &= connected
        if not isinstance(query.message, Message):
            return
        if not chosen:
            await query.message.edit_text(_("That token is no longer connected."))
            return
        asked = await question(
            session, user.id, "logout", {"services": sorted(chosen)}, "🚪 " + _("Yes, disconnect")
        )
        await query.message.edit_text(logout_question(chosen), reply_markup=asked.keyboard)

    @r.callback_query(ConfirmCb.filter(F.action == "logout"))
    async def logout_confirmed(
        query: CallbackQuery,
        callback_data: ConfirmCb,
        ack: Ack,
        session: AsyncSession,
        cipher: TokenCipher,
        user: User,
    ) -> None:
        settled = await settle(query, callback_data, ack, session, user)
        if settled is None:
            return
        if not settled.ok:
            await show(settled.message, _("Nothing was changed."))
            return
        services = {Service(s) for s in settled.payload.get("services", [])}
        forgotten = await forget(session, cipher, user.id, services)
        await show(settled.message, disconnected_text(forgotten))

    return r


async def ask_for_token(
    message: Message, state: FSMContext, service: Service, *, edit: bool = False
) -> None:
    await state.set_state(TokenFlow.waiting)
    await state.update_data(service=service.value)
    where = (
        _("You'll find it in your GotSMS profile once API access is turned on.")
        if service is Service.GOTSMS
        else _("You'll find it in the GoSMS panel under API.")
    )
    text = "\n".join(
        [
            _("Send your {service} API token now.").format(service=service_name(service)),
            where,
            _("I'll delete your message with it right away. /cancel stops."),
        ]
    )
    # `show` takes an unchanged message (the same button pressed twice) as done
    await show(message, text, edit=edit)


async def connect(message: Message, service: Service, token: str, deps: Deps) -> None:
    if not looks_like_token(token):
        await message.answer(
            _("That doesn't look like a {service} token. Copy it again and send it.").format(
                service=service_name(service)
            )
        )
        return
    assert message.bot is not None
    try:
        async with typing(message.bot, message.chat.id):
            check = await check_token(deps.clients, service, token)
    except ApiError as error:
        await message.answer(refused_text(service, error))
        return
    await store_token(deps.session, deps.cipher, deps.user.id, service, token)
    await message.answer(connected_text(service, check))


async def offer_logout(
    message: Message, session: AsyncSession, cipher: TokenCipher, user: User
) -> None:
    connected = await CredentialRepo(session, cipher).services(user.id)
    await session.commit()  # no connection held through the Telegram call
    if not connected:
        await message.answer(_("No token is connected, so there is nothing to disconnect."))
        return
    await message.answer(
        _("Which token should I disconnect?"), reply_markup=logout_targets(connected)
    )
