"""The embedded zero-setup broker (docs/BROKER.md), tested with real MQTT clients.

Raw paho clients check the broker on its own; coldchain's Subscriber and
Publisher check the behaviour `coldchain demo`/`serve` rely on. pytest turns
warnings (unclosed sockets, loops, unretrieved task errors in threads) into
errors, so every test here also checks that the broker stops cleanly.
"""

from __future__ import annotations

import gc
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import paho.mqtt.client as mqtt
import pytest
from amqtt.broker import Broker
from amqtt.session import Session
from paho.mqtt.enums import CallbackAPIVersion

from coldchain.broker import EmbeddedBroker
from coldchain.errors import BrokerError
from coldchain.mqtt import MqttVersion, Publisher, Subscriber

WAIT_S = 10.0
HANG_S = 30.0


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running
    gc.collect()  # surface ResourceWarnings from anything the broker left open


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _broker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "coldchain-embedded-broker"]


class _Collector:
    """Thread-safe sink for on_message; wait() until n messages arrived."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self._cond = threading.Condition()

    def __call__(self, topic: str, payload: bytes, received_ms: int) -> None:
        with self._cond:
            self.payloads.append(payload)
            self._cond.notify_all()

    def wait(self, n: int, timeout_s: float = WAIT_S) -> list[bytes]:
        """Wait for n distinct payloads (QoS 1 may deliver one twice)."""
        with self._cond:
            self._cond.wait_for(lambda: len(set(self.payloads)) >= n, timeout_s)
            return list(self.payloads)


def test_embedded_broker_start_returns_loopback_url(broker: EmbeddedBroker) -> None:
    assert re.fullmatch(r"mqtt://127\.0\.0\.1:\d+", broker.url)
    assert _port(broker.url) > 0
    assert broker.running


def test_embedded_broker_relays_qos1_between_paho_clients(broker: EmbeddedBroker) -> None:
    topic = f"coldchain-test/{uuid.uuid4().hex}/loggers/LG-1/telemetry"
    received: list[mqtt.MQTTMessage] = []
    subscribed = threading.Event()
    arrived = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        received.append(msg)
        arrived.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t-sub", protocol=mqtt.MQTTv311)
    sub.on_message = on_message
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.connect("127.0.0.1", _port(broker.url))
    sub.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t-pub", protocol=mqtt.MQTTv311)
    pub.connect("127.0.0.1", _port(broker.url))
    pub.loop_start()
    try:
        sub.subscribe(topic, qos=1)
        assert subscribed.wait(WAIT_S)
        info = pub.publish(topic, b'{"temp_c": 4.2}', qos=1)
        info.wait_for_publish(WAIT_S)
        assert info.is_published()
        assert arrived.wait(WAIT_S)
    finally:
        pub.disconnect()
        pub.loop_stop()
        sub.disconnect()
        sub.loop_stop()
    assert [(m.topic, m.payload, m.qos) for m in received] == [(topic, b'{"temp_c": 4.2}', 1)]


def _v311_subscriber(url: str, client_id: str, topic: str, sink: _Collector) -> Subscriber:
    return Subscriber(
        url=url,
        client_id=client_id,
        topics=[topic],
        on_message=sink,
        protocol=MqttVersion.V311,
    )


def _until(predicate: Callable[[], bool], what: str) -> None:
    """Poll the broker's state until ``predicate`` holds; the timeout only bounds a hang."""
    deadline = time.monotonic() + HANG_S
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {HANG_S:.0f} s")
        time.sleep(0.02)


def _await_session_sweep(broker: EmbeddedBroker) -> None:
    """Return once amqtt's session monitor has swept since this call began.

    Its sweep (about once a second) drops offline clean sessions: a canary
    clean session connects and leaves; once it is gone, a sweep ran after
    every session that was offline before the call.
    """
    canary = f"canary-{uuid.uuid4().hex[:8]}"
    connected = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=canary, protocol=mqtt.MQTTv311, clean_session=True
    )
    client.on_connect = lambda *_: connected.set()
    client.connect("127.0.0.1", _port(broker.url))
    client.loop_start()
    try:
        assert connected.wait(WAIT_S), "the canary got no CONNACK"
        assert canary in broker.sessions()
    finally:
        client.disconnect()
        client.loop_stop()
    _until(lambda: canary not in broker.sessions(), "amqtt's session sweep dropping the canary")


def test_embedded_broker_keeps_offline_persistent_session(broker: EmbeddedBroker) -> None:
    # amqtt's own anonymous login would drop this session and queue nothing.
    prefix = f"coldchain-test/{uuid.uuid4().hex}"
    client_id = f"worker-{uuid.uuid4().hex[:8]}"
    first, second = _Collector(), _Collector()
    with _v311_subscriber(broker.url, client_id, f"{prefix}/#", first):
        pass
    _until(lambda: broker.sessions().get(client_id) is False, "the session going offline")
    _await_session_sweep(broker)
    assert broker.sessions()[client_id] is False  # offline, and kept by the sweep
    with Publisher(url=broker.url, client_id="offline-pub", protocol=MqttVersion.V311) as pub:
        for i in range(200):
            pub.publish(f"{prefix}/r", f"{i}".encode())
        pub.flush()
    with _v311_subscriber(broker.url, client_id, f"{prefix}/#", second):
        got = second.wait(200)
    assert sorted({int(p) for p in got}) == list(range(200))
    assert first.payloads == []


def test_embedded_broker_routes_what_a_publisher_sent_before_disconnecting(
    broker: EmbeddedBroker,
) -> None:
    # Plain amqtt drops the acknowledged-but-unrouted tail of a publisher
    # that disconnects right after its last PUBACK (up to 40% of 2,000).
    topic = f"coldchain-test/{uuid.uuid4().hex}/t"
    sink = _Collector()
    with _v311_subscriber(broker.url, f"sub-{uuid.uuid4().hex[:8]}", topic, sink):
        with Publisher(url=broker.url, client_id="burst-pub", protocol=MqttVersion.V311) as pub:
            for i in range(2000):
                pub.publish(topic, f"{i}".encode())
            pub.flush()
        got = sink.wait(2000, timeout_s=30)
    assert sorted({int(p) for p in got}) == list(range(2000))


def test_embedded_broker_stop_is_clean_and_idempotent() -> None:
    broker = EmbeddedBroker()
    url = broker.start()
    port = _port(url)
    broker.stop()
    broker.stop()
    gc.collect()
    assert not broker.running
    assert _broker_threads() == []
    with pytest.raises(BrokerError, match="not running"):
        _ = broker.url
    with pytest.raises(BrokerError, match="not running"):
        broker.sessions()
    # The port is released: it can be bound again.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


def test_embedded_broker_stops_with_clients_still_connected() -> None:
    broker = EmbeddedBroker()
    url = broker.start()
    sink = _Collector()
    sub = Subscriber(
        url=url,
        client_id="still-connected",
        topics=["coldchain-test/#"],
        on_message=sink,
        protocol=MqttVersion.V311,
    )
    sub.start()
    try:
        broker.stop()
        assert _broker_threads() == []
    finally:
        sub.stop()
    gc.collect()


def test_embedded_broker_can_restart_on_the_same_port() -> None:
    first = EmbeddedBroker()
    port = _port(first.start())
    first.stop()
    with EmbeddedBroker(port=port) as again:
        assert _port(again.url) == port


def test_two_embedded_brokers_get_different_ports() -> None:
    with EmbeddedBroker() as one, EmbeddedBroker() as two:
        assert one.url != two.url
        assert len(_broker_threads()) == 2
    assert _broker_threads() == []


def test_embedded_broker_port_in_use_raises_broker_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = EmbeddedBroker(port=port)
        with pytest.raises(BrokerError, match=f"127.0.0.1:{port}"):
            broker.start()
    assert not broker.running
    assert _broker_threads() == []


def test_embedded_broker_refuses_shared_subscription_loudly(broker: EmbeddedBroker) -> None:
    # amqtt has no shared subscriptions; silently accepting would deliver nothing.
    sub = Subscriber(
        url=broker.url,
        client_id="shared-worker",
        topics=["coldchain/v1/loggers/+/telemetry"],
        on_message=_Collector(),
        shared_group="coldchain",
        protocol=MqttVersion.V311,
    )
    with pytest.raises(BrokerError, match=r"refused the subscription.*\$share/coldchain/"):
        sub.start()


def test_embedded_broker_refuses_mqtt5_with_advice(broker: EmbeddedBroker) -> None:
    sub = Subscriber(
        url=broker.url,
        client_id="v5-client",
        topics=["coldchain-test/#"],
        on_message=_Collector(),
        protocol=MqttVersion.V5,
        connect_timeout_s=2,
    )
    # amqtt does not answer an MQTT 5 CONNECT; the error says what to do.
    with pytest.raises(BrokerError, match=r"no CONNACK.*MqttVersion\.V311"):
        sub.start()


@pytest.mark.parametrize("port", [-1, 65536])
def test_embedded_broker_rejects_invalid_port(port: int) -> None:
    with pytest.raises(BrokerError, match="port"):
        EmbeddedBroker(port=port)


def test_embedded_broker_start_twice_raises(broker: EmbeddedBroker) -> None:
    with pytest.raises(BrokerError, match="already started"):
        broker.start()


@pytest.mark.parametrize(
    "name", ["_handle_disconnect", "_handle_message_delivery", "stream_connected"]
)
def test_amqtt_still_has_the_internals_the_embedded_broker_overrides(name: str) -> None:
    # The overrides fix message loss and leaked transports (docs/BROKER.md);
    # if an amqtt upgrade renames these, the fixes silently stop applying.
    assert callable(getattr(Broker, name, None))
    assert hasattr(Session(), "delivered_message_queue")
