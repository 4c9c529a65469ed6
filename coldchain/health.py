"""Logger health (docs/PROTOCOL.md, docs/ALERTS.md), pure: each condition opens once and clears
once.

:class:`LoggerHealth` follows one logger. It is told what arrived
(:meth:`LoggerHealth.observe`) and, from a scheduled job, what time it is
(:meth:`LoggerHealth.check_silence`), and answers with :class:`HealthEvent`\\ s:
a condition that started (an alert to raise) or cleared (its alert to resolve).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from coldchain.models import MS_PER_MIN, Reading, Reject, iso

HealthKind = Literal["clock_skew", "sensor_fault", "battery_low", "logger_silent"]


@dataclass(frozen=True, slots=True)
class HealthLimits:
    """Thresholds, from ``[health]`` in the settings."""

    clock_skew_min: float = 5.0
    sensor_fault_repeat: int = 3
    battery_low_pct: float = 15.0
    silence_min: float = 30.0


@dataclass(frozen=True, slots=True)
class HealthEvent:
    """A condition that ``opened`` (raise an alert) or cleared (resolve it)."""

    kind: HealthKind
    opened: bool
    since_ms: int  # when the condition started: part of the alert's identity
    message: str
    value: float | None = None


@dataclass
class LoggerHealth:
    """The health conditions of one logger; ``open`` maps a kind to its start time."""

    logger_id: str
    limits: HealthLimits
    last_seen_ms: int | None = None
    open: dict[HealthKind, int] = field(default_factory=dict)
    faults_in_row: int = 0
    fault_since_ms: int = 0

    def _open(
        self, kind: HealthKind, since: int, message: str, value: float | None = None
    ) -> list[HealthEvent]:
        if kind in self.open:
            return []
        self.open[kind] = since
        return [HealthEvent(kind, True, since, message, value)]

    def _clear(self, kind: HealthKind, message: str) -> list[HealthEvent]:
        since = self.open.pop(kind, None)
        return [] if since is None else [HealthEvent(kind, False, since, message)]

    def observe(
        self,
        *,
        received_ms: int,
        readings: Sequence[Reading] = (),
        rejects: Sequence[Reject] = (),
        battery_pct: float | None = None,
    ) -> list[HealthEvent]:
        """A message from the logger arrived (telemetry or status)."""
        events: list[HealthEvent] = []
        lg = self.logger_id
        self.last_seen_ms = max(self.last_seen_ms or received_ms, received_ms)
        events += self._clear("logger_silent", f"logger {lg} is sending again")
        skew_ms = self.limits.clock_skew_min * MS_PER_MIN
        for r in readings:
            ahead = r.ts_ms - r.received_ms
            if ahead > skew_ms:
                events += self._open(
                    "clock_skew",
                    r.received_ms,
                    f"logger {lg} reports {iso(r.ts_ms)}, {ahead / MS_PER_MIN:.0f} min ahead of "
                    "receive time; readings are kept and evaluated on device time — check its "
                    "clock",
                )
            else:
                events += self._clear("clock_skew", f"logger {lg}'s clock agrees again")
        faults = [r for r in rejects if r.reason.startswith("sensor fault")]
        if readings and not faults:
            self.faults_in_row = 0
            events += self._clear("sensor_fault", f"logger {lg} sends plausible values again")
        if faults and self.faults_in_row == 0:
            self.fault_since_ms = faults[0].received_ms
        self.faults_in_row += len(faults)
        if faults and self.faults_in_row >= self.limits.sensor_fault_repeat:
            events += self._open(
                "sensor_fault",
                self.fault_since_ms,
                f"logger {lg} sent {self.faults_in_row} impossible values in a row "
                f"({faults[-1].reason}); inspect or replace the sensor",
            )
        if battery_pct is not None:
            if battery_pct < self.limits.battery_low_pct:
                events += self._open(
                    "battery_low",
                    received_ms,
                    f"logger {lg} battery at {battery_pct:.0f} % (below "
                    f"{self.limits.battery_low_pct:.0f} %); replace or recharge before it stops",
                    battery_pct,
                )
            else:
                events += self._clear("battery_low", f"logger {lg} battery at {battery_pct:.0f} %")
        return events

    def check_silence(self, now_ms: int) -> list[HealthEvent]:
        """Scheduled: ``logger_silent`` after ``silence_min`` of wall-clock silence."""
        if self.last_seen_ms is None:
            self.last_seen_ms = now_ms  # first look: silence counts from now
            return []
        silent_ms = now_ms - self.last_seen_ms
        if silent_ms < self.limits.silence_min * MS_PER_MIN:
            return []
        return self._open(
            "logger_silent",
            self.last_seen_ms,
            f"no message from logger {self.logger_id} for {silence_text(silent_ms)} "
            f"(since {iso(self.last_seen_ms)}); call the courier to check the shipper",
        )


def silence_text(ms: int) -> str:
    """A duration as people read it, never rounded up: ``15 s``, ``4 min 30 s``, ``2 h 05 min``.

    Truncated to the second (to the minute from an hour on), so the text never claims
    more silence than was observed, and a silence of at least ``silence_min`` never
    reads as "0 min".
    """
    seconds = max(0, ms) // 1000
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
