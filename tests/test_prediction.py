"""Prediction (docs/EVALUATION.md): least-squares trend, one open per limit, withdrawn on
recovery."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coldchain.decoding import decode_telemetry
from coldchain.errors import DecodeError
from coldchain.models import MS_PER_MIN
from coldchain.prediction import TrendWindow, fit, forecast
from coldchain.profiles import SHIPPED_PRODUCTS_DIR, load_profiles
from coldchain.simulation.fleet import build_fleet
from coldchain.streaming import ShipmentMonitor

M = MS_PER_MIN
T0 = 1_764_115_200_000  # 2025-11-26T00:00:00Z


def test_fit_recovers_a_straight_line():
    slope, fitted = fit([(i * 5 * M, -190.0 + 0.5 * i * 5) for i in range(10)])  # type: ignore[misc]
    assert slope == pytest.approx(0.5)
    assert fitted == pytest.approx(-190.0 + 0.5 * 45)


@pytest.mark.parametrize(
    ("temps", "expected_minutes"),
    [
        ([-170.0, -168.0, -166.0, -164.0, -162.0, -160.0, -158.0], 20.0),  # +2 °C / 5 min
        ([-170.0] * 7, None),  # flat: no crossing
        ([-160.0, -162.0, -164.0, -166.0, -168.0, -170.0, -172.0], None),  # cooling
        ([-150.5, -150.4, -150.3, -150.2, -150.1, -150.0, -149.5], None),  # already beyond
    ],
)
def test_forecast_crossing_time(temps, expected_minutes):
    points = [(i * 5 * M, t) for i, t in enumerate(temps)]
    f = forecast(points, direction="above", limit_c=-150.0, window_min=30, horizon_min=120)
    if expected_minutes is None:
        assert f is None
    else:
        assert f is not None
        assert (f.crossing_ms - f.made_ms) / M == pytest.approx(expected_minutes)


def test_forecast_needs_enough_readings_over_the_window():
    points = [(0, -170.0), (5 * M, -160.0)]  # two readings: no trend
    assert (
        forecast(points, direction="above", limit_c=-150.0, window_min=60, horizon_min=120) is None
    )


def test_prediction_opens_once_and_withdraws_when_the_trend_recovers():
    profile = load_profiles(SHIPPED_PRODUCTS_DIR).get("cart-ln2")
    monitor = ShipmentMonitor("S", profile)
    warming = [(i * 5 * M, -190.0 + 1.5 * i) for i in range(16)]  # +18 °C/h
    monitor.add(warming)
    opened = [c for c in monitor.take_changes().predictions if c.opened]
    assert [c.forecast.limit_c for c in opened] == [-150.0]
    monitor.add([(80 * M + i * 5 * M, -167.0 - 2.0 * i) for i in range(1, 16)])  # re-iced
    withdrawn = [c for c in monitor.take_changes().predictions if not c.opened]
    assert [c.forecast.limit_c for c in withdrawn] == [-150.0]


def _ln2_failure_points() -> list[tuple[int, float]]:
    fleet = build_fleet(shipments=10, start=datetime(2026, 11, 1, tzinfo=UTC), seed=7)
    plan = next(p for p in fleet.plans if p.scenario == "ln2-warming-failure")
    points: dict[int, float] = {}
    for msg in fleet.messages:
        if msg.shipment_id != plan.shipment_id or not msg.topic.endswith("/telemetry"):
            continue
        try:
            decoded = decode_telemetry(
                msg.payload,
                logger_id=plan.logger_id,
                topic=msg.topic,
                received_ms=msg.device_time_ms,
            )
        except DecodeError:
            continue
        points.update((r.ts_ms, r.temp_c) for r in decoded.readings)
    return sorted(points.items())


def test_prediction_warns_before_simulated_ln2_dry_shipper_failure(record_property):
    profile = load_profiles(SHIPPED_PRODUCTS_DIR).get("cart-ln2")
    points = _ln2_failure_points()
    crossing = next(t for t, v in points if v > -150.0)
    monitor = ShipmentMonitor("S", profile)
    warned = None
    for point in points:
        monitor.add([point])
        for change in monitor.take_changes().predictions:
            if change.opened and change.forecast.limit_c == -150.0 and warned is None:
                warned = change.forecast
        if point[0] >= crossing:
            break
    assert warned is not None, "no predicted_breach before the crossing"
    lead_min = (crossing - warned.made_ms) / M
    error_min = (warned.crossing_ms - crossing) / M
    record_property("lead_min", lead_min)
    record_property("forecast_error_min", error_min)
    print(
        f"predicted_breach {lead_min:.0f} min before the crossing; forecast off by "
        f"{error_min:+.0f} min"
    )
    assert lead_min >= 30  # early enough to re-ice or divert
    assert abs(error_min) <= profile.predict.horizon_min  # type: ignore[union-attr]


def test_prediction_does_not_depend_on_how_readings_were_batched():
    """A warming whose forecast opens and is overtaken by the crossing within one batch is
    predicted all the same: the demo and a live ingest batch arrivals by timing."""
    profile = load_profiles(SHIPPED_PRODUCTS_DIR).get("cart-ln2")
    warming = [(i * 5 * M, -190.0 + 1.5 * i) for i in range(40)]  # crosses -150 at ~2 h 15
    one_by_one = ShipmentMonitor("S", profile)
    for point in warming:
        one_by_one.add([point])
    at_once = ShipmentMonitor("S", profile)
    at_once.add(warming)
    expected = [(c.opened, c.forecast.made_ms) for c in one_by_one.take_changes().predictions]
    assert expected
    assert expected[0][0] is True
    assert [(c.opened, c.forecast.made_ms) for c in at_once.take_changes().predictions] == expected


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.integers(min_value=1, max_value=180), min_size=2, max_size=400),
    temps=st.lists(st.floats(min_value=-195, max_value=40), min_size=400, max_size=400),
    window_min=st.sampled_from([15.0, 60.0, 240.0]),
)
def test_trend_window_reading_by_reading_equals_a_refit_of_the_window(steps, temps, window_min):
    # The monitor's O(1) running sums must give the line a full refit gives, also after
    # the anchor moves (series longer than a day) and after a resync.
    ts = [T0 + sum(steps[: i + 1]) * 60_000 for i in range(len(steps))]
    values = temps[: len(ts)]
    window = TrendWindow(window_min)
    for i in range(len(ts)):
        window.push(ts[: i + 1], values[: i + 1])
        got = window.trend(ts[: i + 1])
        recent = [
            (t, v) for t, v in zip(ts[: i + 1], values, strict=False) if t >= ts[i] - window_min * M
        ]
        line = fit(recent)
        if line is None or got is None:
            assert (line is None) == (got is None) or len(recent) < 2
            continue
        slope, fitted = line
        assert got.points == len(recent)
        assert got.span_ms == ts[i] - recent[0][0]
        assert got.slope_c_per_min == pytest.approx(slope, rel=1e-6, abs=1e-9)
        assert got.fitted_c == pytest.approx(fitted, rel=1e-9, abs=1e-6)


def test_monitor_emptied_by_replace_then_fed_again_predicts_without_error():
    profile = load_profiles(SHIPPED_PRODUCTS_DIR).get("cart-ln2")
    monitor = ShipmentMonitor("S-1", profile)
    monitor.add([(T0 + i * M, -185.0 + 0.5 * i) for i in range(40)])  # warming: a forecast opens
    assert any(c.opened for c in monitor.take_changes().predictions)
    monitor.replace([])
    assert [c.opened for c in monitor.take_changes().predictions] == [False]
    monitor.add([(T0 + 100 * M, -180.0)])
    assert monitor.take_changes().predictions == []
