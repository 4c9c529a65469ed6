"""Incremental evaluation on arrival (SPEC §4.6), pure: no clock, no I/O.

:class:`ShipmentMonitor` keeps one shipment's readings in device-time order
and the state of the run of out-of-range readings at the tail, so a reading
that arrives in order costs O(limits + alarms), not a pass over the shipment.
A reading that arrives out of order (a logger's buffered upload) rebuilds the
state once from :func:`coldchain.evaluation.measure`, which is also what the
full evaluation uses: both paths apply the same rules.

What the monitor reports is what the data *proves*: on arrival, the last
reading's hold is counted only up to its own time; :meth:`tick` extends it
up to the wall-clock ``now`` (capped by max_gap and delivery), which is how
an alarm fires while a logger sits silent beyond a limit.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from coldchain.evaluation import (
    Episode,
    Evaluation,
    Firing,
    LimitKey,
    evaluate,
    firings_for,
    is_out,
    measure,
)
from coldchain.models import MS_PER_MIN
from coldchain.profiles import Profile


@dataclass(slots=True)
class _Run:
    """The open run of out-of-range readings at the tail, for one limit."""

    start_ms: int
    peak_c: float
    peak_ms: int
    count: int


class ShipmentMonitor:
    """Live state of one shipment; reports each alarm firing once."""

    def __init__(self, shipment_id: str, profile: Profile, *, end_ms: int | None = None) -> None:
        self.shipment_id = shipment_id
        self.profile = profile
        self.end_ms = end_ms
        self._gap_ms = round(profile.max_gap_min * MS_PER_MIN)
        self._keys: tuple[LimitKey, ...] = profile.limit_keys()
        self._ts: list[int] = []
        self._temps: list[float] = []
        self._closed: dict[LimitKey, list[Episode]] = {k: [] for k in self._keys}
        self._open: dict[LimitKey, _Run | None] = dict.fromkeys(self._keys)
        self._reported: set[tuple[str, int]] = set()

    @property
    def readings(self) -> int:
        return len(self._ts)

    @property
    def last_ms(self) -> int | None:
        return self._ts[-1] if self._ts else None

    def last_temp_c(self) -> float | None:
        return self._temps[-1] if self._temps else None

    def points(self) -> list[tuple[int, float]]:
        return list(zip(self._ts, self._temps, strict=True))

    def mark_reported(self, firings: Iterable[Firing]) -> None:
        """Remember firings already alerted (e.g. loaded from the store at start-up)."""
        self._reported.update((f.alarm_id, f.episode_start_ms) for f in firings)

    def add(self, points: Iterable[tuple[int, float]]) -> list[Firing]:
        """Take new readings (any order, duplicates ignored); return firings not reported before."""
        rebuild = False
        for ts, temp in sorted(points):
            if self._ts and ts <= self._ts[-1]:
                i = bisect.bisect_left(self._ts, ts)
                if i < len(self._ts) and self._ts[i] == ts:
                    # two readings at one device time (distinct seq): keep the lower
                    # temperature, as evaluation.prepare does, whatever the arrival order
                    if temp < self._temps[i]:
                        self._temps[i] = float(temp)
                        rebuild = True
                    continue
                self._ts.insert(i, ts)
                self._temps.insert(i, float(temp))
                rebuild = True
            elif rebuild:
                self._ts.append(ts)
                self._temps.append(float(temp))
            else:
                self._append(ts, float(temp))
        if rebuild:
            self._rebuild()
        return self._new_firings(horizon_ms=self._ts[-1] if self._ts else 0)

    def tick(self, now_ms: int) -> list[Firing]:
        """Firings proven by the last reading's hold up to ``now_ms`` (scheduled job)."""
        if not self._ts:
            return []
        horizon = min(now_ms, self._ts[-1] + self._gap_ms)
        if self.end_ms is not None:
            horizon = min(horizon, self.end_ms)
        return self._new_firings(horizon_ms=max(horizon, self._ts[-1]))

    def evaluate(self, *, now_ms: int) -> Evaluation:
        """The full evaluation of what this monitor holds (same rules as the batch path)."""
        return evaluate(
            self.shipment_id, self.profile, self.points(), now_ms=now_ms, end_ms=self.end_ms
        )

    # -- internals -----------------------------------------------------------

    def _append(self, ts: int, temp: float) -> None:
        if self._ts:
            prev_end = min(ts, self._ts[-1] + self._gap_ms)
            for key in self._keys:
                run = self._open[key]
                if run is None:
                    continue
                if is_out(*key, temp):
                    run.count += 1
                    if (temp > run.peak_c) if key[0] == "above" else (temp < run.peak_c):
                        run.peak_c, run.peak_ms = temp, ts
                else:
                    self._closed[key].append(
                        Episode(run.start_ms, prev_end, run.peak_c, run.peak_ms, run.count)
                    )
                    self._open[key] = None
        for key in self._keys:
            if self._open[key] is None and is_out(*key, temp):
                self._open[key] = _Run(ts, temp, ts, 1)
        self._ts.append(ts)
        self._temps.append(temp)

    def _rebuild(self) -> None:
        last = self._ts[-1]
        m = measure(self.points(), self.profile, cap_ms=last)
        last_temp = self._temps[-1]
        for key in self._keys:
            episodes = list(m.episodes[key])
            run = None
            if episodes and is_out(*key, last_temp):
                tail = episodes.pop()
                run = _Run(tail.start_ms, tail.peak_c, tail.peak_ms, tail.readings)
            self._closed[key] = episodes
            self._open[key] = run

    def _episodes(self, key: LimitKey, horizon_ms: int) -> list[Episode]:
        run = self._open[key]
        if run is None:
            return self._closed[key]
        end = max(run.start_ms, horizon_ms)
        return [*self._closed[key], Episode(run.start_ms, end, run.peak_c, run.peak_ms, run.count)]

    def _new_firings(self, *, horizon_ms: int) -> list[Firing]:
        new: list[Firing] = []
        for alarm in self.profile.alarms:
            for firing in firings_for(alarm, self._episodes(alarm.limit_key, horizon_ms)):
                ident = (firing.alarm_id, firing.episode_start_ms)
                if ident not in self._reported:
                    self._reported.add(ident)
                    new.append(firing)
        return new
