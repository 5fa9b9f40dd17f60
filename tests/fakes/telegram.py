"""A strict, in-process test double of the Telegram Bot API (the part a menu bot uses).

Start it, point aiogram at it and play the user with the control hooks::

    fake = FakeTelegram()
    await fake.start()
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.url))
    bot = Bot(fake.bot_token, session=session)
    fake.send_text(42, "/start")                   # user 42 writes; queued for getUpdates
    menu = await fake.wait_for_bot_message(42, "Hi")
    fake.press_button(42, "Help")                   # user 42 presses an inline button
    await fake.close()

Behaviour in brief (details in the docstrings below):

* Routes ``/bot{token}/{method}`` (GET and POST) take the query string plus a multipart,
  urlencoded or JSON body.  Values are decoded the way the Bot API reads them (JSON fields such
  as ``reply_markup`` are parsed, integer/boolean fields converted) and recorded in
  :attr:`FakeTelegram.calls` in arrival order, failed calls included.
* Answers are Telegram's envelopes: ``{"ok": true, "result": ...}`` or ``{"ok": false,
  "error_code": N, "description": "...", ["parameters": {"retry_after": N}]}`` with HTTP status
  ``N``.  Order of checks: latency, token (401), method (404), :meth:`FakeTelegram.fail_next`,
  random faults, then the method itself (validation, rate limits, state change).
* HTML ``parse_mode`` goes through a real parser of Telegram's subset (:func:`parse_html`) with
  Telegram's error texts.  Unlike Telegram, a bare ``&`` that starts no valid entity is an error
  while :attr:`FakeTelegram.strict_ampersand` is true (the default), so unescaped user content is
  caught.  Parsed text is trimmed of leading/trailing whitespace like Telegram does and then
  must be 1..4096 UTF-16 code units.
* Messages live per chat with per-chat increasing ids shared by the user and the bot.
* Files: :meth:`FakeTelegram.document_update` makes a user send a document with real bytes;
  ``getFile`` (at most 20 MB) gives a ``file_path`` served at ``/file/bot{token}/{file_path}``
  (the layout ``TelegramAPIServer.from_base`` builds, so ``Bot.download`` works); the bot
  uploads with ``sendDocument`` (at most 50 MB, caption at most 1024 characters) and
  :meth:`FakeTelegram.document_of` reads what it sent.
* Control hooks (the user side) are plain sync methods; only the waits are async.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import mimetypes
import random
import re
import socket
import string
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from types import TracebackType
from typing import Any, Literal

import aiohttp
from aiohttp import web
from aiohttp.web_request import FileField

__all__ = [
    "CONTENT_KINDS",
    "SERVICE_KINDS",
    "Button",
    "Call",
    "CallbackQueryRecord",
    "FakeTelegram",
    "HtmlParseError",
    "MessageVersion",
    "StoredFile",
    "StoredMessage",
    "Upload",
    "UserProfile",
    "WebhookDelivery",
    "bot_command_entities",
    "buttons_of",
    "parse_html",
    "utf16_len",
]

JSON = dict[str, Any]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


DEFAULT_TOKEN = "123456:TEST-fake-bot-token-0123456789abcdef"
DEFAULT_USERNAME = "sms_desk_test_bot"
MAX_TEXT_LENGTH = 4096
MAX_CALLBACK_DATA_BYTES = 64
MAX_COPY_TEXT = 256
MAX_BUTTONS = 100
MAX_COMMANDS = 100
MAX_COMMAND_LENGTH = 32
MAX_DESCRIPTION_LENGTH = 256
MAX_CALLBACK_ANSWER_LENGTH = 200
MAX_LONG_POLL = 50.0
FIRST_UPDATE_ID = 100_000_001
QUERY_ID_BASE = 4_000_000_000_000_000_000

MSG_UNAUTHORIZED = "Unauthorized"
MSG_NOT_FOUND = "Not Found"
MSG_INTERNAL = "Internal Server Error"
MSG_WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
MSG_POLL_TERMINATED = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
MSG_TEXT_EMPTY = "Bad Request: message text is empty"
MSG_TOO_LONG = "Bad Request: message is too long"
MSG_PARSE = "Bad Request: can't parse entities: "
MSG_UNSUPPORTED_PARSE_MODE = "Bad Request: unsupported parse_mode"
MSG_CHAT_EMPTY = "Bad Request: chat_id is empty"
MSG_CHAT_NOT_FOUND = "Bad Request: chat not found"
MSG_BLOCKED = "Forbidden: bot was blocked by the user"
MSG_CANT_INITIATE = "Forbidden: bot can't initiate conversation with a user"
MSG_BOT_KICKED = "Forbidden: bot was kicked from the group chat"
MSG_BOT_NOT_MEMBER = "Forbidden: bot is not a member of the group chat"
MSG_USER_ID_INVALID = "Bad Request: invalid user_id specified"
MSG_USER_NOT_FOUND = "Bad Request: user not found"
MSG_MIGRATED = "Bad Request: group chat was upgraded to a supergroup chat"
MSG_MESSAGE_ID_EMPTY = "Bad Request: message identifier is not specified"
MSG_EDIT_NOT_FOUND = "Bad Request: message to edit not found"
MSG_CANT_EDIT = "Bad Request: message can't be edited"
MSG_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
MSG_DELETE_NOT_FOUND = "Bad Request: message to delete not found"
MSG_REPLY_NOT_FOUND = "Bad Request: message to be replied not found"
MSG_QUERY_INVALID = (
    "Bad Request: query is too old and response timeout expired or query ID is invalid"
)
MSG_ANSWER_TOO_LONG = "Bad Request: MESSAGE_TOO_LONG"
MSG_MARKUP_JSON = "Bad Request: can't parse reply keyboard markup JSON object"
MSG_INLINE_ROWS = (
    'Bad Request: field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
)
MSG_BUTTON_JSON = (
    "Bad Request: can't parse inline keyboard button: InlineKeyboardButton must be an Object"
)
MSG_TEXT_BUTTON = (
    "Bad Request: can't parse inline keyboard button: "
    "Text buttons are unallowed in the inline keyboard"
)
MSG_MANY_ACTIONS = (
    "Bad Request: can't parse inline keyboard button: exactly one of the optional fields "
    "must be used"
)
MSG_INLINE_EXPECTED = "Bad Request: inline keyboard expected"
MSG_BUTTON_TEXT = "Bad Request: BUTTON_TEXT_INVALID"
MSG_BUTTON_DATA = "Bad Request: BUTTON_DATA_INVALID"
MSG_BUTTON_URL = "Bad Request: BUTTON_URL_INVALID"
MSG_BUTTON_COPY = "Bad Request: BUTTON_COPY_TEXT_INVALID"
MSG_MARKUP_TOO_LONG = "Bad Request: REPLY_MARKUP_TOO_LONG"
MSG_ENTITIES_JSON = "Bad Request: can't parse entities JSON object"
MSG_COMMANDS_JSON = "Bad Request: can't parse commands JSON object"
MSG_COMMANDS_TOO_MUCH = "Bad Request: BOT_COMMANDS_TOO_MUCH"
MSG_COMMAND_INVALID = "Bad Request: BOT_COMMAND_INVALID"
MSG_COMMAND_DESCRIPTION = "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID"
MSG_SCOPE_INVALID = "Bad Request: can't parse BotCommandScope JSON object"
MSG_LANG_INVALID = "Bad Request: LANG_CODE_INVALID"
MSG_CHAT_ACTION = "Bad Request: wrong parameter action in request"
MSG_MENU_BUTTON = "Bad Request: can't parse menu button JSON object"
MSG_WEBHOOK_HTTPS = "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
MSG_MESSAGE_IDS = "Bad Request: message identifiers are not specified"
MSG_INVALID_FILE_ID = "Bad Request: invalid file_id"
MSG_FILE_TOO_BIG = "Bad Request: file is too big"
MSG_CAPTION_TOO_LONG = "Bad Request: message caption is too long"
MSG_FILE_EMPTY = "Bad Request: file must be non-empty"
MSG_NO_DOCUMENT = "Bad Request: there is no document in the request"
MSG_WRONG_FILE = "Bad Request: wrong file identifier/HTTP URL specified"
MSG_ENTITY_TOO_LARGE = "Request Entity Too Large"
MSG_NO_TEXT_TO_EDIT = "Bad Request: there is no text in the message to edit"
MSG_NO_CAPTION_TO_EDIT = "Bad Request: there is no caption in the message to edit"

MAX_CAPTION_LENGTH = 1024
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # getFile refuses bigger files
MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # what a bot may upload
_REQUEST_OVERHEAD = 1024 * 1024  # the rest of a multipart body around an upload
PLACEHOLDER_SIZE = 1000  # bytes of a sample file (content_update) that names no file_size

TEXT_LIMITS = {"description": 512, "short_description": 120, "name": 64}
UPDATE_TYPES = _words(
    "message edited_message channel_post edited_channel_post business_connection "
    "business_message edited_business_message deleted_business_messages message_reaction "
    "message_reaction_count inline_query chosen_inline_result callback_query "
    "shipping_query pre_checkout_query purchased_paid_media poll poll_answer "
    "my_chat_member chat_member chat_join_request chat_boost removed_chat_boost"
)
DEFAULT_UPDATE_TYPES = UPDATE_TYPES - {"chat_member", "message_reaction", "message_reaction_count"}
MemberStatus = Literal["creator", "administrator", "member", "left", "kicked"]
ADMIN_RIGHTS = (
    "can_be_edited",
    "is_anonymous",
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_promote_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
)
CHAT_ACTIONS = _words(
    "typing upload_photo record_video upload_video record_voice upload_voice "
    "upload_document choose_sticker find_location record_video_note upload_video_note"
)
BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
SCOPE_TYPES = _words(
    "default all_private_chats all_group_chats all_chat_administrators chat "
    "chat_administrators chat_member"
)

# How the Bot API reads form values: these fields hold JSON, integers, numbers or booleans.
_JSON_FIELDS = _words(
    "reply_markup entities caption_entities commands scope allowed_updates "
    "link_preview_options reply_parameters menu_button message_ids rights media results "
    "options"
)
_INT_FIELDS = _words(
    "chat_id message_id user_id offset limit from_chat_id message_thread_id cache_time "
    "max_connections reply_to_message_id until_date"
)
_NUMBER_FIELDS = frozenset({"timeout"})
_BOOL_FIELDS = _words(
    "disable_notification protect_content show_alert drop_pending_updates "
    "disable_web_page_preview allow_sending_without_reply allow_paid_broadcast "
    "for_channels"
)
_INT_RE = re.compile(r"[+-]?\d+")
_COMMAND_RE = re.compile(rf"[a-z0-9_]{{1,{MAX_COMMAND_LENGTH}}}")
_LANG_RE = re.compile(r"[a-z]{2}")
_BOT_COMMAND_RE = re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/])")
_TRIM_CHARS = " \t\r\n"


# ============================================================================================
# Telegram's HTML subset
# ============================================================================================

_HTML_SPACES = " \t\r\n\v\f"
_SUPPORTED_TAGS = _words(
    "a b strong i em s strike del u ins tg-spoiler tg-emoji span pre code blockquote"
)
_SIMPLE_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_NAME_TOKEN_CHARS = string.ascii_letters + string.digits + ".-"


class HtmlParseError(ValueError):
    """A text Telegram refuses; ``str(error)`` is the reason after "can't parse entities: "."""


@dataclass
class _OpenTag:
    name: str
    start: int  # index of "<" in the source
    offset: int  # UTF-16 offset in the output
    argument: str = ""
    expandable: bool = False


def _one_of(char: str, chars: str) -> bool:
    return char != "" and char in chars


class _HtmlParser:
    """A port of the rules of tdlib's ``parse_html`` (the parser behind the Bot API)."""

    def __init__(self, source: str, *, strict_ampersand: bool) -> None:
        self.src = source
        self.strict_ampersand = strict_ampersand
        self.pos = 0
        self.out: list[str] = []
        self.u16 = 0
        self.entities: list[JSON] = []
        self.stack: list[_OpenTag] = []

    def parse(self) -> tuple[str, list[JSON]]:
        while self.pos < len(self.src):
            char = self.src[self.pos]
            if char == "&":
                self._text_entity()
            elif char == "<" and self._peek(self.pos + 1) == "/":
                self._end_tag(self.pos)
            elif char == "<":
                self._start_tag(self.pos)
            else:
                self._emit(char)
                self.pos += 1
        if self.stack:
            name = self.stack[-1].name
            raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{name}"')
        for entity in self.entities:
            if entity["type"] == "code":
                entity.pop("language", None)
        return "".join(self.out), _sorted_entities(self.entities)

    # ---------------------------------------------------------------- characters

    def _peek(self, index: int) -> str:
        return self.src[index] if index < len(self.src) else ""

    def _fail(self, reason: str, index: int) -> HtmlParseError:
        offset = len(self.src[:index].encode("utf-8", "surrogatepass"))
        return HtmlParseError(f"{reason} at byte offset {offset}")

    def _ampersand_error(self, index: int) -> HtmlParseError:
        return self._fail('Character "&" must be escaped as "&amp;"', index)

    def _emit(self, char: str) -> None:
        self.out.append(char)
        self.u16 += 2 if ord(char) > 0xFFFF else 1

    def _skip_spaces(self, index: int) -> int:
        while _one_of(self._peek(index), _HTML_SPACES):
            index += 1
        return index

    def _text_entity(self) -> None:
        decoded = self._decode_entity(self.pos)
        if decoded is None:
            if self.strict_ampersand:
                raise self._ampersand_error(self.pos)
            self._emit("&")
            self.pos += 1
            return
        char, self.pos = decoded
        self._emit(char)

    def _decode_entity(self, pos: int) -> tuple[str, int] | None:
        """``(character, index after the entity)`` for ``&...`` at ``pos``, or None."""
        end = pos + 1
        if self._peek(end) == "#":
            end += 1
            base, digits = 10, string.digits
            if _one_of(self._peek(end), "xX"):
                base, digits, end = 16, string.hexdigits, end + 1
            first = end
            while _one_of(self._peek(end), digits):
                end += 1
            number = self.src[first:end]
            if not number or len(number) > 8:
                return None
            code = int(number, base)
            if code == 0 or code >= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                return None
            char = chr(code)
        else:
            while _one_of(self._peek(end), string.ascii_letters):
                end += 1
            named = _NAMED_ENTITIES.get(self.src[pos + 1 : end])
            if named is None:
                return None
            char = named
        if self._peek(end) == ";":
            end += 1
        return char, end

    # ---------------------------------------------------------------- tags

    def _tag_name_end(self, index: int) -> int:
        while self._peek(index) not in ("", ">") and not _one_of(self._peek(index), _HTML_SPACES):
            index += 1
        return index

    def _start_tag(self, begin: int) -> None:
        index = self._tag_name_end(begin + 1)
        if self._peek(index) == "":
            raise self._fail("Unclosed start tag", begin)
        name = self.src[begin + 1 : index].lower()
        if name not in _SUPPORTED_TAGS:
            raise self._fail(f'Unsupported start tag "{name}"', begin)
        tag = _OpenTag(name=name, start=begin, offset=self.u16)
        index = self._attributes(tag, index)
        if name == "span" and tag.argument != "spoiler":
            raise self._fail('Tag "span" must have class "tg-spoiler"', begin)
        self.stack.append(tag)
        self.pos = index + 1

    def _attributes(self, tag: _OpenTag, index: int) -> int:
        """Read the attributes of ``tag``; returns the index of its ``>``."""
        while True:
            index = self._skip_spaces(index)
            if self._peek(index) == ">":
                return index
            if self._peek(index) == "":
                raise self._fail("Unclosed start tag", tag.start)
            name_start = index
            while self._peek(index) not in ("", "=", ">") and not _one_of(
                self._peek(index), _HTML_SPACES
            ):
                index += 1
            attribute = self.src[name_start:index].lower()
            if not attribute:
                raise self._fail(f'Empty attribute name in the tag "{tag.name}"', tag.start)
            index = self._skip_spaces(index)
            if self._peek(index) != "=":
                if tag.name == "blockquote" and attribute == "expandable":
                    tag.expandable = True
                    continue
                raise self._fail(
                    f'Expected equal sign in declaration of an attribute of the tag "{tag.name}"',
                    tag.start,
                )
            index = self._skip_spaces(index + 1)
            if self._peek(index) == "":
                raise self._fail(f'Unclosed start tag "{tag.name}"', tag.start)
            value, index = self._attribute_value(index)
            if self._peek(index) == "":
                raise self._fail("Unclosed start tag", tag.start)
            _apply_attribute(tag, attribute, value)

    def _attribute_value(self, index: int) -> tuple[str, int]:
        quote = self._peek(index)
        if quote not in ("'", '"'):
            start = index
            while _one_of(self._peek(index), _NAME_TOKEN_CHARS):
                index += 1
            following = self._peek(index)
            if following not in ("", ">") and not _one_of(following, _HTML_SPACES):
                raise self._fail("Unexpected end of name token", start)
            return self.src[start:index].lower(), index
        index += 1
        chars: list[str] = []
        while self._peek(index) not in ("", quote):
            if self.src[index] == "&":
                decoded = self._decode_entity(index)
                if decoded is not None:
                    chars.append(decoded[0])
                    index = decoded[1]
                    continue
                if self.strict_ampersand:
                    raise self._ampersand_error(index)
            chars.append(self.src[index])
            index += 1
        if self._peek(index) == quote:
            index += 1
        return "".join(chars), index

    def _end_tag(self, begin: int) -> None:
        if not self.stack:
            raise self._fail("Unexpected end tag", begin)
        index = self._tag_name_end(begin + 2)
        end_name = self.src[begin + 2 : index]
        index = self._skip_spaces(index)
        if self._peek(index) != ">":
            raise self._fail("Unclosed end tag", begin)
        tag = self.stack.pop()
        if end_name and end_name.lower() != tag.name:
            where = self._fail("Unmatched end tag", begin)
            raise HtmlParseError(f'{where}, expected "</{tag.name}>", found "</{end_name}>"')
        self._close(tag)
        self.pos = index + 1

    def _close(self, tag: _OpenTag) -> None:
        length = self.u16 - tag.offset
        if length <= 0:
            return  # Telegram drops empty entities
        span: JSON = {"offset": tag.offset, "length": length}
        if tag.name in _SIMPLE_TAGS:
            self.entities.append({"type": _SIMPLE_TAGS[tag.name], **span})
        elif tag.name == "a":
            if tag.argument:
                self.entities.append({"type": "text_link", **span, "url": tag.argument})
        elif tag.name == "code":
            entity: JSON = {"type": "code", **span}
            if tag.argument:
                entity["language"] = tag.argument
            self.entities.append(entity)
        elif tag.name == "pre":
            self._close_pre(span)
        elif tag.name == "blockquote":
            kind = "expandable_blockquote" if tag.expandable else "blockquote"
            self.entities.append({"type": kind, **span})
        else:  # tg-emoji
            if not tag.argument.isdigit():
                raise HtmlParseError("Invalid custom emoji identifier specified")
            self.entities.append({"type": "custom_emoji", **span, "custom_emoji_id": tag.argument})

    def _close_pre(self, span: JSON) -> None:
        """``<pre><code class="language-x">`` becomes one ``pre`` entity with a language."""
        last = self.entities[-1] if self.entities else None
        if (
            last is not None
            and last["type"] == "code"
            and last["offset"] == span["offset"]
            and last["length"] == span["length"]
        ):
            last["type"] = "pre"
            return
        self.entities.append({"type": "pre", **span})


def _apply_attribute(tag: _OpenTag, attribute: str, value: str) -> None:
    """Keep the attributes Telegram uses; every other attribute is ignored, as by Telegram."""
    if tag.name == "a" and attribute == "href":
        tag.argument = value
    elif tag.name == "code" and attribute == "class" and value.startswith("language-"):
        tag.argument = value.removeprefix("language-")
    elif tag.name == "span" and attribute == "class" and value.startswith("tg-"):
        tag.argument = value.removeprefix("tg-")
    elif tag.name == "tg-emoji" and attribute == "emoji-id":
        tag.argument = value
    elif tag.name == "blockquote" and attribute == "expandable":
        tag.expandable = True


def _sorted_entities(entities: Iterable[JSON]) -> list[JSON]:
    return sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def parse_html(text: str, *, strict_ampersand: bool = True) -> tuple[str, list[JSON]]:
    """Parse Telegram's HTML subset: ``(plain text, Bot API entities)``.

    Offsets and lengths are UTF-16 code units.  The text is not trimmed here.  Raises
    :class:`HtmlParseError` with Telegram's reason (``Unsupported start tag "div" at byte
    offset 0``...).  With ``strict_ampersand`` a ``&`` that starts no valid entity is an error
    (Telegram itself keeps such a ``&`` as text).
    """
    return _HtmlParser(text, strict_ampersand=strict_ampersand).parse()


# ============================================================================================
# Text helpers
# ============================================================================================


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's limits and entity offsets."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _trim(text: str, entities: list[JSON]) -> tuple[str, list[JSON]]:
    """Drop leading/trailing whitespace like Telegram, moving and clipping the entities."""
    stripped = text.strip(_TRIM_CHARS)
    if stripped == text:
        return text, entities
    lead = len(text) - len(text.lstrip(_TRIM_CHARS))  # whitespace is 1 UTF-16 unit per char
    size = utf16_len(stripped)
    kept: list[JSON] = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, size)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


def bot_command_entities(text: str) -> list[JSON]:
    """``bot_command`` entities, as Telegram adds them to incoming messages."""
    entities: list[JSON] = []
    for match in _BOT_COMMAND_RE.finditer(text):
        offset = utf16_len(text[: match.start()])
        entities.append({"type": "bot_command", "offset": offset, "length": utf16_len(match[0])})
    return entities


# ============================================================================================
# Public records
# ============================================================================================


@dataclass
class Call:
    """One request as the fake saw it.

    ``method`` is Telegram's camelCase name when the fake knows the method (the URL part is
    matched case-insensitively), else the URL part as sent.  ``params`` are the decoded
    parameters (query string and body merged, JSON fields parsed).  ``http_status`` is 0 and
    ``response`` empty while the request is in flight (long polling).  ``at`` is
    ``time.monotonic()`` at arrival.  ``host`` is the request's ``Host`` (which port of the fake
    it came to: :meth:`FakeTelegram.listen_also`).
    """

    method: str
    params: JSON
    http_status: int
    response: JSON
    at: float
    host: str = ""

    @property
    def ok(self) -> bool:
        return self.http_status == 200

    @property
    def description(self) -> str | None:
        value = self.response.get("description")
        return value if isinstance(value, str) else None


@dataclass
class UserProfile:
    """A Telegram user on the user side (never a bot)."""

    id: int
    first_name: str = "Test"
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = "en"

    def as_dict(self) -> JSON:
        """The Bot API ``User`` object."""
        data: JSON = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data


@dataclass
class Button:
    """One inline keyboard button; ``raw`` is the button object as stored."""

    text: str
    row: int
    column: int
    raw: JSON

    @property
    def callback_data(self) -> str | None:
        value = self.raw.get("callback_data")
        return value if isinstance(value, str) else None

    @property
    def url(self) -> str | None:
        value = self.raw.get("url")
        return value if isinstance(value, str) else None


def buttons_of(markup: JSON | None) -> list[list[Button]]:
    """The rows of an inline keyboard markup as :class:`Button` objects."""
    if not markup:
        return []
    rows: list[list[Button]] = []
    for r, row in enumerate(markup.get("inline_keyboard", [])):
        rows.append([Button(b["text"], r, c, b) for c, b in enumerate(row)])
    return rows


@dataclass
class MessageVersion:
    """A former content of a message (kept in :attr:`StoredMessage.history` on each edit)."""

    text: str
    raw_text: str
    parse_mode: str | None
    entities: list[JSON]
    reply_markup: JSON | None
    at: float


@dataclass
class StoredMessage:
    """A message in a chat, as the user sees it now.

    ``text`` is what the user sees (HTML parsed, trimmed); ``raw_text`` is the text as sent
    (HTML source for ``parse_mode=HTML``); ``reply_markup`` is the inline keyboard or None;
    ``keyboard`` any other reply markup sent with it (reply keyboard, remove, force reply).
    ``history`` holds the former versions, oldest first.  ``seq`` is the fake's change counter
    at the last creation/edit (see :meth:`FakeTelegram.wait_for_bot_message`).
    """

    chat_id: int
    message_id: int
    from_id: int
    from_bot: bool
    text: str
    raw_text: str
    parse_mode: str | None
    entities: list[JSON]
    reply_markup: JSON | None
    date: int
    keyboard: JSON | None = None
    reply_to_message_id: int | None = None
    edit_date: int | None = None
    deleted: bool = False
    history: list[MessageVersion] = field(default_factory=list)
    seq: int = 0
    content: JSON | None = None  # a user's non-text message: its fields (``text`` is the caption)

    @property
    def html(self) -> str | None:
        """The HTML source when the message was sent with ``parse_mode=HTML``."""
        return self.raw_text if self.parse_mode == "HTML" else None

    @property
    def edited(self) -> bool:
        return bool(self.history)

    @property
    def buttons(self) -> list[list[Button]]:
        return buttons_of(self.reply_markup)

    def button_texts(self) -> list[str]:
        return [b.text for row in self.buttons for b in row]


@dataclass
class CallbackQueryRecord:
    """A callback query the user sent, and how the bot answered it."""

    id: str
    user_id: int
    chat_id: int
    message_id: int
    data: str
    created_at: float
    answered: bool = False
    answered_at: float | None = None
    text: str | None = None
    show_alert: bool = False
    url: str | None = None
    cache_time: int | None = None


@dataclass
class Upload:
    """A file part of a multipart request, as it stands in :attr:`Call.params`."""

    filename: str | None
    data: bytes
    content_type: str

    def __repr__(self) -> str:
        return f"<file {self.filename} {len(self.data)} bytes>"


@dataclass
class StoredFile:
    """A file on Telegram's side: sent by a user or uploaded by the bot.

    ``placeholder`` marks a sample file of :meth:`FakeTelegram.content_update`, whose bytes
    are filler.  ``file_path`` is set by the first ``getFile``.
    """

    file_id: str
    file_unique_id: str
    data: bytes
    file_name: str | None = None
    mime_type: str | None = None
    folder: str = "documents"
    extension: str = ""
    file_path: str | None = None
    placeholder: bool = False

    def as_document(self) -> JSON:
        """The Bot API ``Document`` object."""
        document: JSON = {"file_id": self.file_id, "file_unique_id": self.file_unique_id}
        if self.file_name is not None:
            document["file_name"] = self.file_name
        if self.mime_type is not None:
            document["mime_type"] = self.mime_type
        document["file_size"] = len(self.data)
        return document


# ============================================================================================
# Internal state
# ============================================================================================


class _ApiError(Exception):
    def __init__(
        self,
        code: int,
        description: str,
        retry_after: int | None = None,
        *,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after
        self.migrate_to_chat_id = migrate_to_chat_id

    def body(self) -> JSON:
        body: JSON = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        if self.migrate_to_chat_id is not None:
            body["parameters"] = {"migrate_to_chat_id": self.migrate_to_chat_id}
        return body


def _too_many(retry_after: int) -> _ApiError:
    return _ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)


@dataclass
class _Fault:
    method: str  # lower case
    code: int
    description: str
    retry_after: int | None
    times: int
    skip: int = 0


@dataclass
class _Bucket:
    """Token bucket: ``capacity`` requests at once, refilled at ``rate`` per second."""

    capacity: float
    rate: float
    tokens: float
    stamp: float

    def wait(self, now: float) -> float:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


@dataclass
class _RateLimits:
    per_chat: float
    burst: int
    global_rate: float
    chats: dict[int, _Bucket] = field(default_factory=dict)
    all_chats: _Bucket | None = None


@dataclass
class _Chat:
    id: int
    type: str
    title: str | None = None
    blocked: bool = False
    next_message_id: int = 1
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    menu_button: JSON | None = None
    # groups made by FakeTelegram.group(): who is in them (user id -> status) and the bot's own
    # status; a roster group takes messages from its members only
    roster: bool = False
    members: dict[int, str] = field(default_factory=dict)
    bot_status: str = "member"
    migrated_to: int | None = None  # a group made a supergroup: its new id

    @property
    def bot_absent(self) -> bool:
        return self.type != "private" and self.bot_status in ("left", "kicked")


@dataclass
class _Text:
    text: str
    raw: str
    parse_mode: str | None
    entities: list[JSON]


Handler = Callable[[JSON], Awaitable[Any]]

# A sample of every kind of message a user can send that is not text, as Telegram delivers it
# (file ids are made unique per message).  See :meth:`FakeTelegram.content_update`.
_FILE = {"file_id": "", "file_unique_id": ""}
CONTENT_KINDS: dict[str, JSON] = {
    "photo": {
        "photo": [
            {**_FILE, "width": 90, "height": 60, "file_size": 1200},
            {**_FILE, "width": 1280, "height": 853, "file_size": 98000},
        ]
    },
    "sticker": {
        "sticker": {
            **_FILE,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": "😀",
            "set_name": "SomeStickers",
        }
    },
    "document": {
        "document": {
            **_FILE,
            "file_name": "numbers.csv",
            "mime_type": "text/csv",
            "file_size": 321,
        }
    },
    "voice": {"voice": {**_FILE, "duration": 3, "mime_type": "audio/ogg", "file_size": 5000}},
    "audio": {"audio": {**_FILE, "duration": 200, "title": "Song", "mime_type": "audio/mpeg"}},
    "video": {"video": {**_FILE, "width": 640, "height": 360, "duration": 5}},
    "video_note": {"video_note": {**_FILE, "length": 240, "duration": 4}},
    "animation": {  # Telegram also fills `document` for old clients
        "animation": {**_FILE, "width": 320, "height": 240, "duration": 2},
        "document": {**_FILE, "file_name": "a.mp4", "mime_type": "video/mp4"},
    },
    "location": {"location": {"latitude": 55.7558, "longitude": 37.6173}},
    "venue": {
        "location": {"latitude": 55.7558, "longitude": 37.6173},
        "venue": {
            "location": {"latitude": 55.7558, "longitude": 37.6173},
            "title": "Red Square",
            "address": "Moscow",
        },
    },
    "contact": {"contact": {"phone_number": "+79991234567", "first_name": "Ann"}},
    "poll": {
        "poll": {
            "id": "",
            "question": "Which one?",
            "options": [
                {"persistent_id": "0", "text": "A", "voter_count": 0},
                {"persistent_id": "1", "text": "B", "voter_count": 0},
            ],
            "total_voter_count": 0,
            "is_closed": False,
            "is_anonymous": True,
            "type": "regular",
            "allows_multiple_answers": False,
            "allows_revoting": False,
            "members_only": False,
        }
    },
    "dice": {"dice": {"emoji": "🎲", "value": 4}},
}
# Service messages Telegram itself puts into a private chat (nobody "sent" them).
SERVICE_KINDS: tuple[str, ...] = ("message_auto_delete_timer_changed", "pinned_message")
# Where getFile puts each kind of file, and the extension of a file that has no name.
_FILE_FOLDERS = {
    "photo": ("photos", ".jpg"),
    "sticker": ("stickers", ".webp"),
    "voice": ("voice", ".oga"),
    "audio": ("music", ".mp3"),
    "video": ("videos", ".mp4"),
    "video_note": ("video_notes", ".mp4"),
    "animation": ("animations", ".mp4"),
}


def _placeholder(size: int) -> bytes:
    return (b"placeholder\n" * (size // 12 + 1))[:size]


def _extension(file_name: str | None, default: str) -> str:
    suffix = PurePosixPath(file_name or "").suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,10}", suffix) else default


def _guess_mime(file_name: str | None) -> str | None:
    return mimetypes.guess_type(file_name)[0] if file_name else None


def _decode_value(name: str, value: Any) -> Any:
    """Read one parameter the way the Bot API does (form values are all strings)."""
    if not isinstance(value, str):
        return value
    if name in _JSON_FIELDS:
        try:
            return json.loads(value)
        except ValueError:
            return value
    if name in _INT_FIELDS and _INT_RE.fullmatch(value):
        return int(value)
    if name in _NUMBER_FIELDS:
        with contextlib.suppress(ValueError):
            number = float(value)
            return int(number) if number.is_integer() else number
    if name in _BOOL_FIELDS and value.lower() in ("true", "false", "1", "0", ""):
        return value.lower() in ("true", "1")
    return value


def _int_param(params: JSON, name: str, missing: str) -> int:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _ApiError(400, missing)
    return value


def _str_param(params: JSON, name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _parse_mode(value: Any) -> str | None:
    if value is None or value == "":
        return None
    modes = {"html": "HTML", "markdown": "Markdown", "markdownv2": "MarkdownV2"}
    mode = modes.get(str(value).lower())
    if mode is None:
        raise _ApiError(400, MSG_UNSUPPORTED_PARSE_MODE)
    return mode


def _entities_param(value: Any) -> list[JSON]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _ApiError(400, MSG_ENTITIES_JSON)
    entities: list[JSON] = []
    for item in value:
        valid = (
            isinstance(item, dict)
            and isinstance(item.get("type"), str)
            and isinstance(item.get("offset"), int)
            and isinstance(item.get("length"), int)
            and item["offset"] >= 0
        )
        if not valid:
            raise _ApiError(400, MSG_ENTITIES_JSON)
        if item["length"] > 0:
            entities.append(dict(item))
    return _sorted_entities(entities)


def _valid_button_url(url: Any) -> bool:
    if not isinstance(url, str) or not url:
        return False
    scheme, sep, rest = url.partition("://")
    if not sep:
        return False
    scheme = scheme.lower()
    if scheme == "tg":
        return bool(rest)
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return scheme in ("http", "https") and bool(host) and " " not in url


def _validate_inline_button(button: Any) -> JSON:
    if not isinstance(button, dict):
        raise _ApiError(400, MSG_BUTTON_JSON)
    text = button.get("text")
    if not isinstance(text, str) or not text.strip():
        raise _ApiError(400, MSG_BUTTON_TEXT)
    actions = [name for name in BUTTON_ACTIONS if name in button]
    if not actions:
        raise _ApiError(400, MSG_TEXT_BUTTON)
    if len(actions) > 1:
        raise _ApiError(400, MSG_MANY_ACTIONS)
    action = actions[0]
    value = button[action]
    if action == "callback_data" and not (
        isinstance(value, str) and 1 <= len(value.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES
    ):
        raise _ApiError(400, MSG_BUTTON_DATA)
    if action == "url" and not _valid_button_url(value):
        raise _ApiError(400, MSG_BUTTON_URL)
    if action == "copy_text":
        copied = value.get("text") if isinstance(value, dict) else None
        if not isinstance(copied, str) or not 1 <= len(copied) <= MAX_COPY_TEXT:
            raise _ApiError(400, MSG_BUTTON_COPY)
    return dict(button)


def _validate_inline_keyboard(markup: JSON) -> JSON:
    rows = markup.get("inline_keyboard")
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _ApiError(400, MSG_INLINE_ROWS)
    if sum(len(row) for row in rows) > MAX_BUTTONS:
        raise _ApiError(400, MSG_MARKUP_TOO_LONG)
    clean = [[_validate_inline_button(b) for b in row] for row in rows if row]
    return {"inline_keyboard": clean}


def _validate_other_markup(markup: JSON) -> JSON:
    """Reply keyboard, keyboard removal or force reply: checked loosely, kept as sent."""
    if "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _ApiError(400, MSG_MARKUP_JSON)
        for row in rows:
            for button in row:
                text = button if isinstance(button, str) else None
                if isinstance(button, dict):
                    text = button.get("text")
                if not isinstance(text, str) or not text:
                    raise _ApiError(400, MSG_BUTTON_TEXT)
        return dict(markup)
    if markup.get("remove_keyboard") is True or markup.get("force_reply") is True:
        return dict(markup)
    raise _ApiError(400, MSG_MARKUP_JSON)


def _validate_commands(value: Any) -> list[JSON]:
    if not isinstance(value, list):
        raise _ApiError(400, MSG_COMMANDS_JSON)
    if len(value) > MAX_COMMANDS:
        raise _ApiError(400, MSG_COMMANDS_TOO_MUCH)
    commands: list[JSON] = []
    for item in value:
        if not isinstance(item, dict):
            raise _ApiError(400, MSG_COMMANDS_JSON)
        command, description = item.get("command"), item.get("description")
        if not isinstance(command, str) or not _COMMAND_RE.fullmatch(command):
            raise _ApiError(400, MSG_COMMAND_INVALID)
        if not isinstance(description, str) or not (
            description.strip() and len(description) <= MAX_DESCRIPTION_LENGTH
        ):
            raise _ApiError(400, MSG_COMMAND_DESCRIPTION)
        commands.append({"command": command, "description": description})
    return commands


def _language_param(params: JSON) -> str:
    language = params.get("language_code") or ""
    if not isinstance(language, str) or (language and not _LANG_RE.fullmatch(language)):
        raise _ApiError(400, MSG_LANG_INVALID)
    return language


def _update_type(update: JSON) -> str:
    return next((key for key in update if key != "update_id"), "")


# ============================================================================================
# The fake
# ============================================================================================


class FakeTelegram:
    """In-process Telegram Bot API.  ``await start()``, use :attr:`url`, ``await close()``.

    Also an async context manager.  The HTTP side serves the bot; the control hooks play the
    users and read what they see.  Rules where Telegram is silent or was not copied:

    * Chats: a private chat becomes known when its user writes (any user-side hook) or through
      :meth:`register_chat`.  ``sendMessage`` to a registered :meth:`user` without a chat ->
      403 ``bot can't initiate conversation with a user``; to an unknown id -> 400 ``chat not
      found``; to a user who blocked the bot -> 403 (also ``sendChatAction``).
    * Groups: :meth:`group` makes one with a roster of members; only they may write or press
      there, and ``getChatMember`` answers their status (``left`` for anyone else, 400 ``user
      not found`` for a user Telegram never saw).  :meth:`bot_in_group_update` adds or removes
      the bot: removed (``left``/``kicked``), every call on the chat gets 403 (``bot was kicked
      from the group chat`` / ``bot is not a member of the group chat``) and nothing more comes
      from it.  :meth:`upgrade_group` makes a group a supergroup: calls on the old id get 400
      with ``migrate_to_chat_id``.
    * Message ids grow per chat, shared by the user's and the bot's messages.  The bot may edit
      only its own messages (``message can't be edited``) and delete any message of the chat.
    * Inline buttons need non-empty text and exactly one action field (Telegram would use the
      first one it knows).  ``Message.reply_markup`` in results holds inline keyboards only;
      other reply markups are stored in :attr:`StoredMessage.keyboard`.
    * ``editMessageText`` without ``reply_markup`` removes the inline keyboard, as on Telegram.
    * ``setMyCommands`` with an empty list clears the list for that scope and language, as on
      Telegram.  Commands are stored per scope (with the chat/user of chat scopes) and language.
    * ``getUpdates``: ``limit`` is clamped to 1..100 and ``timeout`` to 0..50 (fractions of a
      second are accepted).  A newer ``getUpdates`` ends a waiting one with 409 ``terminated by
      other getUpdates request``.  ``allowed_updates`` is remembered between calls; updates of
      other types are dropped when they come up for delivery.  Webhooks are recorded, never
      called: updates stay in the queue.
    * ``logOut``/``close`` answer True and change nothing.
    * Markdown parse modes are not implemented: such requests get a 400 that says so.
    * Random faults (:meth:`set_fault_rates`) are HTTP 500 ``Internal Server Error`` or 429.
    * Rate limits (:meth:`enforce_rate_limits`) count ``sendMessage``, ``sendDocument``,
      ``editMessageText``, ``editMessageCaption`` and ``editMessageReplyMarkup`` that passed
      validation.
    * Files (:attr:`files` by file_id): the sample files of :meth:`content_update` exist, with
      filler bytes of their ``file_size`` (:data:`PLACEHOLDER_SIZE` when it names none), so
      ``getFile`` and downloads work on them.  A ``file_path`` is given by the first
      ``getFile`` of the file and stays; the download route answers Telegram's JSON 404 ``Not
      Found`` for a wrong token or a path no ``getFile`` gave, and records every request in
      :attr:`downloads` (method ``"file"``).  ``sendDocument`` takes an upload (``attach://``
      or the ``document`` field itself) or the file_id of a known file (sent again with the
      same file_id, as Telegram does); URLs are not implemented.  The mime type of an upload
      is guessed from its name (none when unknown).  A body over 50 MB + 1 MB is refused
      before it is read (413, recorded in :attr:`calls` with empty params).
    * ``editMessageText`` on a message without text (a document) -> 400 ``there is no text in
      the message to edit``; ``editMessageCaption`` on a text -> 400 ``there is no caption in
      the message to edit``.
    * An exception inside the fake answers 500 and is kept in :attr:`errors`.
    """

    def __init__(
        self, *, bot_token: str = DEFAULT_TOKEN, bot_username: str = DEFAULT_USERNAME
    ) -> None:
        bot_id, sep, rest = bot_token.partition(":")
        if not (sep and bot_id.isdigit() and rest):
            raise ValueError(f"not a bot token: {bot_token!r}")
        self.bot_token = bot_token
        self.bot_id = int(bot_id)
        self.bot_username = bot_username
        self.bot_first_name = "SMS Desk (test)"
        self.url = ""
        self.strict_ampersand = True
        self.calls: list[Call] = []
        self.errors: list[BaseException] = []
        self.users: dict[int, UserProfile] = {}
        self.callback_queries: dict[str, CallbackQueryRecord] = {}
        self.my_commands: dict[tuple[str, str], list[JSON]] = {}
        self.bot_texts: dict[tuple[str, str], str] = {}  # (name|description|..., language)
        self.default_menu_button: JSON = {"type": "commands"}
        self.webhook: JSON | None = None
        self.files: dict[str, StoredFile] = {}
        self.downloads: list[Call] = []
        self._file_paths: dict[str, StoredFile] = {}
        self._runner: web.AppRunner | None = None
        self._chats: dict[int, _Chat] = {}
        self._pending: list[JSON] = []
        self._last_update_id = FIRST_UPDATE_ID - 1
        self._allowed_updates = DEFAULT_UPDATE_TYPES
        self._poll_generation = 0
        self._poll_event = asyncio.Event()
        self._changed = asyncio.Event()
        self._closing = False
        self._seq = 0
        self._user_seq = 0
        self._query_count = 0
        self._file_count = 0
        self._faults: list[_Fault] = []
        self._rate_429 = 0.0
        self._rate_5xx = 0.0
        self._fault_retry_after = 1
        self._fault_methods: frozenset[str] | None = None
        self._fault_rng = random.Random()
        self._latency = 0.0
        self._slow_answers: tuple[frozenset[str], float] = (frozenset(), 0.0)
        self._limits: _RateLimits | None = None
        self._handlers: dict[str, tuple[str, Handler]] = {}
        self._register_handlers()

    # ---------------------------------------------------------------- lifecycle

    async def start(self, port: int = 0) -> None:
        """Listen on ``127.0.0.1`` on ``port`` (0: a free one) and set :attr:`url` (no trailing
        slash)."""
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES + _REQUEST_OVERHEAD)
        app.router.add_route("GET", "/bot{token}/{method}", self._entry)
        app.router.add_route("POST", "/bot{token}/{method}", self._entry)
        app.router.add_route("GET", "/file/bot{token}/{path:.+}", self._download)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", port))
        port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self._closing = False
        self.url = f"http://127.0.0.1:{port}"

    async def listen_also(self) -> str:
        """Serve the same bot on one more free port and return its URL (no trailing slash):
        clients given a port each are told apart by :attr:`Call.host`."""
        assert self._runner is not None, "start() first"
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def close(self) -> None:
        """Release waiting long polls (they answer ``[]``) and stop (safe to call twice)."""
        self._closing = True
        self._wake_pollers()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ---------------------------------------------------------------- request log

    def calls_of(self, method: str) -> list[Call]:
        """The calls of ``method`` (case-insensitive), in order."""
        wanted = method.lower()
        return [c for c in self.calls if c.method.lower() == wanted]

    def most_in_one_second(
        self, *methods: str, window: float = 1.0, after: float = 0.0, before: float = math.inf
    ) -> int:
        """The most calls of ``methods`` (default ``sendMessage``) that arrived within any
        ``window`` seconds (of those that arrived between ``after`` and ``before``, monotonic
        times), refused ones included: Telegram saw them all."""
        wanted = {m.lower() for m in methods or ("sendMessage",)}
        times = sorted(
            c.at for c in self.calls if c.method.lower() in wanted and after <= c.at < before
        )
        best, start = 0, 0
        for end, at in enumerate(times):
            while at - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    @property
    def bot_user(self) -> JSON:
        """The bot as a Bot API ``User``."""
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    # ---------------------------------------------------------------- faults and limits

    def fail_next(
        self,
        method: str,
        error_code: int,
        description: str,
        *,
        retry_after: int | None = None,
        times: int = 1,
        skip: int = 0,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with that error (nothing else happens).

        The body is Telegram's error envelope; ``retry_after`` adds ``parameters.retry_after``.
        The first ``skip`` calls of ``method`` pass untouched before the faults begin.
        """
        fault = _Fault(method.lower(), error_code, description, retry_after, times, skip)
        self._faults.append(fault)

    def set_fault_rates(
        self,
        rate_429: float = 0,
        rate_5xx: float = 0,
        retry_after: int = 1,
        seed: int | None = None,
        methods: set[str] | None = None,
    ) -> None:
        """Random faults: per call, 500 with probability ``rate_5xx``, else 429 (``retry_after``)
        with probability ``rate_429``.  ``methods`` limits them to those methods; by default
        every method but ``getUpdates``.  A faulted call changes nothing."""
        self._rate_429, self._rate_5xx = rate_429, rate_5xx
        self._fault_retry_after = retry_after
        self._fault_methods = None if methods is None else frozenset(m.lower() for m in methods)
        self._fault_rng = random.Random(seed)

    def set_latency(self, seconds: float) -> None:
        """Delay every answer by ``seconds`` (before anything is checked)."""
        self._latency = seconds

    def set_slow_answers(self, methods: set[str], seconds: float) -> None:
        """Answer calls of ``methods`` ``seconds`` late, after they took effect (a message sent
        is already in the chat): the client cannot know it succeeded until then.  ``seconds=0``
        ends it."""
        self._slow_answers = (frozenset(m.lower() for m in methods), seconds)

    def enforce_rate_limits(
        self, per_chat_per_sec: float = 1.0, burst: int = 3, global_per_sec: float = 30.0
    ) -> None:
        """Token buckets: per chat ``burst`` messages at once refilled at ``per_chat_per_sec``,
        and ``global_per_sec`` over all chats.  Over the limit -> 429 ``Too Many Requests:
        retry after N`` with ``parameters.retry_after`` (whole seconds, at least 1); the refused
        call changes nothing and costs nothing."""
        self._limits = _RateLimits(per_chat_per_sec, burst, global_per_sec)

    def disable_rate_limits(self) -> None:
        self._limits = None

    # ---------------------------------------------------------------- users and chats

    def user(
        self,
        user_id: int,
        *,
        first_name: str = "Test",
        language_code: str | None = "en",
        username: str | None = None,
        last_name: str | None = None,
    ) -> UserProfile:
        """Register (or overwrite) the profile of ``user_id``.  Other hooks create a default
        profile only when none exists."""
        profile = UserProfile(user_id, first_name, last_name, username, language_code)
        self.users[user_id] = profile
        return profile

    def register_chat(
        self,
        chat_id: int,
        *,
        chat_type: Literal["private", "group", "supergroup", "channel"] = "private",
        title: str | None = None,
    ) -> None:
        """Make a chat known to the bot (for private chats ``chat_id`` is the user id)."""
        self._ensure_chat(chat_id, chat_type, title)

    def group(
        self,
        chat_id: int,
        *,
        title: str = "Test group",
        members: Mapping[int, MemberStatus] | Iterable[int] = (),
        chat_type: Literal["group", "supergroup"] = "group",
        with_bot: bool = True,
    ) -> None:
        """A group with a roster: ``members`` (ids, or id -> ``creator`` / ``administrator`` /
        ``member``).  Only members may write there; ``getChatMember`` answers from the roster
        (``left`` for anyone else).  ``with_bot=False``: the bot is not in it yet (add it with
        :meth:`bot_in_group_update`)."""
        if chat_id >= 0:
            raise AssertionError("group ids are negative")
        chat = self._ensure_chat(chat_id, chat_type, title)
        chat.roster = True
        chat.bot_status = "member" if with_bot else "left"
        roster: Mapping[int, MemberStatus] = (
            members if isinstance(members, Mapping) else dict.fromkeys(members, "member")
        )
        for user_id, status in roster.items():
            self.set_member(chat_id, user_id, status)

    def set_member(
        self,
        chat_id: int,
        user_id: int,
        status: MemberStatus,
    ) -> None:
        """A user joins, leaves, is promoted in or banned from a roster group (no update)."""
        chat = self._chats[chat_id]
        if not chat.roster:
            raise AssertionError(f"chat {chat_id} was not made by group()")
        self._profile(user_id)
        chat.members[user_id] = status

    def member_status(self, chat_id: int, user_id: int) -> str:
        chat = self._chats[chat_id]
        return chat.members.get(user_id, "left")

    def bot_in_group_update(
        self,
        chat_id: int,
        by_user_id: int,
        status: Literal["member", "administrator", "left", "kicked"],
    ) -> JSON:
        """An Update telling the bot that ``by_user_id`` added it to (``member``,
        ``administrator``) or removed it from (``left``, ``kicked``) a group, NOT queued.  The
        bot's status changes at once: removed, every call on that chat gets 403."""
        chat = self._chats.get(chat_id)
        if chat is None or chat.type == "private":
            raise AssertionError(f"no group {chat_id}")
        old = chat.bot_status
        chat.bot_status = status
        self._user_action()
        return {
            "update_id": self._next_update_id(),
            "my_chat_member": {
                "chat": self._chat_dict(chat),
                "from": self._profile(by_user_id).as_dict(),
                "date": int(time.time()),
                "old_chat_member": self._member(old),
                "new_chat_member": self._member(status),
            },
        }

    def upgrade_group(self, chat_id: int, new_chat_id: int, by_user_id: int) -> JSON:
        """The group becomes a supergroup with a new id (roster and bot kept).  Calls on the
        old id get 400 ``group chat was upgraded to a supergroup chat`` with
        ``migrate_to_chat_id``.  Returns the old group's service message (NOT queued)."""
        old = self._chats[chat_id]
        if old.type != "group" or not old.roster:
            raise AssertionError(f"chat {chat_id} is not a group made by group()")
        new = self._ensure_chat(new_chat_id, "supergroup", old.title)
        new.roster, new.members, new.bot_status = True, dict(old.members), old.bot_status
        message = self._store(old, by_user_id, False, _Text("", "", None, []), None, None)
        message.content = {"migrate_to_chat_id": new_chat_id}
        payload = self._message_dict(message)
        old.migrated_to = new_chat_id
        self._user_action()
        return {"update_id": self._next_update_id(), "message": payload}

    def is_blocked(self, user_id: int) -> bool:
        chat = self._chats.get(user_id)
        return chat is not None and chat.blocked

    def _profile(self, user_id: int) -> UserProfile:
        if user_id not in self.users:
            self.users[user_id] = UserProfile(user_id)
        return self.users[user_id]

    def _ensure_chat(self, chat_id: int, chat_type: str, title: str | None = None) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            if chat_type == "private":
                self._profile(chat_id)
            chat = _Chat(
                chat_id, chat_type, title or (None if chat_type == "private" else "Test group")
            )
            self._chats[chat_id] = chat
        return chat

    def _chat_dict(self, chat: _Chat) -> JSON:
        if chat.type != "private":
            return {"id": chat.id, "type": chat.type, "title": chat.title or ""}
        profile = self._profile(chat.id)
        data: JSON = {"id": chat.id, "type": "private", "first_name": profile.first_name}
        if profile.last_name is not None:
            data["last_name"] = profile.last_name
        if profile.username is not None:
            data["username"] = profile.username
        return data

    # ---------------------------------------------------------------- updates (user side)

    def queue_update(self, update: JSON) -> JSON:
        """Queue an update for ``getUpdates``; ``update_id`` is (re)assigned so ids grow.
        Returns the queued dict."""
        queued = {"update_id": self._next_update_id()} | {
            k: v for k, v in update.items() if k != "update_id"
        }
        self._pending.append(queued)
        self._user_action()
        self._wake_pollers()
        return queued

    @property
    def pending_updates(self) -> list[JSON]:
        """Queued updates not yet confirmed by a ``getUpdates`` offset."""
        return list(self._pending)

    def message_update(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        chat_type: Literal["private", "group", "supergroup"] = "private",
    ) -> JSON:
        """An Update with a text message from ``user_id``, NOT queued (for ``dp.feed_update``).

        The message is stored in the chat (default: the private chat with the user).  A leading
        ``/command`` or ``/command@bot`` (and any later one) gets a ``bot_command`` entity.
        A user who blocked the bot cannot write: AssertionError (call :meth:`unblock`).
        """
        return {
            "update_id": self._next_update_id(),
            **self._message_payload(user_id, text, chat_id, chat_type),
        }

    def content_update(
        self,
        user_id: int,
        kind: str,
        *,
        caption: str | None = None,
        chat_id: int | None = None,
        chat_type: Literal["private", "group", "supergroup"] = "private",
    ) -> JSON:
        """An Update with a message from ``user_id`` that is not text, NOT queued.

        ``kind`` is one of :data:`CONTENT_KINDS` (photo, sticker, document, voice, location,
        contact, poll, dice, ...), optionally with a ``caption`` (a leading ``/command`` gets a
        ``bot_command`` caption entity), or one of :data:`SERVICE_KINDS`: an auto-delete timer
        change, or the pinning of the newest message of the chat.
        """
        target = chat_id if chat_id is not None else user_id
        if kind in CONTENT_KINDS:
            content = self._unique_files(CONTENT_KINDS[kind])
            self._register_samples(content)
        elif kind == "message_auto_delete_timer_changed":
            content = {kind: {"message_auto_delete_time": 86400}}
        elif kind == "pinned_message":
            chat = self._chats.get(target)
            newest = max(
                (m for m in (chat.messages.values() if chat else ()) if not m.deleted),
                key=lambda m: m.message_id,
                default=None,
            )
            if newest is None:
                raise AssertionError(f"nothing to pin in chat {target}")
            content = {kind: self._message_dict(newest, with_reply=False)}
        else:
            raise ValueError(f"unknown message kind: {kind!r}")
        if caption is not None and kind not in CONTENT_KINDS:
            raise ValueError(f"a {kind} has no caption")
        return {
            "update_id": self._next_update_id(),
            **self._message_payload(user_id, caption or "", chat_id, chat_type, content),
        }

    def document_update(
        self,
        user_id: int,
        data: bytes,
        file_name: str | None,
        mime_type: str | None = None,
        *,
        caption: str | None = None,
        chat_id: int | None = None,
        chat_type: Literal["private", "group", "supergroup"] = "private",
    ) -> JSON:
        """An Update with a document (a file with ``data`` as its bytes) from ``user_id``, NOT
        queued.  ``mime_type`` None: guessed from ``file_name`` as Telegram's apps do (no field
        when unknown).  The file is kept in :attr:`files`: ``getFile`` and the download route
        serve it (``getFile`` refuses it above 20 MB, as Telegram does)."""
        content = self._user_document(data, file_name, mime_type)
        return {
            "update_id": self._next_update_id(),
            **self._message_payload(user_id, caption or "", chat_id, chat_type, content),
        }

    def send_document(
        self,
        user_id: int,
        data: bytes,
        file_name: str | None,
        mime_type: str | None = None,
        *,
        caption: str | None = None,
        chat_id: int | None = None,
        chat_type: Literal["private", "group", "supergroup"] = "private",
    ) -> JSON:
        """Like :meth:`document_update`, but queued for ``getUpdates``."""
        content = self._user_document(data, file_name, mime_type)
        return self.queue_update(
            self._message_payload(user_id, caption or "", chat_id, chat_type, content)
        )

    def _user_document(self, data: bytes, file_name: str | None, mime_type: str | None) -> JSON:
        if not data:
            raise AssertionError("Telegram's apps do not send an empty file")
        stored = self._new_file(bytes(data), file_name, mime_type or _guess_mime(file_name))
        return {"document": stored.as_document()}

    def _new_file(self, data: bytes, file_name: str | None, mime_type: str | None) -> StoredFile:
        self._file_count += 1
        number = self._file_count
        stored = StoredFile(
            f"BQACAgIAAxkBAAI{number:06d}",
            f"AgAD{number:06d}",
            data,
            file_name,
            mime_type,
            extension=_extension(file_name, ""),
        )
        self.files[stored.file_id] = stored
        return stored

    def _register_samples(self, content: JSON) -> None:
        """Keep the files of a sample payload, with filler bytes of their ``file_size``."""
        for kind, value in content.items():
            folder, extension = _FILE_FOLDERS.get(kind, ("documents", ""))
            for item in value if isinstance(value, list) else [value]:
                if not isinstance(item, dict) or "file_id" not in item:
                    continue
                name = item.get("file_name")
                size = item.get("file_size")
                self.files[item["file_id"]] = StoredFile(
                    item["file_id"],
                    item["file_unique_id"],
                    _placeholder(size if isinstance(size, int) else PLACEHOLDER_SIZE),
                    name,
                    item.get("mime_type"),
                    folder,
                    _extension(name, extension),
                    placeholder=True,
                )

    def _unique_files(self, value: Any) -> Any:
        """A copy of a sample payload with fresh ``file_id``/``file_unique_id``/poll ``id``."""
        if isinstance(value, list):
            return [self._unique_files(item) for item in value]
        if not isinstance(value, dict):
            return value
        copy = {k: self._unique_files(v) for k, v in value.items()}
        for name in ("file_id", "file_unique_id", "id"):
            if name in copy and copy[name] == "":
                self._file_count += 1
                copy[name] = f"{name[:4]}-{self._file_count:06d}"
        return copy

    def send_text(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        chat_type: Literal["private", "group", "supergroup"] = "private",
    ) -> JSON:
        """Like :meth:`message_update`, but queued for ``getUpdates``."""
        return self.queue_update(self._message_payload(user_id, text, chat_id, chat_type))

    def callback_update(
        self, user_id: int, message_id: int, data: str, *, chat_id: int | None = None
    ) -> JSON:
        """An Update with a callback query from ``user_id`` on a bot message, NOT queued.

        The message (current content and keyboard) is embedded as ``callback_query.message``.
        ``data`` is not checked against the keyboard (stale buttons can be simulated).  The
        query is recorded in :attr:`callback_queries`.
        """
        return {
            "update_id": self._next_update_id(),
            **self._callback_payload(user_id, message_id, data, chat_id),
        }

    def press(
        self, user_id: int, message_id: int, data: str, *, chat_id: int | None = None
    ) -> JSON:
        """Like :meth:`callback_update`, but queued for ``getUpdates``."""
        return self.queue_update(self._callback_payload(user_id, message_id, data, chat_id))

    def press_button(
        self,
        user_id: int,
        text_of_button: str,
        *,
        chat_id: int | None = None,
        message_id: int | None = None,
    ) -> JSON:
        """Press (queue) the inline button whose text equals ``text_of_button`` (else contains
        it) on the newest bot message of the chat that has one (or on ``message_id``).

        AssertionError when no such button, when several buttons of that message contain the
        text and none equals it, or when the button has no ``callback_data``.
        """
        chat = chat_id if chat_id is not None else user_id
        message, button = self._find_button(chat, text_of_button, message_id)
        if button.callback_data is None:
            raise AssertionError(f"button {button.text!r} has no callback_data: {button.raw}")
        return self.press(user_id, message.message_id, button.callback_data, chat_id=chat)

    def my_chat_member_update(self, user_id: int, status: Literal["kicked", "member"]) -> JSON:
        """An Update telling the bot that ``user_id`` blocked (``kicked``) or unblocked
        (``member``) it, NOT queued.  The blocked state changes at once."""
        return {"update_id": self._next_update_id(), **self._member_payload(user_id, status)}

    def block(self, user_id: int) -> JSON | None:
        """The user blocks the bot: ``sendMessage`` gets 403 from now on and a
        ``my_chat_member`` (kicked) update is queued.  None (nothing queued) if already blocked."""
        if self.is_blocked(user_id):
            return None
        return self.queue_update(self._member_payload(user_id, "kicked"))

    def unblock(self, user_id: int) -> JSON | None:
        """The user unblocks the bot; queues ``my_chat_member`` (member).  None if not blocked."""
        if not self.is_blocked(user_id):
            return None
        return self.queue_update(self._member_payload(user_id, "member"))

    def _next_update_id(self) -> int:
        self._last_update_id += 1
        return self._last_update_id

    def _user_action(self) -> None:
        self._user_seq = self._seq
        self._notify()

    def _message_payload(
        self,
        user_id: int,
        text: str,
        chat_id: int | None,
        chat_type: str,
        content: JSON | None = None,
    ) -> JSON:
        target = chat_id if chat_id is not None else user_id
        if chat_type == "private" and target != user_id:
            raise AssertionError("a private chat's id is its user's id")
        if self.is_blocked(target) and chat_type == "private":
            raise AssertionError(f"user {user_id} blocked the bot; call unblock() first")
        profile = self._profile(user_id)
        chat = self._ensure_chat(target, chat_type)
        self._check_group_writer(chat, user_id)
        entities = bot_command_entities(text)
        message = self._store(
            chat, profile.id, False, _Text(text, text, None, entities), None, None
        )
        message.content = content
        payload = self._message_dict(message)
        self._user_action()
        return {"message": payload}

    def _callback_payload(
        self, user_id: int, message_id: int, data: str, chat_id: int | None
    ) -> JSON:
        target = chat_id if chat_id is not None else user_id
        message = self._chats[target].messages.get(message_id) if target in self._chats else None
        if message is None or message.deleted or not message.from_bot:
            raise AssertionError(f"no bot message {message_id} in chat {target} to press on")
        self._check_group_writer(self._chats[target], user_id)
        self._query_count += 1
        query_id = str(QUERY_ID_BASE + self._query_count)
        self.callback_queries[query_id] = CallbackQueryRecord(
            query_id, user_id, target, message_id, data, time.monotonic()
        )
        query = {
            "id": query_id,
            "from": self._profile(user_id).as_dict(),
            "message": self._message_dict(message),
            "chat_instance": str(8_000_000_000_000_000_000 + abs(target)),
            "data": data,
        }
        self._user_action()
        return {"callback_query": query}

    def _member_payload(self, user_id: int, status: Literal["kicked", "member"]) -> JSON:
        chat = self._ensure_chat(user_id, "private")
        chat.blocked = status == "kicked"
        old = "member" if status == "kicked" else "kicked"
        self._user_action()
        return {
            "my_chat_member": {
                "chat": self._chat_dict(chat),
                "from": self._profile(user_id).as_dict(),
                "date": int(time.time()),
                "old_chat_member": self._member(old),
                "new_chat_member": self._member(status),
            }
        }

    def _member(self, status: str, user: JSON | None = None) -> JSON:
        member: JSON = {"user": self.bot_user if user is None else user, "status": status}
        if status == "kicked":
            member["until_date"] = 0
        elif status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            member |= dict.fromkeys(ADMIN_RIGHTS, False) | {"can_manage_chat": True}
        return member

    def _check_group_writer(self, chat: _Chat, user_id: int) -> None:
        """A group the bot left sends it nothing; a roster group takes its members' words only."""
        if chat.bot_absent or chat.migrated_to is not None:
            raise AssertionError(f"the bot is not in chat {chat.id}: it gets nothing from there")
        if chat.roster and chat.members.get(user_id, "left") in ("left", "kicked"):
            raise AssertionError(f"user {user_id} is not a member of chat {chat.id}")

    def _find_button(
        self, chat_id: int, text: str, message_id: int | None
    ) -> tuple[StoredMessage, Button]:
        candidates = [m for m in reversed(self.bot_messages(chat_id)) if m.reply_markup]
        if message_id is not None:
            candidates = [m for m in candidates if m.message_id == message_id]
        for message in candidates:
            found = [b for row in message.buttons for b in row if b.text == text]
            found = found or [b for row in message.buttons for b in row if text in b.text]
            if len(found) > 1 and all(b.text != text for b in found):
                names = [b.text for b in found]
                raise AssertionError(
                    f"{text!r} matches several buttons of message {message.message_id}: {names}"
                )
            if found:
                return message, found[0]
        seen = {m.message_id: m.button_texts() for m in candidates[:5]}
        raise AssertionError(
            f"no inline button {text!r} in chat {chat_id}; newest keyboards: {seen}"
        )

    # ---------------------------------------------------------------- what the user sees

    def chat(self, chat_id: int) -> list[StoredMessage]:
        """The chat's messages that are not deleted, oldest first, current content."""
        chat = self._chats.get(chat_id)
        if chat is None:
            return []
        return [m for m in chat.messages.values() if not m.deleted]

    def bot_messages(self, chat_id: int) -> list[StoredMessage]:
        """The bot's messages in the chat that are not deleted, oldest first."""
        return [m for m in self.chat(chat_id) if m.from_bot]

    def last_bot_message(self, chat_id: int) -> StoredMessage:
        """The newest bot message not deleted; AssertionError if there is none."""
        messages = self.bot_messages(chat_id)
        if not messages:
            raise AssertionError(f"the bot has no message in chat {chat_id}")
        return messages[-1]

    def message(self, chat_id: int, message_id: int) -> StoredMessage:
        """Any stored message, deleted ones included; KeyError if unknown."""
        return self._chats[chat_id].messages[message_id]

    def document_of(self, message: StoredMessage) -> tuple[str | None, bytes]:
        """``(file name, bytes)`` of the document in ``message`` (sent by the bot or a user);
        AssertionError if it holds none."""
        document = (message.content or {}).get("document")
        if not isinstance(document, dict):
            raise AssertionError(f"message {message.message_id} holds no document")
        stored = self.files[document["file_id"]]
        return stored.file_name, stored.data

    @staticmethod
    def buttons(message: StoredMessage) -> list[list[Button]]:
        """The inline keyboard of ``message`` as rows of :class:`Button`."""
        return message.buttons

    @property
    def callback_answers(self) -> dict[str, CallbackQueryRecord]:
        """The answered callback queries by query id."""
        return {k: v for k, v in self.callback_queries.items() if v.answered}

    def commands_for(self, scope: JSON | None = None, language_code: str = "") -> list[JSON]:
        """The commands set for exactly that scope (default scope if None) and language."""
        return list(
            self.my_commands.get((_scope_key(scope or {"type": "default"}), language_code), [])
        )

    @property
    def seq(self) -> int:
        """Change counter: grows on every stored message creation, edit or deletion."""
        return self._seq

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - part of the test API
    ) -> None:
        """Wait until ``predicate()`` is true (checked on every change and every 20 ms);
        AssertionError after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"condition not met within {timeout} s")
            event = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, 0.02))

    async def wait_for_bot_message(
        self,
        chat_id: int,
        contains: str | None = None,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - part of the test API
        since: int | None = None,
    ) -> StoredMessage:
        """Wait for a bot message in the chat created or edited after ``since`` (default: the
        last user-side action, i.e. the last update built or queued) whose current text
        contains ``contains``; returns the first such message to change.  AssertionError with
        the chat's recent messages on timeout."""
        baseline = self._user_seq if since is None else since

        def matches() -> list[StoredMessage]:
            found = [
                m
                for m in self.bot_messages(chat_id)
                if m.seq > baseline and (contains is None or contains in m.text)
            ]
            return sorted(found, key=lambda m: m.seq)

        try:
            await self.wait_for(lambda: bool(matches()), timeout)
        except AssertionError:
            recent = [(m.message_id, m.from_bot, m.text[:80]) for m in self.chat(chat_id)[-5:]]
            raise AssertionError(
                f"no new bot message containing {contains!r} in chat {chat_id} within "
                f"{timeout} s; recent messages: {recent}"
            ) from None
        return matches()[0]

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _wake_pollers(self) -> None:
        self._poll_event.set()
        self._poll_event = asyncio.Event()

    # ---------------------------------------------------------------- message store

    def _store(
        self,
        chat: _Chat,
        from_id: int,
        from_bot: bool,
        text: _Text,
        markup: JSON | None,
        keyboard: JSON | None,
        reply_to: int | None = None,
    ) -> StoredMessage:
        message = StoredMessage(
            chat_id=chat.id,
            message_id=chat.next_message_id,
            from_id=from_id,
            from_bot=from_bot,
            text=text.text,
            raw_text=text.raw,
            parse_mode=text.parse_mode,
            entities=text.entities,
            reply_markup=markup,
            date=int(time.time()),
            keyboard=keyboard,
            reply_to_message_id=reply_to,
        )
        chat.next_message_id += 1
        chat.messages[message.message_id] = message
        self._touch(message)
        return message

    def _touch(self, message: StoredMessage) -> None:
        self._seq += 1
        message.seq = self._seq
        self._notify()

    def _edit(self, message: StoredMessage, text: _Text | None, markup: JSON | None) -> None:
        message.history.append(
            MessageVersion(
                message.text,
                message.raw_text,
                message.parse_mode,
                message.entities,
                message.reply_markup,
                time.monotonic(),
            )
        )
        if text is not None:
            message.text, message.raw_text = text.text, text.raw
            message.parse_mode, message.entities = text.parse_mode, text.entities
        message.reply_markup = markup
        message.edit_date = int(time.time())
        self._touch(message)

    def _delete(self, message: StoredMessage) -> None:
        message.deleted = True
        self._seq += 1
        self._notify()

    def _message_dict(self, message: StoredMessage, *, with_reply: bool = True) -> JSON:
        chat = self._chats[message.chat_id]
        sender = self.bot_user if message.from_bot else self._profile(message.from_id).as_dict()
        data: JSON = {
            "message_id": message.message_id,
            "from": sender,
            "chat": self._chat_dict(chat),
            "date": message.date,
        }
        if with_reply and message.reply_to_message_id is not None:
            replied = chat.messages.get(message.reply_to_message_id)
            if replied is not None and not replied.deleted:
                data["reply_to_message"] = self._message_dict(replied, with_reply=False)
        if message.edit_date is not None:
            data["edit_date"] = message.edit_date
        if message.content is None:
            data["text"] = message.text
            if message.entities:
                data["entities"] = [dict(e) for e in message.entities]
        else:
            data |= message.content
            if message.text:
                data["caption"] = message.text
            if message.entities:
                data["caption_entities"] = [dict(e) for e in message.entities]
        if message.reply_markup is not None:
            data["reply_markup"] = message.reply_markup
        return data

    # ================================================================= internals: HTTP

    async def _not_found(self, request: web.Request) -> web.Response:
        return web.json_response(_ApiError(404, MSG_NOT_FOUND).body(), status=404)

    async def _download(self, request: web.Request) -> web.Response:
        """``/file/bot{token}/{file_path}``: the bytes, or Telegram's JSON 404 for a wrong token
        or a path no ``getFile`` gave."""
        path = request.match_info["path"]
        call = Call("file", {"file_path": path}, 0, {}, time.monotonic(), request.host)
        self.downloads.append(call)
        if self._latency > 0:
            await asyncio.sleep(self._latency)
        stored = self._file_paths.get(path)
        if request.match_info["token"] != self.bot_token or stored is None:
            call.http_status, call.response = 404, _ApiError(404, MSG_NOT_FOUND).body()
            return web.json_response(call.response, status=404)
        call.http_status = 200
        return web.Response(body=stored.data, content_type="application/octet-stream")

    async def _entry(self, request: web.Request) -> web.Response:
        url_method = request.match_info["method"]
        known = self._handlers.get(url_method.lower())
        try:
            params = await _read_params(request)
        except web.HTTPRequestEntityTooLarge:
            body = _ApiError(413, MSG_ENTITY_TOO_LARGE).body()
            name = known[0] if known else url_method
            self.calls.append(Call(name, {}, 413, body, time.monotonic(), request.host))
            return web.json_response(body, status=413)
        call = Call(known[0] if known else url_method, params, 0, {}, time.monotonic())
        call.host = request.host
        self.calls.append(call)
        try:
            status, body = await self._answer(request.match_info["token"], call)
        except Exception as exc:  # a bug in the fake: keep it visible to tests
            self.errors.append(exc)
            status, body = 500, _ApiError(500, f"{MSG_INTERNAL}: {exc!r}").body()
        call.http_status, call.response = status, body
        self._notify()
        return web.json_response(body, status=status)

    async def _answer(self, token: str, call: Call) -> tuple[int, JSON]:
        if self._latency > 0:
            await asyncio.sleep(self._latency)
        try:
            if token != self.bot_token:
                raise _ApiError(401, MSG_UNAUTHORIZED)
            known = self._handlers.get(call.method.lower())
            if known is None:
                raise _ApiError(404, MSG_NOT_FOUND)
            self._injected_fault(call.method.lower())
            result = await known[1](call.params)
        except _ApiError as error:
            return error.code, error.body()
        slow, delay = self._slow_answers
        if delay > 0 and call.method.lower() in slow:
            self._notify()
            await asyncio.sleep(delay)
        return 200, {"ok": True, "result": result}

    def _injected_fault(self, method: str) -> None:
        for fault in self._faults:
            if fault.method == method and fault.skip > 0:
                fault.skip -= 1
                break
            if fault.method == method:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                raise _ApiError(fault.code, fault.description, fault.retry_after)
        if self._fault_methods is None:
            if method == "getupdates":
                return
        elif method not in self._fault_methods:
            return
        if self._rate_5xx and self._fault_rng.random() < self._rate_5xx:
            raise _ApiError(500, MSG_INTERNAL)
        if self._rate_429 and self._fault_rng.random() < self._rate_429:
            raise _too_many(self._fault_retry_after)

    def _register_handlers(self) -> None:
        handlers: dict[str, Handler] = {
            "getMe": self._get_me,
            "logOut": self._true,
            "close": self._true,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "sendDocument": self._send_document,
            "getFile": self._get_file,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "deleteMessages": self._delete_messages,
            "answerCallbackQuery": self._answer_callback_query,
            "sendChatAction": self._send_chat_action,
            "getChatMember": self._get_chat_member,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "setChatMenuButton": self._set_chat_menu_button,
            "getChatMenuButton": self._get_chat_menu_button,
            "setMyDescription": self._text_setter("description"),
            "getMyDescription": self._text_getter("description"),
            "setMyShortDescription": self._text_setter("short_description"),
            "getMyShortDescription": self._text_getter("short_description"),
            "setMyName": self._text_setter("name"),
            "getMyName": self._text_getter("name"),
        }
        self._handlers = {name.lower(): (name, handler) for name, handler in handlers.items()}

    # ---------------------------------------------------------------- parameters

    def _target_chat(self, params: JSON, *, sending: bool) -> _Chat:
        """The chat of ``chat_id``; with ``sending`` a blocked private chat is refused."""
        value = params.get("chat_id")
        if value is None or value == "":
            raise _ApiError(400, MSG_CHAT_EMPTY)
        chat = self._chats.get(value) if isinstance(value, int) else None
        if chat is None:
            if isinstance(value, int) and value in self.users:
                raise _ApiError(403, MSG_CANT_INITIATE)
            raise _ApiError(400, MSG_CHAT_NOT_FOUND)
        if sending and chat.blocked:
            raise _ApiError(403, MSG_BLOCKED)
        if chat.bot_absent:
            raise _ApiError(
                403, MSG_BOT_KICKED if chat.bot_status == "kicked" else MSG_BOT_NOT_MEMBER
            )
        if chat.migrated_to is not None:
            raise _ApiError(400, MSG_MIGRATED, migrate_to_chat_id=chat.migrated_to)
        return chat

    def _text(self, params: JSON) -> _Text:
        raw = _str_param(params, "text")
        if not raw:
            raise _ApiError(400, MSG_TEXT_EMPTY)
        text = self._parsed(raw, params, "entities")
        size = utf16_len(text.text)
        if size == 0:
            raise _ApiError(400, MSG_TEXT_EMPTY)
        if size > MAX_TEXT_LENGTH:
            raise _ApiError(400, MSG_TOO_LONG)
        return text

    def _caption(self, params: JSON) -> _Text:
        """The optional ``caption`` of a media message (empty: none), parsed like a text."""
        raw = _str_param(params, "caption") or ""
        text = self._parsed(raw, params, "caption_entities")
        if utf16_len(text.text) > MAX_CAPTION_LENGTH:
            raise _ApiError(400, MSG_CAPTION_TOO_LONG)
        return text

    def _parsed(self, raw: str, params: JSON, entities_field: str) -> _Text:
        mode = _parse_mode(params.get("parse_mode"))
        if mode == "HTML":
            try:
                plain, entities = parse_html(raw, strict_ampersand=self.strict_ampersand)
            except HtmlParseError as error:
                raise _ApiError(400, MSG_PARSE + str(error)) from None
        elif mode is None:
            plain, entities = raw, _entities_param(params.get(entities_field))
        else:
            raise _ApiError(400, f"Bad Request: FakeTelegram does not implement parse_mode {mode}")
        plain, entities = _trim(plain, entities)
        return _Text(plain, raw, mode, entities)

    def _markup(self, params: JSON, *, inline_only: bool) -> tuple[JSON | None, JSON | None]:
        """``(inline keyboard, other markup)`` from ``reply_markup``, validated."""
        markup = params.get("reply_markup")
        if markup is None or markup == "":
            return None, None
        if not isinstance(markup, dict):
            raise _ApiError(400, MSG_MARKUP_JSON)
        if "inline_keyboard" in markup:
            return _validate_inline_keyboard(markup), None
        if inline_only:
            raise _ApiError(400, MSG_INLINE_EXPECTED)
        return None, _validate_other_markup(markup)

    def _reply_to(self, chat: _Chat, params: JSON) -> int | None:
        reply = params.get("reply_parameters")
        allow = bool(params.get("allow_sending_without_reply"))
        message_id = params.get("reply_to_message_id")
        if isinstance(reply, dict):
            message_id = reply.get("message_id")
            allow = bool(reply.get("allow_sending_without_reply", allow))
        if not isinstance(message_id, int):
            return None
        replied = chat.messages.get(message_id)
        if replied is None or replied.deleted:
            if allow:
                return None
            raise _ApiError(400, MSG_REPLY_NOT_FOUND)
        return message_id

    def _message_to_edit(self, params: JSON) -> StoredMessage:
        if params.get("inline_message_id"):
            raise _ApiError(400, MSG_EDIT_NOT_FOUND)
        chat = self._target_chat(params, sending=False)
        message_id = _int_param(params, "message_id", MSG_MESSAGE_ID_EMPTY)
        message = chat.messages.get(message_id)
        if message is None or message.deleted:
            raise _ApiError(400, MSG_EDIT_NOT_FOUND)
        if not message.from_bot:
            raise _ApiError(400, MSG_CANT_EDIT)
        return message

    def _check_rate(self, chat_id: int) -> None:
        limits = self._limits
        if limits is None:
            return
        now = time.monotonic()
        bucket = limits.chats.get(chat_id)
        if bucket is None:
            bucket = _Bucket(limits.burst, limits.per_chat, limits.burst, now)
            limits.chats[chat_id] = bucket
        if limits.all_chats is None:
            rate = limits.global_rate
            limits.all_chats = _Bucket(max(rate, 1.0), rate, max(rate, 1.0), now)
        wait = max(bucket.wait(now), limits.all_chats.wait(now))
        if wait > 0:
            raise _too_many(max(1, math.ceil(wait)))
        bucket.tokens -= 1
        limits.all_chats.tokens -= 1

    # ---------------------------------------------------------------- methods

    async def _true(self, params: JSON) -> bool:
        return True

    async def _get_me(self, params: JSON) -> JSON:
        return self.bot_user | {
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _set_webhook(self, params: JSON) -> bool:
        url = _str_param(params, "url") or ""
        if not url:
            return await self._delete_webhook(params)
        if not url.lower().startswith("https://"):
            raise _ApiError(400, MSG_WEBHOOK_HTTPS)
        if params.get("drop_pending_updates"):
            self._pending.clear()
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(allowed) or DEFAULT_UPDATE_TYPES
        self.webhook = {
            "url": url,
            "secret_token": params.get("secret_token"),
            "max_connections": params.get("max_connections", 40),
        }
        return True

    async def _delete_webhook(self, params: JSON) -> bool:
        self.webhook = None
        if params.get("drop_pending_updates"):
            self._pending.clear()
        return True

    async def _get_webhook_info(self, params: JSON) -> JSON:
        info: JSON = {
            "url": self.webhook["url"] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if self.webhook:
            info["max_connections"] = self.webhook["max_connections"]
            info["ip_address"] = "127.0.0.1"
            info["allowed_updates"] = sorted(self._allowed_updates)
        return info

    async def _get_updates(self, params: JSON) -> list[JSON]:
        if self.webhook is not None:
            raise _ApiError(409, MSG_WEBHOOK_ACTIVE)
        offset, limit, timeout = _poll_numbers(params)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(allowed) or DEFAULT_UPDATE_TYPES
        self._confirm(offset)
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake_pollers()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if generation != self._poll_generation:
                raise _ApiError(409, MSG_POLL_TERMINATED)
            ready = self._deliverable(limit)
            remaining = deadline - loop.time()
            if ready or self._closing or remaining <= 0:
                return ready
            event = self._poll_event
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self._pending = [u for u in self._pending if u["update_id"] >= offset]
        elif offset < 0:
            self._pending = self._pending[offset:]

    def _deliverable(self, limit: int) -> list[JSON]:
        self._pending = [u for u in self._pending if _update_type(u) in self._allowed_updates]
        return self._pending[:limit]

    async def _send_message(self, params: JSON) -> JSON:
        chat = self._target_chat(params, sending=True)
        text = self._text(params)
        markup, keyboard = self._markup(params, inline_only=False)
        reply_to = self._reply_to(chat, params)
        self._check_rate(chat.id)
        message = self._store(chat, self.bot_id, True, text, markup, keyboard, reply_to)
        return self._message_dict(message)

    async def _send_document(self, params: JSON) -> JSON:
        chat = self._target_chat(params, sending=True)
        stored = self._document_param(params)
        caption = self._caption(params)
        markup, keyboard = self._markup(params, inline_only=False)
        reply_to = self._reply_to(chat, params)
        self._check_rate(chat.id)
        message = self._store(chat, self.bot_id, True, caption, markup, keyboard, reply_to)
        message.content = {"document": stored.as_document()}
        return self._message_dict(message)

    def _document_param(self, params: JSON) -> StoredFile:
        """The file of ``document``: an upload (``attach://name`` or the field itself) or the
        file_id of a file Telegram has."""
        value = params.get("document")
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.get(value.removeprefix("attach://"))
        if isinstance(value, Upload):
            if not value.data:
                raise _ApiError(400, MSG_FILE_EMPTY)
            if len(value.data) > MAX_UPLOAD_BYTES:
                raise _ApiError(413, MSG_ENTITY_TOO_LARGE)
            name = value.filename or "document"
            return self._new_file(value.data, name, _guess_mime(name))
        if value is None or value == "":
            raise _ApiError(400, MSG_NO_DOCUMENT)
        if isinstance(value, str) and value in self.files:
            return self.files[value]
        if isinstance(value, str) and value.lower().startswith(("http://", "https://")):
            raise _ApiError(400, "Bad Request: FakeTelegram does not implement sending by URL")
        raise _ApiError(400, MSG_WRONG_FILE)

    async def _get_file(self, params: JSON) -> JSON:
        stored = self.files.get(str(params.get("file_id") or ""))
        if stored is None:
            raise _ApiError(400, MSG_INVALID_FILE_ID)
        if len(stored.data) > MAX_DOWNLOAD_BYTES:
            raise _ApiError(400, MSG_FILE_TOO_BIG)
        if stored.file_path is None:
            stored.file_path = f"{stored.folder}/file_{len(self._file_paths)}{stored.extension}"
            self._file_paths[stored.file_path] = stored
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    async def _edit_message_caption(self, params: JSON) -> JSON:
        message = self._message_to_edit(params)
        if message.content is None:
            raise _ApiError(400, MSG_NO_CAPTION_TO_EDIT)
        caption = self._caption(params)
        markup, _ = self._markup(params, inline_only=True)
        same_caption = (caption.text, caption.entities) == (message.text, message.entities)
        if same_caption and markup == message.reply_markup:
            raise _ApiError(400, MSG_NOT_MODIFIED)
        self._check_rate(message.chat_id)
        self._edit(message, caption, markup)
        return self._message_dict(message)

    async def _edit_message_text(self, params: JSON) -> JSON:
        message = self._message_to_edit(params)
        if message.content is not None:
            raise _ApiError(400, MSG_NO_TEXT_TO_EDIT)
        text = self._text(params)
        markup, _ = self._markup(params, inline_only=True)
        same_text = (text.text, text.entities) == (message.text, message.entities)
        if same_text and markup == message.reply_markup:
            raise _ApiError(400, MSG_NOT_MODIFIED)
        self._check_rate(message.chat_id)
        self._edit(message, text, markup)
        return self._message_dict(message)

    async def _edit_message_reply_markup(self, params: JSON) -> JSON:
        message = self._message_to_edit(params)
        markup, _ = self._markup(params, inline_only=True)
        if markup == message.reply_markup:
            raise _ApiError(400, MSG_NOT_MODIFIED)
        self._check_rate(message.chat_id)
        self._edit(message, None, markup)
        return self._message_dict(message)

    async def _delete_message(self, params: JSON) -> bool:
        chat = self._target_chat(params, sending=False)
        message_id = _int_param(params, "message_id", MSG_MESSAGE_ID_EMPTY)
        message = chat.messages.get(message_id)
        if message is None or message.deleted:
            raise _ApiError(400, MSG_DELETE_NOT_FOUND)
        self._delete(message)
        return True

    async def _delete_messages(self, params: JSON) -> bool:
        chat = self._target_chat(params, sending=False)
        ids = params.get("message_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_BUTTONS:
            raise _ApiError(400, MSG_MESSAGE_IDS)
        for message_id in ids:
            message = chat.messages.get(message_id) if isinstance(message_id, int) else None
            if message is not None and not message.deleted:
                self._delete(message)
        return True

    async def _answer_callback_query(self, params: JSON) -> bool:
        query = self.callback_queries.get(str(params.get("callback_query_id", "")))
        if query is None or query.answered:
            raise _ApiError(400, MSG_QUERY_INVALID)
        text = _str_param(params, "text")
        if text is not None and len(text) > MAX_CALLBACK_ANSWER_LENGTH:
            raise _ApiError(400, MSG_ANSWER_TOO_LONG)
        query.answered, query.answered_at = True, time.monotonic()
        query.text, query.show_alert = text, bool(params.get("show_alert"))
        query.url = _str_param(params, "url")
        cache_time = params.get("cache_time")
        query.cache_time = cache_time if isinstance(cache_time, int) else None
        return True

    async def _get_chat_member(self, params: JSON) -> JSON:
        """From a roster group's list (``left`` for anyone not on it); in a private chat its
        user and the bot.  A user Telegram never saw: 400 ``user not found``."""
        chat = self._target_chat(params, sending=False)
        user_id = _int_param(params, "user_id", MSG_USER_ID_INVALID)
        if user_id == self.bot_id:
            status = chat.bot_status if chat.type != "private" else "member"
            return self._member(status)
        if user_id not in self.users:
            raise _ApiError(400, MSG_USER_NOT_FOUND)
        user = self._profile(user_id).as_dict()
        if chat.type == "private":
            if user_id != chat.id:
                raise _ApiError(400, MSG_USER_NOT_FOUND)
            return self._member("member", user)
        return self._member(chat.members.get(user_id, "left"), user)

    async def _send_chat_action(self, params: JSON) -> bool:
        self._target_chat(params, sending=True)
        if params.get("action") not in CHAT_ACTIONS:
            raise _ApiError(400, MSG_CHAT_ACTION)
        return True

    def _commands_key(self, params: JSON) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        if not isinstance(scope, dict) or scope.get("type") not in SCOPE_TYPES:
            raise _ApiError(400, MSG_SCOPE_INVALID)
        if "chat_id" in scope:
            self._target_chat(
                {"chat_id": _decode_value("chat_id", scope["chat_id"])}, sending=False
            )
        return _scope_key(scope), _language_param(params)

    async def _set_my_commands(self, params: JSON) -> bool:
        commands = _validate_commands(params.get("commands"))
        key = self._commands_key(params)
        if commands:
            self.my_commands[key] = commands
        else:
            self.my_commands.pop(key, None)
        return True

    async def _get_my_commands(self, params: JSON) -> list[JSON]:
        return list(self.my_commands.get(self._commands_key(params), []))

    async def _delete_my_commands(self, params: JSON) -> bool:
        self.my_commands.pop(self._commands_key(params), None)
        return True

    async def _set_chat_menu_button(self, params: JSON) -> bool:
        button = params.get("menu_button") or {"type": "default"}
        if not isinstance(button, dict) or button.get("type") not in (
            "default",
            "commands",
            "web_app",
        ):
            raise _ApiError(400, MSG_MENU_BUTTON)
        if params.get("chat_id") is None:
            self.default_menu_button = (
                {"type": "commands"} if button["type"] == "default" else button
            )
        else:
            self._target_chat(params, sending=False).menu_button = button
        return True

    async def _get_chat_menu_button(self, params: JSON) -> JSON:
        if params.get("chat_id") is None:
            return self.default_menu_button
        chat = self._target_chat(params, sending=False)
        if chat.menu_button is None or chat.menu_button["type"] == "default":
            return self.default_menu_button
        return chat.menu_button

    def _text_setter(self, name: str) -> Handler:
        async def handler(params: JSON) -> bool:
            value = _str_param(params, name) or ""
            if len(value) > TEXT_LIMITS[name]:
                raise _ApiError(400, f"Bad Request: {name.upper()}_INVALID")
            key = (name, _language_param(params))
            if value:
                self.bot_texts[key] = value
            else:
                self.bot_texts.pop(key, None)
            return True

        return handler

    def _text_getter(self, name: str) -> Handler:
        async def handler(params: JSON) -> JSON:
            language = _language_param(params)
            value = self.bot_texts.get((name, language)) or self.bot_texts.get((name, ""), "")
            if name == "name" and not value:
                value = self.bot_first_name
            return {name: value}

        return handler


def _scope_key(scope: JSON) -> str:
    parts = [str(scope.get("type", "default"))]
    parts += [str(scope[k]) for k in ("chat_id", "user_id") if k in scope]
    return ":".join(parts)


def _poll_numbers(params: JSON) -> tuple[int, int, float]:
    offset = params.get("offset")
    limit = params.get("limit")
    timeout = params.get("timeout")
    offset = offset if isinstance(offset, int) else 0
    limit = min(max(limit, 1), 100) if isinstance(limit, int) else 100
    wait = float(timeout) if isinstance(timeout, int | float) else 0.0
    return offset, limit, min(max(wait, 0.0), MAX_LONG_POLL)


async def _read_params(request: web.Request) -> JSON:
    """Query string, then the body (multipart, urlencoded or JSON), decoded per field."""
    raw: JSON = dict(request.query)
    if request.body_exists:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                body = None
            if isinstance(body, dict):
                raw.update(body)
        else:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, str):
                    raw[key] = value
                elif isinstance(value, FileField):
                    data = value.file.read()
                    raw[key] = Upload(value.filename or None, data, value.content_type)
                else:
                    raw[key] = bytes(value).decode("utf-8", "replace")
    return {key: _decode_value(key, value) for key, value in raw.items()}


# ============================================================================================
# Webhook delivery
# ============================================================================================


@dataclass
class Delivery:
    """One update delivered: the HTTP status of each try, and when it was answered 200."""

    update_id: int
    statuses: list[int]
    at: float


class WebhookDelivery:
    """Telegram's side of webhook mode: while the fake has a webhook set, each queued update is
    POSTed to ``target`` (where the proxy behind the registered https:// URL listens; that URL
    itself is never called) with the registered secret token, instead of waiting for
    ``getUpdates``.  Up to the webhook's ``max_connections`` at once, one at a time and in order
    per chat; an answer other than 200 or a failed connection is tried again after ``retry``
    seconds, as Telegram does.  Updates of types outside ``allowed_updates`` are dropped.
    ``await start()``; ``await close()`` stops (updates still being tried are given up)."""

    def __init__(self, fake: FakeTelegram, target: str, *, retry: float = 0.5) -> None:
        self.fake = fake
        self.target = target
        self.retry = retry
        self.delivered: list[Delivery] = []
        self._http: aiohttp.ClientSession | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self._chats: dict[int, asyncio.Lock] = {}
        self._slots: asyncio.Semaphore | None = None  # the webhook's max_connections

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        self._loop_task = asyncio.create_task(self._run())

    async def close(self) -> None:
        tasks = [t for t in (self._loop_task, *self._sends) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
            self._http = None

    @property
    def pending(self) -> int:
        """Updates taken from the queue and not yet answered 200."""
        return len(self._sends)

    async def _run(self) -> None:
        fake = self.fake
        while True:
            webhook = fake.webhook
            if webhook is not None and fake._pending:
                updates, fake._pending = fake._pending, []
                for update in updates:
                    if _update_type(update) in fake._allowed_updates:
                        task = asyncio.create_task(self._deliver(update, webhook))
                        self._sends.add(task)
                        task.add_done_callback(self._sends.discard)
            await asyncio.sleep(0.01)

    async def _deliver(self, update: JSON, webhook: JSON) -> None:
        assert self._http is not None
        headers = {}
        if webhook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = str(webhook["secret_token"])
        statuses: list[int] = []
        lock = self._chats.setdefault(_update_chat(update), asyncio.Lock())
        if self._slots is None:
            self._slots = asyncio.Semaphore(int(webhook.get("max_connections") or 40))
        async with lock, self._slots:  # FIFO: the chat's updates go in the order queued
            while True:
                try:
                    async with self._http.post(self.target, json=update, headers=headers) as r:
                        statuses.append(r.status)
                except (aiohttp.ClientError, TimeoutError):
                    statuses.append(0)
                if statuses[-1] == 200:
                    self.delivered.append(Delivery(update["update_id"], statuses, time.monotonic()))
                    return
                await asyncio.sleep(self.retry)


def _update_chat(update: JSON) -> int:
    """The chat an update belongs to (its sender for an update without a chat)."""
    body = update.get(_update_type(update))
    if not isinstance(body, dict):
        return 0
    holder = body.get("message") if isinstance(body.get("message"), dict) else body
    chat = holder.get("chat") if isinstance(holder, dict) else None
    if isinstance(chat, dict) and isinstance(chat.get("id"), int):
        return int(chat["id"])
    sender = body.get("from")
    return int(sender["id"]) if isinstance(sender, dict) and "id" in sender else 0
