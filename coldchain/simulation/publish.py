"""Publishing simulator messages over MQTT: the only module that imports paho.

:func:`publish` sends a list of messages through one paho client (MQTT 3.1.1
or 5), optionally paced by the messages' device time, and returns once the
broker has acknowledged every QoS 1/2 message. :class:`Collector` is the
matching subscriber, for tests and checks.

Why the publisher keeps its own window of unacknowledged messages
(``max_inflight``, default 100), measured on paho 2.x:

- paho keys in-flight QoS > 0 messages by their 16-bit message id: with more
  than 65,535 unacknowledged messages a new one silently overwrites an old
  one, which is then never sent;
- on every PUBACK paho rescans its whole in-flight list, so a window of 1000
  publishes about half as fast as one of 100.

The window is a condition variable taken before ``client.publish`` and given
back in ``on_publish``; paho's own in-flight limit is set to the same size so
that it never queues behind us.

Errors::

    PublishError       the broker cannot be reached, refused us, or stopped acking
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol, Self
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

DEFAULT_URL = "mqtt://127.0.0.1:1883"
DEFAULT_MAX_INFLIGHT = 100
MAX_INFLIGHT_LIMIT = 65_535
"""paho's message ids are 16 bit; beyond this many in flight they collide."""
CONNECT_TIMEOUT_S = 10.0
ACK_TIMEOUT_S = 60.0
"""Give up when the broker acknowledges nothing for this long."""
PROGRESS_EVERY_S = 0.1
KEEPALIVE_S = 60

MqttVersion = Literal["3.1.1", "5"]


class PublishError(Exception):
    """The broker could not be reached, refused the connection or stopped
    acknowledging. The message names the broker and says what happened."""


@dataclass(frozen=True, slots=True)
class BrokerURL:
    """``mqtt://[user[:password]@]host[:port]`` (``mqtts://`` for TLS, port 8883)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> BrokerURL:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            msg = f"broker URL {url!r} must look like mqtt://[user:pass@]host[:port] (or mqtts://)"
            raise ValueError(msg)
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            msg = f"broker URL {url!r} has an invalid port"
            raise ValueError(msg) from exc
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
            tls=tls,
        )

    def __str__(self) -> str:
        # Never print the password.
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


class Publishable(Protocol):
    """What :func:`publish` needs of a message (:class:`coldchain.simulation.fleet.Message`
    fits)."""

    @property
    def topic(self) -> str: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def qos(self) -> int: ...
    @property
    def retain(self) -> bool: ...
    @property
    def device_time_ms(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A plain message, e.g. for the ``(topic, payload)`` pairs of
    :mod:`coldchain.simulation.loadgen`."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    device_time_ms: int = 0


@dataclass(frozen=True, slots=True)
class PublishStats:
    """``messages`` handed to paho; ``acked`` confirmed by the broker (QoS 0:
    written to the socket); ``refused`` answered with an MQTT 5 error reason;
    ``lost`` QoS 0 messages dropped while disconnected."""

    messages: int
    acked: int
    refused: int
    lost: int
    payload_bytes: int
    elapsed_s: float

    @property
    def msgs_per_s(self) -> float:
        return self.messages / self.elapsed_s if self.elapsed_s > 0 else 0.0


class _Window:
    """At most ``size`` messages handed to paho and not yet acknowledged."""

    def __init__(self, size: int, ack_timeout_s: float) -> None:
        self._cond = threading.Condition()
        self._size = size
        self._ack_timeout_s = ack_timeout_s
        self._inflight = 0
        self.acked = 0
        self.refused = 0
        self.lost = 0

    def _stalled(self) -> PublishError:
        return PublishError(
            f"the broker acknowledged nothing for {self._ack_timeout_s:.0f} s "
            f"({self._inflight} messages in flight)"
        )

    def take(self) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._inflight < self._size, self._ack_timeout_s):
                raise self._stalled()
            self._inflight += 1

    def give_back(self, *, refused: bool = False, lost: bool = False) -> None:
        with self._cond:
            self._inflight -= 1
            if refused:
                self.refused += 1
            elif lost:
                self.lost += 1
            else:
                self.acked += 1
            self._cond.notify_all()

    def drain(self, tick: Callable[[], None]) -> None:
        """Wait until nothing is in flight, calling ``tick`` (outside the lock) now and then."""
        deadline = time.monotonic() + self._ack_timeout_s
        while True:
            with self._cond:
                before = self._inflight
                if not before:
                    return
                self._cond.wait(PROGRESS_EVERY_S)
                if self._inflight < before:
                    deadline = time.monotonic() + self._ack_timeout_s
                elif time.monotonic() > deadline:
                    raise self._stalled()
            tick()


def _client(broker: BrokerURL, client_id: str, mqtt_version: MqttVersion) -> mqtt.Client:
    if mqtt_version == "5":
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
    else:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv311,
            clean_session=True,
        )
    if broker.username is not None:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        client.tls_set_context(ssl.create_default_context())
    return client


def _connect(client: mqtt.Client, broker: BrokerURL) -> None:
    """Connect and start paho's network thread; raise :class:`PublishError` on refusal."""
    connected = threading.Event()
    refusal: list[str] = []

    def on_connect(
        _client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            refusal.append(str(reason_code))
        connected.set()

    client.on_connect = on_connect
    try:
        client.connect(broker.host, broker.port, keepalive=KEEPALIVE_S)
    except (OSError, ssl.SSLError) as exc:
        msg = f"cannot connect to the MQTT broker at {broker}: {exc}"
        raise PublishError(msg) from exc
    client.loop_start()
    if not connected.wait(CONNECT_TIMEOUT_S) or refusal:
        client.loop_stop()
        reason = refusal[0] if refusal else f"no CONNACK within {CONNECT_TIMEOUT_S:.0f} s"
        msg = f"the MQTT broker at {broker} refused the connection: {reason}"
        raise PublishError(msg)


def _speed(
    messages: Sequence[Publishable], speed: float | None, duration_s: float | None
) -> float | None:
    """Device-time ms per wall ms, or None for as fast as possible."""
    if speed is not None and duration_s is not None:
        msg = "give either speed or duration_s, not both"
        raise ValueError(msg)
    if speed is not None:
        if speed <= 0:
            msg = f"speed must be positive, got {speed}"
            raise ValueError(msg)
        return speed
    if duration_s is None or not messages:
        return None
    if duration_s <= 0:
        msg = f"duration_s must be positive, got {duration_s}"
        raise ValueError(msg)
    first = messages[0].device_time_ms
    span_ms = max(m.device_time_ms for m in messages) - first
    return span_ms / (duration_s * 1000) if span_ms > 0 else None


def publish(
    messages: Sequence[Publishable],
    *,
    url: str = DEFAULT_URL,
    client_id: str,
    speed: float | None = None,
    duration_s: float | None = None,
    max_inflight: int = DEFAULT_MAX_INFLIGHT,
    on_progress: Callable[[int, int], None] | None = None,
    mqtt_version: MqttVersion = "3.1.1",
    ack_timeout_s: float = ACK_TIMEOUT_S,
) -> PublishStats:
    """Publish ``messages`` in order and wait until the broker has acknowledged them all.

    Pacing: ``speed`` is device-time ms per wall-clock ms (1440 plays a day in
    a minute); ``duration_s`` spreads the messages' device-time span over that
    many seconds; with neither, messages go out as fast as the window allows.
    A message is sent once the wall clock reaches its device time on that
    scale; a late upload (device time behind what was already sent) goes out
    at once, in list order. ``on_progress(acked, total)`` is called from this
    thread about every 0.1 s and at the end.
    """
    if not 1 <= max_inflight <= MAX_INFLIGHT_LIMIT:
        msg = f"max_inflight must be between 1 and {MAX_INFLIGHT_LIMIT}, got {max_inflight}"
        raise ValueError(msg)
    pace = _speed(messages, speed, duration_s)
    broker = BrokerURL.parse(url)
    window = _Window(max_inflight, ack_timeout_s)
    total = len(messages)

    def on_publish(
        _client: mqtt.Client,
        _userdata: Any,
        _mid: int,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        # paho's network thread; must never block on anything the publishing thread holds.
        window.give_back(refused=reason_code.is_failure)

    last_progress = 0.0

    def progress(*, force: bool = False) -> None:
        nonlocal last_progress
        now = time.monotonic()
        if on_progress is not None and (force or now - last_progress >= PROGRESS_EVERY_S):
            last_progress = now
            on_progress(window.acked + window.refused + window.lost, total)

    client = _client(broker, client_id, mqtt_version)
    client.max_inflight_messages_set(max_inflight)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    _connect(client, broker)
    payload_bytes = 0
    started = time.monotonic()
    try:
        device0 = messages[0].device_time_ms if messages else 0
        device_max = device0
        for message in messages:
            if pace is not None:
                device_max = max(device_max, message.device_time_ms)
                delay = started + (device_max - device0) / pace / 1000 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            window.take()
            info = client.publish(
                message.topic, message.payload, qos=message.qos, retain=message.retain
            )
            payload_bytes += len(message.payload)
            if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and message.qos == 0:
                window.give_back(lost=True)  # QoS 0 while reconnecting: gone, like on a device
            elif info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                # NO_CONN with QoS > 0: paho keeps it and sends it on reconnect.
                window.give_back(refused=True)
                msg = f"paho refused to publish on {message.topic}: {mqtt.error_string(info.rc)}"
                raise PublishError(msg)
            progress()
        window.drain(progress)
        elapsed = time.monotonic() - started
    finally:
        with contextlib.suppress(Exception):  # best effort: the result is already decided
            client.disconnect()
        client.loop_stop()
    progress(force=True)
    return PublishStats(
        messages=total,
        acked=window.acked,
        refused=window.refused,
        lost=window.lost,
        payload_bytes=payload_bytes,
        elapsed_s=elapsed,
    )


class Collector:
    """Subscribes to ``topic_filter`` and keeps every message as ``(topic, payload)``.

    A context manager: connected and subscribed on entry (SUBACK received),
    disconnected on exit. Messages are collected on paho's network thread.
    """

    def __init__(
        self,
        topic_filter: str,
        *,
        url: str = DEFAULT_URL,
        client_id: str,
        qos: int = 1,
        mqtt_version: MqttVersion = "3.1.1",
    ) -> None:
        self._broker = BrokerURL.parse(url)
        self._filter = topic_filter
        self._qos = qos
        self._client = _client(self._broker, client_id, mqtt_version)
        self._cond = threading.Condition()
        self._messages: list[tuple[str, bytes]] = []
        self._subscribed = threading.Event()
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._cond:
            self._messages.append((message.topic, bytes(message.payload)))
            self._cond.notify_all()

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _mid: int,
        _reason_codes: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        self._subscribed.set()

    def __enter__(self) -> Self:
        _connect(self._client, self._broker)
        self._client.subscribe(self._filter, qos=self._qos)
        if not self._subscribed.wait(CONNECT_TIMEOUT_S):
            self._client.loop_stop()
            msg = f"no SUBACK for {self._filter!r} from {self._broker}"
            raise PublishError(msg)
        return self

    def __exit__(
        self,
        _exc_type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(Exception):
            self._client.disconnect()
        self._client.loop_stop()

    @property
    def messages(self) -> list[tuple[str, bytes]]:
        with self._cond:
            return list(self._messages)

    def wait_for(self, count: int, timeout_s: float) -> list[tuple[str, bytes]]:
        """Every message so far, once at least ``count`` arrived or ``timeout_s`` passed."""
        with self._cond:
            self._cond.wait_for(lambda: len(self._messages) >= count, timeout_s)
            return list(self._messages)
