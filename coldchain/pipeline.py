"""The ingest pipeline: messages in, readings stored, findings raised (docs/PROTOCOL.md,
docs/EVALUATION.md, docs/ALERTS.md).

Transport-free: :class:`Pipeline` takes ``(topic, payload, received_ms)``
messages in batches from whoever receives them (the MQTT subscriber's writer,
the CSV importer, tests) and does, per batch and in one transaction:

1. decode every message (pure); every reject goes to dead letters with its
   reason, and a bad message never stops the batch;
2. store the readings, deduplicated; conflicting copies go to the audit log;
3. feed the new readings to each affected shipment's
   :class:`~coldchain.streaming.ShipmentMonitor` and raise an alert for every
   new firing, plus logger-health alerts (clock skew, sensor fault, battery).

The writers that batch a transport's messages for it, in a thread or in a
child process, are in :mod:`coldchain.ingest`.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from coldchain.alerting import Alerting
from coldchain.alerts import (
    Alert,
    alarm_alert,
    budget_alert,
    logger_alert,
    prediction_alert,
    revision_alert,
)
from coldchain.clock import Clock
from coldchain.config import Settings
from coldchain.custody import decode_custody_event, record_custody_event
from coldchain.decoding import decode_status, decode_telemetry
from coldchain.errors import DecodeError
from coldchain.evaluation import Evaluation, Firing, LimitKey, prepare
from coldchain.health import HealthEvent, HealthLimits, LoggerHealth
from coldchain.models import MS_PER_MIN, Reading, Reject, Shipment, ShipmentStatus, iso
from coldchain.profiles import ProfileSet
from coldchain.service import prior_budget_min, profile_for, shipment_series
from coldchain.store import Store
from coldchain.streaming import ShipmentMonitor
from coldchain.timeline import disagreements, merge
from coldchain.topics import parse_topic

log = logging.getLogger("coldchain.pipeline")

Message = tuple[str, bytes, int]
"""``(topic, payload, received_ms)`` as a transport hands it over."""

AlertSink = Callable[[Alert], None]

Origin = tuple[str, str]
"""``(topic, place)`` a message's rejects are dead-lettered under, e.g.
``("import:readings.csv", "line 3")``."""


@dataclass
class Counters:
    """What the pipeline has done since start (exported as metrics)."""

    messages: int = 0
    readings: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0
    alerts: int = 0
    batches: int = 0
    by_reason: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def _reason_class(reason: str) -> str:
    return reason.split(":", 1)[0][:40]


class Pipeline:
    """Decode, store, evaluate and alert; one instance per process, fed by one thread."""

    def __init__(
        self,
        store: Store,
        profiles: ProfileSet,
        settings: Settings,
        *,
        clock: Clock,
        alert_sinks: Sequence[AlertSink] = (),
        alerting: Alerting | None = None,
    ) -> None:
        self.store = store
        self.profiles = profiles
        self.settings = settings
        self.clock = clock
        self.alert_sinks = list(alert_sinks)
        # Whoever runs the pipeline (writer thread, child process, importer) queues
        # notifications per the configured routes; the dispatcher may run elsewhere.
        self.alerting = alerting or Alerting(
            store,
            profiles,
            routing=settings.load_routing(products=profiles.profiles.keys()),
            api_base_url=settings.alerts.api_base_url,
        )
        self._ongoing: dict[str, dict[str, tuple[LimitKey, int]]] = defaultdict(dict)
        self.prefix = settings.broker.topic_prefix
        self.counters = Counters()
        self._monitors: dict[str, ShipmentMonitor] = {}
        self._series: dict[str, dict[str, list[tuple[int, float]]]] = {}
        self._offsets: dict[str, float] = {}
        self._shipments: dict[str, Shipment] = {}
        self._by_logger: dict[str, list[str]] = defaultdict(list)
        self._health: dict[str, LoggerHealth] = {}
        self._lock = threading.RLock()
        self.reload_shipments()

    # -- shipments ---------------------------------------------------------------

    def reload_shipments(self) -> list[Alert]:
        """(Re)load open shipments and their monitors from the store.

        Firings found in stored data whose alert is not in the store yet (data
        imported, or stored before the shipment was registered) are raised now.
        """
        with self._lock:
            known = {
                s.id: s for s in self.store.list_shipments() if s.status != ShipmentStatus.CLOSED
            }
            for sid in list(self._monitors):
                if sid not in known:
                    del self._monitors[sid]
                    self._ongoing.pop(sid, None)
            self._by_logger.clear()
            pending: list[Alert] = []
            for shipment in known.values():
                for logger in shipment.loggers:  # primary first, backups fill its gaps
                    self._by_logger[logger].append(shipment.id)
            self._offsets = self.store.logger_calibrations()
            old, self._shipments = self._shipments, known
            for shipment in known.values():
                if shipment.id not in self._monitors or old.get(shipment.id) != shipment:
                    pending.extend(self._load_monitor(shipment))
                elif shipment.lot:  # earlier legs of the lot may have consumed more since
                    self._monitors[shipment.id].prior_budget_min = prior_budget_min(
                        self.store, self.profiles, shipment, now_ms=self.clock.now_ms()
                    )
            with self.store.transaction():
                raised = self._store_alerts(pending, self.clock.now_ms())
            self._emit(raised)
            return raised

    def _load_monitor(self, shipment: Shipment) -> list[Alert]:
        now = self.clock.now_ms()
        profile = profile_for(self.store, self.profiles, shipment)
        monitor = ShipmentMonitor(
            shipment.id,
            profile,
            end_ms=shipment.end_ms,
            prior_budget_min=prior_budget_min(self.store, self.profiles, shipment, now_ms=now),
        )
        self._monitors[shipment.id] = monitor
        series = shipment_series(self.store, shipment)
        if len(shipment.loggers) > 1:  # kept only where backups must be merged
            self._series[shipment.id] = series
        stored = self.store.list_alerts(shipment_id=shipment.id)
        existing = {a.id for a in stored}
        self._ongoing[shipment.id] = {}
        for alert in stored:
            self._track(alert)
        firings = (
            self._feed(shipment, series)
            if len(shipment.loggers) > 1
            else monitor.add(series.get(shipment.loggers[0], []))
        )
        alerts = self._monitor_alerts(shipment.id, firings, now)
        return [a for a in alerts if a.id not in existing]

    def _feed(self, shipment: Shipment, new: Mapping[str, list[tuple[int, float]]]) -> list[Firing]:
        """Give a shipment's monitor its new readings; with backups, the merged timeline.

        A single-logger shipment's readings go straight to its monitor, which keeps
        them in order itself; only shipments with backups keep per-logger series.
        """
        monitor = self._monitors[shipment.id]
        if len(shipment.loggers) == 1:
            return monitor.add(new.get(shipment.loggers[0], []))
        series = self._series[shipment.id]
        for logger, points in new.items():
            series[logger] = prepare([*series.get(logger, []), *points])
        gap_ms = round(monitor.profile.max_gap_min * MS_PER_MIN)
        return monitor.replace(
            merge([series.get(lg, []) for lg in shipment.loggers], gap_ms=gap_ms)
        )

    def monitor(self, shipment_id: str) -> ShipmentMonitor:
        with self._lock:
            return self._monitors[shipment_id]

    def evaluate(self, shipment_id: str, *, now_ms: int | None = None) -> Evaluation:
        """The live evaluation of an open shipment (same rules as the batch path)."""
        with self._lock:
            return self._monitors[shipment_id].evaluate(now_ms=now_ms or self.clock.now_ms())

    # -- batches -----------------------------------------------------------------

    def handle(
        self, messages: Sequence[Message], *, origins: Sequence[Origin] | None = None
    ) -> list[Alert]:
        """Process one batch; returns the alerts raised. Never raises for bad input.

        ``origins`` (one per message) say where each message really came from, e.g.
        ``("import:readings.csv", "line 3")`` for a file import: a reject is then
        dead-lettered under that topic, its reason prefixed with the place.
        """
        with self._lock:
            return self._handle(messages, origins)

    def _handle(
        self, messages: Sequence[Message], origins: Sequence[Origin] | None = None
    ) -> list[Alert]:
        readings: list[Reading] = []
        rejects: list[Reject] = []
        alerts: list[Alert] = []
        now = self.clock.now_ms()
        for index, (topic, payload, received_ms) in enumerate(messages):
            self.counters.messages += 1
            before = len(rejects)
            try:
                parsed = parse_topic(topic, prefix=self.prefix)
                if parsed.kind == "telemetry":
                    decoded = decode_telemetry(
                        payload, logger_id=parsed.ident, topic=topic, received_ms=received_ms
                    )
                    offset = self._offsets.get(decoded.logger_id)
                    readings.extend(
                        decoded.readings
                        if offset is None
                        else _calibrated(decoded.readings, offset)
                    )
                    rejects.extend(decoded.rejects)
                    alerts.extend(
                        self._health_of(
                            decoded.logger_id,
                            decoded.readings,
                            decoded.rejects,
                            decoded.battery_pct,
                            now,
                            received_ms=received_ms,
                        )
                    )
                elif parsed.kind == "status":
                    status = decode_status(payload)
                    self.store.record_logger_status(
                        parsed.ident,
                        ts_ms=received_ms,
                        online=status.online,
                        battery_pct=status.battery_pct,
                    )
                    alerts.extend(
                        self._health_of(
                            parsed.ident, (), (), status.battery_pct, now, received_ms=received_ms
                        )
                    )
                elif parsed.kind == "events":
                    # custody (docs/DOSSIER.md, custody and shipment details): stored, audited
                    event = decode_custody_event(
                        payload, shipment_id=parsed.ident, received_ms=received_ms
                    )
                    record_custody_event(self.store, event, now_ms=now)
                else:
                    raise DecodeError(f"topic kind {parsed.kind!r} is not ingested here")
            except DecodeError as exc:
                rejects.append(Reject(exc.reason, topic, payload, received_ms, _logger_of(topic)))
                if exc.reason.startswith("sensor fault"):
                    alerts.extend(
                        self._health_of(
                            _logger_of(topic) or "",
                            (),
                            rejects[-1:],
                            None,
                            now,
                            received_ms=received_ms,
                        )
                    )
            except Exception as exc:  # a bug must not stop ingestion: keep the message
                log.exception("internal error on a message from %s", topic)
                rejects.append(
                    Reject(
                        f"internal error: {exc!r}", topic, payload, received_ms, _logger_of(topic)
                    )
                )
            if origins is not None and len(rejects) > before:
                where, place = origins[index]
                rejects[before:] = [
                    replace(r, topic=where, reason=f"{place}: {r.reason}") for r in rejects[before:]
                ]
        with self.store.transaction():
            result = self.store.insert_readings(readings)
            self.store.add_dead_letters(rejects)
            for conflict in result.conflicts:
                self.store.audit(
                    actor="pipeline",
                    action="reading_conflict",
                    entity="logger",
                    entity_id=conflict.kept.logger_id,
                    ts_ms=now,
                    detail={
                        "kept": {
                            "ts": iso(conflict.kept.ts_ms),
                            "seq": conflict.kept.seq,
                            "temp_c": conflict.kept.raw_temp_c,
                        },
                        "refused": {
                            "ts": iso(conflict.refused.ts_ms),
                            "seq": conflict.refused.seq,
                            "temp_c": conflict.refused.raw_temp_c,
                        },
                    },
                )
            alerts.extend(self._evaluate_new(result.new, now))
            raised = self._store_alerts(alerts, now)
        self.counters.batches += 1
        self.counters.readings += len(result.new)
        self.counters.duplicates += result.duplicates
        self.counters.conflicts += len(result.conflicts)
        self.counters.rejected += len(rejects)
        for reject in rejects:
            self.counters.by_reason[_reason_class(reject.reason)] += 1
        self._emit(raised)
        return raised

    def tick(self) -> list[Alert]:
        """Scheduled: firings proven by the hold of silent loggers' last readings."""
        with self._lock:
            now = self.clock.now_ms()
            alerts = []
            for sid, monitor in self._monitors.items():
                alerts.extend(self._monitor_alerts(sid, monitor.tick(now), now))
            with self.store.transaction():
                raised = self._store_alerts(alerts, now)
            self._emit(raised)
            return raised

    def _emit(self, raised: Iterable[Alert]) -> None:
        for alert in raised:
            self.counters.alerts += 1
            for sink in self.alert_sinks:
                try:
                    sink(alert)
                except Exception:  # one failing channel must not stop the others
                    log.exception("alert sink %r failed for %s", sink, alert.id)

    def _alert_for(self, sid: str, firing: Firing, monitor: ShipmentMonitor, now: int) -> Alert:
        shipment = self._shipments[sid]
        if firing.alarm_id.startswith("budget:"):
            prior = monitor.prior_budget_min.get(firing.alarm_id.split(":")[1], 0.0)
            return budget_alert(
                firing, shipment=shipment, profile=monitor.profile, prior_min=prior, detected_ms=now
            )
        # the reading that crossed the limit, and the episode's peak as far as the data goes
        value_c, episode = monitor.crossing(firing)
        return alarm_alert(
            firing,
            shipment=shipment,
            profile=monitor.profile,
            value_c=value_c,
            peak_c=None if episode is None else episode.peak_c,
            peak_ms=None if episode is None else episode.peak_ms,
            detected_ms=now,
        )

    def _monitor_alerts(self, sid: str, firings: Sequence[Firing], now: int) -> list[Alert]:
        """Alerts for new firings, revisions (docs/EVALUATION.md, streaming equals batch) and
        prediction changes."""
        monitor = self._monitors[sid]
        shipment = self._shipments[sid]
        alerts = [self._alert_for(sid, f, monitor, now) for f in firings]
        changes = monitor.take_changes()
        for rev in changes.revisions:
            old = self._alert_for(sid, rev.old, monitor, now)
            new = None if rev.new is None else self._alert_for(sid, rev.new, monitor, now)
            why = (
                "late readings moved the finding to " + iso(rev.new.triggered_ms)
                if rev.new is not None
                else "late readings show it no longer holds"
            )
            revised = revision_alert(old, new, detected_ms=now, why=why)
            alerts.append(revised)
            self.store.audit(
                actor="pipeline",
                action="alert_revised",
                entity="alert",
                entity_id=old.id,
                ts_ms=now,
                detail={"superseded_by": revised.id, "why": why, "shipment": sid, "rule": old.rule},
            )
        for change in changes.predictions:
            alert = prediction_alert(
                change.forecast, shipment=shipment, profile=monitor.profile, detected_ms=now
            )
            if change.opened:
                alerts.append(alert)
            else:
                self.store.audit(
                    actor="pipeline",
                    action="prediction_withdrawn",
                    entity="alert",
                    entity_id=alert.id,
                    ts_ms=now,
                    detail={"shipment": sid, "limit_c": change.forecast.limit_c},
                )
                self._resolve(alert.id, now, "the trend no longer forecasts a crossing")
        return alerts

    def _resolve(self, alert_id: str, now: int, why: str) -> None:
        """The alert's condition cleared: resolve it (docs/ALERTS.md; see coldchain.lifecycle)."""
        self.alerting.cleared(alert_id, now_ms=now, why=why)

    def _store_alerts(self, alerts: Sequence[Alert], now: int) -> list[Alert]:
        """Store findings; a new one gets its notifications queued in the same transaction.

        Call inside the caller's ``store.transaction()``: the alert and its pending
        deliveries commit together (the transactional outbox, docs/ALERTS.md).
        """
        raised = []
        for alert in alerts:
            if self.store.upsert_alert(alert):
                raised.append(alert)
                shipment = self._shipments.get(alert.shipment_id)
                self.alerting.raised(alert, now_ms=now, shipment=shipment)
                self._track(alert)
        return raised

    def _track(self, alert: Alert) -> None:
        """Remember an unresolved excursion alert, so that its episode's end clears it."""
        monitor = self._monitors.get(alert.shipment_id)
        if alert.type != "excursion" or alert.state == "resolved" or monitor is None:
            return
        alarm = next((a for a in monitor.profile.alarms if a.id == alert.rule), None)
        if alarm is not None:
            self._ongoing[alert.shipment_id][alert.id] = (alarm.limit_key, alert.triggered_ms)

    def _clear_ended(self, sid: str, now: int) -> None:
        """An excursion's condition clears once the run of out-of-range readings it fired
        in has ended (a reading back in range, or a gap that is not conservative)."""
        ongoing = self._ongoing.get(sid)
        if not ongoing:
            return
        monitor = self._monitors[sid]
        for alert_id, (key, triggered_ms) in list(ongoing.items()):
            since = monitor.out_of_range_since(key)
            if since is None or since > triggered_ms:
                del ongoing[alert_id]
                self._resolve(alert_id, now, "temperature back in range")

    def _evaluate_new(self, new: Sequence[Reading], now: int) -> list[Alert]:
        per_shipment: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for r in new:
            for sid in self._by_logger.get(r.logger_id, ()):
                s = self._shipments[sid]
                if (s.start_ms is None or r.ts_ms >= s.start_ms) and (
                    s.end_ms is None or r.ts_ms <= s.end_ms
                ):
                    per_shipment[sid][r.logger_id].append((r.ts_ms, r.temp_c))
        alerts = []
        for sid, by_logger in per_shipment.items():
            shipment = self._shipments[sid]
            alerts.extend(self._monitor_alerts(sid, self._feed(shipment, by_logger), now))
            self._clear_ended(sid, now)
            if len(shipment.loggers) > 1:
                alerts.extend(self._disagreements(shipment, now))
        return alerts

    def _disagreements(self, shipment: Shipment, now: int) -> list[Alert]:
        series = self._series[shipment.id]
        monitor = self._monitors[shipment.id]
        found = disagreements(
            series.get(shipment.loggers[0], []),
            {lg: series.get(lg, []) for lg in shipment.loggers[1:]},
            gap_ms=round(monitor.profile.max_gap_min * MS_PER_MIN),
            tolerance_c=self.settings.health.sensor_tolerance_c,
        )
        return [
            logger_alert(
                kind="sensor_disagreement",
                shipment_id=shipment.id,
                logger_id=d.backup,
                severity="warning",
                triggered_ms=d.start_ms,
                detected_ms=now,
                value_c=d.max_diff_c,
                message=(
                    f"Shipment {shipment.id}: loggers {shipment.loggers[0]} and {d.backup} "
                    f"differ by up to {d.max_diff_c:.1f} °C (tolerance "
                    f"{self.settings.health.sensor_tolerance_c:g} °C) for "
                    f"{d.minutes:.0f} min from {iso(d.start_ms)}; check both probes' "
                    "placement and calibration"
                ),
            )
            for d in found
        ]

    # -- logger health (docs/PROTOCOL.md, docs/ALERTS.md) ------------------------------------------

    def _health_of(
        self,
        logger_id: str,
        readings: Sequence[Reading],
        rejects: Sequence[Reject],
        battery_pct: float | None,
        now: int,
        *,
        received_ms: int | None = None,
    ) -> list[Alert]:
        if not logger_id:
            return []
        health = self._logger_health(logger_id)
        events = health.observe(
            received_ms=received_ms or now,
            readings=readings,
            rejects=rejects,
            battery_pct=battery_pct,
        )
        return self._health_alerts(logger_id, events, now)

    def _logger_health(self, logger_id: str) -> LoggerHealth:
        health = self._health.get(logger_id)
        if health is None:
            hs = self.settings.health
            health = LoggerHealth(
                logger_id,
                HealthLimits(
                    clock_skew_min=hs.clock_skew_min,
                    sensor_fault_repeat=hs.sensor_fault_repeat,
                    battery_low_pct=hs.battery_low_pct,
                    silence_min=hs.silence_min,
                ),
            )
            self._health[logger_id] = health
        return health

    def _health_alerts(
        self, logger_id: str, events: Sequence[HealthEvent], now: int
    ) -> list[Alert]:
        found: list[Alert] = []
        for event in events:
            for sid in self._by_logger.get(logger_id, ()):
                alert = logger_alert(
                    kind=event.kind,
                    shipment_id=sid,
                    logger_id=logger_id,
                    severity="warning",
                    triggered_ms=event.since_ms,
                    detected_ms=now,
                    message=f"Shipment {sid}: {event.message}",
                    value_c=event.value,
                )
                if event.opened:
                    found.append(alert)
                else:
                    self._resolve(alert.id, now, event.message)
        return found

    def check_silence(self) -> list[Alert]:
        """Scheduled: ``logger_silent`` for loggers of shipments in transit (docs/ALERTS.md, logger
        health)."""
        with self._lock:
            now = self.clock.now_ms()
            alerts: list[Alert] = []
            for logger_id, sids in self._by_logger.items():
                if any(self._shipments[s].status == ShipmentStatus.IN_TRANSIT for s in sids):
                    health = self._logger_health(logger_id)
                    alerts += self._health_alerts(logger_id, health.check_silence(now), now)
            with self.store.transaction():
                raised = self._store_alerts(alerts, now)
            self._emit(raised)
            return raised

    # -- shipments' lifecycle -------------------------------------------------------

    def deliver(self, shipment_id: str, *, end_ms: int) -> Shipment:
        """Mark delivered at device time ``end_ms``: the last reading's hold stops there."""
        with self._lock:
            shipment = replace(
                self.store.get_shipment(shipment_id), status=ShipmentStatus.DELIVERED, end_ms=end_ms
            )
            self.store.update_shipment(shipment)
            self.store.audit(
                actor="pipeline",
                action="delivered",
                entity="shipment",
                entity_id=shipment_id,
                ts_ms=self.clock.now_ms(),
                detail={"end": iso(end_ms)},
            )
            self.reload_shipments()
            return shipment


def _calibrated(readings: Sequence[Reading], offset_c: float) -> list[Reading]:
    """docs/EVALUATION.md, coverage: the certificate's offset is added to raw values; both are
    kept."""
    return [replace(r, temp_c=r.temp_c + offset_c) for r in readings]


def _logger_of(topic: str) -> str | None:
    parts = topic.split("/")
    if "loggers" in parts:
        i = parts.index("loggers")
        if i + 1 < len(parts):
            return parts[i + 1][:64]
    return None


def dead_letters_for(messages: Sequence[Message], reason: str) -> list[Reject]:
    """Whole messages that could not be handled, as dead letters saying ``reason``."""
    return [
        Reject(reason, topic, payload, received, _logger_of(topic))
        for topic, payload, received in messages
    ]
