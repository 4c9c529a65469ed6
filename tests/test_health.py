"""Logger health (docs/PROTOCOL.md, docs/ALERTS.md): each condition opens once and clears when it
ends."""

from __future__ import annotations

import pytest

from coldchain.health import HealthLimits, LoggerHealth
from coldchain.models import Reading, Reject

M = 60_000
T0 = 1_764_126_000_000


def health() -> LoggerHealth:
    return LoggerHealth(
        "LG-1",
        HealthLimits(silence_min=30, battery_low_pct=15, sensor_fault_repeat=3, clock_skew_min=5),
    )


def reading(ts: int, received: int) -> Reading:
    return Reading("LG-1", ts, 5.0, received_ms=received)


def fault(received: int) -> Reject:
    return Reject("sensor fault: temp_c=250 is outside -200..+100 °C", "t", b"{}", received)


def test_logger_silent_opens_after_silence_and_clears_on_data():
    h = health()
    assert h.observe(received_ms=T0) == []
    assert h.check_silence(T0 + 29 * M) == []
    (opened,) = h.check_silence(T0 + 31 * M)
    assert (opened.kind, opened.opened, opened.since_ms) == ("logger_silent", True, T0)
    assert h.check_silence(T0 + 60 * M) == []  # once per silence
    (cleared,) = h.observe(received_ms=T0 + 61 * M, readings=[reading(T0, T0 + 61 * M)])
    assert (cleared.kind, cleared.opened, cleared.since_ms) == ("logger_silent", False, T0)


def test_silence_counts_from_first_check_for_a_logger_never_seen():
    h = health()
    assert h.check_silence(T0) == []
    assert [e.kind for e in h.check_silence(T0 + 31 * M)] == ["logger_silent"]


def test_battery_low_opens_below_threshold_and_clears_above():
    h = health()
    assert h.observe(received_ms=T0, battery_pct=50) == []
    (low,) = h.observe(received_ms=T0 + M, battery_pct=14.9)
    assert (low.kind, low.opened, low.value) == ("battery_low", True, 14.9)
    assert h.observe(received_ms=T0 + 2 * M, battery_pct=10) == []
    (ok,) = h.observe(received_ms=T0 + 3 * M, battery_pct=80)
    assert (ok.kind, ok.opened) == ("battery_low", False)


def test_clock_skew_opens_beyond_five_minutes_and_clears_when_clock_agrees():
    h = health()
    assert h.observe(received_ms=T0, readings=[reading(T0 + 5 * M, T0)]) == []  # not beyond
    (skew,) = h.observe(received_ms=T0, readings=[reading(T0 + 6 * M, T0)])
    assert (skew.kind, skew.opened) == ("clock_skew", True)
    assert h.observe(received_ms=T0, readings=[reading(T0 + 9 * M, T0)]) == []
    (ok,) = h.observe(received_ms=T0 + M, readings=[reading(T0, T0 + M)])
    assert (ok.kind, ok.opened) == ("clock_skew", False)


def test_sensor_fault_after_repeated_impossible_values_then_clears():
    h = health()
    assert h.observe(received_ms=T0, rejects=[fault(T0), fault(T0)]) == []
    (bad,) = h.observe(received_ms=T0, rejects=[fault(T0 + 1)])
    assert (bad.kind, bad.opened, bad.since_ms) == ("sensor_fault", True, T0)
    (ok,) = h.observe(received_ms=T0 + M, readings=[reading(T0 + M, T0 + M)])
    assert (ok.kind, ok.opened) == ("sensor_fault", False)


def test_sensor_fault_count_resets_on_a_good_reading():
    h = health()
    h.observe(received_ms=T0, rejects=[fault(T0), fault(T0)])
    h.observe(received_ms=T0, readings=[reading(T0, T0)])
    assert h.observe(received_ms=T0, rejects=[fault(T0), fault(T0)]) == []


@pytest.mark.parametrize(
    ("silence_min", "silent_ms", "text"),
    [
        (0.25, 15_400, "for 15 s "),  # the demo's old threshold: it used to read "for 0 min"
        (0.25, 59_999, "for 59 s "),
        (30, 30 * M + 29_000, "for 30 min 29 s "),
        (30, 31 * M, "for 31 min "),
        (30, 125 * M + 59_000, "for 2 h 05 min "),
    ],
)
def test_logger_silent_states_a_real_duration_of_at_least_the_threshold(
    silence_min, silent_ms, text
):
    h = LoggerHealth("LG-1", HealthLimits(silence_min=silence_min))
    h.observe(received_ms=T0)
    (opened,) = h.check_silence(T0 + silent_ms)
    assert text in opened.message
    assert " 0 min" not in opened.message
