"""Incremental evaluation on arrival (docs/EVALUATION.md, streaming equals batch), pure: no clock,
no I/O.

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

Besides new alarm firings it reports (through :meth:`take_changes`):

* **revisions** (docs/EVALUATION.md, streaming equals batch): late readings that
  change a firing already reported — its episode now starts earlier, its time moved, or it no longer
  fires at all. A firing is withdrawn only when the data contradicts it,
  judged at the longest hold the last reading could have, never merely for
  lack of proof yet;
* **budget thresholds** of the lot (``budget:<id>:low`` and
  ``budget:<id>:exhausted`` firings), with earlier legs' consumption given
  as ``prior_budget_min``;
* **predictions** (docs/EVALUATION.md): a forecast crossing of a critical limit
  within the profile's horizon, at most one open per limit, withdrawn when
  the trend recovers or the limit is actually crossed.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

from coldchain.evaluation import (
    LOW_BUDGET_FRACTION,
    Episode,
    Evaluation,
    Firing,
    LimitKey,
    evaluate,
    firings_for,
    is_out,
    measure,
    prepare,
    reaches_at,
)
from coldchain.models import MS_PER_MIN
from coldchain.prediction import Forecast, TrendWindow, crossing
from coldchain.profiles import Profile


@dataclass(frozen=True, slots=True)
class Revision:
    """A reported firing that late data changed (``new``) or withdrew (``new`` is None)."""

    old: Firing
    new: Firing | None


@dataclass(frozen=True, slots=True)
class PredictionChange:
    """A prediction raised (``opened``) or withdrawn for one limit."""

    forecast: Forecast
    opened: bool


@dataclass(slots=True)
class Changes:
    revisions: list[Revision] = field(default_factory=list)
    predictions: list[PredictionChange] = field(default_factory=list)


def budget_rule(budget_id: str, level: str) -> str:
    """The rule name of a budget threshold firing: ``budget:<id>:low|exhausted``."""
    return f"budget:{budget_id}:{level}"


@dataclass(slots=True)
class _Run:
    """The open run of out-of-range readings at the tail, for one limit."""

    start_ms: int
    peak_c: float
    peak_ms: int
    count: int


class ShipmentMonitor:
    """Live state of one shipment; reports each alarm firing once."""

    def __init__(
        self,
        shipment_id: str,
        profile: Profile,
        *,
        end_ms: int | None = None,
        prior_budget_min: dict[str, float] | None = None,
    ) -> None:
        self.shipment_id = shipment_id
        self.profile = profile
        self.end_ms = end_ms
        self._prior_budget_min = dict(prior_budget_min or {})
        self._changes = Changes()
        self._predicted: dict[LimitKey, Forecast] = {}
        self._critical_keys: tuple[LimitKey, ...] = tuple(
            dict.fromkeys(a.limit_key for a in profile.alarms if a.severity == "critical")
        )
        self._trend = (
            TrendWindow(profile.predict.window_min)
            if profile.predict is not None and self._critical_keys
            else None
        )
        self._gap_ms = round(profile.max_gap_min * MS_PER_MIN)
        self._keys: tuple[LimitKey, ...] = profile.limit_keys()
        self._ts: list[int] = []
        self._temps: list[float] = []
        self._closed: dict[LimitKey, list[Episode]] = {k: [] for k in self._keys}
        self._open: dict[LimitKey, _Run | None] = dict.fromkeys(self._keys)
        self._reported: dict[tuple[str, int], Firing] = {}
        # an episode closed since firings were last computed; with no open run either,
        # nothing can have started firing (the common case: readings in range)
        self._closed_since_check = False

    @property
    def prior_budget_min(self) -> dict[str, float]:
        """Budget minutes the lot used on earlier legs (docs/EVALUATION.md)."""
        return self._prior_budget_min

    @prior_budget_min.setter
    def prior_budget_min(self, value: dict[str, float]) -> None:
        if value != self._prior_budget_min:
            self._prior_budget_min = dict(value)
            self._closed_since_check = True  # thresholds moved: look again

    @property
    def readings(self) -> int:
        return len(self._ts)

    @property
    def last_ms(self) -> int | None:
        return self._ts[-1] if self._ts else None

    def points(self) -> list[tuple[int, float]]:
        return list(zip(self._ts, self._temps, strict=True))

    def crossing(self, firing: Firing) -> tuple[float | None, Episode | None]:
        """The reading that crossed the limit for ``firing`` (its episode's first reading) and
        the episode as far as the readings go (its peak so far); None when no longer held."""
        alarm = next((a for a in self.profile.alarms if a.id == firing.alarm_id), None)
        key = alarm.limit_key if alarm is not None else None
        i = bisect.bisect_left(self._ts, firing.episode_start_ms)
        value = (
            self._temps[i] if i < len(self._ts) and self._ts[i] == firing.episode_start_ms else None
        )
        if key is None or not self._ts:
            return value, None
        episode = next(
            (e for e in self._episodes(key, self._ts[-1]) if e.start_ms == firing.episode_start_ms),
            None,
        )
        return value, episode

    def out_of_range_since(self, key: LimitKey) -> int | None:
        """Device time the run of out-of-range readings at the tail began, for one limit;
        None while the latest reading is in range (an excursion alert then clears)."""
        run = self._open.get(key)
        return None if run is None else run.start_ms

    def mark_reported(self, firings: Iterable[Firing]) -> None:
        """Remember firings already alerted (e.g. loaded from the store at start-up)."""
        self._reported.update(((f.alarm_id, f.episode_start_ms), f) for f in firings)

    def take_changes(self) -> Changes:
        """Revisions and prediction changes since the last call."""
        changes, self._changes = self._changes, Changes()
        return changes

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
                # Reading by reading, not once per batch: a forecast that opens and is
                # overtaken by the crossing inside one batch must open all the same, so
                # in-order arrivals predict alike however they were batched. The trend's
                # sums move with each reading (O(1)), so this costs no refit. (After a
                # late reading the batch's rest is predicted once, at its end.)
                if self._trend is not None:
                    self._trend.push(self._ts, self._temps)
                    self._predict()
        if rebuild:
            self._rebuild()
            self._revise()
            self._resync_trend()
        if not self._ts:
            return []
        return self._new_firings(horizon_ms=self._ts[-1])

    def replace(self, points: Iterable[tuple[int, float]]) -> list[Firing]:
        """Take the whole timeline anew (a backup logger's fill changed); report as :meth:`add`."""
        fresh = prepare(points)
        current = self.points()
        if fresh == current:
            return []
        if fresh[: len(current)] == current:
            return self.add(fresh[len(current) :])
        self._ts = [t for t, _ in fresh]
        self._temps = [v for _, v in fresh]
        if not self._ts:
            self._closed = {k: [] for k in self._keys}
            self._open = dict.fromkeys(self._keys)
            self._revise()
            self._resync_trend()
            return []
        self._rebuild()
        self._revise()
        self._resync_trend()
        return self._new_firings(horizon_ms=self._ts[-1])

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
        # the hot path of ingest: one comparison per limit, written out (docs/EVALUATION.md, strict)
        prev_end = min(ts, self._ts[-1] + self._gap_ms) if self._ts else ts
        for key in self._keys:
            above = key[0] == "above"
            out = temp > key[1] if above else temp < key[1]
            run = self._open[key]
            if run is None:
                if out:
                    self._open[key] = _Run(ts, temp, ts, 1)
            elif out:
                run.count += 1
                if (temp > run.peak_c) if above else (temp < run.peak_c):
                    run.peak_c, run.peak_ms = temp, ts
            else:
                self._closed[key].append(
                    Episode(run.start_ms, prev_end, run.peak_c, run.peak_ms, run.count)
                )
                self._open[key] = None
                self._closed_since_check = True
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
        self._closed_since_check = True

    def _episodes(self, key: LimitKey, horizon_ms: int) -> list[Episode]:
        run = self._open[key]
        if run is None:
            return self._closed[key]
        end = max(run.start_ms, horizon_ms)
        return [*self._closed[key], Episode(run.start_ms, end, run.peak_c, run.peak_ms, run.count)]

    def _all_firings(self, horizon_ms: int) -> list[Firing]:
        found: list[Firing] = []
        for alarm in self.profile.alarms:
            found.extend(firings_for(alarm, self._episodes(alarm.limit_key, horizon_ms)))
        for budget in self.profile.budget:
            episodes = self._episodes(budget.limit_key, horizon_ms)
            allowance_ms = budget.allowance_min * MS_PER_MIN
            prior_ms = self.prior_budget_min.get(budget.id, 0.0) * MS_PER_MIN
            for level, threshold in (
                ("low", LOW_BUDGET_FRACTION * allowance_ms - prior_ms),
                ("exhausted", allowance_ms - prior_ms),
            ):
                at = reaches_at(episodes, threshold)
                if at is not None:
                    start = max(e.start_ms for e in episodes if e.start_ms <= at)
                    found.append(Firing(budget_rule(budget.id, level), at, start))
        return found

    def _new_firings(self, *, horizon_ms: int) -> list[Firing]:
        if not self._closed_since_check and not any(self._open.values()):
            return []
        self._closed_since_check = False
        new: list[Firing] = []
        for firing in self._all_firings(horizon_ms):
            ident = (firing.alarm_id, firing.episode_start_ms)
            if ident not in self._reported:
                self._reported[ident] = firing
                new.append(firing)
        return new

    def _revise(self) -> None:
        """After out-of-order data: revise reported firings the data now contradicts."""
        if not self._ts:
            for old in self._reported.values():
                self._changes.revisions.append(Revision(old, None))
            self._reported.clear()
            return
        longest = self._ts[-1] + self._gap_ms
        if self.end_ms is not None:
            longest = min(longest, self.end_ms)
        possible = {(f.alarm_id, f.episode_start_ms): f for f in self._all_firings(longest)}
        proven = {(f.alarm_id, f.episode_start_ms): f for f in self._all_firings(self._ts[-1])}
        for ident, old in list(self._reported.items()):
            now = possible.get(ident)
            if now is not None and now.triggered_ms == old.triggered_ms:
                continue
            del self._reported[ident]
            if now is not None:  # same episode start, moved in time (a cumulative sum grew)
                replacement: Firing | None = now
            else:  # the episode now starts elsewhere, or the alarm no longer fires
                replacement = next(
                    (
                        f
                        for key, f in sorted(proven.items())
                        if key[0] == old.alarm_id
                        and key not in self._reported
                        and f.episode_start_ms <= old.triggered_ms
                    ),
                    None,
                )
            if replacement is not None:
                self._reported[(replacement.alarm_id, replacement.episode_start_ms)] = replacement
            self._changes.revisions.append(Revision(old, replacement))

    def _resync_trend(self) -> None:
        """The series changed other than at its end: recompute the trend, then predict."""
        if self._trend is not None:
            self._trend.resync(self._ts, self._temps)
            self._predict()

    def _predict(self) -> None:
        """Open or withdraw one prediction per critical limit (docs/EVALUATION.md)."""
        if self._trend is None or self.profile.predict is None:
            return
        trend = self._trend.trend(self._ts) if self._ts else None
        for key in self._critical_keys:
            f = (
                None
                if trend is None
                else crossing(
                    trend,
                    direction=key[0],
                    limit_c=key[1],
                    window_min=self.profile.predict.window_min,
                    horizon_min=self.profile.predict.horizon_min,
                )
            )
            was = self._predicted.get(key)
            if f is not None and was is None:
                self._predicted[key] = f
                self._changes.predictions.append(PredictionChange(f, opened=True))
            elif f is None and was is not None:
                del self._predicted[key]
                self._changes.predictions.append(PredictionChange(was, opened=False))
