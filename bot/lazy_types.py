"""Import aiogram with its Telegram types built when first used, not all at import.

aiogram's types ask pydantic to defer building their validators (`defer_build`), then
`aiogram/types/__init__.py` rebuilds every one of them (~300 models, each with its own copy of
every schema it nests) to resolve their forward references: about 100 MB and several seconds of
CPU at import, mostly for types this bot never sees. While that module runs, `model_rebuild` here
only records the namespace the types need (as their parent namespace, which pydantic consults when
it builds a model later), so each model is built the first time it is used: the first update, the
first `sendMessage`. The methods get the same namespace.

A self-check then validates an update and a `sendMessage`; should that fail with some future
aiogram or pydantic, every type is built at once, as aiogram does.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from pydantic import BaseModel

log = logging.getLogger(__name__)
SAMPLE_UPDATE = {
    "update_id": 1,
    "message": {
        "message_id": 1,
        "date": 0,
        "chat": {"id": 1, "type": "private"},
        "from": {"id": 1, "is_bot": False, "first_name": "a"},
        "text": "/start",
    },
}


def import_aiogram() -> bool:
    """Imports aiogram lazily; False when it was imported already (nothing to save then)."""
    if "aiogram.types" in sys.modules:
        return False
    namespace: dict[str, Any] = {}
    original = BaseModel.__dict__["model_rebuild"]

    def record(cls: type[BaseModel], /, **kwargs: Any) -> bool | None:
        types_namespace = kwargs.get("_types_namespace")
        if types_namespace is None or not cls.__module__.startswith("aiogram.types"):
            depth = kwargs.pop("_parent_namespace_depth", 2) + 1
            return original.__func__(cls, _parent_namespace_depth=depth, **kwargs)  # type: ignore[no-any-return]
        namespace.update(types_namespace)
        cls.__pydantic_parent_namespace__ = namespace
        return None

    BaseModel.model_rebuild = classmethod(record)  # type: ignore[method-assign, assignment]
    try:
        import aiogram.types  # noqa: F401
    finally:
        BaseModel.model_rebuild = original  # type: ignore[method-assign]
    _share_with_methods(namespace)
    try:
        _self_check()
    except Exception:
        log.warning("lazy aiogram types failed their check; building them all now", exc_info=True)
        _build_all(namespace)
    return True


def _models(module: Any) -> list[type[BaseModel]]:
    found = (getattr(module, name) for name in module.__all__)
    return [m for m in found if isinstance(m, type) and issubclass(m, BaseModel)]


def _share_with_methods(namespace: dict[str, Any]) -> None:
    import aiogram.methods

    for model in _models(aiogram.methods):
        model.__pydantic_parent_namespace__ = namespace


def _self_check() -> None:
    from aiogram.methods import SendMessage
    from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Update

    update = Update.model_validate(SAMPLE_UPDATE)
    if update.message is None or update.message.text != "/start":
        raise ValueError("the sample update did not survive validation")
    button = InlineKeyboardButton(text="x", callback_data="y")
    SendMessage(chat_id=1, text="x", reply_markup=InlineKeyboardMarkup(inline_keyboard=[[button]]))


def _build_all(namespace: dict[str, Any]) -> None:
    import aiogram.methods
    import aiogram.types

    for model in _models(aiogram.types) + _models(aiogram.methods):
        model.model_rebuild(force=True, _types_namespace=namespace)
