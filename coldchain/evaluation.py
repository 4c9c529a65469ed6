"""Shipment evaluation, pure: readings and a profile in, findings and a verdict out
(docs/EVALUATION.md).

Two steps, so that the Python and polars implementations share every rule
that is not a per-reading computation:

1. :func:`measure` walks a shipment's readings once (sample and hold, gaps,
   episodes per limit, weighted sums for mean and MKT) into :class:`Measures`.
   :mod:`coldchain.batch` computes the same :class:`Measures` with polars
   for many shipments at once.
2. :func:`assemble` turns measures into alarms, budgets and the verdict.

All times are epoch milliseconds UTC; durations in the output are minutes.

Rules implemented (docs/EVALUATION.md: coverage, alarms, MKT, budgets, verdict):

* Reading *i* stands for ``[tᵢ, min(tᵢ₊₁, tᵢ + max_gap, cap))`` where ``cap``
  is the shipment's end (delivery) or, while it is open, the evaluation time.
* Time not covered is a data gap, up to the cap: the gap after reading *i*
  runs from the end of its hold to ``min(tᵢ₊₁, cap)``, if that is later. An
  interior gap whose two bounding readings are out of range for a limit
  counts as out-of-range time for that limit (conservative) and joins the
  episode across it.
* Out of range is strict: ``v > above_c`` or ``v < below_c``.
* An episode is a maximal run of consecutive out-of-range readings of one
  limit: from the first reading's time to the end of the last one's hold.
  Consecutive out-of-range readings are either contiguous or bound a
  conservative gap, so an episode's minutes are ``end − start``.
* A single-event alarm fires once per episode whose minutes exceed
  ``delay_min`` (``delay_min = 0``: every episode, at its first reading),
  ``triggered_at = start + delay``. A cumulative alarm fires once, when the
  running sum of the limit's episode minutes first exceeds ``cumulative_min``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from coldchain.mkt import arrhenius_exponent, mkt_from_lse
from coldchain.models import MS_PER_MIN, iso
from coldchain.profiles import Alarm, Budget, Direction, Profile

Verdict = Literal["PASS", "REVIEW", "FAIL"]
ROUND_DIGITS = 3
"""Derived floats (minutes, mean, MKT) are rounded so that summation order cannot show."""

LimitKey = tuple[Direction, float]


@dataclass(frozen=True, slots=True)
class Episode:
    """A maximal run of out-of-range time for one limit."""

    start_ms: int
    end_ms: int
    peak_c: float
    peak_ms: int
    readings: int

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


@dataclass(frozen=True, slots=True)
class Gap:
    """Time covered by no reading; ``counted`` when conservative for some limit."""

    start_ms: int
    end_ms: int
    counted: bool


@dataclass(frozen=True, slots=True)
class Measures:
    """Everything the readings say, before alarms and verdict are derived."""

    readings: int
    first_ms: int | None
    last_ms: int | None
    min_c: float | None
    max_c: float | None
    covered_ms: int
    weighted_sum_c: float  # Σ wᵢ·vᵢ, wᵢ in ms (for the time-weighted mean)
    lse_max: float  # max aᵢ over readings (MKT, see coldchain.mkt)
    lse_sum: float  # Σ wᵢ·exp(aᵢ − max a)
    weight_sum: float  # Σ wᵢ; when 0 the readings are weighted equally
    episodes: Mapping[LimitKey, tuple[Episode, ...]]
    gaps: tuple[Gap, ...]


@dataclass(frozen=True, slots=True)
class Firing:
    """One firing of an alarm: the device time its condition became true."""

    alarm_id: str
    triggered_ms: int
    episode_start_ms: int


@dataclass(frozen=True, slots=True)
class BudgetFigure:
    id: str
    direction: Direction
    limit_c: float
    allowance_min: float
    prior_min: float
    shipment_min: float
    low_ms: int | None = None  # device time the lot reached LOW_BUDGET_FRACTION consumed
    exhausted_ms: int | None = None  # device time the lot's allowance was used up

    @property
    def consumed_min(self) -> float:
        return self.prior_min + self.shipment_min

    @property
    def remaining_min(self) -> float:
        return self.allowance_min - self.consumed_min


@dataclass(frozen=True)
class Evaluation:
    """The finding for one shipment (docs/DOSSIER.md ``evaluation.json``)."""

    shipment_id: str
    profile: Profile
    evaluated_ms: int
    measures: Measures
    firings: tuple[Firing, ...]
    budgets: tuple[BudgetFigure, ...]
    verdict: Verdict
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The docs/DOSSIER.md shape: times RFC 3339 UTC, durations minutes, temperatures °C."""
        m = self.measures
        fired: dict[str, list[Firing]] = {}
        for f in self.firings:
            fired.setdefault(f.alarm_id, []).append(f)
        doc: dict[str, Any] = {
            "shipment_id": self.shipment_id,
            "profile": {"id": self.profile.id, "sha256": self.profile.sha256},
            "verdict": self.verdict,
            "evaluated_at": iso(self.evaluated_ms),
            "readings": m.readings,
            "first_reading": _iso_or_none(m.first_ms),
            "last_reading": _iso_or_none(m.last_ms),
            "min_c": m.min_c,
            "max_c": m.max_c,
            "mean_c": mean_c(m),
            "mkt_c": mkt_of(m, self.profile),
            "covered_min": _minutes(m.covered_ms),
            "limits": [
                {
                    "direction": key[0],
                    "limit_c": key[1],
                    "out_of_range_min": _minutes(sum(e.duration_ms for e in eps)),
                    "episodes": [
                        {
                            "start": iso(e.start_ms),
                            "end": iso(e.end_ms),
                            "minutes": _minutes(e.duration_ms),
                            "peak_c": e.peak_c,
                            "peak_at": iso(e.peak_ms),
                            "readings": e.readings,
                        }
                        for e in eps
                    ],
                }
                for key, eps in m.episodes.items()
            ],
            "alarms": [
                {
                    "id": a.id,
                    "kind": _alarm_kind(a),
                    "delay_min": a.delay_min,
                    "cumulative_min": a.cumulative_min,
                    "direction": a.direction,
                    "limit_c": a.limit_c,
                    "severity": a.severity,
                    "fired": a.id in fired,
                    "triggered_at": iso(fired[a.id][0].triggered_ms) if a.id in fired else None,
                    "firings": [
                        {
                            "triggered_at": iso(f.triggered_ms),
                            "episode_start": iso(f.episode_start_ms),
                        }
                        for f in fired.get(a.id, [])
                    ],
                }
                for a in self.profile.alarms
            ],
            "budgets": [
                {
                    "id": b.id,
                    "direction": b.direction,
                    "limit_c": b.limit_c,
                    "allowance_min": b.allowance_min,
                    "prior_consumed_min": _round(b.prior_min),
                    "shipment_consumed_min": _round(b.shipment_min),
                    "consumed_min": _round(b.consumed_min),
                    "remaining_min": _round(b.remaining_min),
                    "low_at": _iso_or_none(b.low_ms),
                    "exhausted_at": _iso_or_none(b.exhausted_ms),
                }
                for b in self.budgets
            ],
            "gaps": [
                {
                    "start": iso(g.start_ms),
                    "end": iso(g.end_ms),
                    "minutes": _minutes(g.end_ms - g.start_ms),
                    "counted_out_of_range": g.counted,
                }
                for g in m.gaps
            ],
        }
        doc.update(self.extra)
        return doc


def _alarm_kind(alarm: Alarm) -> str:
    if alarm.delay_min is not None and alarm.cumulative_min is not None:
        return "single+cumulative"
    return "single" if alarm.delay_min is not None else "cumulative"


def _iso_or_none(ms: int | None) -> str | None:
    return None if ms is None else iso(ms)


def _round(value: float) -> float:
    return round(value, ROUND_DIGITS)


def _minutes(ms: int) -> float:
    return _round(ms / MS_PER_MIN)


def mean_c(m: Measures) -> float | None:
    """Time-weighted mean in °C (docs/DOSSIER.md), rounded."""
    if not m.readings or m.weight_sum <= 0:
        return None
    return _round(m.weighted_sum_c / m.weight_sum)


def mkt_of(m: Measures, profile: Profile) -> float | None:
    """MKT in °C, or None when the profile disables it or there is no covered time."""
    if not profile.mkt or not m.readings or m.weight_sum <= 0:
        return None
    return _round(
        mkt_from_lse(m.lse_max, m.lse_sum, m.weight_sum, profile.activation_energy_kj_mol)
    )


def is_out(direction: Direction, limit_c: float, temp_c: float) -> bool:
    """docs/EVALUATION.md: strictly beyond the limit; a value equal to the limit is in range."""
    return temp_c > limit_c if direction == "above" else temp_c < limit_c


def prepare(points: Iterable[tuple[int, float]]) -> list[tuple[int, float]]:
    """Sort by device time and keep one reading per time (duplicates dropped).

    Of two readings with the same time the lower temperature is kept, so the
    result never depends on arrival order. (Conflicting copies are recorded by
    the store before they get here; docs/PROTOCOL.md, identity and rejects.)
    """
    out: list[tuple[int, float]] = []
    for ts, temp in sorted(points):
        if out and out[-1][0] == ts:
            continue
        # + 0.0 turns -0.0 into 0.0: the two compare equal, so which one a
        # same-time pair kept (and printed) would depend on arrival order.
        out.append((int(ts), float(temp) + 0.0))
    return out


def measure(points: Sequence[tuple[int, float]], profile: Profile, *, cap_ms: int) -> Measures:
    """One pass over sorted, unique ``(ts_ms, temp_c)`` points (see :func:`prepare`).

    ``cap_ms`` ends the last reading's hold: the delivery time, or the
    evaluation time while the shipment is open (docs/EVALUATION.md, coverage).
    """
    gap_ms = round(profile.max_gap_min * MS_PER_MIN)
    keys = profile.limit_keys()
    n = len(points)
    if n == 0:
        empty: dict[LimitKey, tuple[Episode, ...]] = dict.fromkeys(keys, ())
        return Measures(0, None, None, None, None, 0, 0.0, 0.0, 0.0, 0.0, empty, ())
    ends = [
        max(ts, min(points[i + 1][0] if i + 1 < n else cap_ms, ts + gap_ms, cap_ms))
        for i, (ts, _) in enumerate(points)
    ]
    weights = [e - p[0] for e, p in zip(ends, points, strict=True)]
    temps = [p[1] for p in points]
    exps = [arrhenius_exponent(t, profile.activation_energy_kj_mol) for t in temps]
    top = max(exps)
    weight_sum = float(sum(weights))
    if weight_sum > 0:
        lse_sum = math.fsum(w * math.exp(a - top) for a, w in zip(exps, weights, strict=True))
        weighted = math.fsum(w * t for w, t in zip(weights, temps, strict=True))
    else:  # every reading holds for zero time: weigh them equally
        lse_sum = math.fsum(math.exp(a - top) for a in exps)
        weighted = math.fsum(temps)
        weight_sum = float(n)

    gaps: list[Gap] = []
    for i in range(n):
        # Cut at the cap: a reading after it (a logger clock running ahead) must not
        # stretch the gap past the end of the evaluated time.
        gap_end = min(points[i + 1][0], cap_ms) if i + 1 < n else cap_ms
        if ends[i] < gap_end:
            counted = i + 1 < n and any(
                is_out(d, lim, temps[i]) and is_out(d, lim, temps[i + 1]) for d, lim in keys
            )
            gaps.append(Gap(ends[i], gap_end, counted))

    episodes: dict[LimitKey, tuple[Episode, ...]] = {}
    for key in keys:
        direction, limit = key
        found: list[Episode] = []
        start = -1
        peak_c = 0.0
        peak_ms = 0
        count = 0
        for i, (ts, temp) in enumerate(points):
            if is_out(direction, limit, temp):
                if count == 0:
                    start, peak_c, peak_ms = ts, temp, ts
                elif (temp > peak_c) if direction == "above" else (temp < peak_c):
                    peak_c, peak_ms = temp, ts
                count += 1
                if i + 1 == n or not is_out(direction, limit, temps[i + 1]):
                    found.append(Episode(start, ends[i], peak_c, peak_ms, count))
                    count = 0
        episodes[key] = tuple(found)

    return Measures(
        readings=n,
        first_ms=points[0][0],
        last_ms=points[-1][0],
        min_c=min(temps),
        max_c=max(temps),
        covered_ms=sum(weights),
        weighted_sum_c=weighted,
        lse_max=top,
        lse_sum=lse_sum,
        weight_sum=weight_sum,
        episodes=episodes,
        gaps=tuple(gaps),
    )


def _exceeds_at(start_ms: int, length_ms: int, threshold_ms: int) -> int | None:
    """Device time at which a run of ``length_ms`` from ``start_ms`` exceeds ``threshold_ms``.

    "Exceeds" is strict, except that a zero threshold is met by any run, even
    one of zero length (a single out-of-range reading at the end of coverage).
    """
    if length_ms > threshold_ms or threshold_ms == 0:
        return start_ms + threshold_ms
    return None


def firings_for(alarm: Alarm, episodes: Sequence[Episode]) -> list[Firing]:
    """docs/EVALUATION.md: single-event firings (one per episode) and the cumulative firing."""
    found: dict[int, int] = {}  # episode start -> triggered
    if alarm.delay_min is not None:
        delay = round(alarm.delay_min * MS_PER_MIN)
        for ep in episodes:
            at = _exceeds_at(ep.start_ms, ep.duration_ms, delay)
            if at is not None:
                found[ep.start_ms] = at
    if alarm.cumulative_min is not None:
        allowance = round(alarm.cumulative_min * MS_PER_MIN)
        used = 0
        for ep in episodes:
            at = _exceeds_at(ep.start_ms, ep.duration_ms, allowance - used)
            if at is not None:
                found[ep.start_ms] = min(at, found.get(ep.start_ms, at))
                break
            used += ep.duration_ms
    return [Firing(alarm.id, at, start) for start, at in sorted(found.items())]


LOW_BUDGET_FRACTION = 0.8
"""docs/EVALUATION.md: ``budget_low`` at 80 % of the allowance consumed."""


def reaches_at(episodes: Sequence[Episode], threshold_ms: float) -> int | None:
    """Device time at which the episodes' summed minutes first *reach* ``threshold_ms``.

    Budgets are used up on reaching the allowance (remaining = 0), unlike alarms,
    which fire on *exceeding* theirs. None when never reached, or when the
    threshold was already reached before these episodes (an earlier leg).
    """
    if threshold_ms <= 0:
        return None
    used = 0
    for ep in episodes:
        if used + ep.duration_ms >= threshold_ms:
            return ep.start_ms + math.ceil(threshold_ms - used)
        used += ep.duration_ms
    return None


def budget_figure(budget: Budget, episodes: Sequence[Episode], prior_min: float) -> BudgetFigure:
    """One budget band for one shipment of a lot (docs/EVALUATION.md); ``prior_min`` from earlier
    legs."""
    allowance_ms = budget.allowance_min * MS_PER_MIN
    prior_ms = prior_min * MS_PER_MIN
    return BudgetFigure(
        id=budget.id,
        direction=budget.direction,
        limit_c=budget.limit_c,
        allowance_min=budget.allowance_min,
        prior_min=prior_min,
        shipment_min=sum(e.duration_ms for e in episodes) / MS_PER_MIN,
        low_ms=reaches_at(episodes, LOW_BUDGET_FRACTION * allowance_ms - prior_ms),
        exhausted_ms=reaches_at(episodes, allowance_ms - prior_ms),
    )


def assemble(
    shipment_id: str,
    profile: Profile,
    m: Measures,
    *,
    evaluated_ms: int,
    prior_budget_min: Mapping[str, float] | None = None,
) -> Evaluation:
    """Alarms, budgets and verdict from measures (docs/EVALUATION.md)."""
    firings: list[Firing] = []
    for alarm in profile.alarms:
        firings.extend(firings_for(alarm, m.episodes.get(alarm.limit_key, ())))
    prior = prior_budget_min or {}
    budgets = tuple(
        budget_figure(b, m.episodes.get(b.limit_key, ()), prior.get(b.id, 0.0))
        for b in profile.budget
    )
    return Evaluation(
        shipment_id=shipment_id,
        profile=profile,
        evaluated_ms=evaluated_ms,
        measures=m,
        firings=tuple(firings),
        budgets=budgets,
        verdict=verdict_of(profile, firings, budgets, m),
    )


def verdict_of(
    profile: Profile, firings: Sequence[Firing], budgets: Sequence[BudgetFigure], m: Measures
) -> Verdict:
    """docs/EVALUATION.md, verdict: FAIL on a critical alarm or an exhausted budget; REVIEW on
    warnings,
    gaps or no data; PASS otherwise."""
    severity = {a.id: a.severity for a in profile.alarms}
    fired = {severity[f.alarm_id] for f in firings}
    if "critical" in fired or any(_round(b.remaining_min) <= 0 for b in budgets):
        return "FAIL"
    if "warning" in fired or m.gaps or m.readings == 0:
        return "REVIEW"
    return "PASS"


def evaluate(
    shipment_id: str,
    profile: Profile,
    points: Iterable[tuple[int, float]],
    *,
    now_ms: int,
    end_ms: int | None = None,
    prior_budget_min: Mapping[str, float] | None = None,
) -> Evaluation:
    """Evaluate one shipment from its ``(ts_ms, temp_c)`` points, in any order, duplicates allowed.

    ``end_ms`` is the delivery time (the hold cap of a finished shipment);
    while open, the hold is capped at ``now_ms`` (docs/EVALUATION.md, coverage).
    """
    cap = end_ms if end_ms is not None else now_ms
    return assemble(
        shipment_id,
        profile,
        measure(prepare(points), profile, cap_ms=cap),
        evaluated_ms=now_ms,
        prior_budget_min=prior_budget_min,
    )
