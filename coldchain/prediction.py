"""Forecasting a limit crossing from the recent trend (docs/EVALUATION.md ``predict``), pure.

An ordinary least-squares line is fitted to the readings of the last
``window_min`` of device time. When the fitted value at the newest reading is
still within a limit and the line reaches the limit within ``horizon_min``,
the crossing time is forecast. A trend needs at least :data:`MIN_POINTS`
readings spanning at least half the window, so that one noisy reading does not
raise a warning.
"""

from __future__ import annotations

import bisect
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
    line = fit(recent)
    if line is None:
        return None
    trend = Trend(len(recent), last - recent[0][0], last, *line)
    return crossing(
        trend, direction=direction, limit_c=limit_c, window_min=window_min, horizon_min=horizon_min
    )


@dataclass(frozen=True, slots=True)
class Trend:
    """A least-squares line over the readings of the window that ends at ``last_ms``."""

    points: int
    span_ms: int
    last_ms: int
    slope_c_per_min: float
    fitted_c: float
    """The line's value at ``last_ms``."""


def crossing(
    trend: Trend, *, direction: Direction, limit_c: float, window_min: float, horizon_min: float
) -> Forecast | None:
    """The forecast crossing of ``limit_c`` by ``trend`` within ``horizon_min``, if any.

    A trend needs :data:`MIN_POINTS` readings spanning at least half the window.
    """
    if trend.points < MIN_POINTS or trend.span_ms < MIN_SPAN_FRACTION * window_min * MS_PER_MIN:
        return None
    slope, fitted = trend.slope_c_per_min, trend.fitted_c
    towards = slope > 0 if direction == "above" else slope < 0
    inside = fitted <= limit_c if direction == "above" else fitted >= limit_c
    if not (towards and inside):
        return None
    minutes = (limit_c - fitted) / slope
    if minutes > horizon_min:
        return None
    last = trend.last_ms
    return Forecast(direction, limit_c, last, last + round(minutes * MS_PER_MIN), fitted, slope)


REANCHOR_MS = 24 * 60 * MS_PER_MIN
"""How far device time may run past the window's anchor before the sums are recomputed,
which keeps the magnitudes (and so the rounding) of the running sums small."""


class TrendWindow:
    """The least-squares sums over the last ``window_ms`` of a growing series, kept up to
    date one reading at a time: O(1) per in-order reading instead of a refit of the
    window. The caller owns the series (sorted device times and values) and calls
    :meth:`push` after appending to it, or :meth:`resync` after any other change.

    Times enter as minutes from an anchor inside the window; the anchor moves (and the
    sums are recomputed exactly) once a day of device time, so the result depends only
    on the series, never on how its readings were batched.
    """

    __slots__ = ("_anchor", "_n", "_start", "_sx", "_sxx", "_sxy", "_sy", "window_ms")

    def __init__(self, window_min: float) -> None:
        self.window_ms = window_min * MS_PER_MIN
        self._start = 0
        self._anchor = 0
        self._n = 0
        self._sx = self._sy = self._sxx = self._sxy = 0.0

    def resync(self, ts: Sequence[int], temps: Sequence[float]) -> None:
        """Recompute the sums from the series."""
        self._n = 0
        self._sx = self._sy = self._sxx = self._sxy = 0.0
        if not ts:
            self._start = 0
            return
        self._start = bisect.bisect_left(ts, ts[-1] - self.window_ms)
        self._anchor = ts[self._start]
        for i in range(self._start, len(ts)):
            self._add(ts[i], temps[i], 1)

    def push(self, ts: Sequence[int], temps: Sequence[float]) -> None:
        """The series grew by one reading at its end (a later device time)."""
        last = ts[-1]
        if self._n == 0 or last - self._anchor > REANCHOR_MS:
            self.resync(ts, temps)
            return
        self._add(last, temps[-1], 1)
        while ts[self._start] < last - self.window_ms:
            self._add(ts[self._start], temps[self._start], -1)
            self._start += 1

    def trend(self, ts: Sequence[int]) -> Trend | None:
        """The fitted line at the series' last reading; None when degenerate."""
        n = self._n
        if n < 2:
            return None
        mx, my = self._sx / n, self._sy / n
        sxx = self._sxx - n * mx * mx
        if sxx <= 0:
            return None
        slope = (self._sxy - n * mx * my) / sxx
        last = ts[-1]
        x_last = (last - self._anchor) / MS_PER_MIN
        return Trend(n, last - ts[self._start], last, slope, my + slope * (x_last - mx))

    def _add(self, t: int, v: float, sign: int) -> None:
        x = (t - self._anchor) / MS_PER_MIN
        self._n += sign
        self._sx += sign * x
        self._sy += sign * v
        self._sxx += sign * x * x
        self._sxy += sign * x * v
