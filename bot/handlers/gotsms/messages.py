"""/codes (unread codes, mark read) and /messages [phone | service] (the history)."""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.api.gotsms import GotSMSClient
from bot.db.models import Service
from bot.handlers.gotsms.common import busy, stale, target, unpack
from bot.handlers.util import show
from bot.keyboards import gotsms as kb
from bot.keyboards.callbacks import MenuCb
from bot.middlewares.errors import Ack
from bot.middlewares.tokens import NeedsToken
from bot.services.gotsms import (
    CODES_PAGE,
    MESSAGES_PAGE,
    clean_search,
    find_service,
    fingerprint,
    pages_of,
    phone_digits,
)
from bot.texts.gotsms import codes_text, marked_text, messages_text


def router() -> Router:
    r = Router(name="gotsms.messages")
    r.message.middleware(NeedsToken(Service.GOTSMS))
    r.callback_query.middleware(NeedsToken(Service.GOTSMS))

    @r.message(Command("codes"))
    async def codes_command(message: Message, gotsms: GotSMSClient) -> None:
        await show_codes(message, gotsms, edit=False)

    @r.callback_query(MenuCb.filter(F.action == "codes"))
    async def codes_button(query: CallbackQuery, ack: Ack, gotsms: GotSMSClient) -> None:
        await ack()
        if (message := target(query)) is not None:
            await show_codes(message, gotsms, edit=False)

    @r.callback_query(kb.CodesCb.filter(F.a == "l"))
    async def codes_again(query: CallbackQuery, ack: Ack, gotsms: GotSMSClient) -> None:
        await ack()
        if (message := target(query)) is not None:
            await show_codes(message, gotsms)

    @r.callback_query(kb.CodesCb.filter((F.a == "r") & F.h.regexp(r"^[0-9a-f]{8}$")))
    async def mark_read(
        query: CallbackQuery, callback_data: kb.CodesCb, ack: Ack, gotsms: GotSMSClient
    ) -> None:
        """Marks read with one call: `mark_as_read=1` on the same first page that was shown.

        The answer of that call is exactly the set it marked. When it is the set the user saw
        (same fingerprint), we just say so. When messages arrived in between, the page shifted:
        we show every message that was marked, codes on copy buttons, so nothing is marked
        read unseen; the ones pushed off the page stay unread for the next look.
        """
        await ack()
        message = target(query)
        if message is None:
            return
        async with busy(message):
            marked = await gotsms.unread_messages(mark_as_read=True, per_page=CODES_PAGE)
        same = fingerprint(marked.data) == callback_data.h
        left = max(0, marked.meta.total - len(marked.data))
        await show(
            message,
            marked_text(marked.data, same, left),
            kb.after_marking([] if same else marked.data, more=left > 0),
        )

    @r.message(Command("messages"))
    async def messages_command(
        message: Message, command: CommandObject, gotsms: GotSMSClient
    ) -> None:
        text = clean_search(command.args)
        view = kb.MessagesCb(p=1)
        if phone_digits(text):
            view = kb.MessagesCb(p=1, q=phone_digits(text))
        elif text:
            async with busy(message):
                service, _count = await find_service(gotsms, text)
            if service is None:
                await message.answer(
                    _("No service matches «{text}». Showing all messages.").format(
                        text=escape(text)
                    )
                )
            else:
                view = kb.MessagesCb(p=1, s=kb.short_id(service.id))
        await show_messages(message, gotsms, view, edit=False)

    @r.callback_query(kb.MessagesCb.filter((F.p >= 1) & F.q.regexp(r"^[0-9]{0,20}$")))
    async def messages_page(
        query: CallbackQuery, callback_data: kb.MessagesCb, ack: Ack, gotsms: GotSMSClient
    ) -> None:
        if callback_data.s and unpack(callback_data.s) is None:
            await stale(ack)
            return
        await ack()
        if (message := target(query)) is not None:
            await show_messages(message, gotsms, callback_data)

    return r


async def show_codes(message: Message, gotsms: GotSMSClient, *, edit: bool = True) -> None:
    async with busy(message):
        unread = await gotsms.unread_messages(mark_as_read=False, per_page=CODES_PAGE)
    await show(
        message,
        codes_text(unread.data, unread.meta.total),
        kb.codes(unread.data, fingerprint(unread.data)),
        edit=edit,
    )


async def show_messages(
    message: Message, gotsms: GotSMSClient, view: kb.MessagesCb, *, edit: bool = True
) -> None:
    ids = unpack(view.s) if view.s else None
    service_id = ids[0] if ids else None
    async with busy(message):
        found = await gotsms.messages(
            service_id=service_id, phone=view.q or None, page=view.p, per_page=MESSAGES_PAGE
        )
    pages = pages_of(found.meta.total, MESSAGES_PAGE)
    view = view.model_copy(update={"p": min(view.p, pages)})
    service = ""
    if service_id:
        service = next((m.service.name for m in found.data if m.service), _("the chosen service"))
    text = messages_text(found.data, view.p, pages, service, view.q)
    await show(message, text, kb.messages(found.data, view, pages), edit=edit)
