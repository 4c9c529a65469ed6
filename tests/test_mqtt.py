"""coldchain.mqtt: URL parsing (pure) and Subscriber/Publisher against real brokers.

Broker tests use the session-wide Mosquitto started by ``mosquitto_url`` in
conftest.py (from the shipped configs/mosquitto/mosquitto.conf), with a unique
topic prefix and client ids per test. Tests that must stop and restart a broker
use the embedded one, which they own.
"""

from __future__ import annotations

import gc
import socket
import threading
import time
import uuid
from collections.abc import Callable

import pytest

from coldchain.broker import EmbeddedBroker
from coldchain.errors import BrokerError
from coldchain.mqtt import (
    BrokerAddress,
    MqttVersion,
    Publisher,
    Subscriber,
    parse_broker_url,
)

WAIT_S = 10.0
BOTH_VERSIONS = pytest.mark.parametrize("protocol", [MqttVersion.V5, MqttVersion.V311], ids=str)


class Collector:
    """Thread-safe on_message sink; ``wait(n)`` blocks until n messages arrived."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, int]] = []
        self._cond = threading.Condition()

    def __call__(self, topic: str, payload: bytes, received_ms: int) -> None:
        with self._cond:
            self.messages.append((topic, payload, received_ms))
            self._cond.notify_all()

    def wait(self, n: int, timeout_s: float = WAIT_S) -> list[tuple[str, bytes, int]]:
        """Wait for n distinct payloads (QoS 1 may deliver one twice)."""
        with self._cond:
            self._cond.wait_for(lambda: len({p for _, p, _ in self.messages}) >= n, timeout_s)
            return list(self.messages)

    @property
    def payloads(self) -> list[bytes]:
        with self._cond:
            return [p for _, p, _ in self.messages]


def _client_id(label: str) -> str:
    return f"test-{label}-{uuid.uuid4().hex[:10]}"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# ---------------------------------------------------------------------------
# parse_broker_url: a table
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1:1883", BrokerAddress("127.0.0.1", 1883)),
        ("mqtt://broker.example", BrokerAddress("broker.example", 1883)),
        ("MQTT://Broker.Example:2000", BrokerAddress("broker.example", 2000)),
        ("mqtt://broker.example/", BrokerAddress("broker.example", 1883)),
        ("mqtts://broker.example", BrokerAddress("broker.example", 8883, tls=True)),
        ("mqtts://broker.example:443", BrokerAddress("broker.example", 443, tls=True)),
        (
            "mqtt://user:pass@127.0.0.1:1883",
            BrokerAddress("127.0.0.1", 1883, username="user", password="pass"),
        ),
        ("mqtt://only-user@h", BrokerAddress("h", 1883, username="only-user")),
        (
            "mqtt://us%40er:p%3Ass%2Fw@h:1",
            BrokerAddress("h", 1, username="us@er", password="p:ss/w"),
        ),
        ("mqtt://[::1]:1884", BrokerAddress("::1", 1884)),
        ("  mqtt://h:1883  ", BrokerAddress("h", 1883)),
    ],
)
def test_parse_broker_url_valid(url: str, expected: BrokerAddress) -> None:
    assert parse_broker_url(url) == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("127.0.0.1:1883", "unsupported scheme"),
        ("localhost", "unsupported scheme"),
        ("http://h:1883", "unsupported scheme 'http'"),
        ("tcp://h:1883", "unsupported scheme 'tcp'"),
        ("mqtt://", "no host"),
        ("mqtt://:1883", "no host"),
        ("mqtt://h:99999", "invalid"),
        ("mqtt://h:port", "invalid"),
        ("mqtt://h:0", "port 0"),
        ("mqtt://h:1883/topic", "path"),
        ("mqtt://h:1883?x=1", "query"),
    ],
)
def test_parse_broker_url_invalid_raises_broker_error(url: str, reason: str) -> None:
    with pytest.raises(BrokerError, match=reason) as caught:
        parse_broker_url(url)
    assert "mqtt://[user[:password]@]host[:port]" in str(caught.value)


def test_parse_broker_url_error_never_shows_the_password() -> None:
    with pytest.raises(BrokerError) as caught:
        parse_broker_url("http://user:s3cret@h:1883")
    assert "s3cret" not in str(caught.value)
    assert "user:***@h" in str(caught.value)


def test_broker_address_hides_password_and_formats_netloc() -> None:
    address = parse_broker_url("mqtts://user:s3cret@[::1]:8883")
    assert "s3cret" not in repr(address)
    assert "s3cret" not in str(address)
    assert str(address) == "mqtts://user@[::1]:8883"
    assert address.netloc == "[::1]:8883"


# ---------------------------------------------------------------------------
# Constructor checks (no broker needed)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"topics": []}, "non-empty"),
        ({"topics": "a/b"}, "not one string"),
        ({"topics": ["a/b", ""]}, "non-empty"),
        ({"client_id": ""}, "client_id"),
        ({"shared_group": "a/b"}, "shared_group"),
        ({"shared_group": ""}, "shared_group"),
        ({"shared_group": "g", "topics": ["$share/g/a"]}, r"\$share"),
        ({"session_expiry_s": 0}, "session_expiry_s"),
        ({"url": "localhost:1883"}, "unsupported scheme"),
        ({"reconnect_min_delay_s": 10, "reconnect_max_delay_s": 5}, "reconnect"),
    ],
)
def test_subscriber_refuses_bad_options(kwargs: dict[str, object], reason: str) -> None:
    options: dict[str, object] = {
        "url": "mqtt://127.0.0.1:1883",
        "client_id": "c",
        "topics": ["a/b"],
        "on_message": Collector(),
    }
    options.update(kwargs)
    with pytest.raises(BrokerError, match=reason):
        Subscriber(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize("max_unacked", [0, 65_536])
def test_publisher_refuses_bad_window(max_unacked: int) -> None:
    with pytest.raises(BrokerError, match="max_unacked"):
        Publisher(url="mqtt://127.0.0.1:1883", client_id="p", max_unacked=max_unacked)


def test_publisher_publish_before_start_raises() -> None:
    publisher = Publisher(url="mqtt://127.0.0.1:1883", client_id="p")
    with pytest.raises(BrokerError, match="not started"):
        publisher.publish("a/b", b"x")


# ---------------------------------------------------------------------------
# Unreachable and refusing brokers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda url: Subscriber(url=url, client_id="c", topics=["a/#"], on_message=Collector()),
        lambda url: Publisher(url=url, client_id="p"),
    ],
    ids=["subscriber", "publisher"],
)
def test_unreachable_broker_raises_broker_error_naming_host_port(
    make: Callable[[str], Subscriber | Publisher],
) -> None:
    port = _closed_port()
    client = make(f"mqtt://127.0.0.1:{port}")
    with pytest.raises(
        BrokerError, match=f"cannot connect to MQTT broker at 127.0.0.1:{port}"
    ) as caught:
        client.start()
    # Failed on the refusal itself, not by waiting out connect_timeout_s for a CONNACK.
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    client.stop()  # harmless after a failed start


def test_unresolvable_host_raises_broker_error() -> None:
    sub = Subscriber(
        url="mqtt://no-such-host.invalid:1883",
        client_id="c",
        topics=["a/#"],
        on_message=Collector(),
        connect_timeout_s=5,
    )
    with pytest.raises(BrokerError, match=r"no-such-host\.invalid:1883"):
        sub.start()


def test_silent_broker_times_out_with_broker_error() -> None:
    # A TCP listener that never answers CONNECT.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        sub = Subscriber(
            url=f"mqtt://127.0.0.1:{port}",
            client_id="c",
            topics=["a/#"],
            on_message=Collector(),
            connect_timeout_s=1,
        )
        with pytest.raises(BrokerError, match=f"127.0.0.1:{port} sent no CONNACK within 1"):
            sub.start()


# ---------------------------------------------------------------------------
# Against Mosquitto
# ---------------------------------------------------------------------------


@pytest.mark.mosquitto
@BOTH_VERSIONS
def test_subscriber_receives_qos1(
    mosquitto_url: str, mqtt_topic_prefix: str, protocol: MqttVersion
) -> None:
    sink = Collector()
    topic = f"{mqtt_topic_prefix}/loggers/LG-1/telemetry"
    before_ms = time.time_ns() // 1_000_000
    with (
        Subscriber(
            url=mosquitto_url,
            client_id=_client_id("sub"),
            topics=[f"{mqtt_topic_prefix}/loggers/+/telemetry"],
            on_message=sink,
            protocol=protocol,
        ) as sub,
        Publisher(url=mosquitto_url, client_id=_client_id("pub"), protocol=protocol) as pub,
    ):
        assert sub.connected
        pub.publish(topic, b'{"temp_c": 4.5}')
        pub.publish(f"{mqtt_topic_prefix}/elsewhere", b"not for us")
        pub.flush()
        messages = sink.wait(1)
        assert pub.messages_published == 2
        assert pub.unacked == 0
    after_ms = time.time_ns() // 1_000_000
    assert [(t, p) for t, p, _ in messages] == [(topic, b'{"temp_c": 4.5}')]
    assert before_ms <= messages[0][2] <= after_ms
    assert sub.messages_received == 1
    assert sub.reconnects == 0
    assert not sub.connected


@pytest.mark.mosquitto
@BOTH_VERSIONS
def test_persistent_session_delivers_what_was_published_while_offline(
    mosquitto_url: str, mqtt_topic_prefix: str, protocol: MqttVersion
) -> None:
    client_id = _client_id("worker")

    def subscriber(sink: Collector) -> Subscriber:
        return Subscriber(
            url=mosquitto_url,
            client_id=client_id,
            topics=[f"{mqtt_topic_prefix}/#"],
            on_message=sink,
            protocol=protocol,
        )

    first, second = Collector(), Collector()
    with subscriber(first):
        pass
    with Publisher(url=mosquitto_url, client_id=_client_id("pub"), protocol=protocol) as pub:
        for i in range(200):
            pub.publish(f"{mqtt_topic_prefix}/loggers/LG-{i % 7}/telemetry", str(i).encode())
        pub.flush()
    with subscriber(second):
        got = second.wait(200)
    assert sorted({int(p) for _, p, _ in got}) == list(range(200))
    assert first.messages == []


@pytest.mark.mosquitto
@BOTH_VERSIONS
def test_shared_subscription_splits_messages_between_workers(
    mosquitto_url: str, mqtt_topic_prefix: str, protocol: MqttVersion
) -> None:
    group = f"g{uuid.uuid4().hex[:8]}"
    sinks = [Collector(), Collector()]
    workers = [
        Subscriber(
            url=mosquitto_url,
            client_id=_client_id(f"w{n}"),
            topics=[f"{mqtt_topic_prefix}/loggers/+/telemetry"],
            on_message=sink,
            shared_group=group,
            protocol=protocol,
        )
        for n, sink in enumerate(sinks)
    ]
    assert workers[0].filters == (f"$share/{group}/{mqtt_topic_prefix}/loggers/+/telemetry",)
    with workers[0], workers[1]:
        with Publisher(url=mosquitto_url, client_id=_client_id("pub"), protocol=protocol) as pub:
            for i in range(300):
                pub.publish(f"{mqtt_topic_prefix}/loggers/LG-{i % 11}/telemetry", str(i).encode())
            pub.flush()
        deadline = time.monotonic() + WAIT_S
        while sum(len(s.payloads) for s in sinks) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
    counts = [len(s.payloads) for s in sinks]
    assert all(c > 0 for c in counts), counts
    together = sorted(int(p) for s in sinks for p in s.payloads)
    assert together == list(range(300))  # every message once, none twice


@pytest.mark.mosquitto
def test_subscriber_survives_a_failing_callback(
    mosquitto_url: str, mqtt_topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    sink = Collector()

    def on_message(topic: str, payload: bytes, received_ms: int) -> None:
        if payload == b"boom":
            raise RuntimeError("handler bug")
        sink(topic, payload, received_ms)

    with (
        Subscriber(
            url=mosquitto_url,
            client_id=_client_id("sub"),
            topics=[f"{mqtt_topic_prefix}/#"],
            on_message=on_message,
        ) as sub,
        Publisher(url=mosquitto_url, client_id=_client_id("pub")) as pub,
    ):
        pub.publish(f"{mqtt_topic_prefix}/a", b"boom")
        pub.publish(f"{mqtt_topic_prefix}/a", b"fine")
        pub.flush()
        assert sink.wait(1)
    assert sink.payloads == [b"fine"]
    assert sub.callback_errors == 1
    assert sub.messages_received == 2
    assert "handler bug" in caplog.text


@pytest.mark.mosquitto
def test_publisher_is_thread_safe(mosquitto_url: str, mqtt_topic_prefix: str) -> None:
    sink = Collector()
    per_thread, threads = 250, 4
    with (
        Subscriber(
            url=mosquitto_url,
            client_id=_client_id("sub"),
            topics=[f"{mqtt_topic_prefix}/#"],
            on_message=sink,
        ),
        Publisher(url=mosquitto_url, client_id=_client_id("pub"), max_unacked=10) as pub,
    ):
        peak = 0
        errors: list[BaseException] = []

        def publish_many(t: int) -> None:
            nonlocal peak
            try:
                for i in range(per_thread):
                    pub.publish(f"{mqtt_topic_prefix}/t{t}", f"{t}-{i}".encode())
                    peak = max(peak, pub.unacked)
            except BaseException as exc:  # reported by the assert below
                errors.append(exc)

        workers = [threading.Thread(target=publish_many, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        pub.flush()
        got = sink.wait(per_thread * threads)
    assert errors == []
    assert peak <= 10
    assert pub.messages_published == per_thread * threads
    expected = sorted(f"{t}-{i}".encode() for t in range(threads) for i in range(per_thread))
    assert sorted(p for _, p, _ in got) == expected


@pytest.mark.mosquitto
@pytest.mark.parametrize("topic", ["a/+/b", "a/#", ""])
def test_publisher_invalid_topic_raises_broker_error(mosquitto_url: str, topic: str) -> None:
    with Publisher(url=mosquitto_url, client_id=_client_id("pub")) as pub:
        with pytest.raises(BrokerError, match="cannot publish"):
            pub.publish(topic, b"x")
        assert pub.unacked == 0


# ---------------------------------------------------------------------------
# Broker outage: the embedded broker, which a test may stop and restart
# ---------------------------------------------------------------------------


def test_publisher_caps_unacked_while_broker_is_down_and_recovers() -> None:
    broker = EmbeddedBroker()
    url = broker.start()
    port = int(url.rsplit(":", 1)[1])
    pub = Publisher(
        url=url,
        client_id=_client_id("pub"),
        protocol=MqttVersion.V311,
        max_unacked=3,
        reconnect_max_delay_s=1,
    )
    pub.start()
    try:
        broker.stop()
        deadline = time.monotonic() + WAIT_S
        while pub.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not pub.connected
        for i in range(3):  # kept by paho for the reconnect
            pub.publish("outage/t", str(i).encode())
        with pytest.raises(BrokerError, match=r"3 messages to 127\.0\.0\.1:\d+ unacknowledged"):
            pub.publish("outage/t", b"one too many", timeout_s=0.5)
        with pytest.raises(BrokerError, match="still unacknowledged"):
            pub.flush(0.2)
        with EmbeddedBroker(port=port):
            pub.flush(WAIT_S)  # resent after paho's back-off reconnect
            assert pub.reconnects >= 1
            assert pub.messages_published == 3
    finally:
        pub.stop(flush_timeout_s=0)


def test_subscriber_reconnects_after_broker_restart() -> None:
    broker = EmbeddedBroker()
    url = broker.start()
    port = int(url.rsplit(":", 1)[1])
    sink = Collector()
    sub = Subscriber(
        url=url,
        client_id=_client_id("sub"),
        topics=["restart/#"],
        on_message=sink,
        protocol=MqttVersion.V311,
        reconnect_max_delay_s=1,
    )
    sub.start()
    try:
        broker.stop()
        with EmbeddedBroker(port=port):
            deadline = time.monotonic() + WAIT_S
            while sub.reconnects < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sub.reconnects == 1
            # The restarted broker lost the session; the subscriber renewed it.
            deadline = time.monotonic() + WAIT_S
            with Publisher(url=url, client_id=_client_id("pub"), protocol=MqttVersion.V311) as pub:
                while not sink.payloads and time.monotonic() < deadline:
                    pub.publish("restart/t", b"after")
                    time.sleep(0.1)
            assert b"after" in sink.payloads
    finally:
        sub.stop()


@pytest.mark.mosquitto
def test_clients_can_be_stopped_and_started_again(
    mosquitto_url: str, mqtt_topic_prefix: str
) -> None:
    # paho leaks a socket pair when one client object is restarted; each
    # start() uses a fresh one (the gc.collect() surfaces a leak as an error).
    sink = Collector()
    sub = Subscriber(
        url=mosquitto_url,
        client_id=_client_id("sub"),
        topics=[f"{mqtt_topic_prefix}/#"],
        on_message=sink,
    )
    pub = Publisher(url=mosquitto_url, client_id=_client_id("pub"))
    for round_ in range(3):
        with sub, pub:
            pub.publish(f"{mqtt_topic_prefix}/r", str(round_).encode())
            pub.flush()
            sink.wait(round_ + 1)
    gc.collect()
    assert sink.payloads == [b"0", b"1", b"2"]
    assert sub.reconnects == 2
