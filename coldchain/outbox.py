"""The transactional outbox's records and rules (docs/ALERTS.md): deliveries, back-off, digests.
Pure.

A :class:`Delivery` is one notification owed to one channel. It is written in
the same store transaction as the finding (or the acknowledgement, the
escalation) that caused it, so an alert can never exist without its pending
deliveries, nor a delivery without its alert. A dispatcher then sends it at
least once; its id is derived from (alert, event, channel), so writing it
twice is a no-op, and receivers can drop repeats by ``delivery_id`` (or the
alert id and event).

Status: ``pending`` (due at ``next_attempt_ms``) → ``delivered``; or
``failed`` after ``give_up_after`` refusals by the receiver; ``held`` by a
rate limit → ``digested`` into one digest delivery when the window ends.
A receiver that is down (transient error) only delays: retried with
exponential back-off and jitter, without limit.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from coldchain.models import MS_PER_MIN, iso
from coldchain.notify import Event, Notice
from coldchain.routing import RateLimit, RetryPolicy

DeliveryStatus = Literal["pending", "delivered", "failed", "held", "digested"]


def delivery_id(alert_id: str, event: str, channel: str) -> str:
    """Stable id of the notification of ``event`` on an alert to a channel: written once."""
    digest = hashlib.sha256(f"{alert_id}|{event}|{channel}".encode()).hexdigest()
    return f"DL-{digest[:16]}"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at sending a delivery; times are wall clock, epoch ms UTC."""

    number: int
    at_ms: int
    ok: bool
    error: str | None
    elapsed_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.number,
            "at": iso(self.at_ms),
            "ok": self.ok,
            "error": self.error,
            "elapsed_ms": self.elapsed_ms,
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification owed to one channel (a row of the outbox)."""

    id: str
    alert_id: str
    shipment_id: str
    channel: str
    route: str
    event: Event
    notice: Notice
    created_ms: int
    next_attempt_ms: int
    status: DeliveryStatus = "pending"
    attempts: int = 0
    refusals: int = 0
    """Attempts the receiver refused for good (HTTP 4xx, SMTP 5xx)."""
    delivered_ms: int | None = None
    last_error: str | None = None
    digest_id: str | None = None
    history: tuple[Attempt, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel,
            "route": self.route,
            "event": self.event,
            "status": self.status,
            "attempts": self.attempts,
            "created_at": iso(self.created_ms),
            "next_attempt_at": iso(self.next_attempt_ms) if self.status == "pending" else None,
            "delivered_at": iso(self.delivered_ms) if self.delivered_ms is not None else None,
            "last_error": self.last_error,
            "digest_id": self.digest_id,
            "history": [a.to_json() for a in self.history],
        }


def backoff_ms(policy: RetryPolicy, *, attempt: int, key: str) -> int:
    """Wait before try ``attempt + 1`` after ``attempt`` failed tries (``attempt`` ≥ 1).

    ``initial_s · 2^(attempt-1)``, capped at ``max_s``, then spread by ±``jitter``
    (a fraction) so that many deliveries failing together do not retry together.
    The jitter is drawn from a hash of ``key`` (the delivery id) and the
    attempt: the schedule is reproducible, yet differs between deliveries.
    """
    base_s: float = min(policy.max_s, policy.initial_s * 2.0 ** min(attempt - 1, 62))
    digest = hashlib.sha256(f"{key}|{attempt}".encode()).digest()
    unit = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    spread = 1 - policy.jitter + 2 * policy.jitter * unit
    return max(1, round(base_s * spread * 1000))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What becomes of a delivery after one attempt."""

    status: DeliveryStatus
    next_attempt_ms: int
    refused: bool = False
    """True when the receiver refused this attempt (counted towards giving up)."""


def after_attempt(
    delivery: Delivery, policy: RetryPolicy, *, ok: bool, permanent: bool, now_ms: int
) -> Outcome:
    """Delivered, retried later, or failed after ``give_up_after`` refusals.

    ``delivery`` is as it was before this attempt. Only refusals by the
    receiver count towards giving up; a receiver that is down never makes a
    delivery fail, it only delays it.
    """
    if ok:
        return Outcome("delivered", now_ms)
    refusals = delivery.refusals + int(permanent)
    if permanent and refusals >= policy.give_up_after:
        return Outcome("failed", now_ms, refused=True)
    wait = backoff_ms(policy, attempt=delivery.attempts + 1, key=delivery.id)
    return Outcome("pending", now_ms + wait, refused=permanent)


def is_rate_limited(
    limit: RateLimit | None, *, event: Event, severity: str, sent_in_window: int
) -> bool:
    """Whether a new delivery must be held for the digest (docs/ALERTS.md: no storms).

    Only ``raised`` and ``escalated`` notifications count and are held;
    critical ones never are unless the limit says ``include_critical``.
    """
    if limit is None or event not in ("raised", "escalated"):
        return False
    if severity == "critical" and not limit.include_critical:
        return False
    return sent_in_window >= limit.max


def window_ms(limit: RateLimit) -> int:
    return round(limit.window_min * MS_PER_MIN)


@dataclass(frozen=True, slots=True)
class DigestPlan:
    """Held deliveries of one shipment and channel, due to go out as one digest."""

    shipment_id: str
    channel: str
    held: tuple[Delivery, ...]


def due_digests(
    held: Sequence[Delivery], *, windows_ms: dict[str, int], now_ms: int
) -> list[DigestPlan]:
    """Groups of held deliveries whose rate-limit window has ended by ``now_ms``.

    A group is due ``windows_ms[channel]`` after its oldest held delivery was
    created. Channels missing from ``windows_ms`` (limit removed since) are
    due at once.
    """
    groups: dict[tuple[str, str], list[Delivery]] = defaultdict(list)
    for d in held:
        if d.status == "held":
            groups[(d.shipment_id, d.channel)].append(d)
    plans = []
    for (shipment_id, channel), items in sorted(groups.items()):
        items.sort(key=lambda d: (d.created_ms, d.id))
        if now_ms >= items[0].created_ms + windows_ms.get(channel, 0):
            plans.append(DigestPlan(shipment_id, channel, tuple(items)))
    return plans


def digest_delivery(plan: DigestPlan, notice: Notice, *, now_ms: int) -> Delivery:
    """The one delivery that stands for every held delivery of ``plan``."""
    first = plan.held[0]
    return Delivery(
        id=delivery_id(first.id, "digest", plan.channel),
        alert_id=plan.held[-1].alert_id,
        shipment_id=plan.shipment_id,
        channel=plan.channel,
        route=first.route,
        event="digest",
        notice=notice,
        created_ms=now_ms,
        next_attempt_ms=now_ms,
    )


def digest_items(plan: DigestPlan) -> list[dict[str, Any]]:
    """What a digest lists: one short entry per held notification."""
    return [
        {
            "id": d.alert_id,
            "event": d.event,
            "type": d.notice.alert["type"],
            "severity": d.notice.alert["severity"],
            "triggered_at": d.notice.alert["triggered_at"],
            "message": d.notice.alert["message"],
        }
        for d in plan.held
    ]
