"""Alerts (docs/ALERTS.md): identity, content and the sentence an operator reads. Pure."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from coldchain.evaluation import Firing
from coldchain.models import MS_PER_MIN, Shipment, iso
from coldchain.prediction import Forecast
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
    """Stable id from shipment + rule + episode start (docs/ALERTS.md): workers cannot make two."""
    digest = hashlib.sha256(f"{shipment_id}|{rule}|{episode_start_ms}".encode()).hexdigest()
    return f"AL-{digest[:16]}"


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert as stored, published and listed (docs/ALERTS.md)."""

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
    peak_c: float | None = None
    """Excursion and cumulative alerts: the episode's extreme when raised (``value_c`` is the
    reading that crossed the limit)."""

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
    peak_c: float | None = None,
    peak_ms: int | None = None,
) -> Alert:
    """The alert for an alarm firing: excursion (single-event) or cumulative.

    ``value_c`` is the reading that crossed the limit (the firing episode's first
    reading); ``peak_c``/``peak_ms`` the episode's extreme as far as the readings
    go when the alert is raised (a batch import knows the whole episode).
    """
    alarm: Alarm = next(a for a in profile.alarms if a.id == firing.alarm_id)
    beyond = "above" if alarm.direction == "above" else "below"
    if alarm.delay_min is not None and (
        alarm.cumulative_min is None
        or firing.triggered_ms == firing.episode_start_ms + round(alarm.delay_min * MS_PER_MIN)
    ):
        kind: AlertType = "excursion"
        limit = f"{beyond} {alarm.limit_c:g} °C"
        since = iso(firing.episode_start_ms)
        what = (
            f"has been {limit} for more than {_fmt_minutes(alarm.delay_min)} since {since}"
            if alarm.delay_min
            else f"went {limit} at {since}, where no time is allowed"
        )
    else:
        kind = "cumulative"
        what = (
            f"has spent more than {_fmt_minutes(alarm.cumulative_min or 0)} in total "
            f"{beyond} {alarm.limit_c:g} °C"
        )
    value = f"{value_c:.1f} °C" if value_c is not None else "n/a"
    peak = (
        f", peak {peak_c:.1f} °C" + (f" at {iso(peak_ms)}" if peak_ms is not None else "")
        if peak_c is not None
        else ""
    )
    # docs/ALERTS.md: one sentence naming shipment, product, value, limit and duration
    message = (
        f"Shipment {shipment.id} ({profile.name}, {shipment.lane}) {what}, "
        f"crossing at {value}{peak} (alarm {alarm.id}, {alarm.severity})."
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
        peak_c=peak_c,
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


def budget_alert(
    firing: Firing,
    *,
    shipment: Shipment,
    profile: Profile,
    prior_min: float,
    detected_ms: int,
) -> Alert:
    """``budget_low`` (warning, 80 % consumed) or ``budget_exhausted`` (critical) of the lot."""
    _, budget_id, level = firing.alarm_id.split(":")
    budget = next(b for b in profile.budget if b.id == budget_id)
    exhausted = level == "exhausted"
    share = "100 %" if exhausted else "80 %"
    lot = f"lot {shipment.lot}" if shipment.lot else "this shipment's product"
    before = f", {prior_min:.0f} min of it on earlier legs" if prior_min else ""
    message = (
        f"Shipment {shipment.id} ({profile.name}, {shipment.lane}): {lot} has used {share} of "
        f"its {budget.allowance_min:g}-min stability budget {budget.id} "
        f"({budget.direction} {budget.limit_c:g} °C){before}. "
        + (
            "Quarantine the product and ask QA for a decision."
            if exhausted
            else "Protect the remaining exposure; tell QA."
        )
    )
    return Alert(
        id=alert_id(shipment.id, firing.alarm_id, firing.episode_start_ms),
        shipment_id=shipment.id,
        logger_id=shipment.loggers[0] if shipment.loggers else None,
        type="budget_exhausted" if exhausted else "budget_low",
        severity="critical" if exhausted else "warning",
        rule=firing.alarm_id,
        triggered_ms=firing.triggered_ms,
        detected_ms=detected_ms,
        value_c=None,
        limit_c=budget.limit_c,
        message=message,
    )


def prediction_alert(
    forecast: Forecast, *, shipment: Shipment, profile: Profile, detected_ms: int
) -> Alert:
    """``predicted_breach`` (warning): a critical limit forecast to be crossed
    (docs/EVALUATION.md)."""
    minutes = (forecast.crossing_ms - forecast.made_ms) / MS_PER_MIN
    rule = f"predict:{forecast.direction}:{forecast.limit_c:g}"
    message = (
        f"Shipment {shipment.id} ({profile.name}, {shipment.lane}): trending "
        f"{forecast.slope_c_per_min * 60:+.1f} °C/h, now {forecast.fitted_c:.1f} °C, forecast to "
        f"cross {forecast.limit_c:g} °C in about {_fmt_minutes(minutes)} "
        f"(at {iso(forecast.crossing_ms)}). Check the packaging or re-ice now."
    )
    return Alert(
        id=alert_id(shipment.id, rule, forecast.made_ms),
        shipment_id=shipment.id,
        logger_id=shipment.loggers[0] if shipment.loggers else None,
        type="predicted_breach",
        severity="warning",
        rule=rule,
        triggered_ms=forecast.made_ms,
        detected_ms=detected_ms,
        value_c=forecast.fitted_c,
        limit_c=forecast.limit_c,
        message=message,
    )


def revision_alert(old: Alert, new: Alert | None, *, detected_ms: int, why: str) -> Alert:
    """The alert that supersedes ``old`` after late data (docs/EVALUATION.md, streaming equals
    batch): revised, or withdrawn."""
    if new is not None:
        ident = (
            new.id
            if new.id != old.id
            else alert_id(old.shipment_id, f"{old.rule}:rev:{new.triggered_ms}", new.triggered_ms)
        )
        return replace(
            new,
            id=ident,
            supersedes=old.id,
            message=f"Revised after late readings ({why}): {new.message}",
        )
    return replace(
        old,
        id=alert_id(old.shipment_id, f"{old.rule}:withdrawn", old.triggered_ms),
        severity="info",
        detected_ms=detected_ms,
        supersedes=old.id,
        state="open",
        count=1,
        message=(
            f"Withdrawn after late readings ({why}): the finding of {iso(old.triggered_ms)} "
            f"no longer holds. Was: {old.message}"
        ),
    )
