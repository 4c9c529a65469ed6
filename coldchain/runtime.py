"""A running coldchain: broker connection, writer, pipeline, scheduler, alert channels.

Used by ``coldchain serve`` and ``coldchain demo``. With no broker URL
configured, the embedded broker is started in-process (docs/BROKER.md).

With ``[ingest] mode = "process"`` (the default) the pipeline runs in a child
process (:class:`~coldchain.ingest.ProcessWriter`) with its own store
connection; everything else (MQTT, scheduler, dispatcher, alert sinks) stays
here. ``rt.writer`` is the way to the pipeline in either mode.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Self

from apscheduler.schedulers.background import BackgroundScheduler

from coldchain.alerting import Alerting
from coldchain.alerts import Alert
from coldchain.broker import EmbeddedBroker
from coldchain.channels import Channel, build_channels
from coldchain.clock import Clock
from coldchain.config import Settings
from coldchain.dispatcher import Dispatcher
from coldchain.errors import IngestError
from coldchain.ingest import IngestWriter, PipelineFactory, ProcessWriter, Writer
from coldchain.mqtt import MqttVersion, Publisher, Subscriber
from coldchain.pipeline import Pipeline
from coldchain.profiles import ProfileSet
from coldchain.routing import AlertRouting
from coldchain.store import Store
from coldchain.topics import subscriptions

log = logging.getLogger("coldchain.runtime")

RELOAD_INTERVAL_S = 5
"""How often the shipment registry is re-read from the store."""

TICK_INTERVAL_S = 30
"""How often open shipments' holds are re-checked against the wall clock."""

DISPATCH_DRAIN_ON_STOP_S = 3.0
"""On stop, how long notifications already due may still go out (the rest stay queued)."""


class Runtime:
    """Start with ``with Runtime(...) as rt:``; everything stops on exit."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        profiles: ProfileSet,
        *,
        clock: Clock,
        worker: bool = False,
        extra_sinks: tuple[Callable[[Alert], None], ...] = (),
        client_suffix: str = "",
        tick_interval_s: float = TICK_INTERVAL_S,
        embedded_port: int = 0,
        embedded_host: str = "127.0.0.1",
        routing: AlertRouting | None = None,
        channels: Mapping[str, Channel] | None = None,
        escalation_check_s: float | None = None,
        on_ingest_failure: Callable[[IngestError], None] | None = None,
        wall_clock_checks: bool = True,
    ) -> None:
        """``embedded_host``/``embedded_port``: where the embedded broker listens when
        no broker URL is set (port 0: a free one).
        ``routing`` defaults to the ``[alerts] routes`` file, validated here;
        ``channels`` replaces the adapters of those names (tests, embedding).
        ``on_ingest_failure`` is called (on a background thread) if the ingest
        process dies; its unconfirmed messages are then in dead letters.

        ``wall_clock_checks=False`` leaves out the jobs that compare device time with
        the machine's clock — the hold tick, logger-silence checks and registry
        reloads — for a replay (``coldchain demo``) that compresses days of device
        time into seconds: there they would measure the replay's pacing and the
        machine's load, not the loggers, and the alerts would differ run to run."""
        self._embedded_port = embedded_port
        self._embedded_host = embedded_host
        self.settings = settings
        self.embedded: EmbeddedBroker | None = None
        self.broker_url = settings.broker.url or ""
        self.routing = routing or settings.load_routing(products=profiles.profiles.keys())
        self.alerting = Alerting(
            store, profiles, routing=self.routing, api_base_url=settings.alerts.api_base_url
        )
        self.store = store
        self.clock = clock
        self.dispatcher: Dispatcher | None = None
        self._channel_overrides = dict(channels or {})
        self._escalation_check_s = escalation_check_s or settings.alerts.escalation_check_s
        sinks = [self._alert_committed, *extra_sinks]
        self.writer: IngestWriter
        if settings.ingest.mode == "process":
            # Alerts come back from the child; the sinks (and the dispatcher they
            # wake, and the demo's screen) run here.
            self.writer = ProcessWriter(
                PipelineFactory(settings, clock, profiles=profiles, routing=self.routing),
                batch_max=settings.ingest.batch_max,
                batch_wait_ms=settings.ingest.batch_wait_ms,
                alert_sinks=sinks,
                fallback_store=store,
                on_failure=on_ingest_failure,
            )
        else:
            pipeline = Pipeline(
                store,
                profiles,
                settings,
                clock=clock,
                alert_sinks=sinks,
                alerting=self.alerting,
            )
            self.writer = Writer(
                pipeline,
                batch_max=settings.ingest.batch_max,
                batch_wait_ms=settings.ingest.batch_wait_ms,
            )
        client_id = settings.broker.client_id + client_suffix
        if worker:
            client_id += f"-{os.getpid()}"
        self._client_id = client_id
        self._shared = settings.broker.shared_group or ("coldchain" if worker else None)
        self.subscriber: Subscriber | None = None
        self.publisher: Publisher | None = None
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self._tick_interval_s = tick_interval_s
        self._wall_clock_checks = wall_clock_checks

    def _alert_committed(self, alert: Alert) -> None:
        # The alert and its deliveries are committed: send now, not at the next poll.
        if self.dispatcher is not None:
            self.dispatcher.wake()

    def check_alerts(self) -> None:
        """Scheduled: escalate unacknowledged alerts and release rate-limit digests."""
        now = self.clock.now_ms()
        escalated = self.alerting.escalate_due(now_ms=now)
        digests = self.alerting.release_digests(now_ms=now)
        if (escalated or digests) and self.dispatcher is not None:
            self.dispatcher.wake()

    def start(self) -> Self:
        if not self.broker_url:
            self.embedded = EmbeddedBroker(host=self._embedded_host, port=self._embedded_port)
            self.broker_url = self.embedded.start()
        # amqtt speaks MQTT 3.1.1 only; real brokers get MQTT 5 (session expiry, shared subs)
        protocol = MqttVersion.V311 if self.embedded is not None else MqttVersion.V5
        self.writer.start()
        self.publisher = Publisher(
            url=self.broker_url, client_id=self._client_id + "-alerts", protocol=protocol
        )
        self.publisher.start()
        channels = build_channels(
            self.routing,
            publisher=self.publisher,
            prefix=self.settings.broker.topic_prefix,
            clock=self.clock,
        )
        channels.update(self._channel_overrides)
        log.info("alert channels %s, routes from %s", ", ".join(channels), self.routing.source)
        self.dispatcher = Dispatcher(self.store, channels, self.routing, clock=self.clock).start()
        self.subscriber = Subscriber(
            url=self.broker_url,
            client_id=self._client_id,
            topics=subscriptions(prefix=self.settings.broker.topic_prefix),
            on_message=self.writer.submit,
            shared_group=self._shared,
            protocol=protocol,
        )
        self.subscriber.start()
        self.scheduler.add_job(
            self.check_alerts,
            "interval",
            seconds=self._escalation_check_s,
            id="alert-escalation",
            max_instances=1,
            coalesce=True,
        )
        if self._wall_clock_checks:
            self._add_wall_clock_jobs()
        self.scheduler.start()
        return self

    def _add_wall_clock_jobs(self) -> None:
        self.scheduler.add_job(
            self.writer.tick,
            "interval",
            seconds=self._tick_interval_s,
            id="hold-tick",
            max_instances=1,
            coalesce=True,
        )
        # shipments registered while we run (CLI, API) are picked up within seconds
        self.scheduler.add_job(
            self.writer.reload_shipments,
            "interval",
            seconds=RELOAD_INTERVAL_S,
            id="reload-shipments",
            max_instances=1,
            coalesce=True,
        )
        silence_s = self.settings.health.silence_min * 60
        self.scheduler.add_job(
            self.writer.check_silence,
            "interval",
            seconds=max(1.0, min(60.0, silence_s / 4)),
            id="logger-silence",
            max_instances=1,
            coalesce=True,
        )

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        if self.subscriber is not None:
            self.subscriber.stop()
        self.writer.stop()
        if self.dispatcher is not None:
            if not self.dispatcher.drain(DISPATCH_DRAIN_ON_STOP_S):
                log.warning("stopping with alert notifications still queued; sent on restart")
            self.dispatcher.stop()
        if self.publisher is not None:
            self.publisher.stop()
        if self.embedded is not None:
            self.embedded.stop()

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()  # a half-started runtime must not leave the ingest process behind
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
