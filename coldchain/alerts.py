"""Alerts (SPEC §6): identity, content and the sentence an operator reads. Pure."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from coldchain.evaluation import Firing
from coldchain.models import MS_PER_MIN, Shipment, iso
from coldchain.profiles import Alarm, Profile

AlertType = Literal[
    "excursion",
    "cumulative",
    "budget_low",
    "budget_exhausted",
    "predicted_breach",
    "logger_silent",
    "data_gap",
    "sensor_disagreement",
    "sensor_fault",
    "battery_low",
    "clock_skew",
    "excursion_ended",
]
AlertState = Literal["open", "acknowledged", "resolved"]


def alert_id(shipment_id: str, rule: str, episode_start_ms: int) -> str:
    """Stable id from shipment + rule + episode start (SPEC §6): workers cannot make two."""
    digest = hashlib.sha256(f"{shipment_id}|{rule}|{episode_start_ms}".encode()).hexdigest()
    return f"AL-{digest[:16]}"


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert as stored, published and listed (SPEC §6)."""

    id: str
    shipment_id: str
    logger_id: str | None
    type: AlertType
    severity: Literal["info", "warning", "critical"]
    rule: str
    triggered_ms: int
    detected_ms: int
    value_c: float | None
    limit_c: float | None
    message: str
    state: AlertState = "open"
    supersedes: str | None = None
    count: int = 1

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["triggered_at"] = iso(doc.pop("triggered_ms"))
        doc["detected_at"] = iso(doc.pop("detected_ms"))
        return doc

    def with_state(self, state: AlertState) -> Alert:
        return replace(self, state=state)


def _fmt_minutes(minutes: float) -> str:
    if minutes < 90:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h"


def alarm_alert(
    firing: Firing,
    *,
    shipment: Shipment,
    profile: Profile,
    value_c: float | None,
    detected_ms: int,
) -> Alert:
    """The alert for an alarm firing: excursion (single-event) or cumulative."""
    alarm: Alarm = next(a for a in profile.alarms if a.id == firing.alarm_id)
    beyond = "above" if alarm.direction == "above" else "below"
    if alarm.delay_min is not None and (
        alarm.cumulative_min is None
        or firing.triggered_ms == firing.episode_start_ms + round(alarm.delay_min * MS_PER_MIN)
    ):
        kind: AlertType = "excursion"
        duration = (
            f"for more than {_fmt_minutes(alarm.delay_min)}" if alarm.delay_min else "(no delay)"
        )
    else:
        kind = "cumulative"
        duration = f"for more than {_fmt_minutes(alarm.cumulative_min or 0)} in total"
    value = f"{value_c:.1f} °C" if value_c is not None else "n/a"
    message = (
        f"Shipment {shipment.id} ({profile.name}, {shipment.lane}): temperature {beyond} "
        f"{alarm.limit_c:g} °C {duration} since {iso(firing.episode_start_ms)}; "
        f"last value {value}. Alarm {alarm.id} ({alarm.severity})."
    )
    return Alert(
        id=alert_id(shipment.id, alarm.id, firing.episode_start_ms),
        shipment_id=shipment.id,
        logger_id=shipment.loggers[0] if shipment.loggers else None,
        type=kind,
        severity=alarm.severity,
        rule=alarm.id,
        triggered_ms=firing.triggered_ms,
        detected_ms=detected_ms,
        value_c=value_c,
        limit_c=alarm.limit_c,
        message=message,
    )


def logger_alert(
    *,
    kind: AlertType,
    shipment_id: str,
    logger_id: str,
    severity: Literal["info", "warning", "critical"],
    triggered_ms: int,
    detected_ms: int,
    message: str,
    value_c: float | None = None,
) -> Alert:
    """A logger-health alert (clock skew, sensor fault, battery): one per condition start."""
    return Alert(
        id=alert_id(shipment_id, f"{kind}:{logger_id}", triggered_ms),
        shipment_id=shipment_id,
        logger_id=logger_id,
        type=kind,
        severity=severity,
        rule=kind,
        triggered_ms=triggered_ms,
        detected_ms=detected_ms,
        value_c=value_c,
        limit_c=None,
        message=message,
    )
