"""The polars re-evaluation equals the Python walk (docs/EVALUATION.md, streaming equals batch:
streaming equals batch)."""

from __future__ import annotations

import json
import math
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import profiles

from coldchain.batch import evaluate_frame, measure_frame
from coldchain.evaluation import Gap, evaluate, measure, prepare
from coldchain.models import MS_PER_MIN
from coldchain.profiles import SHIPPED_PRODUCTS_DIR, Profile, load_profiles

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SCHEMA = {"shipment_id": pl.String, "ts_ms": pl.Int64, "temp_c": pl.Float64}

# A coarse grid so that ties, holds exactly equal to max_gap and values exactly
# on a limit all occur: times in whole minutes (sometimes half minutes), limits
# and temperatures on a 0.5 °C grid.
# -0.0 too: it equals 0.0, so which of the two a same-time pair keeps must not show.
TEMPS = st.one_of(st.integers(-6, 20).map(lambda k: k / 2), st.just(-0.0))


def frame(rows: list[tuple[str, int, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


@st.composite
def shipments(draw: st.DrawFn) -> dict[str, Any]:
    """Several shipments, each with readings, a cap, a profile and prior budget use."""
    candidates = [draw(profiles(name="p1")), draw(profiles(name="p2"))]
    points: dict[str, list[tuple[int, float]]] = {}
    caps: dict[str, int] = {}
    profile_of: dict[str, Profile] = {}
    prior: dict[str, dict[str, float]] = {}
    half_minutes = draw(st.booleans())
    step = MS_PER_MIN // 2 if half_minutes else MS_PER_MIN
    for s in range(draw(st.integers(1, 5))):
        sid = f"S-{s}"
        offsets = draw(st.lists(st.integers(0, 40), max_size=30))
        pts = [(T0 + o * step, draw(TEMPS)) for o in offsets]
        # Duplicates: the same time again, with the same or another value.
        for i in draw(st.lists(st.integers(0, max(len(pts) - 1, 0)), max_size=5)) if pts else []:
            pts.append((pts[i][0], draw(st.one_of(st.just(pts[i][1]), TEMPS))))
        last = max((t for t, _ in pts), default=T0)
        caps[sid] = last + draw(st.sampled_from([-30, -2, -1, 0, 0, 1, 2, 3, 10])) * step
        points[sid] = pts
        profile_of[sid] = draw(st.sampled_from(candidates))
        prior[sid] = {
            b.id: draw(st.sampled_from([0.0, 0.5, 4.0]))
            for b in profile_of[sid].budget
            if draw(st.booleans())
        }
    # Any order; often as the store returns readings: grouped by shipment (in any order
    # of shipments), and sorted by time within each, repeated times in arrival order.
    order = draw(st.sampled_from(["shuffled", "grouped", "stored"]))
    rows = draw(st.permutations([(sid, t, v) for sid, pts in points.items() for t, v in pts]))
    if order != "shuffled":
        rank = {sid: i for i, sid in enumerate(draw(st.permutations(list(points))))}
        time = (lambda r: r[1]) if order == "stored" else (lambda r: 0)
        rows = sorted(rows, key=lambda r: (rank[r[0]], time(r)))
    return {"points": points, "caps": caps, "profiles": profile_of, "prior": prior, "rows": rows}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=shipments())
def test_evaluate_frame_equals_python_evaluate(case: dict[str, Any]) -> None:
    now = T0 + 10**8
    got = evaluate_frame(
        frame(case["rows"]),
        case["profiles"],
        case["caps"],
        now_ms=now,
        prior_budget_min=case["prior"],
    )
    assert list(got) == list(case["profiles"])
    for sid, profile in case["profiles"].items():
        want = evaluate(
            sid,
            profile,
            case["points"][sid],
            now_ms=now,
            end_ms=case["caps"][sid],
            prior_budget_min=case["prior"][sid],
        )
        assert got[sid].to_json() == want.to_json(), sid


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=shipments())
def test_measure_frame_times_equal_python_measure(case: dict[str, Any]) -> None:
    """Integer fields are exact, not merely equal after rounding."""
    profile = next(iter(case["profiles"].values()))
    got = measure_frame(frame(case["rows"]), profile, case["caps"])
    for sid, pts in case["points"].items():
        want = measure(prepare(pts), profile, cap_ms=case["caps"][sid])
        g = got[sid]
        assert (g.readings, g.first_ms, g.last_ms, g.min_c, g.max_c, g.covered_ms) == (
            want.readings,
            want.first_ms,
            want.last_ms,
            want.min_c,
            want.max_c,
            want.covered_ms,
        )
        assert g.episodes == want.episodes
        assert g.gaps == want.gaps
        assert g.weight_sum == want.weight_sum
        assert g.lse_max == want.lse_max
        assert g.lse_sum == pytest.approx(want.lse_sum, rel=1e-12)
        assert g.weighted_sum_c == pytest.approx(want.weighted_sum_c, rel=1e-12, abs=1e-9)


@pytest.fixture(scope="module")
def vaccine() -> Profile:
    return load_profiles(SHIPPED_PRODUCTS_DIR).get("vaccine-2-8")


def test_measure_frame_shipment_without_readings(vaccine: Profile) -> None:
    got = measure_frame(frame([("S-1", T0, 5.0)]), vaccine, {"S-1": T0 + 60_000, "S-2": T0})
    assert list(got) == ["S-1", "S-2"]
    assert got["S-2"] == measure([], vaccine, cap_ms=T0)
    evaluated = evaluate_frame(frame([]), {"S-2": vaccine}, {"S-2": T0}, now_ms=T0)
    assert evaluated["S-2"].to_json() == evaluate("S-2", vaccine, [], now_ms=T0).to_json()
    assert evaluated["S-2"].verdict == "REVIEW"


def test_measure_frame_empty_frame_of_null_columns(vaccine: Profile) -> None:
    empty = pl.DataFrame({"shipment_id": [], "ts_ms": [], "temp_c": []})
    assert measure_frame(empty, vaccine, {"S-1": T0}) == {"S-1": measure([], vaccine, cap_ms=T0)}


@pytest.mark.parametrize(
    ("temp_c", "cap_after_ms"),
    [(5.0, 10 * MS_PER_MIN), (9.0, 10 * MS_PER_MIN), (-1.0, 45 * MS_PER_MIN), (8.0, 0)],
)
def test_evaluate_frame_single_reading(vaccine: Profile, temp_c: float, cap_after_ms: int) -> None:
    cap = T0 + cap_after_ms
    got = evaluate_frame(
        frame([("S-1", T0, temp_c)]), {"S-1": vaccine}, {"S-1": cap}, now_ms=cap + 1
    )
    want = evaluate("S-1", vaccine, [(T0, temp_c)], now_ms=cap + 1, end_ms=cap)
    assert got["S-1"].to_json() == want.to_json()
    assert got["S-1"].measures == want.measures


def test_evaluate_frame_zero_hold_weighs_readings_equally(vaccine: Profile) -> None:
    """cap == first reading: every hold is zero, mean and MKT fall back to equal weights."""
    pts = [(T0, 4.0), (T0 + MS_PER_MIN, 16.0), (T0 + 2 * MS_PER_MIN, 4.0), (T0, 3.0)]
    got = evaluate_frame(
        frame([("S-1", t, v) for t, v in pts]), {"S-1": vaccine}, {"S-1": T0}, now_ms=T0
    )["S-1"]
    want = evaluate("S-1", vaccine, pts, now_ms=T0, end_ms=T0)
    assert got.to_json() == want.to_json()
    assert got.measures.covered_ms == 0
    assert got.measures.weight_sum == 3.0
    assert got.to_json()["mean_c"] == pytest.approx((3.0 + 16.0 + 4.0) / 3, abs=1e-3)


def test_evaluate_frame_mixed_profiles(vaccine: Profile) -> None:
    crt = load_profiles(SHIPPED_PRODUCTS_DIR).get("crt-15-25")
    pts = [(T0 + i * MS_PER_MIN, float(v)) for i, v in enumerate([5, 9, 9, 30, 1, -1, 20])]
    rows = [(sid, t, v) for sid in ("A", "B") for t, v in pts]
    cap = T0 + 20 * MS_PER_MIN
    got = evaluate_frame(frame(rows), {"A": vaccine, "B": crt}, {"A": cap, "B": cap}, now_ms=cap)
    for sid, profile in (("A", vaccine), ("B", crt)):
        want = evaluate(sid, profile, pts, now_ms=cap, end_ms=cap)
        assert got[sid].to_json() == want.to_json()


def test_measure_frame_reading_of_unknown_shipment_refused(vaccine: Profile) -> None:
    with pytest.raises(ValueError, match="no cap"):
        measure_frame(frame([("S-9", T0, 5.0)]), vaccine, {"S-1": T0})


def test_evaluate_frame_shipment_without_cap_refused(vaccine: Profile) -> None:
    with pytest.raises(ValueError, match="no cap"):
        evaluate_frame(frame([]), {"S-1": vaccine}, {}, now_ms=T0)


def test_evaluate_frame_reading_of_shipment_without_profile_refused(vaccine: Profile) -> None:
    crt = load_profiles(SHIPPED_PRODUCTS_DIR).get("crt-15-25")
    with pytest.raises(ValueError, match="no profile"):
        evaluate_frame(
            frame([("S-9", T0, 5.0)]), {"A": vaccine, "B": crt}, {"A": T0, "B": T0}, now_ms=T0
        )


def test_measure_frame_times_too_far_apart_to_pack(vaccine: Profile) -> None:
    """Readings spanning more than 2⁶¹ ms take the three-column sort; same result."""
    pts = [(-(2**61), 9.0), (2**61, 3.0), (2**61, 1.0), (0, 9.5), (0, 9.5), (60_000, 1.0)]
    cap = 2**61 + 60_000
    got = measure_frame(frame([("S-1", t, v) for t, v in pts]), vaccine, {"S-1": cap})
    assert got["S-1"] == measure(prepare(pts), vaccine, cap_ms=cap)


def test_measure_frame_duplicates_keep_lowest_temperature(vaccine: Profile) -> None:
    pts = [(T0, 9.0), (T0, 1.0), (T0, 5.0), (T0 + 60_000, 9.0), (T0 + 60_000, 9.0)]
    rows = [(sid, t, v) for sid in ("S-1", "S-2") for t, v in pts]
    got = measure_frame(frame(rows), vaccine, {"S-1": T0 + 120_000, "S-2": T0})
    assert got["S-1"].readings == 2
    assert got["S-1"].min_c == 1.0
    assert got["S-1"] == measure(prepare(pts), vaccine, cap_ms=T0 + 120_000)
    assert got["S-2"] == measure(prepare(pts), vaccine, cap_ms=T0)


# -- edge rules, in the reference and in batch alike -----------------------------------------


@pytest.mark.parametrize(
    ("cap_after_min", "gap"),
    [
        (45.0, (30.0, 45.0)),  # cut at the cap, not at the reading after it (60 min)
        (30.0, None),  # the hold reaches the cap: nothing is missing
        (30.0 - 1 / MS_PER_MIN, None),
        (30.0 + 1 / MS_PER_MIN, (30.0, 30.0 + 1 / MS_PER_MIN)),  # 1 ms more cap, 1 ms of gap
        (90.0, (30.0, 60.0)),  # an interior gap, as before
    ],
)
def test_gap_is_cut_at_the_cap(
    vaccine: Profile, cap_after_min: float, gap: tuple[float, float] | None
) -> None:
    """A reading after the cap (a logger clock ahead of an open shipment's evaluation time)
    must not stretch the gap before it past the cap."""
    pts = [(T0, 5.0), (T0 + 60 * MS_PER_MIN, 5.0)]  # vaccine-2-8: max_gap 30 min
    cap = T0 + round(cap_after_min * MS_PER_MIN)
    want = evaluate("S-1", vaccine, pts, now_ms=cap, end_ms=cap)
    got = evaluate_frame(
        frame([("S-1", t, v) for t, v in pts]), {"S-1": vaccine}, {"S-1": cap}, now_ms=cap
    )["S-1"]
    expected = () if gap is None else (Gap(*(T0 + round(m * MS_PER_MIN) for m in gap), False),)
    assert want.measures.gaps == expected
    assert got.measures == want.measures
    assert got.to_json() == want.to_json()


@pytest.mark.parametrize("first", [-0.0, 0.0])
def test_negative_zero_reads_as_zero_whatever_the_arrival_order(
    vaccine: Profile, first: float
) -> None:
    pts = [(T0, first), (T0, -first), (T0 + MS_PER_MIN, -0.0), (T0 + 2 * MS_PER_MIN, 0.0)]
    cap = T0 + 3 * MS_PER_MIN
    want = evaluate("S-1", vaccine, pts, now_ms=cap, end_ms=cap)
    got = evaluate_frame(
        frame([("S-1", t, v) for t, v in pts]), {"S-1": vaccine}, {"S-1": cap}, now_ms=cap
    )["S-1"]
    assert got.to_json() == want.to_json()
    assert got.measures == want.measures
    doc = want.to_json()
    (episode,) = next(lim for lim in doc["limits"] if lim["limit_c"] == 2.0)["episodes"]
    signs = {math.copysign(1.0, v) for v in (doc["min_c"], doc["max_c"], doc["mean_c"])}
    assert signs == {1.0}
    assert math.copysign(1.0, episode["peak_c"]) == 1.0
    assert "-0.0" not in json.dumps(got.to_json())


def test_measure_frame_peak_is_first_reached_even_on_a_sorted_column(vaccine: Profile) -> None:
    """polars' arg_max returns the last of equal maxima on a column flagged sorted."""
    pts = [(T0 + i * MS_PER_MIN, v) for i, v in enumerate([9.0, 10.0, 10.0, 10.0])]
    readings = frame([("S-1", t, v) for t, v in pts]).with_columns(pl.col("temp_c").set_sorted())
    got = measure_frame(readings, vaccine, {"S-1": T0 + 5 * MS_PER_MIN})["S-1"]
    (episode,) = got.episodes["above", 8.0]
    assert (episode.peak_c, episode.peak_ms) == (10.0, T0 + MS_PER_MIN)


def test_measure_frame_extreme_temperature_spread(vaccine: Profile) -> None:
    """Exponents too far apart for one reference (cryogenic next to hot): per-shipment maxima."""
    pts = {"A": [(T0, -270.0), (T0 + MS_PER_MIN, 500.0)], "B": [(T0, -196.0), (T0 + 1, 25.0)]}
    caps = {"A": T0 + 2 * MS_PER_MIN, "B": T0 + 3 * MS_PER_MIN}
    rows = [(sid, t, v) for sid, ps in pts.items() for t, v in ps]
    got = measure_frame(frame(rows), vaccine, caps)
    for sid, ps in pts.items():
        want = measure(prepare(ps), vaccine, cap_ms=caps[sid])
        assert got[sid].lse_max == want.lse_max
        assert got[sid].lse_sum == pytest.approx(want.lse_sum, rel=1e-12)
        assert (got[sid].covered_ms, got[sid].episodes) == (want.covered_ms, want.episodes)


def test_measure_frame_shipments_grouped_in_another_order_than_caps(vaccine: Profile) -> None:
    pts = [(T0 + i * MS_PER_MIN, v) for i, v in enumerate([5.0, 9.0, 9.0, 1.0, 5.0])]
    rows = [(sid, t, v) for sid in ("C", "A", "B") for t, v in pts]
    caps = {"A": T0 + 10 * MS_PER_MIN, "B": T0 + 3 * MS_PER_MIN, "C": T0 + 2 * MS_PER_MIN}
    got = measure_frame(frame(rows), vaccine, caps)
    assert list(got) == ["A", "B", "C"]
    for sid, cap in caps.items():
        assert got[sid] == measure(prepare(pts), vaccine, cap_ms=cap)
