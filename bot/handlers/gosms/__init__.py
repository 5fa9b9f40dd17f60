"""gosms routers: /send, /sms and /devices, each behind the GoSMS token check."""

from __future__ import annotations

from aiogram import Router

from bot.handlers.gosms import devices, send, sms


def get_routers() -> list[Router]:
    return [send.router(), sms.router(), devices.router()]
