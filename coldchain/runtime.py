"""A running coldchain: broker connection, writer, pipeline, scheduler, alert channels.

Used by ``coldchain serve`` and ``coldchain demo``. With no broker URL
configured, the embedded broker is started in-process (SPEC §10).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from types import TracebackType
from typing import Self

import orjson
from apscheduler.schedulers.background import BackgroundScheduler

from coldchain.alerts import Alert
from coldchain.broker import EmbeddedBroker
from coldchain.clock import Clock
from coldchain.config import Settings
from coldchain.mqtt import MqttVersion, Publisher, Subscriber
from coldchain.pipeline import Pipeline, Writer
from coldchain.profiles import ProfileSet
from coldchain.store import Store
from coldchain.topics import alerts_topic, subscriptions

log = logging.getLogger("coldchain.alerts")

RELOAD_INTERVAL_S = 5
"""How often the shipment registry is re-read from the store."""

TICK_INTERVAL_S = 30
"""How often open shipments' holds are re-checked against the wall clock."""


def log_sink(alert: Alert) -> None:
    """The log channel: one line per alert."""
    log.warning("%s %s %s: %s", alert.severity.upper(), alert.id, alert.type, alert.message)


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
    ) -> None:
        self._embedded_port = embedded_port
        self.settings = settings
        self.embedded: EmbeddedBroker | None = None
        self.broker_url = settings.broker.url or ""
        self.pipeline = Pipeline(
            store,
            profiles,
            settings,
            clock=clock,
            alert_sinks=[log_sink, self._publish_alert, *extra_sinks],
        )
        self.writer = Writer(
            self.pipeline,
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

    def _publish_alert(self, alert: Alert) -> None:
        if self.publisher is not None:
            topic = alerts_topic(alert.shipment_id, prefix=self.settings.broker.topic_prefix)
            self.publisher.publish(topic, orjson.dumps(alert.to_json()), qos=1)

    def start(self) -> Self:
        if not self.broker_url:
            self.embedded = EmbeddedBroker(port=self._embedded_port)
            self.broker_url = self.embedded.start()
        # amqtt speaks MQTT 3.1.1 only; real brokers get MQTT 5 (session expiry, shared subs)
        protocol = MqttVersion.V311 if self.embedded is not None else MqttVersion.V5
        self.writer.start()
        self.publisher = Publisher(
            url=self.broker_url, client_id=self._client_id + "-alerts", protocol=protocol
        )
        self.publisher.start()
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
            self.pipeline.tick,
            "interval",
            seconds=self._tick_interval_s,
            id="hold-tick",
            max_instances=1,
            coalesce=True,
        )
        # shipments registered while we run (CLI, API) are picked up within seconds
        self.scheduler.add_job(
            self.pipeline.reload_shipments,
            "interval",
            seconds=RELOAD_INTERVAL_S,
            id="reload-shipments",
            max_instances=1,
            coalesce=True,
        )
        silence_s = self.settings.health.silence_min * 60
        self.scheduler.add_job(
            self.pipeline.check_silence,
            "interval",
            seconds=max(1.0, min(60.0, silence_s / 4)),
            id="logger-silence",
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.start()
        return self

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        if self.subscriber is not None:
            self.subscriber.stop()
        self.writer.stop()
        if self.publisher is not None:
            self.publisher.stop()
        if self.embedded is not None:
            self.embedded.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
