"""Shipment measures with polars, many shipments at once (docs/EVALUATION.md, streaming equals
batch).

The stored-readings re-evaluation: :func:`measure_frame` computes, column by
column and without a Python step per reading, the same
:class:`~coldchain.evaluation.Measures` that :func:`coldchain.evaluation.measure`
computes one reading at a time, so that streaming equals batch. The rules are
those of :mod:`coldchain.evaluation` (its module docstring states them); this
module only restates them as frame operations:

* rows are sorted by (shipment, time) and count once per (shipment, time),
  with the lowest temperature, ``-0.0`` read as ``0.0``, as
  :func:`~coldchain.evaluation.prepare`;
* a reading's hold ends at ``max(t, min(next t or cap, t + max_gap, cap))``;
* a gap follows a reading whose hold ends before ``min(next t, cap)``; it is
  counted when the readings on both sides are out of range for some limit;
* an episode is a run of consecutive out-of-range rows of one limit (run ids
  from a cumulative sum of run starts), from its first time to its last hold
  end, with the peak at the first time it is reached;
* MKT and the mean are reduced to the log-sum-exp pieces per shipment and
  finished by :func:`coldchain.evaluation.assemble`.

Why it is fast (benchmarks/bench_eval.py, docs/BENCHMARKS.md): stored readings
come grouped by shipment and sorted by time, which one cheap pass checks, so
the usual frame is neither hashed by shipment id nor sorted: shipments are
keyed by their runs of equal ids (u32, ascending), every grouping is over that
key flagged sorted, which polars aggregates as contiguous slices, and repeated
times are merged in place rather than filtered out. The per-shipment sums run
in the streaming engine, on both cores; the rest works on the few rows that
matter (out of range, before a gap, last of a shipment). Only small
per-shipment and per-episode tables reach Python.

All time arithmetic is in integer epoch milliseconds UTC, so times and
durations are identical to the Python walk; the float sums (mean, MKT) may
differ in the last bits by summation order, below the rounding of
:meth:`~coldchain.evaluation.Evaluation.to_json`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

import polars as pl

from coldchain.evaluation import (
    Episode,
    Evaluation,
    Gap,
    LimitKey,
    Measures,
    assemble,
    measure,
)
from coldchain.mkt import GAS_CONSTANT_J_MOL_K, KELVIN, arrhenius_exponent
from coldchain.models import MS_PER_MIN
from coldchain.profiles import Profile

SHIPMENT = "shipment_id"
TS = "ts_ms"
TEMP = "temp_c"
READING_COLUMNS = (SHIPMENT, TS, TEMP)
"""Columns :func:`measure_frame` reads: shipment id (str), device time (epoch ms UTC), °C."""

# Internal column names.
_IX = "_ix"  # a shipment's key (u32): its run in a grouped frame, else its place in ``caps``
_SPAN = "_span"  # ms from the reading to min(next reading, cap)
_LSE = "_lse"
_START = "_start"
_FIRST_ROW = "_first_row"
_LAST_ROW = "_last_row"
_STOP = "_stop"
_CAP = "_cap"
_RUN = "_run"
_AFTER = "_after"  # the next reading's temperature
_SAME = "_same"  # the next reading is of the same shipment
_ROW = "_row"

_T = TypeVar("_T")

_ENGINE: Final = "in-memory"
"""Row-order work (shifts, run ids) measured faster in the in-memory engine than in the
streaming one (polars 2.1, 2 cores, benchmarks/bench_eval.py: ids to keys 48 against 82 ms)."""
_PARALLEL_ENGINE: Final = "streaming"
"""Work with no row order but a filter's: per-shipment sums (a chain of arithmetic per row)
and the filter of out-of-range rows, which the streaming engine spreads over both cores in
cache-sized morsels (same benchmark: sums 110 against 210 ms, filter 14 against 22 ms)."""


def _is_out(key: LimitKey, temp: pl.Expr) -> pl.Expr:
    """docs/EVALUATION.md, as :func:`coldchain.evaluation.is_out`: strictly beyond the limit."""
    direction, limit = key
    return temp > limit if direction == "above" else temp < limit


def _check_readings(readings: pl.DataFrame) -> None:
    missing = [c for c in READING_COLUMNS if c not in readings.columns]
    if missing:
        msg = f"readings lack column(s) {', '.join(missing)}; need {', '.join(READING_COLUMNS)}"
        raise ValueError(msg)
    dtype = readings.schema[TS]
    if not (dtype.is_integer() or dtype == pl.Null):
        msg = f"{TS} must be integer epoch milliseconds, got {dtype}"
        raise ValueError(msg)
    nulls = [c for c in READING_COLUMNS if readings.get_column(c).null_count()]
    if nulls:
        msg = f"readings have nulls in {', '.join(nulls)}"
        raise ValueError(msg)


def _keyed(readings: pl.DataFrame, caps: Mapping[str, int]) -> tuple[pl.DataFrame, list[str]]:
    """``_IX`` (u32 keys from 0), ``TS``, ``TEMP``; and the shipment id of each key.

    A frame grouped by shipment, as stored readings are, is keyed by its runs
    of equal ids: one comparison per row instead of a hash look-up, and the
    keys ascend already. Any other frame gets each id's position in ``caps``.
    ``-0.0`` °C becomes ``0.0``, as in :func:`~coldchain.evaluation.prepare`:
    polars treats ``x + 0.0`` as ``x``, so zeros are replaced instead. Refuses ids
    that are not in ``caps``.
    """
    sid = pl.col(SHIPMENT).cast(pl.String)
    temp = pl.col(TEMP).cast(pl.Float64)
    values = (pl.col(TS).cast(pl.Int64), pl.when(temp == 0.0).then(0.0).otherwise(temp).alias(TEMP))
    runs = readings.select(sid.rle_id().alias(_IX), *values)
    count = runs.item(-1, _IX) + 1 if runs.height else 0
    if count <= len(caps):  # else some shipment is split over several runs
        numbers = pl.int_range(count, dtype=pl.UInt32, eager=True)
        firsts = runs.get_column(_IX).search_sorted(numbers, side="left")
        names = readings.get_column(SHIPMENT).gather(firsts).cast(pl.String).to_list()
        if len(set(names)) == len(names) and all(name in caps for name in names):
            return runs, names
    ix = sid.cast(pl.Enum(list(caps)), strict=False).to_physical()
    coded = readings.select(ix.alias(_IX), *values)
    unknown = coded.get_column(_IX).null_count()
    if unknown:
        names = (
            readings.filter(coded.get_column(_IX).is_null())
            .get_column(SHIPMENT)
            .cast(pl.String)
            .unique()
            .sort()
            .head(5)
            .to_list()
        )
        msg = f"{unknown} readings of shipments with no cap, e.g. {names}"
        raise ValueError(msg)
    return coded, list(caps)


def _sorted(coded: pl.DataFrame, shipments: int) -> pl.DataFrame:
    """``coded`` sorted by (shipment, time); the order of equal keys is left open.

    Sorting on one packed integer (shipment in the high bits, time since the
    first reading in the low ones) is about twice as fast as a two-column sort.
    """
    ts = pl.col(TS)
    t_min: int = coded.get_column(TS).min()  # type: ignore[assignment]  # non-empty i64
    t_max: int = coded.get_column(TS).max()  # type: ignore[assignment]
    time_bits = (t_max - t_min).bit_length()
    if time_bits + max(shipments - 1, 1).bit_length() > 62:  # too wide for a positive i64
        return coded.sort(_IX, TS)
    packed = pl.col(_IX).cast(pl.Int64) * (1 << time_bits) + (ts - t_min)
    return coded.sort(packed)


def _repeat(ix: pl.Expr, ts: pl.Expr) -> pl.Expr:
    """Same shipment and time as the row before (rows sorted)."""
    return ((ix == ix.shift(1)) & (ts == ts.shift(1))).fill_null(value=False)


def _merge_repeats(rows: pl.DataFrame, repeats: pl.Series) -> pl.DataFrame:
    """Sorted rows where each run of one (shipment, time) carries its lowest temperature.

    As :func:`~coldchain.evaluation.prepare` keeps only that reading. The
    ``repeats`` (row numbers, ascending, of rows with the shipment and time of
    the row before) stay, as copies of it: every row of a run but the last
    holds for zero time (the next row has the same time), so sums, extremes,
    episodes and gaps come out as without them; only counts subtract them.
    Repeats are rare; dropping them would copy every column.
    """
    if repeats.is_empty():
        return rows
    involved = pl.concat([repeats - 1, repeats]).unique().sort()
    lowest = rows.select(pl.all().gather(involved)).select(
        pl.col(TEMP).min().over(_IX, TS), involved.alias(_ROW)
    )
    temps = rows.get_column(TEMP).scatter(lowest.get_column(_ROW), lowest.get_column(TEMP))
    return rows.with_columns(temps)


def _repeats_within(repeats: pl.Series, first: pl.Series, last: pl.Series) -> pl.Series:
    """How many of the ``repeats`` row numbers lie in each ``[first, last]``."""
    if repeats.is_empty():
        return pl.zeros(len(first), dtype=pl.UInt32, eager=True)
    inside = repeats.search_sorted(last, side="right") - repeats.search_sorted(first, side="left")
    return inside.cast(pl.UInt32)


@dataclass(frozen=True)
class _Prepared:
    """Readings keyed by shipment (``_IX``, ``TS``, ``TEMP``), sorted by key and time."""

    rows: pl.DataFrame
    sids: list[str]  # shipment id of each key
    repeats: pl.Series  # row numbers of repeated (key, time) rows: see _merge_repeats
    low_c: float
    high_c: float


def _prepared(readings: pl.DataFrame, caps: Mapping[str, int]) -> _Prepared:
    """:func:`_keyed` rows sorted by (key, time), repeated times merged; lowest and highest °C.

    Stored readings arrive sorted (the store reads them by shipment and time),
    so one pass checks it and the sort is skipped.
    """
    rows, sids = _keyed(readings, caps)
    if rows.is_empty():
        return _Prepared(rows, sids, pl.Series(_ROW, [], dtype=pl.UInt32), 0.0, 0.0)
    ix, ts, temp = pl.col(_IX), pl.col(TS), pl.col(TEMP)
    backwards, repeats, low, high = (
        rows.lazy()
        .select(
            ((ix < ix.shift(1)) | ((ix == ix.shift(1)) & (ts < ts.shift(1)))).any().alias("b"),
            _repeat(ix, ts).arg_true().implode().alias(_ROW),
            temp.min().alias("low"),
            temp.max().alias("high"),
        )
        .collect(engine=_ENGINE)
        .row(0)
    )
    if backwards:
        rows = _sorted(rows, len(sids))  # which may bring repeated times together
        repeats = rows.select(_repeat(ix, ts).arg_true()).to_series()
    else:
        repeats = pl.Series(_ROW, repeats, dtype=pl.UInt32)
    rows = _merge_repeats(rows, repeats)
    # Flagged sorted, polars groups by shipment as contiguous slices, not through a hash table.
    rows.replace_column(rows.get_column_index(_IX), rows.get_column(_IX).set_sorted())
    return _Prepared(rows, sids, repeats, low, high)


def _ranges(rows: pl.DataFrame, caps: pl.Series) -> pl.DataFrame:
    """Per shipment with readings, in ``_IX`` order: its rows ``[_START, _STOP)`` and ``_CAP``.

    ``caps[ix]`` is the cap of shipment ``ix``.
    """
    positions = pl.int_range(len(caps), dtype=pl.UInt32, eager=True)
    stops = rows.get_column(_IX).search_sorted(positions, side="right")
    return pl.DataFrame(
        {_IX: positions, _START: stops.shift(1, fill_value=0), _STOP: stops, _CAP: caps}
    ).filter(pl.col(_STOP) > pl.col(_START))


def _with_spans(rows: pl.DataFrame, ranges: pl.DataFrame, caps: pl.Series) -> pl.DataFrame:
    """Adds ``_SPAN``: the time from the reading to ``min(next t, cap)`` (the cap after the last).

    With ``bound = min(next t, cap)``, the reference's hold end
    ``max(t, min(next t or cap, t + max_gap, cap))`` is ``t + clip(span, 0, max_gap)``,
    and a gap follows exactly when ``span > max_gap``: one integer column serves both.
    The cap is written into each shipment's last row; it bounds other rows only in a
    shipment with readings after its cap (a logger clock running ahead).
    """
    ts = pl.col(TS)
    last_rows = ranges.get_column(_STOP) - 1
    last_ts = rows.get_column(TS).gather(last_rows)
    spans = rows.select(ts.shift(-1) - ts).to_series()
    spans = spans.scatter(last_rows, ranges.get_column(_CAP) - last_ts)
    rows = rows.with_columns(spans.alias(_SPAN))
    if (ranges.get_column(_CAP) < last_ts).any():
        to_cap = pl.lit(caps).gather(pl.col(_IX)) - ts
        rows = rows.with_columns(pl.min_horizontal(pl.col(_SPAN), to_cap).alias(_SPAN))
    return rows


def _exponent(profile: Profile, temp: pl.Expr) -> pl.Expr:
    """aᵢ as :func:`coldchain.mkt.arrhenius_exponent`, the same operations in the same order."""
    return -(profile.activation_energy_kj_mol * 1000.0) / (GAS_CONSTANT_J_MOL_K * (temp + KELVIN))


def _hold(profile: Profile) -> pl.Expr:
    """wᵢ in ms: the reading's hold, from ``_SPAN``."""
    return pl.col(_SPAN).clip(0, round(profile.max_gap_min * MS_PER_MIN))


def _summary(rows: pl.LazyFrame, profile: Profile, reference: float | None) -> pl.LazyFrame:
    """Per shipment: extremes, coverage and the weighted sum for the mean.

    With a ``reference`` exponent also Σ wᵢ·exp(aᵢ − reference) for MKT; without,
    max aᵢ, for :func:`_lse` to take the sum in a second pass.
    """
    temp = pl.col(TEMP)
    w = _hold(profile)
    exponent = _exponent(profile, temp)
    lse = (
        (w.cast(pl.Float64) * (exponent - reference).exp()).sum()
        if reference is not None
        else exponent.max()
    )
    return rows.group_by(_IX, maintain_order=True).agg(
        temp.min().alias("min"),
        temp.max().alias("max"),
        w.sum().alias("covered"),
        (w.cast(pl.Float64) * temp).sum().alias("sum_w"),
        lse.alias(_LSE),
    )


def _lse(rows: pl.LazyFrame, profile: Profile, tops: pl.Series, *, weighted: bool) -> pl.LazyFrame:
    """Per shipment Σ wᵢ·exp(aᵢ − max a), or (not ``weighted``) Σ exp(aᵢ − max a) and Σ vᵢ.

    ``tops[ix]`` is max a of shipment ``ix``.
    """
    temp = pl.col(TEMP)
    scaled = (_exponent(profile, temp) - pl.lit(tops).gather(pl.col(_IX))).exp()
    if weighted:
        return rows.group_by(_IX, maintain_order=True).agg(
            (_hold(profile).cast(pl.Float64) * scaled).sum().alias(_LSE)
        )
    return rows.group_by(_IX, maintain_order=True).agg(
        scaled.sum().alias(_LSE), temp.sum().alias("sum_eq")
    )


def _notable(rows: pl.LazyFrame, keys: tuple[LimitKey, ...], gap_ms: int) -> pl.DataFrame:
    """The rows that start or end something, with their row number: out of range for some
    limit (a profile has one), or followed by a gap. Few, in a good shipment."""
    out = pl.any_horizontal(*(_is_out(k, pl.col(TEMP)) for k in keys))
    notable = out | (pl.col(_SPAN) > gap_ms)
    return rows.with_row_index(_ROW).filter(notable).collect(engine=_PARALLEL_ENGINE)


def _episodes(
    notable: pl.DataFrame, key: LimitKey, gap_ms: int, repeats: pl.Series
) -> pl.DataFrame:
    """Episodes of one limit, by shipment and start: ``_IX``, start, end, peak, peak time, count.

    Among the rows out of range for this limit, a run goes on while the row
    numbers follow each other within one shipment; ``repeats`` (see
    :func:`_merge_repeats`) are not counted.
    """
    ix, ts, temp, row = pl.col(_IX), pl.col(TS), pl.col(TEMP), pl.col(_ROW)
    starts = ((row != row.shift(1) + 1) | (ix != ix.shift(1))).fill_null(value=True)
    found = (
        notable.lazy()
        .filter(_is_out(key, temp))
        .with_columns(starts.cum_sum().set_sorted().alias(_RUN))  # 1, 2, ... in row order
        .collect(engine=_ENGINE)
    )
    episodes = found.group_by(_RUN, maintain_order=True).agg(
        ix.first(),
        ts.first().alias("start"),
        (ts.last() + pl.col(_SPAN).last().clip(0, gap_ms)).alias("end"),
        (temp.max() if key[0] == "above" else temp.min()).alias("peak"),
        pl.len().alias("n"),
        row.first().alias(_FIRST_ROW),
        row.last().alias(_LAST_ROW),
    )
    # The first time the peak is reached, as measure(): rows are in time order. (Not arg_max,
    # which on a column flagged sorted returns the last of equal maxima.)
    peaks = episodes.get_column("peak").gather(found.get_column(_RUN) - 1)
    reached = found.filter(found.get_column(TEMP) == peaks).group_by(_RUN, maintain_order=True)
    peak_ms = reached.agg(ts.first()).get_column(TS).alias("peak_ms")
    counts = episodes.get_column("n") - _repeats_within(
        repeats, episodes.get_column(_FIRST_ROW), episodes.get_column(_LAST_ROW)
    )
    return episodes.select(_IX, "start", "end", "peak", peak_ms, counts)


def _gaps(
    rows: pl.DataFrame, notable: pl.DataFrame, keys: tuple[LimitKey, ...], gap_ms: int
) -> pl.DataFrame:
    """Gaps: shipment, start, end, counted (both bounding readings out for some limit)."""
    before = notable.filter(pl.col(_SPAN) > gap_ms)
    following = before.get_column(_ROW) + 1
    there = rows.select(_IX, TEMP)[following.clip(upper_bound=max(rows.height - 1, 0))]
    same = (following < rows.height) & (before.get_column(_IX) == there.get_column(_IX))
    ts, temp, after = pl.col(TS), pl.col(TEMP), pl.col(_AFTER)
    both_out = [_is_out(key, temp) & _is_out(key, after) for key in keys]
    counted = pl.col(_SAME) & pl.any_horizontal(*both_out)
    return before.with_columns(there.get_column(TEMP).alias(_AFTER), same.alias(_SAME)).select(
        _IX, (ts + gap_ms).alias("start"), (ts + pl.col(_SPAN)).alias("end"), counted
    )


def _by_shipment(frame: pl.DataFrame, make: Callable[..., _T]) -> dict[int, tuple[_T, ...]]:
    """``make(*row)`` for each row of ``frame`` after ``_IX`` (sorted by it), by shipment."""
    items = list(map(make, *(frame.get_column(c).to_list() for c in frame.columns[1:])))
    found: dict[int, tuple[_T, ...]] = {}
    at = 0
    for count, ix in frame.get_column(_IX).rle().struct.unnest().iter_rows():
        found[ix] = tuple(items[at : at + count])
        at += count
    return found


MAX_EXPONENT_SPREAD: Final = 600.0
"""Largest max a − min a over a frame for which Σ wᵢ·exp(aᵢ − max a) is summed against
one reference for all shipments, then rescaled to each shipment's own max a:
exp(−600) ≈ 1e−261 is still a normal double, so no term loses precision. Physical
temperatures are far inside it (−196 °C to +100 °C at 83 kJ/mol span about 103)."""


def _reference(profile: Profile, low_c: float, high_c: float) -> float | None:
    """One exponent to scale every shipment's MKT sum by, when that loses nothing.

    See MAX_EXPONENT_SPREAD; a increases with the temperature above absolute zero.
    """
    if low_c <= -KELVIN:
        return None
    energy = profile.activation_energy_kj_mol
    top = arrhenius_exponent(high_c, energy)
    return top if top - arrhenius_exponent(low_c, energy) <= MAX_EXPONENT_SPREAD else None


def _mkt_sums(
    rows: pl.LazyFrame,
    profile: Profile,
    summary: pl.DataFrame,
    reference: float | None,
    keys: int,
) -> tuple[list[float], list[float]]:
    """Per row of ``summary``: max aᵢ and Σ wᵢ·exp(aᵢ − max a), as measure() scales them."""
    energy = profile.activation_energy_kj_mol
    if reference is not None:
        # max a from max v: a increases with v, so this is max(aᵢ) bit for bit.
        tops = [arrhenius_exponent(v, energy) for v in summary.get_column("max").to_list()]
        sums = summary.get_column(_LSE).to_list()
        return tops, [s * math.exp(reference - top) for s, top in zip(sums, tops, strict=True)]
    tops = summary.get_column(_LSE).to_list()
    by_ix = pl.zeros(keys, dtype=pl.Float64, eager=True).scatter(summary.get_column(_IX), tops)
    second = _lse(rows, profile, by_ix, weighted=True).collect(engine=_ENGINE)
    return tops, second.get_column(_LSE).to_list()


def measure_frame(
    readings: pl.DataFrame, profile: Profile, caps: Mapping[str, int]
) -> dict[str, Measures]:
    """:func:`coldchain.evaluation.measure` for many shipments sharing ``profile``.

    ``readings`` has columns ``shipment_id`` (str), ``ts_ms`` (int, epoch ms
    UTC) and ``temp_c`` (float, °C, finite), in any order, duplicates allowed
    (one reading per shipment and time is kept, the lowest, as
    :func:`~coldchain.evaluation.prepare`). Fastest when rows come grouped by
    shipment in the order of ``caps`` and by time within a shipment, as stored
    readings do: then nothing is sorted. ``caps[shipment_id]`` ends the last
    reading's hold (epoch ms: delivery, or the evaluation time while open;
    docs/EVALUATION.md, coverage). The result has one entry per shipment of ``caps``, in its
    order; a shipment with no readings gets ``measure([], ...)``.

    Raises ``ValueError`` when a column is missing or null, or when readings
    belong to a shipment that is not in ``caps``.
    """
    _check_readings(readings)
    keys = profile.limit_keys()
    gap_ms = round(profile.max_gap_min * MS_PER_MIN)
    prepared = _prepared(readings, caps)
    sids = prepared.sids
    cap_by_ix = pl.Series(values=[caps[sid] for sid in sids], dtype=pl.Int64)
    ranges = _ranges(prepared.rows, cap_by_ix)
    frame = _with_spans(prepared.rows, ranges, cap_by_ix)
    rows = frame.lazy()
    reference = _reference(profile, prepared.low_c, prepared.high_c)
    summary = _summary(rows, profile, reference).collect(engine=_PARALLEL_ENGINE)
    ixs = summary.get_column(_IX)
    tops, lse_w = _mkt_sums(rows, profile, summary, reference, len(sids))
    # Shipments whose every reading holds for zero time are weighed equally, as measure() does.
    unweighted: dict[int, tuple[float, float]] = {}
    zero = summary.filter(pl.col("covered") == 0).get_column(_IX)
    if len(zero):
        by_ix = pl.zeros(len(sids), dtype=pl.Float64, eager=True).scatter(ixs, tops)
        unique = ~_repeat(pl.col(_IX), pl.col(TS))
        part = rows.filter(pl.col(_IX).is_in(zero.implode()) & unique)
        equal = _lse(part, profile, by_ix, weighted=False).collect(engine=_ENGINE)
        unweighted = {ix: (lse, mean) for ix, lse, mean in equal.iter_rows()}

    notable = _notable(rows, keys, gap_ms)
    episodes = [
        _by_shipment(_episodes(notable, key, gap_ms, prepared.repeats), Episode) for key in keys
    ]
    found_gaps = _by_shipment(_gaps(frame, notable, keys, gap_ms), Gap)
    ts = frame.get_column(TS)
    starts, stops = ranges.get_column(_START), ranges.get_column(_STOP)
    counts = stops - starts - _repeats_within(prepared.repeats, starts, stops - 1)
    result: dict[str, Measures] = {}
    for ix, n, first, last, low_c, high_c, covered, sum_w, top, lse_weighted in zip(
        ixs.to_list(),
        counts.to_list(),
        ts.gather(starts).to_list(),
        ts.gather(stops - 1).to_list(),
        summary.get_column("min").to_list(),
        summary.get_column("max").to_list(),
        summary.get_column("covered").to_list(),
        summary.get_column("sum_w").to_list(),
        tops,
        lse_w,
        strict=True,
    ):
        weight_sum, weighted_sum, lse = float(covered), sum_w, lse_weighted
        if not covered:
            (lse, weighted_sum), weight_sum = unweighted[ix], float(n)
        result[sids[ix]] = Measures(
            readings=n,
            first_ms=first,
            last_ms=last,
            min_c=low_c,
            max_c=high_c,
            covered_ms=covered,
            weighted_sum_c=weighted_sum,
            lse_max=top,
            lse_sum=lse,
            weight_sum=weight_sum,
            episodes={key: eps.get(ix, ()) for key, eps in zip(keys, episodes, strict=True)},
            gaps=found_gaps.get(ix, ()),
        )
    return {
        sid: result[sid] if sid in result else measure([], profile, cap_ms=cap)
        for sid, cap in caps.items()
    }


def evaluate_frame(
    readings: pl.DataFrame,
    profiles_by_shipment: Mapping[str, Profile],
    caps: Mapping[str, int],
    *,
    now_ms: int,
    prior_budget_min: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, Evaluation]:
    """Evaluate many shipments from stored readings (docs/EVALUATION.md, streaming equals batch:
    equal to the streaming path).

    One :func:`measure_frame` per distinct profile, then
    :func:`coldchain.evaluation.assemble` per shipment. ``caps`` gives each
    shipment's hold cap (epoch ms UTC: delivery, or ``now_ms`` while open),
    ``now_ms`` is the evaluation time, ``prior_budget_min[shipment][budget id]``
    the budget minutes its lot consumed before it. The result has one entry per
    shipment of ``profiles_by_shipment``, in its order.

    Raises ``ValueError`` when a shipment has no cap, or readings belong to a
    shipment that is not in ``profiles_by_shipment``.
    """
    no_cap = [sid for sid in profiles_by_shipment if sid not in caps]
    if no_cap:
        msg = f"shipments with no cap: {no_cap[:5]}"
        raise ValueError(msg)
    groups: dict[Profile, dict[str, int]] = {}
    last: Profile | None = None
    group: dict[str, int] = {}
    for sid, profile in profiles_by_shipment.items():
        if profile is not last:  # a profile hashes all its fields: only when it changes
            last, group = profile, groups.setdefault(profile, {})
        group[sid] = caps[sid]

    measures: dict[str, Measures] = {}
    if len(groups) == 1:  # measure_frame itself refuses readings of unknown shipments
        ((profile, group_caps),) = groups.items()
        measures = measure_frame(readings, profile, group_caps)
    else:
        _check_readings(readings)
        shipment = pl.col(SHIPMENT).cast(pl.String)
        stray = readings.select((~shipment.is_in(list(profiles_by_shipment))).sum()).item()
        if stray:
            msg = f"{stray} readings of shipments with no profile"
            raise ValueError(msg)
        for profile, group_caps in groups.items():
            part = readings.filter(shipment.is_in(list(group_caps)))
            measures.update(measure_frame(part, profile, group_caps))

    prior = prior_budget_min or {}
    return {
        sid: assemble(
            sid,
            profile,
            measures[sid],
            evaluated_ms=now_ms,
            prior_budget_min=prior.get(sid),
        )
        for sid, profile in profiles_by_shipment.items()
    }
