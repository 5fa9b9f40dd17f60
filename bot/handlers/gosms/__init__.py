"""gosms routers: /send, /bulk, /sms and /devices, each behind the GoSMS token check."""

from __future__ import annotations

from aiogram import Router

from bot.handlers.gosms import bulk, devices, send, sms


def get_routers() -> list[Router]:
    return [send.router(), bulk.router(), sms.router(), devices.router()]
