"""Device figures beside coldchain's: the ``reconciliation`` block (docs/PROTOCOL.md, device
files), pure.

Given a parsed Berlinger :class:`~coldchain.berlinger.DeviceFile` and coldchain's
evaluation of the same readings, says for each figure whether the two agree:
min and max exactly; MKT and average when coldchain's value truncated to 0.1 °C
equals the device's; alarm times within one logging interval; durations within
one interval per episode.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

from coldchain.berlinger import AlarmEvent, DayRecord, DeviceAlarm, DeviceFile
from coldchain.models import MS_PER_MIN, dt_to_ms, iso

_DAY_MS = 24 * 60 * MS_PER_MIN

# -- device figures beside coldchain's -----------------------------------------------------


def truncate_01(value: float) -> float:
    """Truncate toward zero to 0.1 °C, as the device displays MKT and averages."""
    return float(Decimal(repr(value)).quantize(Decimal("0.1"), rounding=ROUND_DOWN))


def reconcile(df: DeviceFile, evaluation_json: Mapping[str, Any]) -> dict[str, Any]:
    """The ``reconciliation`` block of evaluation.json: device and coldchain side by side.

    docs/PROTOCOL.md, device files: min and max agree when equal; MKT and average when coldchain's
    figure truncated to 0.1 °C equals the device's; an alarm time when within
    one logging interval; an out-of-range duration when within one interval
    per episode. ``agrees`` is None where one side has no figure. An alarm
    the device never raised agrees when coldchain did not fire it either; on
    an alarm the device did raise, firings it does not report are listed as
    ``coldchain_only`` and do not count against ``agrees`` (a Fridge-tag day
    keeps only its first alarm time).
    """
    ev = evaluation_json
    s = df.summary
    ctx = _Ctx(df, ev)
    doc: dict[str, Any] = {
        "device": {"model": df.device, "serial": df.serial, "file": df.source},
        "interval_min": df.interval_min,
        "min": _exact(s.min_c, s.min_ms, ev.get("min_c")),
        "max": _exact(s.max_c, s.max_ms, ev.get("max_c")),
        "mkt": _truncated(s.mkt_c, ev.get("mkt_c")),
        "mean": _truncated(s.avg_c, ev.get("mean_c")),
        "alarms": [_alarm_row(ctx, a) for a in df.alarms],
    }
    if s.history:
        doc["daily"] = [row for rec in s.history for row in _daily_rows(ctx, rec)]
    found = [doc[k]["agrees"] for k in ("min", "max", "mkt", "mean")]
    found += [r["agrees"] for r in (*doc["alarms"], *doc.get("daily", []))]
    doc["agrees"] = _all(found)
    return doc


def _all(found: Sequence[bool | None]) -> bool | None:
    known = [v for v in found if v is not None]
    return all(known) if known else None


def _exact(device: float | None, at_ms: int | None, ours: float | None) -> dict[str, Any]:
    return {
        "device_c": device,
        "device_at": _iso(at_ms),
        "coldchain_c": ours,
        "agrees": None if device is None or ours is None else device == ours,
    }


def _truncated(device: float | None, ours: float | None) -> dict[str, Any]:
    cut = None if ours is None else truncate_01(ours)
    return {
        "device_c": device,
        "coldchain_c": ours,
        "coldchain_truncated_c": cut,
        "agrees": None if device is None or cut is None else device == cut,
    }


@dataclass(frozen=True, slots=True)
class _Span:
    start_ms: int
    end_ms: int


class _Ctx:
    """The evaluation JSON, read once, in the terms of one device file."""

    def __init__(self, df: DeviceFile, ev: Mapping[str, Any]) -> None:
        self.df = df
        self.step_ms = df.interval_min * MS_PER_MIN
        self.has_data = bool(ev.get("readings"))
        self.covered = (
            _Span(_ms(ev["first_reading"]), _ms(ev["last_reading"])) if self.has_data else None
        )
        self.episodes: dict[tuple[str, float], list[_Span]] = {
            (lim["direction"], lim["limit_c"]): [
                _Span(_ms(e["start"]), _ms(e["end"])) for e in lim["episodes"]
            ]
            for lim in ev.get("limits", [])
        }
        self.firings: dict[str, list[tuple[int, int]]] = {
            a["id"]: [(_ms(f["triggered_at"]), _ms(f["episode_start"])) for f in a["firings"]]
            for a in ev.get("alarms", [])
        }
        self.alarms: list[Mapping[str, Any]] = list(ev.get("alarms", []))

    def firings_of(self, a: DeviceAlarm) -> list[tuple[int, int]]:
        """``(triggered, episode start)`` of the evaluated alarm matching device alarm ``a``."""
        counterpart = self.counterpart(a)
        return self.firings.get(counterpart, []) if counterpart is not None else []

    def counterpart(self, a: DeviceAlarm) -> str | None:
        """The evaluated alarm that is the device's: same id (``--profile from-device``), or
        the same condition (side, limit, single or cumulative, minutes) in the product profile."""
        for alarm in self.alarms:
            if alarm["id"] == a.id:
                return str(alarm["id"])
        for alarm in self.alarms:
            minutes = alarm.get("delay_min") if a.kind == "single" else alarm.get("cumulative_min")
            if (alarm["direction"], alarm["limit_c"], minutes) == (
                a.direction,
                a.limit_c,
                a.delay_min if a.kind == "single" else a.cumulative_min,
            ):
                return str(alarm["id"])
        return None

    def episodes_of(self, a: DeviceAlarm) -> list[_Span]:
        return self.episodes.get((a.direction, a.limit_c), [])


def _alarm_row(ctx: _Ctx, a: DeviceAlarm) -> dict[str, Any]:
    counterpart = ctx.counterpart(a)
    firings = ctx.firings_of(a)
    used: set[int] = set()
    events = [e for e in ctx.df.summary.alarm_events if e.number == a.number]
    if events:  # Q-tag: one line per episode (single) or one for the run (cumulative)
        checks = [
            _episode_check(ctx, a, e, used) if a.kind == "single" else _total_check(ctx, a, e, used)
            for e in events
        ]
    else:  # Fridge-tag: the alarm times of the daily history
        checks = [
            _trigger_check(ctx, at, carried, firings, used)
            for at, carried in _day_triggers(ctx.df, a)
        ]
    row = {
        "id": a.id,
        "coldchain_alarm": counterpart,
        "number": a.number,
        "kind": a.kind,
        "direction": a.direction,
        "limit_c": a.limit_c,
        "minutes": a.delay_min if a.delay_min is not None else a.cumulative_min,
        "device_fired": bool(checks),
        "coldchain_fired": bool(firings) if ctx.has_data else None,
        "checks": checks,
        "coldchain_only": [_iso(t) for t, _ in firings if t not in used],
        # Where the device never alarmed, the two agree when coldchain did not either.
        "agrees": _all([c["agrees"] for c in checks])
        if checks or not ctx.has_data
        else not firings,
    }
    if counterpart is None:  # the evaluated profile has no such alarm: nothing to compare
        row.update(
            coldchain_fired=None,
            checks=[],
            coldchain_only=[],
            agrees=None,
            note="the evaluated profile has no alarm with this condition; "
            "evaluate with --profile from-device to compare",
        )
    return row


def _episode_check(ctx: _Ctx, a: DeviceAlarm, e: AlarmEvent, used: set[int]) -> dict[str, Any]:
    """A Q-tag single-event line against the coldchain episode that overlaps it most."""
    ep = _overlapping(e, ctx.episodes_of(a))
    fire = None if ep is None else next((f for f in ctx.firings_of(a) if f[1] == ep.start_ms), None)
    if fire is not None:
        used.add(fire[0])
    minutes = None if ep is None else (ep.end_ms - ep.start_ms) / MS_PER_MIN
    return {
        "device_start": _iso(e.start_ms),
        "device_end": _iso(e.end_ms),
        "device_minutes": e.minutes,
        "device_triggered_at": _iso(e.triggered_ms),
        "coldchain_start": None if ep is None else _iso(ep.start_ms),
        "coldchain_end": None if ep is None else _iso(ep.end_ms),
        "coldchain_minutes": minutes,
        "coldchain_triggered_at": None if fire is None else _iso(fire[0]),
        "agrees": None
        if not ctx.has_data
        else _near(e.triggered_ms, None if fire is None else fire[0], ctx.step_ms)
        and _near_min(e.minutes, minutes, ctx.step_ms),
    }


def _total_check(ctx: _Ctx, a: DeviceAlarm, e: AlarmEvent, used: set[int]) -> dict[str, Any]:
    """A Q-tag cumulative line: the run's total out-of-range time, one interval per episode."""
    episodes = ctx.episodes_of(a)
    fire = next(iter(ctx.firings_of(a)), None)
    if fire is not None:
        used.add(fire[0])
    minutes = sum(ep.end_ms - ep.start_ms for ep in episodes) / MS_PER_MIN
    return {
        "device_start": _iso(e.start_ms),
        "device_minutes": e.minutes,
        "device_triggered_at": _iso(e.triggered_ms),
        "coldchain_start": _iso(episodes[0].start_ms) if episodes else None,
        "coldchain_minutes": minutes if ctx.has_data else None,
        "coldchain_episodes": len(episodes),
        "coldchain_triggered_at": None if fire is None else _iso(fire[0]),
        "agrees": None
        if not ctx.has_data
        else _near(e.triggered_ms, None if fire is None else fire[0], ctx.step_ms)
        and _near_min(e.minutes, minutes, ctx.step_ms * max(1, len(episodes))),
    }


def _trigger_check(
    ctx: _Ctx, at: int, carried: bool, firings: Sequence[tuple[int, int]], used: set[int]
) -> dict[str, Any]:
    """A Fridge-tag alarm time against the nearest coldchain firing."""
    fire = min((f[0] for f in firings if f[0] not in used), key=lambda t: abs(t - at), default=None)
    agrees = None
    if ctx.has_data and not carried:
        agrees = _near(at, fire, ctx.step_ms)
        if agrees and fire is not None:
            used.add(fire)
    return {
        "device_triggered_at": _iso(at),
        "before_history": carried,  # "TS A 00:00" on the first day: on before the record starts
        "coldchain_triggered_at": None if fire is None or carried else _iso(fire),
        "agrees": agrees,
    }


def _near(device_ms: int | None, ours_ms: int | None, tolerance_ms: int) -> bool:
    if device_ms is None:
        return ours_ms is None
    return ours_ms is not None and abs(ours_ms - device_ms) <= tolerance_ms


def _near_min(device_min: float | None, ours_min: float | None, tolerance_ms: int) -> bool:
    if device_min is None or ours_min is None:
        return device_min is None
    return abs(ours_min - device_min) * MS_PER_MIN <= tolerance_ms


def _day_triggers(df: DeviceFile, a: DeviceAlarm) -> Iterator[tuple[int, bool]]:
    """A Fridge-tag alarm's trigger times; True with a time already on at the history's start.

    A day keeps the first time its alarm was on; "00:00" after a day in alarm
    is the same excursion carried over midnight, not a new trigger.
    """
    previous_on = False
    for i, rec in enumerate(df.summary.history):
        day = next((d for d in rec.alarms if d.number == a.number), None)
        at = None if day is None else day.triggered_ms
        at_midnight = at == _local_midnight_ms(df, rec.day)
        if at is not None and not (at_midnight and previous_on):
            yield at, at_midnight and i == 0
        previous_on = at is not None


def _overlapping(e: AlarmEvent, episodes: Sequence[_Span]) -> _Span | None:
    if e.start_ms is None or e.minutes is None:
        return None
    span = _Span(e.start_ms, e.start_ms + round(e.minutes * MS_PER_MIN))
    best = max(episodes, key=lambda ep: _overlap(ep, span), default=None)
    return best if best is not None and _overlap(best, span) >= 0 else None


def _overlap(a: _Span, b: _Span) -> int:
    return min(a.end_ms, b.end_ms) - max(a.start_ms, b.start_ms)


def _daily_rows(ctx: _Ctx, rec: DayRecord) -> Iterator[dict[str, Any]]:
    """A Fridge-tag day's out-of-range minutes beside coldchain's, one interval per episode."""
    day = _Span(_local_midnight_ms(ctx.df, rec.day), _local_midnight_ms(ctx.df, rec.day) + _DAY_MS)
    inside = ctx.covered is not None and _overlap(ctx.covered, day) > 0
    for entry in rec.alarms:
        a = next((x for x in ctx.df.alarms if x.number == entry.number), None)
        if a is None:
            continue
        parts = [_overlap(ep, day) for ep in ctx.episodes_of(a) if _overlap(ep, day) > 0]
        ours = sum(parts) / MS_PER_MIN if inside else None
        yield {
            "date": rec.day.isoformat(),
            "alarm": a.id,
            "device_minutes": entry.accumulated_min,
            "coldchain_minutes": ours,
            "coldchain_episodes": len(parts),
            "agrees": None
            if ours is None
            else _near_min(entry.accumulated_min, ours, ctx.step_ms * max(1, len(parts))),
        }


def _local_midnight_ms(df: DeviceFile, day: date) -> int:
    return calendar.timegm(day.timetuple()) * 1000 - df.zone_offset_min * MS_PER_MIN


def _iso(ms: int | None) -> str | None:
    return None if ms is None else iso(ms)


def _ms(text: str) -> int:
    return dt_to_ms(datetime.fromisoformat(text))
