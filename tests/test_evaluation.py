"""Evaluation core (docs/EVALUATION.md): MKT references, hand-computed cases, arrival-order
properties."""

from __future__ import annotations

import os
import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coldchain.evaluation import evaluate
from coldchain.mkt import mkt_c
from coldchain.profiles import Profile
from coldchain.streaming import ShipmentMonitor

M = 60_000  # one minute in ms
EXAMPLES = int(os.environ.get("COLDCHAIN_HYPOTHESIS_EXAMPLES", "300"))
"""Examples per property; CI runs 300, a deeper local run sets the variable."""
H = 60 * M


def profile(**overrides: object) -> Profile:
    doc: dict[str, object] = {
        "id": "test",
        "name": "test product",
        "max_gap_min": 15,
        "mkt": True,
        "alarms": [
            {"id": "high", "above_c": 8.0, "delay_min": 30, "severity": "critical"},
            {"id": "high-cum", "above_c": 8.0, "cumulative_min": 60, "severity": "critical"},
            {"id": "low", "below_c": 2.0, "delay_min": 0, "severity": "warning"},
        ],
        "budget": [{"id": "warm", "above_c": 8.0, "allowance_min": 100}],
    }
    doc.update(overrides)
    return Profile.model_validate(doc)


def series(values: list[float], step_min: float = 5, t0: int = 0) -> list[tuple[int, float]]:
    return [(t0 + round(i * step_min * M), v) for i, v in enumerate(values)]


# -- MKT (docs/EVALUATION.md reference values) ---------------------------------------------------


@pytest.mark.parametrize(
    ("temps", "weights", "expected"),
    [
        ([25.0] * 12, None, 25.000),
        ([4, 4, 4, 4, 16], None, 8.109),
        ([5, 15], [23, 1], 5.764),
    ],
)
def test_mkt_reference_values(temps, weights, expected):
    assert round(mkt_c(temps, weights), 3) == expected


def test_mkt_cryogenic_values_do_not_underflow():
    # exp(-ΔH/(R·T)) is 1e-166 at -190 °C; the log-sum-exp form keeps it exact.
    assert mkt_c([-190.0, -190.0]) == pytest.approx(-190.0, abs=1e-9)


def test_evaluate_mkt_is_time_weighted_by_hold():
    # 23 h at 5 °C then 1 h at 15 °C, as two readings held by sample-and-hold
    p = profile(max_gap_min=24 * 60)
    ev = evaluate("S", p, [(0, 5.0), (23 * H, 15.0)], now_ms=24 * H, end_ms=24 * H)
    assert ev.to_json()["mkt_c"] == 5.764
    assert ev.to_json()["mean_c"] == round((23 * 5 + 15) / 24, 3)


# -- hand-computed cases -------------------------------------------------------------------


def test_evaluate_value_equal_to_limit_is_in_range():
    ev = evaluate("S", profile(), series([8.0] * 20 + [2.0] * 5), now_ms=200 * M, end_ms=125 * M)
    doc = ev.to_json()
    assert all(limit["episodes"] == [] for limit in doc["limits"])
    assert doc["verdict"] == "PASS"
    assert not any(a["fired"] for a in doc["alarms"])


def test_evaluate_single_alarm_fires_after_delay_with_exact_triggered_at():
    # in range, then above 8 from minute 10 to minute 50 (readings every 5 min)
    values = [5.0, 5.0] + [9.0] * 8 + [5.0] * 4
    ev = evaluate("S", profile(), series(values), now_ms=70 * M, end_ms=70 * M)
    doc = ev.to_json()
    (episode,) = doc["limits"][0]["episodes"]
    assert (episode["start"], episode["end"], episode["minutes"]) == (
        "1970-01-01T00:10:00Z",
        "1970-01-01T00:50:00Z",
        40.0,
    )
    assert (episode["peak_c"], episode["readings"]) == (9.0, 8)
    high = next(a for a in doc["alarms"] if a["id"] == "high")
    assert high["fired"] is True
    assert high["triggered_at"] == "1970-01-01T00:40:00Z"  # start + 30 min
    assert doc["verdict"] == "FAIL"


def test_evaluate_episode_exactly_at_delay_does_not_fire():
    values = [5.0] + [9.0] * 6 + [5.0] * 3  # 30 minutes above: not *more* than 30
    doc = evaluate("S", profile(), series(values), now_ms=50 * M, end_ms=50 * M).to_json()
    assert doc["limits"][0]["episodes"][0]["minutes"] == 30.0
    assert next(a for a in doc["alarms"] if a["id"] == "high")["fired"] is False


def test_evaluate_zero_delay_fires_at_first_out_of_range_reading():
    values = [5.0, 5.0, 1.5, 5.0]
    doc = evaluate("S", profile(), series(values), now_ms=20 * M, end_ms=20 * M).to_json()
    low = next(a for a in doc["alarms"] if a["id"] == "low")
    assert (low["fired"], low["triggered_at"]) == (True, "1970-01-01T00:10:00Z")
    assert doc["verdict"] == "REVIEW"  # a warning fired, nothing critical


def test_evaluate_conservative_gap_counts_and_joins_episode():
    # 9 °C at 0 and at 60 min with nothing between: max_gap 15 leaves a 45-minute gap
    # bounded by two out-of-range readings -> counted as out of range, one episode.
    points = [(0, 9.0), (60 * M, 9.0), (65 * M, 5.0)]
    doc = evaluate("S", profile(), points, now_ms=70 * M, end_ms=70 * M).to_json()
    assert doc["gaps"] == [
        {
            "start": "1970-01-01T00:15:00Z",
            "end": "1970-01-01T01:00:00Z",
            "minutes": 45.0,
            "counted_out_of_range": True,
        }
    ]
    (episode,) = doc["limits"][0]["episodes"]
    assert (episode["minutes"], episode["readings"]) == (65.0, 2)
    assert doc["covered_min"] == 25.0  # 15 + 5 + 5: gap time is not covered time
    high = next(a for a in doc["alarms"] if a["id"] == "high")
    assert high["triggered_at"] == "1970-01-01T00:30:00Z"


def test_evaluate_gap_with_one_bound_in_range_is_not_counted_and_splits():
    points = [(0, 9.0), (60 * M, 5.0), (65 * M, 9.0), (70 * M, 5.0)]
    doc = evaluate("S", profile(), points, now_ms=75 * M, end_ms=75 * M).to_json()
    assert [g["counted_out_of_range"] for g in doc["gaps"]] == [False]
    assert [e["minutes"] for e in doc["limits"][0]["episodes"]] == [15.0, 5.0]
    assert doc["verdict"] == "REVIEW"  # a gap, no alarm


def test_evaluate_cumulative_alarm_crosses_inside_an_episode():
    # three excursions above 8 °C: 20, 25 and 40 minutes. The 60-minute allowance is
    # exceeded 15 minutes into the third, which started at 200 min -> triggered at 215.
    values: dict[int, float] = dict.fromkeys(range(0, 300, 5), 5.0)
    for start, length in ((20, 20), (100, 25), (200, 40)):
        for t in range(start, start + length, 5):
            values[t] = 9.0
    points = [(t * M, v) for t, v in values.items()]
    doc = evaluate("S", profile(), points, now_ms=300 * M, end_ms=300 * M).to_json()
    assert [e["minutes"] for e in doc["limits"][0]["episodes"]] == [20.0, 25.0, 40.0]
    cumulative = next(a for a in doc["alarms"] if a["id"] == "high-cum")
    assert cumulative["triggered_at"] == "1970-01-01T03:35:00Z"
    single = next(a for a in doc["alarms"] if a["id"] == "high")
    assert [f["episode_start"] for f in single["firings"]] == ["1970-01-01T03:20:00Z"]
    budget = doc["budgets"][0]
    assert (budget["consumed_min"], budget["remaining_min"]) == (85.0, 15.0)


def test_evaluate_exhausted_budget_fails_the_shipment():
    p = profile(alarms=[{"id": "x", "above_c": 30.0, "delay_min": 0}])
    values = [9.0] * 30  # 150 min above 8 °C > 100 min allowance
    doc = evaluate("S", p, series(values), now_ms=150 * M, end_ms=150 * M).to_json()
    assert doc["budgets"][0]["remaining_min"] == -50.0
    assert doc["verdict"] == "FAIL"


def test_evaluate_open_shipment_holds_last_reading_until_now_capped():
    p = profile()
    points = series([5.0, 5.0])
    at_10 = evaluate("S", p, points, now_ms=10 * M).to_json()
    assert (at_10["covered_min"], at_10["gaps"]) == (10.0, [])
    later = evaluate("S", p, points, now_ms=60 * M).to_json()
    assert later["covered_min"] == 20.0  # 5 + 15 (max_gap), then a trailing gap
    assert later["gaps"][0]["minutes"] == 40.0
    assert later["verdict"] == "REVIEW"


def test_evaluate_no_readings_is_review_with_nulls():
    doc = evaluate("S", profile(), [], now_ms=0).to_json()
    assert (doc["readings"], doc["min_c"], doc["mkt_c"], doc["verdict"]) == (
        0,
        None,
        None,
        "REVIEW",
    )


def test_evaluate_json_has_spec_shape():
    doc = evaluate("S-1", profile(), series([5.0, 9.0]), now_ms=10 * M).to_json()
    for key in (
        "shipment_id",
        "profile",
        "verdict",
        "evaluated_at",
        "readings",
        "first_reading",
        "last_reading",
        "min_c",
        "max_c",
        "mean_c",
        "mkt_c",
        "covered_min",
        "limits",
        "alarms",
        "budgets",
        "gaps",
    ):
        assert key in doc
    assert set(doc["profile"]) == {"id", "sha256"}
    assert [(lim["direction"], lim["limit_c"]) for lim in doc["limits"]] == [
        ("above", 8.0),
        ("below", 2.0),
    ]


# -- properties: arrival order and duplicates never change the result ------------------------

values_st = st.sampled_from([1.0, 2.0, 2.5, 5.0, 8.0, 8.5, 12.0])
steps_st = st.sampled_from([1, 5, 5, 5, 10, 15, 16, 40])


@st.composite
def shipments(draw: st.DrawFn) -> list[tuple[int, float]]:
    steps = draw(st.lists(steps_st, min_size=0, max_size=60))
    t = 0
    points = []
    for step in steps:
        t += step * M
        points.append((t, draw(values_st)))
    return points


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    points=shipments(),
    seed=st.integers(0, 2**32),
    dup=st.integers(0, 20),
    end_extra=st.sampled_from([None, 0, 7, 30]),
)
def test_evaluate_shuffled_and_duplicated_gives_identical_json(points, seed, dup, end_extra):
    rng = random.Random(seed)
    noisy = points + [rng.choice(points) for _ in range(dup)] if points else []
    rng.shuffle(noisy)
    last = points[-1][0] if points else 0
    end = None if end_extra is None else last + end_extra * M
    now = last + 20 * M
    a = evaluate("S", profile(), points, now_ms=now, end_ms=end).to_json()
    b = evaluate("S", profile(), noisy, now_ms=now, end_ms=end).to_json()
    assert orjson.dumps(a) == orjson.dumps(b)


@settings(max_examples=EXAMPLES, deadline=None)
@given(points=shipments(), seed=st.integers(0, 2**32), chunk=st.integers(1, 7))
def test_streaming_in_order_reports_exactly_the_batch_firings(points, seed, chunk):
    p = profile()
    end = (points[-1][0] if points else 0) + 10 * M
    monitor = ShipmentMonitor("S", p, end_ms=end)
    got = []
    for i in range(0, len(points), chunk):
        got += monitor.add(points[i : i + chunk])
    got += monitor.tick(end + H)
    batch = evaluate("S", p, points, now_ms=end, end_ms=end)
    alarms = [f for f in got if not f.alarm_id.startswith("budget:")]
    assert sorted(alarms, key=repr) == sorted(batch.firings, key=repr)
    budget_times = {f.alarm_id: f.triggered_ms for f in got if f.alarm_id.startswith("budget:")}
    (figure,) = batch.budgets
    assert budget_times.get("budget:warm:low") == figure.low_ms
    assert budget_times.get("budget:warm:exhausted") == figure.exhausted_ms
    assert orjson.dumps(monitor.evaluate(now_ms=end).to_json()) == orjson.dumps(batch.to_json())


@settings(max_examples=EXAMPLES, deadline=None)
@given(points=shipments(), seed=st.integers(0, 2**32), chunk=st.integers(1, 7))
def test_streaming_out_of_order_live_alerts_end_equal_to_batch(points, seed, chunk):
    """New firings plus revisions, applied in order, leave exactly the batch's firings."""
    p = profile()
    rng = random.Random(seed)
    shuffled = points[:]
    rng.shuffle(shuffled)
    end = (points[-1][0] if points else 0) + 10 * M
    monitor = ShipmentMonitor("S", p, end_ms=end)
    live: set[tuple[str, int, int]] = set()

    def apply(new):
        live.update((f.alarm_id, f.episode_start_ms, f.triggered_ms) for f in new)
        for rev in monitor.take_changes().revisions:
            live.discard((rev.old.alarm_id, rev.old.episode_start_ms, rev.old.triggered_ms))
            if rev.new is not None:
                live.add((rev.new.alarm_id, rev.new.episode_start_ms, rev.new.triggered_ms))

    for i in range(0, len(shuffled), chunk):
        apply(monitor.add(shuffled[i : i + chunk] * 2))  # and every reading twice
    apply(monitor.tick(end + H))
    batch = evaluate("S", p, points, now_ms=end, end_ms=end)
    expected = {(f.alarm_id, f.episode_start_ms, f.triggered_ms) for f in batch.firings}
    assert {x for x in live if not x[0].startswith("budget:")} == expected
    assert orjson.dumps(monitor.evaluate(now_ms=end).to_json()) == orjson.dumps(batch.to_json())
