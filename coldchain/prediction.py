"""Forecasting a limit crossing from the recent trend (docs/EVALUATION.md ``predict``), pure.

An ordinary least-squares line is fitted to the readings of the last
``window_min`` of device time. When the fitted value at the newest reading is
still within a limit and the line reaches the limit within ``horizon_min``,
the crossing time is forecast. A trend needs at least :data:`MIN_POINTS`
readings spanning at least half the window, so that one noisy reading does not
raise a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coldchain.models import MS_PER_MIN
from coldchain.profiles import Direction

MIN_POINTS = 4
MIN_SPAN_FRACTION = 0.5


@dataclass(frozen=True, slots=True)
class Forecast:
    """A forecast crossing of one limit, made from readings up to ``made_ms`` (device time)."""

    direction: Direction
    limit_c: float
    made_ms: int
    crossing_ms: int
    fitted_c: float
    slope_c_per_min: float


def fit(points: Sequence[tuple[int, float]]) -> tuple[float, float] | None:
    """Least-squares ``(slope °C/min, fitted value at the last point)``; None if degenerate."""
    n = len(points)
    if n < 2:
        return None
    t0 = points[-1][0]
    xs = [(t - t0) / MS_PER_MIN for t, _ in points]
    ys = [v for _, v in points]
    mx = sum(xs) / n
    my = sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, my - slope * mx  # x = 0 at the last point


def forecast(
    points: Sequence[tuple[int, float]],
    *,
    direction: Direction,
    limit_c: float,
    window_min: float,
    horizon_min: float,
) -> Forecast | None:
    """Forecast the crossing of ``limit_c`` from ``points`` (sorted; only the window is used)."""
    if not points:
        return None
    last = points[-1][0]
    window_ms = window_min * MS_PER_MIN
    recent = [p for p in points if p[0] >= last - window_ms]
    if len(recent) < MIN_POINTS or last - recent[0][0] < MIN_SPAN_FRACTION * window_ms:
        return None
    line = fit(recent)
    if line is None:
        return None
    slope, fitted = line
    towards = slope > 0 if direction == "above" else slope < 0
    inside = fitted <= limit_c if direction == "above" else fitted >= limit_c
    if not (towards and inside):
        return None
    minutes = (limit_c - fitted) / slope
    if minutes > horizon_min:
        return None
    return Forecast(direction, limit_c, last, last + round(minutes * MS_PER_MIN), fitted, slope)
