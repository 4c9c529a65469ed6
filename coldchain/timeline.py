"""Several loggers on one shipment (docs/EVALUATION.md, coverage), pure.

The primary logger's readings are evaluated; a backup's readings fill the time
the primary does not cover (its gaps, and before its first or after its last
reading's hold). Backups are tried in the shipment's order. Two loggers that
disagree by more than ``sensor_tolerance_c`` for more than
:data:`DISAGREEMENT_MIN` minutes are a ``sensor_disagreement``.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from coldchain.models import MS_PER_MIN

DEFAULT_SENSOR_TOLERANCE_C = 2.0
DISAGREEMENT_MIN = 15.0

Point = tuple[int, float]


def fill_gaps(primary: Sequence[Point], backup: Sequence[Point], *, gap_ms: int) -> list[Point]:
    """``primary`` plus the ``backup`` points that fall in time ``primary`` does not cover.

    Both sorted by time, one point per time. A primary reading at ``t`` covers
    ``[t, min(next, t + gap_ms))``.
    """
    if not primary:
        return list(backup)
    times = [t for t, _ in primary]
    merged = list(primary)
    for t, v in backup:
        i = bisect.bisect_right(times, t) - 1  # the primary reading at or before t
        if i >= 0 and (times[i] == t or t < times[i] + gap_ms):
            continue  # covered by the primary
        merged.append((t, v))
    merged.sort()
    return merged


def merge(series: Sequence[Sequence[Point]], *, gap_ms: int) -> list[Point]:
    """The evaluated timeline of a shipment: loggers in priority order, primary first."""
    if not series:
        return []
    merged = list(series[0])
    for backup in series[1:]:
        merged = fill_gaps(merged, backup, gap_ms=gap_ms)
    return merged


@dataclass(frozen=True, slots=True)
class Disagreement:
    """A run where primary and backup differ by more than the tolerance."""

    backup: str
    start_ms: int
    end_ms: int
    max_diff_c: float

    @property
    def minutes(self) -> float:
        return (self.end_ms - self.start_ms) / MS_PER_MIN


def disagreements(
    primary: Sequence[Point],
    backups: Mapping[str, Sequence[Point]],
    *,
    gap_ms: int,
    tolerance_c: float = DEFAULT_SENSOR_TOLERANCE_C,
    min_minutes: float = DISAGREEMENT_MIN,
) -> list[Disagreement]:
    """Runs longer than ``min_minutes`` where a backup's held value differs from the primary's.

    Compared at each primary reading, against the backup's latest reading no
    older than ``gap_ms``; a run lasts from its first differing primary reading
    to the first agreeing one (or the last differing one's time).
    """
    found: list[Disagreement] = []
    for name, series in backups.items():
        times = [t for t, _ in series]
        start = -1
        last = -1
        worst = 0.0
        for t, v in primary:
            i = bisect.bisect_right(times, t) - 1
            held = i >= 0 and t - times[i] < gap_ms  # the backup's reading still stands
            diff = abs(v - series[i][1]) if held else None
            if diff is not None and diff > tolerance_c:
                if start < 0:
                    start, worst = t, diff
                worst = max(worst, diff)
                last = t
                continue
            if start >= 0:
                end = t if diff is not None else last
                if end - start > min_minutes * MS_PER_MIN:
                    found.append(Disagreement(name, start, end, worst))
                start = -1
        if start >= 0 and last - start > min_minutes * MS_PER_MIN:
            found.append(Disagreement(name, start, last, worst))
    return found
