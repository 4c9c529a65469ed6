"""What goes into a dossier (docs/DOSSIER.md), pure: its inputs in, file bytes and the PDF's view
out.

:class:`DossierInput` holds everything gathered for one shipment (the
shell in :mod:`coldchain.dossier.build` reads it from the store);
:func:`data_files` makes every data member of the ZIP — ``readings.csv`` and
``.parquet``, ``evaluation.json``, ``alerts.json``, ``custody.json``,
``audit.json``, ``epcis.jsonld`` and ``customs/*.json`` — and
:func:`dossier_view` what the PDF shows, as strings and numbers ready to lay
out. No clock (``generated_ms`` is an input), no store, no rendering here.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Literal

import numpy as np
import orjson
import polars as pl

from coldchain.alerts import Alert
from coldchain.audit import ChainReport, entry_json
from coldchain.conflicts import reading_conflicts
from coldchain.custody import EPCIS_STEPS, CustodyEvent, Segment, segments, timeline
from coldchain.customs.documents import customs_documents, customs_input
from coldchain.customs.rules import CustomsCheck, RulePacks, check
from coldchain.details import Details
from coldchain.disposition import Disposition, evaluation_digest, local_time
from coldchain.dossier.epcis import Excursion, LegStats, epcis_document
from coldchain.models import MS_PER_MIN, Reading, Shipment, iso
from coldchain.profiles import Profile
from coldchain.store import AuditEntry, BudgetAddBack

Status = Literal["ok", "warn", "fail", "na"]
Point = tuple[int, float]

CHART_BUCKETS = 800
"""Buckets of the chart's time axis; each keeps at most 4 readings, so peaks and gaps show
and 43,200 readings draw fast."""
LATE_UPLOAD_MIN = 15
AHEAD_OF_RECEIPT_MIN = 5
JSON_OPTS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS


@dataclass(frozen=True)
class DossierInput:
    """Everything a dossier is made from; times epoch ms UTC."""

    shipment: Shipment
    profile: Profile
    evaluation: Mapping[str, Any]
    readings: Sequence[Reading]
    timeline: Sequence[Point]
    alerts: Sequence[Alert]
    custody: Sequence[CustodyEvent]
    audit: Sequence[AuditEntry]
    audit_chain: ChainReport
    dispositions: Sequence[Disposition]
    add_backs: Sequence[BudgetAddBack]
    calibration_offsets: Mapping[str, float]
    rule_packs: RulePacks
    generated_ms: int
    generator_version: str
    zone: str = "UTC"

    @property
    def details(self) -> Details:
        return Details.of(self.shipment.extra)

    @cached_property
    def legs(self) -> list[LegStats]:
        """The journey's legs with their temperatures (computed once)."""
        return leg_stats(self, journey(self))

    @property
    def disposition(self) -> Disposition | None:
        return self.dispositions[-1] if self.dispositions else None

    @property
    def window(self) -> tuple[int, int]:
        """Monitoring start and end: first reading (or start) to delivery (or evaluation)."""
        ev = self.evaluation
        first = self.timeline[0][0] if self.timeline else None
        start = self.shipment.start_ms if self.shipment.start_ms is not None else first
        end = self.shipment.end_ms if self.shipment.end_ms is not None else self.generated_ms
        if start is None:
            start = _ms(ev["evaluated_at"])
        return start, max(end, start)


def _ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


# -- formatting ---------------------------------------------------------------------------------


def fmt_time(ms: int | None, zone: str, *, with_zone: bool = True) -> str:
    """``2026-11-26 03:00 UTC`` or ``2026-11-26 11:00 +08:00``; tables name the zone once."""
    if ms is None:
        return "—"
    text = local_time(ms, zone)  # "YYYY-MM-DD HH:MM:SS +hh:mm (zone)"
    if not with_zone:
        return text[:16]
    if zone == "UTC":
        return f"{text[:16]} UTC"
    return f"{text[:16]} {text[20:26]}"


def zone_label(zone: str) -> str:
    return "UTC" if zone == "UTC" else zone


def fmt_c(value: float | None, digits: int = 1) -> str:
    """``−150.0 °C`` with a true minus sign."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:+.{digits}f} °C".replace("-", "−")


def fmt_minutes(minutes: float | None) -> str:
    if minutes is None:
        return "—"
    if abs(minutes) < 90:
        return f"{minutes:.1f} min"
    hours = minutes / 60
    if abs(hours) < 48:
        return f"{hours:.1f} h ({minutes:.0f} min)"
    return f"{hours / 24:.1f} d ({minutes:.0f} min)"


def _limit_text(direction: str, limit_c: float) -> str:
    return f"{'above' if direction == 'above' else 'below'} {fmt_c(limit_c)}"


# -- readings -----------------------------------------------------------------------------------


def readings_frame(inp: DossierInput) -> pl.DataFrame:
    """Every reading of every logger in the window (docs/DOSSIER.md ``readings.csv``), flagged."""
    rs = inp.readings
    primary = inp.shipment.loggers[0] if inp.shipment.loggers else ""
    frame = pl.DataFrame(
        {
            "ts_ms": [r.ts_ms for r in rs],
            "logger_id": [r.logger_id for r in rs],
            "seq": [r.seq for r in rs],
            "raw_temp_c": [r.raw_temp_c if r.raw_temp_c is not None else r.temp_c for r in rs],
            "temp_c": [r.temp_c for r in rs],
            "received_ms": [r.received_ms for r in rs],
            "source": [r.source for r in rs],
        },
        schema={
            "ts_ms": pl.Int64,
            "logger_id": pl.String,
            "seq": pl.Int64,
            "raw_temp_c": pl.Float64,
            "temp_c": pl.Float64,
            "received_ms": pl.Int64,
            "source": pl.String,
        },
    )
    evaluated = pl.DataFrame(
        {"ts_ms": [t for t, _ in inp.timeline], "temp_c": [v for _, v in inp.timeline]},
        schema={"ts_ms": pl.Int64, "temp_c": pl.Float64},
    ).unique()
    temp = pl.col("temp_c")
    flags = [
        pl.when(temp > lim if d == "above" else temp < lim).then(pl.lit(f"{d}:{lim:g}"))
        for d, lim in inp.profile.limit_keys()
    ]
    late = (pl.col("received_ms") - pl.col("ts_ms")) > LATE_UPLOAD_MIN * MS_PER_MIN
    ahead = (pl.col("ts_ms") - pl.col("received_ms")) > AHEAD_OF_RECEIPT_MIN * MS_PER_MIN
    flags += [
        pl.when(late).then(pl.lit("late_upload")),
        pl.when(ahead).then(pl.lit("ahead_of_receipt")),
    ]
    return (
        frame.join(
            evaluated.with_columns(pl.lit(value=True).alias("evaluated")),
            how="left",
            on=["ts_ms", "temp_c"],
        )
        .with_columns(
            pl.col("evaluated").fill_null(value=False),
            pl.when(pl.col("logger_id") == primary)
            .then(pl.lit("primary"))
            .otherwise(pl.lit("backup"))
            .alias("role"),
            (temp - pl.col("raw_temp_c")).round(3).alias("calibration_offset_c"),
            pl.concat_str(flags, separator=";", ignore_nulls=True).alias("flags"),
        )
        .sort("ts_ms", "logger_id")
    )


def _iso_expr(column: str) -> pl.Expr:
    dt = pl.from_epoch(pl.col(column), time_unit="ms").dt.replace_time_zone("UTC")
    return (
        pl.when(pl.col(column) % 1000 == 0)
        .then(dt.dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        .otherwise(dt.dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"))
    )


def readings_csv(frame: pl.DataFrame) -> bytes:
    out = frame.select(
        _iso_expr("ts_ms").alias("device_time_utc"),
        "logger_id",
        "role",
        "seq",
        "raw_temp_c",
        "temp_c",
        "calibration_offset_c",
        _iso_expr("received_ms").alias("received_at_utc"),
        "source",
        "evaluated",
        "flags",
    )
    return out.write_csv().encode()


def readings_parquet(frame: pl.DataFrame) -> bytes:
    out = frame.select(
        pl.from_epoch("ts_ms", time_unit="ms")
        .cast(pl.Datetime("ms"))
        .dt.replace_time_zone("UTC")
        .alias("device_time"),
        "logger_id",
        "role",
        "seq",
        "raw_temp_c",
        "temp_c",
        "calibration_offset_c",
        pl.from_epoch("received_ms", time_unit="ms")
        .cast(pl.Datetime("ms"))
        .dt.replace_time_zone("UTC")
        .alias("received_at"),
        "source",
        "evaluated",
        "flags",
    )
    buf = io.BytesIO()
    out.write_parquet(buf, compression="zstd", statistics=False)
    return buf.getvalue()


# -- legs and excursions ------------------------------------------------------------------------


def journey(inp: DossierInput) -> list[Segment]:
    start, end = inp.window
    origin = inp.details.get("origin_site") or inp.shipment.origin or "origin"
    dest = inp.details.get("destination_site") or inp.shipment.destination or "destination"
    return segments(inp.custody, start_ms=start, end_ms=end, origin=origin, destination=dest)


def leg_stats(inp: DossierInput, segs: Sequence[Segment]) -> list[LegStats]:
    """Min, max and time-weighted mean of the evaluated timeline per leg.

    Each reading weighs the part of its hold (docs/EVALUATION.md, coverage) inside the leg; the
    reading before a leg holds into it and counts for its mean, not its min/max.
    """
    gap_ms = round(inp.profile.max_gap_min * MS_PER_MIN)
    _, cap = inp.window
    n = len(inp.timeline)
    ts = np.fromiter((p[0] for p in inp.timeline), dtype=np.int64, count=n)
    temps = np.fromiter((p[1] for p in inp.timeline), dtype=np.float64, count=n)
    nxt = np.append(ts[1:], cap) if n else ts
    ends = np.maximum(ts, np.minimum(np.minimum(nxt, ts + gap_ms), cap))
    out: list[LegStats] = []
    for seg in segs:
        first = int(np.searchsorted(ts, seg.start_ms, side="left"))
        stop = int(np.searchsorted(ts, seg.end_ms, side="left"))
        held = max(first - 1, 0)
        w = np.clip(
            np.minimum(ends[held:stop], seg.end_ms) - np.maximum(ts[held:stop], seg.start_ms),
            0,
            None,
        ).astype(np.float64)
        count = stop - first
        total = float(w.sum())
        mean = (
            round(float((w * temps[held:stop]).sum()) / total, 3) if total > 0 and count else None
        )
        inside = temps[first:stop]
        lo = float(inside.min()) if count else None
        hi = float(inside.max()) if count else None
        out.append(LegStats(seg, count, lo, hi, mean))
    return out


def excursions(inp: DossierInput) -> list[Excursion]:
    return [
        Excursion(
            lim["direction"],
            float(lim["limit_c"]),
            _ms(e["start"]),
            _ms(e["end"]),
            float(e["peak_c"]),
            _ms(e["peak_at"]),
        )
        for lim in inp.evaluation.get("limits", ())
        for e in lim["episodes"]
    ]


# -- the JSON members ---------------------------------------------------------------------------


def _json(doc: Any) -> bytes:
    return orjson.dumps(doc, option=JSON_OPTS) + b"\n"


def alert_history(inp: DossierInput, alert: Alert) -> list[dict[str, Any]]:
    """Acknowledgements and other changes of one alert, from the audit trail."""
    return [entry_json(e) for e in inp.audit if e.entity == "alert" and e.entity_id == alert.id]


def alerts_doc(inp: DossierInput) -> list[dict[str, Any]]:
    return [a.to_json() | {"history": alert_history(inp, a)} for a in inp.alerts]


def custody_doc(inp: DossierInput, legs: Sequence[LegStats]) -> dict[str, Any]:
    return {
        "shipment_id": inp.shipment.id,
        "events": [e.to_json() for e in timeline(inp.custody)],
        "legs": [
            {
                "label": leg.segment.label,
                "from": leg.segment.origin,
                "to": leg.segment.destination,
                "moving": leg.segment.moving,
                "start": iso(leg.segment.start_ms),
                "end": iso(leg.segment.end_ms),
                "readings": leg.readings,
                "min_c": leg.min_c,
                "max_c": leg.max_c,
                "mean_c": leg.mean_c,
            }
            for leg in legs
        ],
    }


def audit_doc(inp: DossierInput) -> dict[str, Any]:
    chain = inp.audit_chain
    return {
        "shipment_id": inp.shipment.id,
        "scope": "entries about this shipment, its lot, its loggers and its alerts",
        "chain": {
            "verified_at": iso(inp.generated_ms),
            "entries": chain.entries,
            "head_id": chain.head_id,
            "head_hash": chain.head_hash,
            "intact": chain.ok,
            "problems": [str(p) for p in chain.problems],
        },
        "entries": [entry_json(e) for e in inp.audit],
        # readings refused for another value at a time already held (coldchain.conflicts)
        "reading_conflicts": reading_conflicts(inp.audit, inp.shipment),
    }


def customs_check(inp: DossierInput) -> CustomsCheck:
    return check(inp.shipment, inp.profile, inp.rule_packs)


def customs_docs(inp: DossierInput) -> dict[str, dict[str, Any]]:
    result = customs_check(inp)
    source = customs_input(
        inp.shipment,
        inp.profile,
        evaluation_json=inp.evaluation,
        calibration_offsets=inp.calibration_offsets,
        now_ms=inp.generated_ms,
    )
    return customs_documents(source, result.pack, result) | {"rule-pack": result.to_json()}


def data_files(inp: DossierInput) -> dict[str, bytes]:
    """Every data member of the ZIP by path (PDFs and the manifest are added by the builder)."""
    frame = readings_frame(inp)
    legs = inp.legs
    epcis = epcis_document(
        inp.shipment,
        profile_id=inp.profile.id,
        custody=timeline(inp.custody),
        legs=legs,
        excursions=excursions(inp),
        disposition=inp.disposition,
        created_ms=inp.generated_ms,
    )
    files = {
        "readings.csv": readings_csv(frame),
        "readings.parquet": readings_parquet(frame),
        "evaluation.json": _json(inp.evaluation),
        "alerts.json": _json(alerts_doc(inp)),
        "custody.json": _json(custody_doc(inp, legs)),
        "audit.json": _json(audit_doc(inp)),
        "epcis.jsonld": _json(epcis),
    }
    for stem, doc in customs_docs(inp).items():
        files[f"customs/{stem}.json"] = _json(doc)
    return files


# -- the PDF's view -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the release checklist on page 1."""

    status: Status
    title: str
    detail: str


@dataclass(frozen=True, slots=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    widths: tuple[float, ...]  # relative
    empty: str = "None."
    note: str = ""


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    ts_ms: tuple[int, ...]
    temp_c: tuple[float, ...]  # NaN breaks the line at a gap
    primary: bool


@dataclass(frozen=True, slots=True)
class ChartData:
    series: tuple[Series, ...]
    limits: tuple[tuple[float, str, str], ...]  # limit °C, label, severity
    episodes: tuple[tuple[int, int, str], ...]  # start, end, severity
    gaps: tuple[tuple[int, int], ...]
    marks: tuple[tuple[int, str], ...]  # custody events
    start_ms: int
    end_ms: int
    zone: str


@dataclass(frozen=True)
class DossierView:
    """Everything page by page, as text and numbers; :mod:`coldchain.dossier.pdf` lays it out."""

    shipment_id: str
    coi_code: str
    title: str
    verdict: str
    headline: str
    reasons: tuple[str, ...]
    disposition_status: str  # released | rejected | quarantined | pending
    disposition_line: str
    checks: tuple[Check, ...]
    facts: tuple[tuple[str, str], ...]
    temperature: tuple[tuple[str, str], ...]
    chart: ChartData
    reconciliation: Table | None
    sections: tuple[Table, ...]
    disposition_text: tuple[str, ...]
    integrity: tuple[tuple[str, str], ...]
    content_sha256: str
    generated_at: str
    generator: str


def _severity_of_limit(profile: Profile) -> dict[tuple[str, float], str]:
    out: dict[tuple[str, float], str] = {}
    for a in profile.alarms:
        if out.get(a.limit_key) != "critical":
            out[a.limit_key] = a.severity
    for b in profile.budget:
        out.setdefault(b.limit_key, "warning")
    return out


def _decimate(points: Sequence[Point], start: int, end: int, gap_ms: int) -> Series:
    """At most 4 points per bucket (first, min, max, last, in time order); NaN at data gaps.

    A gap is where two *readings* are more than ``gap_ms`` apart, never between
    two kept points: both readings around a gap are kept, and the line breaks there.
    """
    n = len(points)
    if n == 0:
        return Series("", (), (), primary=True)
    span = max(1, end - start)
    ts = np.fromiter((p[0] for p in points), dtype=np.int64, count=n)
    temps = np.fromiter((p[1] for p in points), dtype=np.float64, count=n)
    bucket = np.clip((ts - start) * CHART_BUCKETS // span, 0, CHART_BUCKETS - 1)
    by_value = np.lexsort((temps, bucket))  # by bucket, then by temperature
    sorted_b = bucket[by_value]
    low = np.flatnonzero(np.r_[True, sorted_b[1:] != sorted_b[:-1]])
    high = np.r_[low[1:] - 1, n - 1]
    firsts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    lasts = np.r_[firsts[1:] - 1, n - 1]
    gap_after = np.flatnonzero(np.diff(ts) > gap_ms)
    keep = np.unique(
        np.concatenate([by_value[low], by_value[high], firsts, lasts, gap_after, gap_after + 1])
    )
    kept_ts, kept_temps = ts[keep], temps[keep]
    is_gap = np.zeros(n, dtype=bool)
    is_gap[gap_after] = True
    breaks = np.flatnonzero(is_gap[keep[:-1]]) + 1  # insert before the reading after a gap
    out_ts = np.insert(kept_ts, breaks, kept_ts[breaks - 1] + gap_ms)
    out_temps = np.insert(kept_temps, breaks, np.nan)
    return Series("", tuple(out_ts.tolist()), tuple(out_temps.tolist()), primary=True)


def chart_data(inp: DossierInput) -> ChartData:
    start, end = inp.window
    gap_ms = round(inp.profile.max_gap_min * MS_PER_MIN)
    severity = _severity_of_limit(inp.profile)
    primary = _decimate(inp.timeline, start, end, gap_ms)
    series = [Series("evaluated (primary + backup fill)", primary.ts_ms, primary.temp_c, True)]
    for lg in inp.shipment.loggers[1:]:
        pts = sorted((r.ts_ms, r.temp_c) for r in inp.readings if r.logger_id == lg)
        if pts:
            s = _decimate(pts, start, end, gap_ms)
            series.append(Series(f"backup {lg}", s.ts_ms, s.temp_c, primary=False))
    names: dict[tuple[str, float], list[str]] = {}
    for item in inp.profile.alarms:
        names.setdefault(item.limit_key, []).append(item.id)
    for budget in inp.profile.budget:
        names.setdefault(budget.limit_key, []).append(budget.id)
    limits = tuple(
        (lim, f"{_limit_text(d, lim)} ({', '.join(names[(d, lim)])})", severity[(d, lim)])
        for d, lim in inp.profile.limit_keys()
    )
    episodes = tuple(
        (
            x.start_ms,
            max(x.end_ms, x.start_ms + 1),
            severity.get((x.direction, x.limit_c), "warning"),
        )
        for x in excursions(inp)
    )
    gaps = tuple((_ms(g["start"]), _ms(g["end"])) for g in inp.evaluation.get("gaps", ()))
    # Only events inside the chart's window: one outside (a dispatch before monitoring
    # started) would be drawn off the axes, unclipped, and push matplotlib's tight_layout
    # beyond the figure ("Tight layout not applied"). The custody table lists every event.
    marks = tuple(
        (e.ts_ms, e.type.replace("_", " "))
        for e in timeline(inp.custody)
        if start <= e.ts_ms <= end
    )
    return ChartData(tuple(series), limits, episodes, gaps, marks, start, end, inp.zone)


def _budget_check(inp: DossierInput) -> Check:
    budgets = inp.evaluation.get("budgets", [])
    if not budgets:
        return Check("na", "Stability budget", "The product profile defines no stability budget.")
    worst: Status = "ok"
    parts = []
    for b in budgets:
        remaining, allowance = b["remaining_min"], b["allowance_min"]
        restored = sum(a.minutes for a in inp.add_backs if a.budget_id == b["id"])
        text = (
            f"{b['id']}: {fmt_minutes(remaining)} of {fmt_minutes(allowance)} left"
            if remaining > 0
            else f"{b['id']}: EXHAUSTED, overdrawn by {fmt_minutes(-remaining)} "
            f"(allowance {fmt_minutes(allowance)})"
        )
        if restored:
            text += f" (incl. {fmt_minutes(restored)} restored by signed QA add-back)"
        parts.append(text)
        if remaining <= 0:
            worst = "fail"
        elif b["consumed_min"] >= 0.8 * allowance and worst != "fail":
            worst = "warn"
    lot = f" — lot {inp.shipment.lot}" if inp.shipment.lot else ""
    return Check(worst, "Stability budget", "; ".join(parts) + lot)


def release_checks(inp: DossierInput, customs: CustomsCheck) -> list[Check]:
    """Page 1's answer to "can this be released?", one line per condition."""
    ev = inp.evaluation
    fired = [a for a in ev.get("alarms", []) if a.get("fired")]
    critical = [a for a in fired if a["severity"] == "critical"]
    checks: list[Check] = []
    if not fired:
        checks.append(Check("ok", "Temperature within limits", "No alarm fired."))
    else:
        text = "; ".join(
            f"{a['id']} ({a['severity']}, {_limit_text(a['direction'], a['limit_c'])}) "
            f"at {fmt_time(_ms(a['triggered_at']), inp.zone)}"
            for a in fired
        )
        checks.append(
            Check("fail" if critical else "warn", "Temperature within limits", f"Fired: {text}.")
        )
    checks.append(_budget_check(inp))
    gaps = ev.get("gaps", [])
    if ev.get("readings", 0) == 0:
        checks.append(
            Check("fail", "Data coverage", "No readings: nothing proves the temperature.")
        )
    elif gaps:
        total = sum(g["minutes"] for g in gaps)
        counted = sum(1 for g in gaps if g["counted_out_of_range"])
        checks.append(
            Check(
                "warn",
                "Data coverage",
                f"{len(gaps)} data gap(s), {fmt_minutes(total)} in total"
                + (f"; {counted} counted as out of range" if counted else ""),
            )
        )
    else:
        checks.append(
            Check(
                "ok",
                "Data coverage",
                f"{ev['readings']} readings, no data gap "
                f"({fmt_minutes(ev['covered_min'])} covered).",
            )
        )
    conflicts = ev.get("conflicts") or 0
    if conflicts:
        checks.append(
            Check(
                "warn",
                "Conflicting readings",
                f"{conflicts} reading time(s) held a second, different value, refused; "
                "see 'Conflicting readings'.",
            )
        )
    open_alerts = [a for a in inp.alerts if a.state == "open"]
    if not inp.alerts:
        checks.append(Check("ok", "Alerts handled", "No alert was raised."))
    elif open_alerts:
        crit = sum(1 for a in open_alerts if a.severity == "critical")
        checks.append(
            Check(
                "fail" if crit else "warn",
                "Alerts handled",
                f"{len(open_alerts)} of {len(inp.alerts)} alert(s) still open"
                + (f", {crit} critical" if crit else "")
                + ".",
            )
        )
    else:
        checks.append(
            Check(
                "ok", "Alerts handled", f"All {len(inp.alerts)} alert(s) acknowledged or resolved."
            )
        )
    types = {e.type for e in inp.custody}
    if not inp.custody:
        checks.append(Check("warn", "Custody chain", "No custody event recorded."))
    else:
        start_ok = bool(types & {"dispatched", "handover"})
        end_ok = bool(types & {"received", "delivered"})
        status: Status = "ok" if start_ok and end_ok else "warn"
        holds = sum(1 for e in inp.custody if e.type == "customs_hold")
        detail = (
            f"{len(inp.custody)} events from {'dispatch' if start_ok else '(no dispatch)'} to "
            f"{'receipt' if end_ok else '(no receipt yet)'}"
            + (f"; {holds} customs hold(s)" if holds else "")
            + "."
        )
        checks.append(Check(status, "Custody chain", detail))
    rec = ev.get("reconciliation")
    if rec is None:
        checks.append(
            Check("na", "Device read-out agrees", "No device file was imported for this shipment.")
        )
    else:
        checks.append(_device_check(rec))
    pack = customs.pack
    if customs.ready:
        checks.append(
            Check(
                "ok",
                "Customs documents",
                f"Complete for {pack.name} (rule pack reviewed {pack.reviewed.isoformat()}).",
            )
        )
    else:
        keys = ", ".join(m.key for m in customs.missing[:6])
        more = f" and {len(customs.missing) - 6} more" if len(customs.missing) > 6 else ""
        checks.append(
            Check(
                "warn",
                "Customs documents",
                f"{len(customs.missing)} item(s) missing for {pack.name}: {keys}{more}.",
            )
        )
    chain = inp.audit_chain
    checks.append(
        Check(
            "ok" if chain.ok else "fail",
            "Audit trail intact",
            f"{chain.entries} entries, hash chain verified."
            if chain.ok
            else f"{len(chain.problems)} problem(s): {chain.problems[0]}",
        )
    )
    d = inp.disposition
    if d is not None:
        same = evaluation_digest(ev) == d.evaluation_sha256
        checks.append(
            Check(
                "ok" if same else "warn",
                "Findings unchanged since QA signed",
                "The evaluation is the one QA signed."
                if same
                else "The evaluation changed after QA signed (late data?): review again.",
            )
        )
    return checks


def _headline(verdict: str, d: Disposition | None) -> str:
    if d is not None:
        return {
            "released": "RELEASED by QA",
            "rejected": "REJECTED by QA",
            "quarantined": "QUARANTINED by QA",
        }[d.decision]
    return {
        "PASS": "Record supports release — QA disposition pending",
        "REVIEW": "Review required before release — QA disposition pending",
        "FAIL": "Not releasable without investigation — QA disposition pending",
    }.get(verdict, "QA disposition pending")


def _reasons(inp: DossierInput) -> list[str]:
    ev = inp.evaluation
    out = [
        f"{a['severity'].capitalize()} alarm {a['id']} fired "
        f"({_limit_text(a['direction'], a['limit_c'])})"
        for a in ev.get("alarms", [])
        if a.get("fired")
    ]
    out += [f"Budget {b['id']} exhausted" for b in ev.get("budgets", []) if b["remaining_min"] <= 0]
    if ev.get("gaps"):
        out.append(f"{len(ev['gaps'])} data gap(s)")
    if ev.get("readings", 0) == 0:
        out.append("No readings")
    return out or ["No alarm, no exhausted budget, no data gap"]


def _facts(inp: DossierInput, legs: Sequence[LegStats]) -> list[tuple[str, str]]:
    s, d, p = inp.shipment, inp.details, inp.profile
    route = " → ".join([s.origin or "?", *d.hubs, s.destination or "?"])
    sites = f"{d.get('origin_site') or '—'} → {d.get('destination_site') or '—'}"
    pack = d.get("packaging") or "—"
    if d.get("packaging") == "dry-ice" and d.get("dry_ice_kg"):
        pack += f", {d.get('dry_ice_kg')} kg dry ice net per package"
    first = next((e for e in timeline(inp.custody) if e.type in {"dispatched", "handover"}), None)
    last = next(
        (e for e in reversed(timeline(inp.custody)) if e.type in {"received", "delivered"}), None
    )
    dispatched = fmt_time(first.ts_ms, inp.zone) if first else (d.get("planned_departure") or "—")
    received = fmt_time(last.ts_ms, inp.zone) if last else fmt_time(s.end_ms, inp.zone)
    start, end = inp.window
    return [
        ("Product", f"{p.name} (profile {p.id}, sha256 {p.sha256[:12]}…)"),
        ("Storage", p.storage or "—"),
        ("Lot", s.lot or "—"),
        ("Chain-of-identity code", d.get("coi_code") or "— not set —"),
        ("Lane / route", f"{route}   ({sites})" if sites != "— → —" else route),
        ("Consignor → consignee", f"{d.get('consignor') or '—'} → {d.get('consignee') or '—'}"),
        ("Courier / air waybill", f"{d.get('courier') or '—'} / {d.get('awb') or '—'}"),
        ("Packaging", pack),
        ("Dispatched → received", f"{dispatched} → {received}"),
        (
            "Monitoring",
            f"{fmt_time(start, inp.zone)} → {fmt_time(end, inp.zone)} "
            f"({fmt_minutes((end - start) / MS_PER_MIN)}); legs: {len(legs)}",
        ),
        ("Loggers", ", ".join(s.loggers) + " (primary first)"),
        ("Status", s.status.value),
    ]


def _temperature(inp: DossierInput) -> list[tuple[str, str]]:
    ev = inp.evaluation
    mkt = (
        fmt_c(ev.get("mkt_c"), 2)
        if ev.get("mkt_c") is not None
        else "not applicable (the profile disables MKT)"
    )
    rows = [
        ("Minimum / maximum", f"{fmt_c(ev.get('min_c'))} / {fmt_c(ev.get('max_c'))}"),
        ("Mean (time-weighted)", fmt_c(ev.get("mean_c"), 2)),
        ("Mean kinetic temperature", mkt),
        ("Readings / covered", f"{ev.get('readings', 0)} / {fmt_minutes(ev.get('covered_min'))}"),
    ]
    for lim in ev.get("limits", []):
        rows.append(
            (
                f"Time {_limit_text(lim['direction'], lim['limit_c'])}",
                f"{fmt_minutes(lim['out_of_range_min'])} in {len(lim['episodes'])} episode(s)",
            )
        )
    for b in ev.get("budgets", []):
        remaining = b["remaining_min"]
        rows.append(
            (
                f"Budget {b['id']} remaining",
                f"{fmt_minutes(remaining)} of {fmt_minutes(b['allowance_min'])}"
                if remaining > 0
                else f"none — overdrawn by {fmt_minutes(-remaining)} "
                f"(allowance {fmt_minutes(b['allowance_min'])})",
            )
        )
    return rows


def _yes(value: bool | None) -> str:
    return {True: "✔ agrees", False: "✘ differs", None: "—"}[value]


def _comparable(alarm: Mapping[str, Any]) -> bool:
    """A device alarm is compared only with an evaluated alarm of the same condition
    (the device's own under ``--profile from-device``, or an equal one in the product
    profile); otherwise a "differs" would mislead QA."""
    return alarm.get("coldchain_alarm") is not None


def _device_check(rec: Mapping[str, Any]) -> Check:
    device = rec.get("device", {})
    name = f"{device.get('model', 'device')} {device.get('serial', '')}".strip()
    figures = {k: (rec.get(k) or {}).get("agrees") for k in ("min", "max", "mkt", "mean")}
    compared_alarms = [a for a in rec.get("alarms", []) if _comparable(a)]
    alarms = bool(compared_alarms)
    figures |= {a["id"]: a.get("agrees") for a in compared_alarms}
    differ = [k for k, v in figures.items() if v is False]
    known = [v for v in figures.values() if v is not None]
    compared = "min, max, MKT, average" + (" and alarms" if alarms else "")
    if differ:
        return Check("fail", "Device read-out agrees", f"{name}: differs on {', '.join(differ)}.")
    if not known:
        return Check("warn", "Device read-out agrees", f"{name}: not enough data to compare.")
    return Check("ok", "Device read-out agrees", f"{name}: {compared} agree.")


def reconciliation_table(inp: DossierInput) -> Table | None:
    rec = inp.evaluation.get("reconciliation")
    if not rec:
        return None
    rows: list[tuple[str, str, str, str]] = []
    for key, label in (("min", "Minimum"), ("max", "Maximum"), ("mkt", "MKT"), ("mean", "Average")):
        item = rec.get(key) or {}
        rows.append(
            (
                label,
                fmt_c(item.get("device_c")),
                fmt_c(item.get("coldchain_c"), 2),
                _yes(item.get("agrees")),
            )
        )
    incomparable = False
    for a in rec.get("alarms", []):
        comparable = _comparable(a)
        incomparable |= not comparable
        minutes = a.get("minutes")
        ours = {True: "fired", False: "not fired", None: "—"}[a.get("coldchain_fired")]
        rows.append(
            (
                f"Alarm {a.get('number')}: {a.get('kind')} "
                f"{_limit_text(a['direction'], a['limit_c'])}"
                + (f" for {minutes:g} min" if minutes is not None else ""),
                "fired" if a.get("device_fired") else "not fired",
                ours if comparable else "see Alarms",
                _yes(a.get("agrees")) if comparable else "—",
            )
        )
    device = rec.get("device", {})
    alarm_note = (
        " A device alarm with no alarm of the same condition in the evaluated profile is "
        "listed as the device reports it (see Alarms); import with --profile from-device to "
        "compare every alarm."
        if incomparable
        else ""
    )
    return Table(
        "Device read-out beside coldchain",
        ("Figure", "Device", "coldchain", ""),
        tuple(rows),
        (3.2, 1.4, 1.4, 1.0),
        note=f"{device.get('model', '')} serial {device.get('serial', '')}, "
        f"file {rec.get('source') or device.get('file', '')}. Device MKT and average are "
        "truncated to 0.1 °C by the device; coldchain's figure agrees when it truncates equal."
        + alarm_note,
    )


def _sections(inp: DossierInput, legs: Sequence[LegStats]) -> list[Table]:
    ev, zone = inp.evaluation, inp.zone
    zl = zone_label(zone)

    def z_time(ms: int) -> str:
        return fmt_time(ms, zone, with_zone=False)

    out: list[Table] = []
    out.append(
        Table(
            "Temperature per leg",
            ("Leg", f"From ({zl})", f"To ({zl})", "Readings", "Min", "Max", "Mean"),
            tuple(
                (
                    leg.segment.label,
                    z_time(leg.segment.start_ms),
                    z_time(leg.segment.end_ms),
                    str(leg.readings),
                    fmt_c(leg.min_c),
                    fmt_c(leg.max_c),
                    fmt_c(leg.mean_c, 2),
                )
                for leg in legs
            ),
            (2.4, 1.45, 1.45, 1.0, 0.95, 0.95, 1.0),
            note="Legs run between the custody events 'departed' and 'arrived'.",
        )
    )
    out.append(
        Table(
            "Excursion episodes",
            (
                "Limit",
                f"Start ({zl})",
                f"End ({zl})",
                "Duration",
                "Peak",
                f"Peak at ({zl})",
                "Readings",
            ),
            tuple(
                (
                    _limit_text(lim["direction"], lim["limit_c"]),
                    z_time(_ms(e["start"])),
                    z_time(_ms(e["end"])),
                    fmt_minutes(e["minutes"]),
                    fmt_c(e["peak_c"]),
                    z_time(_ms(e["peak_at"])),
                    str(e["readings"]),
                )
                for lim in ev.get("limits", [])
                for e in lim["episodes"]
            ),
            (1.4, 1.45, 1.45, 1.1, 0.95, 1.45, 1.0),
            empty="No excursion: every reading was within every limit.",
        )
    )
    out.append(
        Table(
            "Alarms",
            ("Alarm", "Kind", "Limit", "Severity", "Fired", f"Triggered at ({zl})"),
            tuple(
                (
                    a["id"],
                    a.get("kind", ""),
                    _limit_text(a["direction"], a["limit_c"]),
                    a["severity"],
                    "YES" if a["fired"] else "no",
                    z_time(_ms(a["triggered_at"])) if a.get("triggered_at") else "—",
                )
                for a in ev.get("alarms", [])
            ),
            (1.6, 1.3, 1.5, 0.9, 0.6, 1.6),
        )
    )
    out.append(
        Table(
            "Stability budgets",
            ("Budget", "Band", "Allowance", "Earlier legs", "This shipment", "Remaining"),
            tuple(
                (
                    b["id"],
                    _limit_text(b["direction"], b["limit_c"]),
                    fmt_minutes(b["allowance_min"]),
                    fmt_minutes(b.get("prior_consumed_min")),
                    fmt_minutes(b.get("shipment_consumed_min")),
                    fmt_minutes(b["remaining_min"]),
                )
                for b in ev.get("budgets", [])
            ),
            (1.4, 1.4, 1.2, 1.3, 1.3, 1.3),
            empty="The product profile defines no stability budget.",
            note="Earlier legs: the lot's consumption on its other shipments, less signed "
            "QA add-backs (listed under QA disposition).",
        )
    )
    out.append(
        Table(
            "Data gaps",
            (f"Start ({zl})", f"End ({zl})", "Duration", "Counted out of range"),
            tuple(
                (
                    z_time(_ms(g["start"])),
                    z_time(_ms(g["end"])),
                    fmt_minutes(g["minutes"]),
                    "yes (both sides out of range)" if g["counted_out_of_range"] else "no",
                )
                for g in ev.get("gaps", [])
            ),
            (1.5, 1.5, 1.2, 2.0),
            empty="No data gap.",
        )
    )
    out.append(
        Table(
            "Conflicting readings",
            ("Logger", f"Reading time ({zl})", "Kept", "Refused", f"Recorded ({zl})"),
            tuple(
                (
                    c["logger_id"],
                    z_time(_ms(c["ts"])),
                    fmt_c(c["kept_c"]),
                    fmt_c(c["refused_c"]),
                    z_time(_ms(c["recorded_at"])),
                )
                for c in reading_conflicts(inp.audit, inp.shipment)
            ),
            (1.3, 1.6, 1.0, 1.0, 1.6),
            empty="No conflicting reading: no reading time held two values.",
            note="A second value at a reading's time is refused and the first kept; the "
            "evaluation uses the kept value only. Values as the logger sent them (raw); each "
            "conflict is in audit.json (reading_conflicts, and its audit entry).",
        )
    )
    out.append(
        Table(
            "Alerts and acknowledgements",
            (f"Triggered ({zl})", "Alert", "Severity", "State", "Acknowledgement / history"),
            tuple(
                (
                    z_time(a.triggered_ms),
                    f"{a.type} · {a.rule}\n{a.message}",
                    a.severity,
                    a.state,
                    _ack_text(a, alert_history(inp, a), zone),
                )
                for a in inp.alerts
            ),
            (1.2, 3.3, 0.8, 1.2, 2.1),
            empty="No alert was raised.",
        )
    )
    out.append(
        Table(
            "Custody timeline",
            (f"Time ({zl})", "Event", "Actor", "Location", "EPCIS bizStep", "Note"),
            tuple(
                (
                    z_time(e.ts_ms),
                    e.type.replace("_", " "),
                    e.actor,
                    e.location,
                    f"{EPCIS_STEPS[e.type][0]} / {EPCIS_STEPS[e.type][1]}",
                    e.note or "",
                )
                for e in timeline(inp.custody)
            ),
            (1.3, 1.0, 1.4, 1.7, 1.3, 1.6),
            empty="No custody event was recorded.",
        )
    )
    out.append(_loggers_table(inp))
    return out


def _ack_text(alert: Alert, history: Sequence[Mapping[str, Any]], zone: str) -> str:
    lines = []
    for h in history:
        if h["action"] == "alert_raised":
            continue
        comment = h["detail"].get("comment") if isinstance(h.get("detail"), Mapping) else None
        action = h["action"].removeprefix("alert_").replace("_", " ")
        line = f"{action} by {h['actor']}, {fmt_time(_ms(h['at']), zone)}"
        lines.append(line + (f": {comment}" if comment else ""))
    if not lines:
        return "not acknowledged" if alert.state == "open" else alert.state
    return "\n".join(lines)


def _certificates(inp: DossierInput) -> dict[str, str]:
    """Each logger's calibration certificate: `logger calibrate` entries, then shipment details."""
    found: dict[str, str] = {}
    for e in inp.audit:
        if e.entity == "logger" and e.action == "calibrated" and e.detail.get("certificate"):
            offset = e.detail.get("offset_c")
            found[e.entity_id] = str(e.detail["certificate"]) + (
                f" (offset {offset:+g} °C, set {fmt_time(e.ts_ms, inp.zone)})"
                if isinstance(offset, int | float)
                else ""
            )
    return found | inp.details.calibrations


def _loggers_table(inp: DossierInput) -> Table:
    cal = _certificates(inp)
    rows = []
    for i, lg in enumerate(inp.shipment.loggers):
        mine = [r for r in inp.readings if r.logger_id == lg]
        temps = [r.temp_c for r in mine]
        rows.append(
            (
                lg,
                "primary" if i == 0 else "backup",
                str(len(mine)),
                f"{fmt_c(min(temps))} / {fmt_c(max(temps))}" if temps else "—",
                f"{inp.calibration_offsets.get(lg, 0.0):+.2f} °C".replace("-", "−"),
                cal.get(lg, "no certificate recorded"),
            )
        )
    return Table(
        "Loggers and calibration",
        (
            "Logger",
            "Role",
            "Readings",
            "Min / max (corrected)",
            "Offset",
            "Calibration certificate",
        ),
        tuple(rows),
        (1.3, 0.8, 0.8, 1.8, 0.8, 2.5),
        note="Corrected = raw + offset from the logger's calibration certificate "
        "(docs/EVALUATION.md, coverage); readings.csv holds both.",
    )


def _disposition_text(inp: DossierInput) -> list[str]:
    lines: list[str] = []
    if not inp.dispositions:
        lines.append(
            "No QA disposition has been signed. QA signs with: coldchain disposition "
            f"{inp.shipment.id} --decision released|rejected|quarantined --meaning TEXT --by ID"
        )
    for d in inp.dispositions:
        override = f"{d.override_text()}. " if d.verdict_override else ""
        lines.append(
            f"{d.decision.upper()} — {override}{d.signature.text()} "
            f"[verdict at signing {d.verdict_at_signing}; record SHA-256 "
            f"{d.signature.record_sha256[:16]}…; audit entry #{d.audit_id}]"
        )
    for a in inp.add_backs:
        lines.append(
            f"Budget add-back: {fmt_minutes(a.minutes)} of {a.budget_id} restored to lot {a.lot}. "
            + (a.signature or f"by {a.actor} at {fmt_time(a.ts_ms, inp.zone)} (unsigned entry)")
        )
    return lines


def dossier_view(
    inp: DossierInput, *, content_sha256: str, key_fingerprint: str | None
) -> DossierView:
    """What the PDF shows (docs/DOSSIER.md), given the hash of the data it is rendered from."""
    customs = customs_check(inp)
    legs = inp.legs
    d = inp.disposition
    chain = inp.audit_chain
    integrity = [
        ("Dossier content SHA-256", content_sha256),
        (
            "Generated",
            f"{fmt_time(inp.generated_ms, inp.zone)} by coldchain {inp.generator_version}",
        ),
        (
            "Audit trail",
            f"{'intact' if chain.ok else 'BROKEN'}: {chain.entries} entries, head #{chain.head_id} "
            f"{chain.head_hash[:16]}…",
        ),
        ("Signing key", key_fingerprint or "—"),
        ("Verify", "coldchain verify FILE.zip  (every hash and the Ed25519 signature)"),
    ]
    return DossierView(
        shipment_id=inp.shipment.id,
        coi_code=inp.details.get("coi_code") or "—",
        title=f"Shipment {inp.shipment.id}",
        verdict=str(inp.evaluation.get("verdict")),
        headline=_headline(str(inp.evaluation.get("verdict")), d),
        reasons=tuple(_reasons(inp)),
        disposition_status=d.decision if d else "pending",
        disposition_line=(
            (f"{d.override_text()}. " if d.verdict_override else "") + d.signature.text()
            if d
            else "Not yet signed by QA."
        ),
        checks=tuple(release_checks(inp, customs)),
        facts=tuple(_facts(inp, legs)),
        temperature=tuple(_temperature(inp)),
        chart=chart_data(inp),
        reconciliation=reconciliation_table(inp),
        sections=tuple(_sections(inp, legs)),
        disposition_text=tuple(_disposition_text(inp)),
        integrity=tuple(integrity),
        content_sha256=content_sha256,
        generated_at=fmt_time(inp.generated_ms, inp.zone),
        generator=f"coldchain {inp.generator_version}",
    )


__all__ = [
    "ChartData",
    "Check",
    "DossierInput",
    "DossierView",
    "Series",
    "Table",
    "data_files",
    "dossier_view",
    "fmt_c",
    "fmt_minutes",
    "fmt_time",
]
