"""What an instance counts, in the Prometheus format (`/metrics`).

One `Metrics` per process, built with the other long-lived parts (`Deps`) and handed to whoever
counts; each has its own registry, so tests that build several bots in one process never share
figures. Gauges that describe the whole deployment (the outbox backlog, heartbeats) are set by
the part that reads them from the database.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

PREFIX = "sms_desk"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60, 120)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.updates = Counter(
            f"{PREFIX}_updates", "Telegram updates handled", ["kind", "outcome"], registry=r
        )
        self.update_seconds = Histogram(
            f"{PREFIX}_update_seconds", "time to handle one update", registry=r
        )
        self.polls = Counter(
            f"{PREFIX}_polls", "polls of the background jobs", ["job", "outcome"], registry=r
        )
        self.push_latency = Histogram(
            f"{PREFIX}_push_latency_seconds",
            "from the poll that found a push to Telegram accepting it",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.pushes = Counter(f"{PREFIX}_pushes", "pushes", ["outcome"], registry=r)
        self.outbox_backlog = Gauge(
            f"{PREFIX}_outbox_backlog", "pushes waiting to be sent (whole deployment)", registry=r
        )
        self.outbox_parked = Gauge(
            f"{PREFIX}_outbox_parked",
            "pushes given up on, never sent (whole deployment)",
            registry=r,
        )
        self.users = Gauge(
            f"{PREFIX}_users", "users: all, active in 24 h, blocked the bot", ["state"], registry=r
        )
        self.tokens = Gauge(
            f"{PREFIX}_tokens", "connected API tokens by service", ["service"], registry=r
        )
        self.watched = Gauge(
            f"{PREFIX}_watched", "rentals and SMS being followed", ["what"], registry=r
        )
        self.poll_failing = Gauge(
            f"{PREFIX}_poll_failing_users",
            "users whose last poll of the job failed (it backs off)",
            ["job"],
            registry=r,
        )
        self.gotsms_budget = Gauge(
            f"{PREFIX}_gotsms_budget_remaining",
            "the lowest GotSMS requests left this minute over the tokens seen lately",
            registry=r,
        )
        self.heartbeat_age = Gauge(
            f"{PREFIX}_instance_heartbeat_age_seconds",
            "seconds since each instance's last heartbeat",
            ["instance"],
            registry=r,
        )
        self.instances_alive = Gauge(
            f"{PREFIX}_instances_alive", "instances whose heartbeat is fresh", registry=r
        )

    def update_handled(self, kind: str, outcome: str, seconds: float) -> None:
        self.updates.labels(kind=kind, outcome=outcome).inc()
        self.update_seconds.observe(seconds)

    def poll_done(self, job: str, outcome: str) -> None:
        self.polls.labels(job=job, outcome=outcome).inc()

    def push_done(self, kind: str, outcome: str, latency: float | None = None) -> None:
        self.pushes.labels(outcome=outcome).inc()
        if latency is not None:
            self.push_latency.labels(kind=kind).observe(max(latency, 0.0))

    def set_heartbeats(self, ages: Mapping[str, float], fresh: int) -> None:
        self.heartbeat_age.clear()
        for instance, age in ages.items():
            self.heartbeat_age.labels(instance=instance).set(age)
        self.instances_alive.set(fresh)

    def render(self) -> bytes:
        return generate_latest(self.registry)
