"""An alert's lifecycle (docs/ALERTS.md): open → acknowledged → resolved, and escalations. Pure.

Each transition is a function of the current :class:`AlertStatus` and ``now``
that returns the next status or raises :class:`~coldchain.errors.AlertError`
saying why the change is refused. The store keeps the status; the audit log
keeps every change (:mod:`coldchain.alerting` writes both in one transaction).

Condition cleared (the temperature is back in range, the battery recharged):
an acknowledged alert, or an open one that is not critical, is resolved with
``reason = "cleared"``. An open *critical* alert is only marked ``cleared_ms``
and stays open: a critical excursion that is over still needs a person to
look at it, so it keeps escalating until acknowledged; the acknowledgement
then resolves it at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from coldchain.alerts import AlertState
from coldchain.errors import AlertError
from coldchain.models import iso

ResolutionReason = Literal["cleared", "closed"]

MAX_NAME_CHARS = 100
MAX_COMMENT_CHARS = 2000
PIPELINE_ACTOR = "pipeline"
"""Who resolves an alert whose condition cleared."""


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """Who took the alert, when (wall clock, epoch ms UTC) and what they said."""

    by: str
    at_ms: int
    comment: str

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "at": iso(self.at_ms), "comment": self.comment}


@dataclass(frozen=True, slots=True)
class Resolution:
    """How the alert ended: its condition ``cleared``, or ``closed`` by an operator."""

    by: str
    at_ms: int
    comment: str
    reason: ResolutionReason

    def to_json(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "at": iso(self.at_ms),
            "comment": self.comment,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Escalation:
    """The alert went, unacknowledged, to ``route`` (``level`` 1 is the first step)."""

    route: str
    level: int
    at_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"route": self.route, "level": self.level, "at": iso(self.at_ms)}


@dataclass(frozen=True, slots=True)
class AlertStatus:
    """Where an alert stands; ``state`` is the alert field (docs/ALERTS.md)."""

    state: AlertState = "open"
    acknowledgement: Acknowledgement | None = None
    resolution: Resolution | None = None
    cleared_ms: int | None = None
    escalations: tuple[Escalation, ...] = ()

    @property
    def level(self) -> int:
        """The highest escalation level reached; 0 when never escalated."""
        return max((e.level for e in self.escalations), default=0)

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "acknowledgement": self.acknowledgement.to_json() if self.acknowledgement else None,
            "resolution": self.resolution.to_json() if self.resolution else None,
            "cleared_at": iso(self.cleared_ms) if self.cleared_ms is not None else None,
            "escalations": [e.to_json() for e in self.escalations],
        }

    def to_doc(self) -> dict[str, Any]:
        """What the store keeps (epoch ms, not RFC 3339)."""
        return {
            "state": self.state,
            "ack": _plain(self.acknowledgement),
            "resolution": _plain(self.resolution),
            "cleared_ms": self.cleared_ms,
            "escalations": [_plain(e) for e in self.escalations],
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> AlertStatus:
        ack, res = doc.get("ack"), doc.get("resolution")
        return cls(
            state=doc["state"],
            acknowledgement=Acknowledgement(**ack) if ack else None,
            resolution=Resolution(**res) if res else None,
            cleared_ms=doc.get("cleared_ms"),
            escalations=tuple(Escalation(**e) for e in doc.get("escalations", ())),
        )


def _plain(item: Acknowledgement | Resolution | Escalation | None) -> dict[str, Any] | None:
    if item is None:
        return None
    return {name: getattr(item, name) for name in item.__slots__}


def _name(by: str, alert_id: str) -> str:
    name = by.strip()
    if not name:
        raise AlertError("say who you are: --by NAME must not be empty", alert_id=alert_id)
    if len(name) > MAX_NAME_CHARS:
        raise AlertError(f"--by is longer than {MAX_NAME_CHARS} characters", alert_id=alert_id)
    return name


def _comment(comment: str, alert_id: str) -> str:
    text = comment.strip()
    if len(text) > MAX_COMMENT_CHARS:
        msg = f"the comment is longer than {MAX_COMMENT_CHARS} characters"
        raise AlertError(msg, alert_id=alert_id)
    return text


def acknowledge(
    status: AlertStatus, *, alert_id: str, by: str, comment: str, now_ms: int
) -> AlertStatus:
    """open → acknowledged; an alert whose condition already cleared is resolved too."""
    name, text = _name(by, alert_id), _comment(comment, alert_id)
    if status.state == "resolved":
        assert status.resolution is not None  # a resolved status always has one
        msg = (
            f"already resolved by {status.resolution.by} at {iso(status.resolution.at_ms)}; "
            "nothing to acknowledge"
        )
        raise AlertError(msg, alert_id=alert_id)
    if status.state == "acknowledged":
        assert status.acknowledgement is not None
        ack = status.acknowledgement
        msg = f"already acknowledged by {ack.by} at {iso(ack.at_ms)}"
        raise AlertError(msg, alert_id=alert_id)
    acked = replace(
        status, state="acknowledged", acknowledgement=Acknowledgement(name, now_ms, text)
    )
    if status.cleared_ms is not None:
        return _resolved(acked, by=PIPELINE_ACTOR, comment="condition had cleared", at_ms=now_ms)
    return acked


def resolve(
    status: AlertStatus, *, alert_id: str, by: str, comment: str, now_ms: int
) -> AlertStatus:
    """Closed by an operator (open or acknowledged → resolved); the comment is required."""
    name, text = _name(by, alert_id), _comment(comment, alert_id)
    if not text:
        msg = "closing an alert needs a comment saying why (--comment TEXT)"
        raise AlertError(msg, alert_id=alert_id)
    if status.state == "resolved":
        assert status.resolution is not None
        res = status.resolution
        msg = f"already resolved by {res.by} at {iso(res.at_ms)} ({res.reason})"
        raise AlertError(msg, alert_id=alert_id)
    return replace(
        status, state="resolved", resolution=Resolution(name, now_ms, text, reason="closed")
    )


def clear(status: AlertStatus, *, severity: str, now_ms: int) -> AlertStatus:
    """The alert's condition is over; see the module docstring for who is resolved."""
    if status.state == "resolved" or status.cleared_ms is not None:
        return status
    if status.state == "open" and severity == "critical":
        return replace(status, cleared_ms=now_ms)
    cleared = replace(status, cleared_ms=now_ms)
    return _resolved(cleared, by=PIPELINE_ACTOR, comment="condition cleared", at_ms=now_ms)


def _resolved(status: AlertStatus, *, by: str, comment: str, at_ms: int) -> AlertStatus:
    return replace(
        status, state="resolved", resolution=Resolution(by, at_ms, comment, reason="cleared")
    )


def escalate(
    status: AlertStatus, *, alert_id: str, route: str, level: int, now_ms: int
) -> AlertStatus:
    """Record that the open alert went to ``route`` at ``level``."""
    if status.state != "open":
        msg = f"is {status.state}; only an unacknowledged alert escalates"
        raise AlertError(msg, alert_id=alert_id)
    if any(e.route == route for e in status.escalations):
        raise AlertError(f"already escalated to route {route!r}", alert_id=alert_id)
    return replace(status, escalations=(*status.escalations, Escalation(route, level, now_ms)))
