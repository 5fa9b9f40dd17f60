"""gotsms routers."""

from __future__ import annotations

from aiogram import Router


def get_routers() -> list[Router]:
    return []
