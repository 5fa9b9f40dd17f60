"""The operator's figures (/admin, /metrics): a few COUNT / GROUP BY queries of the whole
deployment, plus this instance's view of the GotSMS budgets."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.http import RateLimits
from bot.db.models import Credential, RentWatch, SentSms, User, utcnow
from bot.db.outbox import OutboxItem, PollState
from bot.metrics import Metrics
from bot.poller.jobs import GOTSMS_RESERVE
from bot.poller.sms import FINAL

ACTIVE_WITHIN = timedelta(hours=24)
PUSHES_WITHIN = timedelta(hours=1)
LATENCY_SAMPLE = 20_000  # newest pushes of the hour read for p50/p95 (two columns each)


@dataclass(frozen=True)
class Budget:
    """GotSMS tokens this instance heard from in the current minute."""

    seen: int = 0
    at_reserve: int = 0  # only the user's reserve left: the polls of that token wait
    held_back: int = 0  # told to wait (429 Retry-After)
    lowest: int | None = None  # requests left of the lowest one


@dataclass(frozen=True)
class Figures:
    users: int = 0
    active: int = 0  # seen in the last 24 h
    blocked: int = 0
    tokens: dict[str, int] = field(default_factory=dict)  # service → connected tokens
    rents: int = 0  # rent_watch rows
    sms: int = 0  # sent SMS not yet final
    polls: dict[str, int] = field(default_factory=dict)  # job → users it follows
    pushes: int = 0  # sent in the last hour
    p50: float | None = None  # s, outbox created_at → sent_at
    p95: float | None = None
    backlog: int = 0
    parked: int = 0  # dropped: never sent
    failures: dict[str, tuple[int, int]] = field(default_factory=dict)  # job → (users, most)
    budget: Budget = field(default_factory=Budget)


async def collect(
    session: AsyncSession,
    limits: RateLimits | None = None,
    *,
    latency: bool = True,
    now: datetime | None = None,
) -> Figures:
    """`latency`: also p50/p95 of the last hour's pushes (the only read beyond counts)."""
    now = now or utcnow()
    users, active, blocked = (
        await session.execute(
            select(
                func.count(User.id),
                func.count(User.id).filter(User.updated_at >= now - ACTIVE_WITHIN),
                func.count(User.id).filter(User.is_active.is_(False)),
            )
        )
    ).one()
    tokens = await _grouped(session, select(Credential.service, func.count()), Credential.service)
    polls = await _grouped(session, select(PollState.job, func.count()), PollState.job)
    failing = select(PollState.job, func.count(), func.max(PollState.failures)).where(
        PollState.failures > 0
    )
    failures = {
        job: (int(count), int(most))
        for job, count, most in await session.execute(failing.group_by(PollState.job))
    }
    rents = await session.scalar(select(func.count()).select_from(RentWatch))
    sms = await session.scalar(select(func.count(SentSms.id)).where(SentSms.status.not_in(FINAL)))
    since = now - PUSHES_WITHIN
    pushes, backlog, parked = (
        await session.execute(
            select(
                func.count(OutboxItem.id).filter(OutboxItem.sent_at >= since),
                func.count(OutboxItem.id).filter(
                    OutboxItem.sent_at.is_(None), OutboxItem.dropped.is_(None)
                ),
                func.count(OutboxItem.id).filter(OutboxItem.dropped.is_not(None)),
            )
        )
    ).one()
    p50 = p95 = None
    if latency and pushes:
        p50, p95 = await _latencies(session, since)
    await session.commit()
    return Figures(
        users=int(users),
        active=int(active),
        blocked=int(blocked),
        tokens=tokens,
        rents=int(rents or 0),
        sms=int(sms or 0),
        polls=polls,
        pushes=int(pushes),
        p50=p50,
        p95=p95,
        backlog=int(backlog),
        parked=int(parked),
        failures=failures,
        budget=budget_of(limits) if limits is not None else Budget(),
    )


async def _grouped(session: AsyncSession, query: object, column: object) -> dict[str, int]:
    rows = await session.execute(query.group_by(column))  # type: ignore[attr-defined]
    return {str(key): int(count) for key, count in rows}


async def _latencies(session: AsyncSession, since: datetime) -> tuple[float, float]:
    query = (
        select(OutboxItem.created_at, OutboxItem.sent_at)
        .where(OutboxItem.sent_at >= since)
        .order_by(OutboxItem.sent_at.desc())
        .limit(LATENCY_SAMPLE)
    )
    seconds = sorted(
        max((sent - created).total_seconds(), 0.0)
        for created, sent in await session.execute(query)
        if sent is not None and created is not None
    )
    return percentile(seconds, 50), percentile(seconds, 95)


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest rank of an ordered, non-empty sequence."""
    rank = max(math.ceil(p / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def budget_of(limits: RateLimits, now: float | None = None) -> Budget:
    """Tokens whose current minute this instance knows (GoSMS says nothing of budgets, so
    every quota with a `remaining` is a GotSMS token's)."""
    now = time.time() if now is None else now
    live = [
        q
        for q in list(limits.quotas.values())
        if q.remaining is not None and q.reset_at is not None and q.reset_at > now
    ]
    left = [q.remaining for q in live if q.remaining is not None]
    return Budget(
        seen=len(live),
        at_reserve=sum(1 for r in left if r <= GOTSMS_RESERVE),
        held_back=sum(1 for q in limits.quotas.values() if q.blocked_until > now),
        lowest=min(left) if left else None,
    )


def publish(figures: Figures, metrics: Metrics) -> None:
    """The same figures as gauges of /metrics."""
    metrics.outbox_backlog.set(figures.backlog)
    metrics.outbox_parked.set(figures.parked)
    for state, count in (
        ("all", figures.users),
        ("active", figures.active),
        ("blocked", figures.blocked),
    ):
        metrics.users.labels(state=state).set(count)
    metrics.tokens.clear()
    for service, count in figures.tokens.items():
        metrics.tokens.labels(service=service).set(count)
    metrics.watched.labels(what="rents").set(figures.rents)
    metrics.watched.labels(what="sms").set(figures.sms)
    metrics.poll_failing.clear()
    for job, (count, _most) in figures.failures.items():
        metrics.poll_failing.labels(job=job).set(count)
    if figures.budget.lowest is not None:
        metrics.gotsms_budget.set(figures.budget.lowest)
