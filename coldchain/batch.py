"""Shipment measures with polars, many shipments at once (SPEC §4.6).

The stored-readings re-evaluation: :func:`measure_frame` computes, column by
column and without a Python step per reading, the same
:class:`~coldchain.evaluation.Measures` that :func:`coldchain.evaluation.measure`
computes one reading at a time, so that streaming equals batch. The rules are
those of :mod:`coldchain.evaluation` (its module docstring states them); this
module only restates them as frame operations:

* rows are sorted by (shipment, time, temperature) and one row is kept per
  (shipment, time): the lowest temperature, as :func:`~coldchain.evaluation.prepare`;
* a reading's hold ends at ``max(t, min(next t or cap, t + max_gap, cap))``;
* a gap follows a reading whose hold ended at ``t + max_gap`` before the next
  bound; it is counted when the readings on both sides are out of range for
  some limit;
* an episode is a run of consecutive out-of-range rows of one limit (run ids
  from a cumulative sum of flag changes), from its first time to its last hold
  end, with the peak at the first time it is reached;
* MKT and the mean are reduced to the log-sum-exp pieces per shipment and
  finished by :func:`coldchain.evaluation.assemble`.

All time arithmetic is in integer epoch milliseconds UTC, so times and
durations are identical to the Python walk; the float sums (mean, MKT) may
differ in the last bits by summation order, below the rounding of
:meth:`~coldchain.evaluation.Evaluation.to_json`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Final

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
from coldchain.mkt import GAS_CONSTANT_J_MOL_K, KELVIN
from coldchain.models import MS_PER_MIN
from coldchain.profiles import Profile

SHIPMENT = "shipment_id"
TS = "ts_ms"
TEMP = "temp_c"
READING_COLUMNS = (SHIPMENT, TS, TEMP)
"""Columns :func:`measure_frame` reads: shipment id (str), device time (epoch ms UTC), °C."""

# Internal column names.
_IX = "_ix"  # the shipment's position in ``caps``: u32, cheap to sort and compare
_CAP = "_cap"
_LAST = "_last"  # last row of its shipment
_BOUND = "_bound"  # the next reading's time, or the cap after the last one
_END = "_end"  # end of the reading's hold
_W = "_w"  # hold in ms
_EXP = "_exp"  # Arrhenius exponent aᵢ
_GAP = "_gap"
_COUNTED = "_counted"
_RUN = "_run"
_KEY = "_key"
_ROW = "_row"

_ENGINE: Final = "in-memory"
"""Row-order work (shifts, run ids) measured about twice as fast in the in-memory engine as in
the streaming one (polars 2.1, benchmarks/bench_eval.py)."""


def _out_name(index: int) -> str:
    return f"_out{index}"


def _is_out(key: LimitKey) -> pl.Expr:
    """SPEC §4.3, as :func:`coldchain.evaluation.is_out`: strictly beyond the limit."""
    direction, limit = key
    temp = pl.col(TEMP)
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


def _coded(readings: pl.DataFrame, caps: Mapping[str, int]) -> pl.DataFrame:
    """Shipment ids as their position in ``caps``; refuses ids that are not there."""
    ix = pl.col(SHIPMENT).cast(pl.String).cast(pl.Enum(list(caps)), strict=False).to_physical()
    coded = readings.select(ix.alias(_IX), pl.col(TS).cast(pl.Int64), pl.col(TEMP).cast(pl.Float64))
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
    return coded


def _sorted_unique(coded: pl.DataFrame, shipments: int) -> pl.DataFrame:
    """Sorted by (shipment, time), one row per (shipment, time): the lowest temperature.

    As :func:`coldchain.evaluation.prepare`. Sorting on one packed integer
    (shipment in the high bits, time since the first reading in the low ones)
    is two to three times faster than a three-column sort; duplicates are rare,
    so the lowest of each is picked among the duplicated rows only.
    """
    if coded.is_empty():
        return coded
    ts = pl.col(TS)
    t_min: int = coded.get_column(TS).min()  # type: ignore[assignment]  # non-empty i64
    t_max: int = coded.get_column(TS).max()  # type: ignore[assignment]
    time_bits = (t_max - t_min).bit_length()
    if (
        time_bits + max(shipments - 1, 1).bit_length() > 62
    ):  # the packed key must stay a positive i64
        return coded.sort(_IX, TS, TEMP).filter(
            ((pl.col(_IX) != pl.col(_IX).shift(1)) | (ts != ts.shift(1))).fill_null(True)
        )
    packed = (pl.col(_IX).cast(pl.Int64) * (1 << time_bits) + (ts - t_min)).alias(_KEY)
    rows = coded.with_columns(packed).sort(_KEY)
    key = pl.col(_KEY)
    dup = rows.select(((key == key.shift(1)) | (key == key.shift(-1))).fill_null(False)).to_series()
    if dup.any():
        lowest = (
            rows.with_row_index(_ROW)
            .filter(dup)
            .sort(_KEY, TEMP)
            .filter((key != key.shift(1)).fill_null(True))
            .get_column(_ROW)
        )
        rows = rows.filter((~dup).scatter(lowest, True))
    return rows.drop(_KEY)


def _rows(readings: pl.DataFrame, profile: Profile, caps: Mapping[str, int]) -> pl.DataFrame:
    """One row per kept reading, sorted by (shipment, time), with hold, gap and limit flags."""
    gap_ms = round(profile.max_gap_min * MS_PER_MIN)
    keys = profile.limit_keys()
    cap_values = pl.Series(_CAP, list(caps.values()), dtype=pl.Int64)
    ts = pl.col(TS)
    same_shipment_as_next = (pl.col(_IX) == pl.col(_IX).shift(-1)).fill_null(value=False)
    # Same exponent expression as coldchain.mkt.arrhenius_exponent, so max(a) is identical.
    numerator = -(profile.activation_energy_kj_mol * 1000.0)
    outs = [_out_name(i) for i in range(len(keys))]
    both_out = [pl.col(o) & pl.col(o).shift(-1) for o in outs]
    return (
        _sorted_unique(_coded(readings, caps), len(caps))
        .lazy()
        .with_columns(
            pl.lit(cap_values).gather(pl.col(_IX)).alias(_CAP),
            (~same_shipment_as_next).alias(_LAST),
            *(_is_out(key).alias(o) for key, o in zip(keys, outs, strict=True)),
        )
        .with_columns(
            pl.when(pl.col(_LAST)).then(pl.col(_CAP)).otherwise(ts.shift(-1)).alias(_BOUND),
        )
        .with_columns(
            pl.max_horizontal(
                ts, pl.min_horizontal(pl.col(_BOUND), ts + gap_ms, pl.col(_CAP))
            ).alias(_END),
        )
        .with_columns(
            (pl.col(_END) - ts).alias(_W),
            (numerator / (GAS_CONSTANT_J_MOL_K * (pl.col(TEMP) + KELVIN))).alias(_EXP),
            ((pl.col(_END) < pl.col(_BOUND)) & (pl.col(_END) == ts + gap_ms)).alias(_GAP),
            (
                ~pl.col(_LAST) & pl.any_horizontal(*both_out) if both_out else pl.lit(value=False)
            ).alias(_COUNTED),
        )
        .collect(engine=_ENGINE)
    )


def _summary(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Per shipment: counts, extremes, coverage and the mean/MKT pieces (both weightings)."""
    w = pl.col(_W).cast(pl.Float64)
    scaled = (pl.col(_EXP) - pl.col(_EXP).max()).exp()
    return rows.group_by(_IX).agg(
        pl.len().alias("n"),
        pl.col(TS).first().alias("first"),
        pl.col(TS).last().alias("last"),
        pl.col(TEMP).min().alias("min"),
        pl.col(TEMP).max().alias("max"),
        pl.col(_W).sum().alias("covered"),
        pl.col(_EXP).max().alias("top"),
        (w * scaled).sum().alias("lse_w"),
        scaled.sum().alias("lse_eq"),
        (w * pl.col(TEMP)).sum().alias("sum_w"),
        pl.col(TEMP).sum().alias("sum_eq"),
    )


def _episodes(rows: pl.LazyFrame, keys: tuple[LimitKey, ...]) -> pl.LazyFrame:
    """Every episode of every limit: key index, shipment, start, end, peak, peak time, count."""
    starts_run = (pl.col(_IX) != pl.col(_IX).shift(1)).fill_null(value=True)
    parts: list[pl.LazyFrame] = []
    for k, (direction, _) in enumerate(keys):
        out = pl.col(_out_name(k))
        changed = starts_run | (out != out.shift(1)).fill_null(value=True)
        peak = pl.col(TEMP).max() if direction == "above" else pl.col(TEMP).min()
        parts.append(
            rows.with_columns(changed.cum_sum().alias(_RUN))
            .filter(out)
            .group_by(_RUN)
            .agg(
                pl.col(_IX).first(),
                pl.col(TS).first().alias("start"),
                pl.col(_END).last().alias("end"),
                peak.alias("peak"),
                # Rows are in time order: the first time the peak is reached, as measure().
                pl.col(TS).filter(pl.col(TEMP) == peak).first().alias("peak_ms"),
                pl.len().alias("n"),
            )
            .select(pl.lit(k, dtype=pl.UInt32).alias(_KEY), pl.exclude(_RUN))
        )
    return pl.concat(parts).sort(_KEY, _IX, "start")


def measure_frame(
    readings: pl.DataFrame, profile: Profile, caps: Mapping[str, int]
) -> dict[str, Measures]:
    """:func:`coldchain.evaluation.measure` for many shipments sharing ``profile``.

    ``readings`` has columns ``shipment_id`` (str), ``ts_ms`` (int, epoch ms
    UTC) and ``temp_c`` (float, °C, finite), in any order, duplicates allowed
    (one reading per shipment and time is kept, the lowest, as
    :func:`~coldchain.evaluation.prepare`). ``caps[shipment_id]`` ends the last
    reading's hold (epoch ms: delivery, or the evaluation time while open;
    SPEC §4.2). The result has one entry per shipment of ``caps``, in its
    order; a shipment with no readings gets ``measure([], ...)``.

    Raises ``ValueError`` when a column is missing or null, or when readings
    belong to a shipment that is not in ``caps``.
    """
    _check_readings(readings)
    keys = profile.limit_keys()
    sids = list(caps)
    rows = _rows(readings, profile, caps).lazy()
    summary, episodes, gaps = pl.collect_all(
        [
            _summary(rows),
            _episodes(rows, keys),
            rows.filter(pl.col(_GAP)).select(_IX, _END, _BOUND, _COUNTED),
        ],
        engine=_ENGINE,
    )

    found_eps: defaultdict[tuple[int, int], list[Episode]] = defaultdict(list)
    for k, ix, start, end, peak, peak_ms, n in episodes.iter_rows():
        found_eps[ix, k].append(Episode(start, end, peak, peak_ms, n))
    found_gaps: dict[int, list[Gap]] = {}
    for ix, start, end, counted in gaps.iter_rows():
        found_gaps.setdefault(ix, []).append(Gap(start, end, counted))

    result: dict[str, Measures] = {}
    for row in summary.iter_rows(named=True):
        ix = row[_IX]
        covered: int = row["covered"]
        weighted = covered > 0
        result[sids[ix]] = Measures(
            readings=row["n"],
            first_ms=row["first"],
            last_ms=row["last"],
            min_c=row["min"],
            max_c=row["max"],
            covered_ms=covered,
            # Every reading holding for zero time: weighed equally, as measure() does.
            weighted_sum_c=row["sum_w"] if weighted else row["sum_eq"],
            lse_max=row["top"],
            lse_sum=row["lse_w"] if weighted else row["lse_eq"],
            weight_sum=float(covered) if weighted else float(row["n"]),
            episodes={key: tuple(found_eps.get((ix, k), ())) for k, key in enumerate(keys)},
            gaps=tuple(found_gaps.get(ix, ())),
        )
    return {
        sid: result[sid] if sid in result else measure([], profile, cap_ms=caps[sid])
        for sid in sids
    }


def evaluate_frame(
    readings: pl.DataFrame,
    profiles_by_shipment: Mapping[str, Profile],
    caps: Mapping[str, int],
    *,
    now_ms: int,
    prior_budget_min: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, Evaluation]:
    """Evaluate many shipments from stored readings (SPEC §4.6: equal to the streaming path).

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
    for sid, profile in profiles_by_shipment.items():
        groups.setdefault(profile, {})[sid] = caps[sid]

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
