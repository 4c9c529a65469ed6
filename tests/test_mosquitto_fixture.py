"""The `mosquitto_url` broker carries QoS 1 the way docs/PROTOCOL.md, topics relies on it."""

from __future__ import annotations

import queue
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

pytestmark = pytest.mark.mosquitto

WAIT_S = 10.0
SESSION_EXPIRY_S = 300

T = TypeVar("T")


def _next(events: queue.Queue[T], what: str) -> T:
    try:
        return events.get(timeout=WAIT_S)
    except queue.Empty:
        pytest.fail(f"no {what} within {WAIT_S} s")


class _Client:
    """A paho client on its own network thread, with waits instead of callbacks."""

    def __init__(self, url: str, client_id: str) -> None:
        self._address = urlsplit(url)
        self.session_present = False
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._connacks: queue.Queue[tuple[mqtt.ConnectFlags, ReasonCode]] = queue.Queue()
        self._subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self._disconnects: queue.Queue[ReasonCode] = queue.Queue()
        self.paho.on_connect = lambda _c, _u, flags, code, _p: self._connacks.put((flags, code))
        self.paho.on_subscribe = lambda _c, _u, _mid, codes, _p: self._subacks.put(codes)
        self.paho.on_message = lambda _c, _u, message: self.messages.put(message)
        self.paho.on_disconnect = lambda _c, _u, _f, code, _p: self._disconnects.put(code)

    def connect(self, *, persistent: bool = False) -> None:
        properties = Properties(PacketTypes.CONNECT)
        # docs/PROTOCOL.md, topics: subscribers use clean start false and a session expiry.
        properties.SessionExpiryInterval = SESSION_EXPIRY_S if persistent else 0
        assert self._address.hostname is not None
        assert self._address.port is not None
        self.paho.connect(
            self._address.hostname,
            self._address.port,
            clean_start=not persistent,
            properties=properties,
        )
        self.paho.loop_start()
        flags, code = _next(self._connacks, "CONNACK")
        assert not code.is_failure, code
        self.session_present = flags.session_present

    def subscribe(self, topic: str) -> None:
        self.paho.subscribe(topic, qos=1)
        [granted] = _next(self._subacks, "SUBACK")
        assert granted.value == 1, granted  # QoS 1 granted

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.paho.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=WAIT_S)  # returns on PUBACK
        assert info.is_published()

    def disconnect(self) -> None:
        if self.paho.is_connected():
            self.paho.disconnect()
            _next(self._disconnects, "disconnect")
        self.paho.loop_stop()


@pytest.fixture
def connect(mosquitto_url: str) -> Iterator[Callable[..., _Client]]:
    """Connects clients to the test broker and disconnects them afterwards."""
    clients: list[_Client] = []

    def connect(client_id: str = "", **options: Any) -> _Client:
        client = _Client(mosquitto_url, client_id)
        clients.append(client)
        client.connect(**options)
        return client

    yield connect
    for client in clients:
        client.disconnect()


def test_mosquitto_qos1_publish_reaches_subscriber(
    connect: Callable[..., _Client], mqtt_topic_prefix: str
) -> None:
    topic = f"{mqtt_topic_prefix}/loggers/LG-1/telemetry"
    subscriber = connect()
    subscriber.subscribe(topic)

    connect().publish(topic, b'{"temp_c": 4.5}')

    message = _next(subscriber.messages, "message")
    assert (message.topic, message.payload, message.qos) == (topic, b'{"temp_c": 4.5}', 1)


def test_mosquitto_persistent_session_queues_qos1_while_subscriber_offline(
    connect: Callable[..., _Client], mqtt_topic_prefix: str
) -> None:
    topic = f"{mqtt_topic_prefix}/loggers/LG-1/telemetry"
    client_id = f"worker-{uuid.uuid4().hex}"
    subscriber = connect(client_id, persistent=True)
    subscriber.subscribe(topic)
    subscriber.disconnect()

    payloads = [f'{{"seq": {seq}, "temp_c": 5.0}}'.encode() for seq in range(3)]
    publisher = connect()
    for payload in payloads:
        publisher.publish(topic, payload)

    restarted = connect(client_id, persistent=True)
    assert restarted.session_present
    received = [_next(restarted.messages, "queued message").payload for _ in payloads]
    assert sorted(received) == sorted(
        payloads
    )  # arrival order is not promised (docs/PROTOCOL.md, identity and rejects)
