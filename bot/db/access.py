"""Who may use an allowlisted bot: the operators' rules (/admin allow|deny) and the daily
refusal of everyone else. Read from the database on every update, so a change made on one
instance applies at once on all of them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import AccessRefusal, AccessRule, utcnow

REFUSE_EVERY = timedelta(hours=24)  # one refusal a stranger is told, at most, in this time
USERNAME = re.compile(r"@[A-Za-z0-9_]{1,64}")


def subject_of(text: str) -> str | None:
    """ "123" → "123", "@Bob" → "@bob"; None for anything else."""
    word = text.strip()
    if word.isdigit() and len(word) <= 20:
        return str(int(word))
    if USERNAME.fullmatch(word):
        return word.lower()
    return None


def subjects_of(user_id: int, username: str | None) -> list[str]:
    """The rules' subjects a Telegram user matches."""
    return [str(user_id), *([f"@{username.lower()}"] if username else [])]


class Change(StrEnum):
    NEW = "new"  # the rule is stored, nothing was there
    FLIPPED = "flipped"  # the opposite rule is replaced
    SAME = "same"  # the same rule was there already: nothing changed


@dataclass(frozen=True)
class Listed:
    """ALLOWED_USERS and ADMIN_IDS, as parsed from the settings."""

    ids: frozenset[int]
    names: frozenset[str]  # lower case, without the @
    admins: frozenset[int]

    def lists(self, subject: str) -> bool:
        if subject.startswith("@"):
            return subject[1:] in self.names
        return int(subject) in self.ids or int(subject) in self.admins

    def lists_user(self, user_id: int, username: str | None) -> bool:
        return user_id in self.ids or (username or "").lower() in self.names


class AccessRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def rules(self, subjects: Iterable[str]) -> dict[str, bool]:
        """subject → allowed, of the stored rules among `subjects` (one indexed query)."""
        query = select(AccessRule.subject, AccessRule.allowed).where(
            AccessRule.subject.in_(list(subjects))
        )
        return dict((await self.session.execute(query)).all())

    async def may_use(self, user_id: int, username: str | None, listed: Listed) -> bool:
        """Operators always; else not with a deny (it wins over ALLOWED_USERS), else when
        ALLOWED_USERS lists them or an operator allowed them."""
        if user_id in listed.admins:
            return True
        rules = await self.rules(subjects_of(user_id, username))
        if False in rules.values():
            return False
        return listed.lists_user(user_id, username) or True in rules.values()

    async def set_rule(self, subject: str, allowed: bool, admin_id: int) -> Change:
        """Stores an operator's allow or deny of `subject`; commits."""
        rule = await self.session.scalar(select(AccessRule).where(AccessRule.subject == subject))
        if rule is not None and rule.allowed == allowed:
            return Change.SAME
        change = Change.NEW
        if rule is None:
            values = {"subject": subject, "allowed": allowed, "added_by": admin_id}
            inserted = await self.session.execute(_insert_new(self.session, AccessRule, values))
            if _rowcount(inserted) == 0:  # another instance stored one a moment ago
                await self.session.rollback()
                return await self.set_rule(subject, allowed, admin_id)
        else:
            change = Change.FLIPPED
            await self.session.execute(
                update(AccessRule)
                .where(AccessRule.subject == subject)
                .values(allowed=allowed, added_by=admin_id, added_at=utcnow())
            )
        if allowed and subject.isdigit():  # told "not for you" before: no longer true
            await self.session.execute(
                delete(AccessRefusal).where(AccessRefusal.user_id == int(subject))
            )
        await self.session.commit()
        return change

    async def refuse_once(self, user_id: int, now: datetime | None = None) -> bool:
        """True when the stranger is to be told (not told in the last 24 h); commits. Two
        updates or instances at once: one of them only."""
        now = now or utcnow()
        moved = await self.session.execute(
            update(AccessRefusal)
            .where(AccessRefusal.user_id == user_id, AccessRefusal.refused_at < now - REFUSE_EVERY)
            .values(refused_at=now)
        )
        if _rowcount(moved) == 0:
            values = {"user_id": user_id, "refused_at": now}
            moved = await self.session.execute(_insert_new(self.session, AccessRefusal, values))
        await self.session.commit()
        return _rowcount(moved) > 0


def _insert_new(
    session: AsyncSession, table: type[AccessRule] | type[AccessRefusal], values: dict[str, object]
) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that does nothing when the row's unique key is taken already."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    key = "subject" if table is AccessRule else "user_id"
    return insert(table).values(**values).on_conflict_do_nothing(index_elements=[key])


def _rowcount(result: object) -> int:
    return result.rowcount if isinstance(result, CursorResult) else 0
