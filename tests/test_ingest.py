"""coldchain.ingest: the writers between a transport and the pipeline.

The ProcessWriter tests run the real pipeline in a real child process
(spawn) on a temporary SQLite file, which the test reads through its own
connection, as the runtime's parent process does.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from coldchain.alerts import Alert
from coldchain.config import Settings, load_settings
from coldchain.errors import ConfigError, IngestError, NotFoundError
from coldchain.ingest import UNCONFIRMED, PipelineFactory, ProcessWriter, Writer
from coldchain.models import Shipment, ShipmentStatus
from coldchain.mqtt import Publisher, Subscriber
from coldchain.pipeline import Pipeline
from coldchain.store import Store, open_store
from coldchain.testing import FakeClock

T0 = 1_764_126_000_000  # 2025-11-26T03:00:00Z
M = 60_000
NOW = T0 + 2 * 24 * 60 * M
TOPIC = "coldchain/v1/loggers/{}/telemetry"
WAIT_S = 30.0


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(environ={"COLDCHAIN_STORE": f"sqlite:///{tmp_path}/ingest.db"})


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    store = open_store(settings.store.url)
    for n in range(3):
        store.create_shipment(
            Shipment(
                id=f"S-{n}",
                product="vaccine-2-8",
                loggers=(f"LG-{n}",),
                status=ShipmentStatus.IN_TRANSIT,
            )
        )
    yield store
    store.close()


def single(logger: str, seq: int, temp_c: float = 5.0) -> tuple[str, bytes, int]:
    body = {"seq": seq, "ts": (T0 + seq * 5 * M) / 1000, "temp_c": temp_c}
    return (TOPIC.format(logger), orjson.dumps(body), NOW)


def pack(logger: str, seqs: range, temp_c: float = 5.0) -> tuple[str, bytes, int]:
    readings = [{"seq": s, "ts": (T0 + s * 5 * M) / 1000, "temp_c": temp_c} for s in seqs]
    return (TOPIC.format(logger), orjson.dumps({"readings": readings}), NOW)


def process_writer(settings: Settings, store: Store, **options: object) -> ProcessWriter:
    return ProcessWriter(
        PipelineFactory(settings, FakeClock(NOW)),
        batch_max=settings.ingest.batch_max,
        batch_wait_ms=settings.ingest.batch_wait_ms,
        fallback_store=store,
        **options,  # type: ignore[arg-type]
    )


def stored(store: Store, logger: str) -> list[int | None]:
    return [r.seq for r in store.readings_for_loggers([logger])]


# -- ProcessWriter -------------------------------------------------------------------


def test_process_writer_stores_every_message_and_drains(settings: Settings, store: Store):
    writer = process_writer(settings, store).start()
    try:
        for seq in range(300):
            writer.submit(*single("LG-0", seq))
        writer.submit(*pack("LG-1", range(100)))
        writer.submit(*pack("LG-1", range(100, 250)))
        assert writer.drain(WAIT_S)
        assert stored(store, "LG-0") == list(range(300))
        assert stored(store, "LG-1") == list(range(250))
        assert writer.counters.messages == 302
        assert writer.counters.readings == 550
    finally:
        writer.stop()
    assert writer.exitcode == 0
    assert writer.failure is None


def test_process_writer_stop_handles_what_is_still_buffered(settings: Settings, store: Store):
    writer = process_writer(settings, store).start()
    for seq in range(50):
        writer.submit(*single("LG-2", seq))
    writer.stop()  # no drain: stop itself sends the rest and waits for it
    assert stored(store, "LG-2") == list(range(50))
    assert writer.counters.readings == 50
    writer.stop()  # idempotent


def test_process_writer_backpressure_loses_nothing(settings: Settings, store: Store):
    writer = ProcessWriter(
        PipelineFactory(settings, FakeClock(NOW)),
        batch_max=5,
        batch_wait_ms=1,
        max_buffered=10,
    )
    for seq in range(30):  # before start nothing can make room: submit must not block
        writer.submit(*single("LG-0", seq))
    writer.start()
    try:
        for seq in range(30, 400):  # blocks whenever 10 wait, until the sender takes 5
            writer.submit(*single("LG-0", seq))
        assert writer.drain(WAIT_S)
    finally:
        writer.stop()
    assert stored(store, "LG-0") == list(range(400))


def test_process_writer_malformed_message_goes_to_dead_letters(settings: Settings, store: Store):
    writer = process_writer(settings, store).start()
    try:
        writer.submit(*single("LG-0", 1))
        writer.submit(TOPIC.format("LG-0"), b"{not json", NOW)
        writer.submit(TOPIC.format("LG-0"), b'{"ts": "2025-11-26T03:05:00", "temp_c": 5}', NOW)
        writer.submit(*single("LG-0", 2))
        assert writer.drain(WAIT_S)
    finally:
        writer.stop()
    assert stored(store, "LG-0") == [1, 2]
    reasons = sorted(d.reason for d in store.list_dead_letters())
    assert len(reasons) == 2
    assert reasons[0].startswith("payload is not valid JSON")
    assert "has no time zone" in reasons[1]
    assert writer.counters.rejected == 2


def test_process_writer_alerts_reach_the_parents_sinks(settings: Settings, store: Store):
    seen: list[Alert] = []
    writer = process_writer(settings, store, alert_sinks=[seen.append]).start()
    try:
        writer.submit(*pack("LG-0", range(12), temp_c=12.0))  # +2..+8 °C profile: an excursion
        assert writer.drain(WAIT_S)
    finally:
        writer.stop()
    assert seen, "no alert came back from the ingest process"
    assert all(isinstance(a, Alert) and a.shipment_id == "S-0" for a in seen)
    assert {a.id for a in seen} <= {a.id for a in store.list_alerts(shipment_id="S-0")}
    assert writer.counters.alerts == len(seen)


def test_process_writer_calls_run_in_the_child_and_raise_here(settings: Settings, store: Store):
    writer = process_writer(settings, store).start()
    try:
        assert writer.handle([single("LG-1", 7)]) == []
        assert stored(store, "LG-1") == [7]
        assert writer.tick() == []
        assert writer.reload_shipments() == []
        with pytest.raises(NotFoundError, match="no-such-shipment") as raised:
            writer.deliver("no-such-shipment", end_ms=NOW)
        assert "raised in the ingest process" in raised.value.__notes__[0]
        delivered = writer.deliver("S-1", end_ms=NOW)
        assert delivered.status == ShipmentStatus.DELIVERED
        assert store.get_shipment("S-1").end_ms == NOW
    finally:
        writer.stop()


def test_process_writer_child_death_dead_letters_the_unconfirmed_and_stop_raises(
    settings: Settings, store: Store
):
    failed = threading.Event()
    writer = process_writer(settings, store, on_failure=lambda _exc: failed.set()).start()
    for seq in range(20):
        writer.submit(*single("LG-0", seq))
    assert writer.drain(WAIT_S)
    assert writer.pid is not None
    os.kill(writer.pid, signal.SIGKILL)
    assert failed.wait(WAIT_S), "the parent did not notice the ingest process died"
    for seq in range(20, 30):  # after the death: dead-lettered, not lost
        writer.submit(*single("LG-0", seq))
    assert not writer.drain(1)
    with pytest.raises(IngestError, match="died with exit code -9"):
        writer.stop()
    assert stored(store, "LG-0") == list(range(20))
    letters = store.list_dead_letters()
    assert [d.reason for d in letters] == [UNCONFIRMED] * 10
    assert sorted(orjson.loads(d.payload)["seq"] for d in letters) == list(range(20, 30))


def test_process_writer_death_mid_batch_loses_nothing(settings: Settings, store: Store):
    writer = ProcessWriter(
        PipelineFactory(settings, FakeClock(NOW)),
        batch_max=10,  # 16 batches of 10 packs
        batch_wait_ms=settings.ingest.batch_wait_ms,
        fallback_store=store,
    )
    for n in range(160):  # packs under 64 KiB, kept whole as dead letters
        writer.submit(*pack("LG-1", range(n * 500, (n + 1) * 500)))
    killed = threading.Event()

    def kill_at_first_ack(_size: int) -> None:
        # On the receiver thread, before it reads another ack: the first batch
        # is committed, at most the two sent after it may be, the rest cannot.
        if not killed.is_set():
            assert writer.pid is not None
            os.kill(writer.pid, signal.SIGKILL)
            killed.set()

    writer.on_batch = kill_at_first_ack
    writer.start()
    assert killed.wait(WAIT_S), "the ingest process acknowledged no batch"
    with pytest.raises(IngestError, match="not confirmed as stored"):
        writer.stop()
    committed = set(stored(store, "LG-1"))
    letters = store.list_dead_letters(limit=1000)
    assert committed, "the acknowledged batch is not in the store"
    assert letters, "nothing was left unconfirmed: the child did not die mid-stream"
    kept = set(committed)
    for letter in letters:
        assert letter.reason == UNCONFIRMED
        kept |= {r["seq"] for r in orjson.loads(letter.payload)["readings"]}
    assert kept == set(range(160 * 500))  # replaying the dead letters completes the data


def test_process_writer_factory_failure_shows_the_childs_traceback(
    settings: Settings, store: Store, tmp_path: Path
):
    unopenable = settings.model_copy(
        update={"store": settings.store.model_copy(update={"url": f"sqlite:///{tmp_path}"})}
    )
    writer = ProcessWriter(
        PipelineFactory(unopenable, FakeClock(NOW)), batch_max=10, batch_wait_ms=5
    )
    with pytest.raises(IngestError, match="could not build its pipeline") as raised:
        writer.start()
    assert "cannot open SQLite database" in str(raised.value)


def test_process_writer_refuses_a_factory_it_cannot_pickle(settings: Settings, store: Store):
    writer = ProcessWriter(
        lambda: Pipeline(store, settings.load_profiles(), settings, clock=FakeClock(NOW)),
        batch_max=10,
        batch_wait_ms=5,
    )
    with pytest.raises(IngestError, match="cannot be pickled"):
        writer.start()


def test_pipeline_factory_refuses_a_store_in_memory(settings: Settings):
    memory = settings.model_copy(
        update={"store": settings.store.model_copy(update={"url": "sqlite:///:memory:"})}
    )
    with pytest.raises(ConfigError, match="in memory"):
        PipelineFactory(memory, FakeClock(NOW))


@pytest.mark.mosquitto
def test_process_writer_behind_a_subscriber_stores_what_mosquitto_delivers(
    settings: Settings, store: Store, mosquitto_url: str, mqtt_topic_prefix: str
):
    prefixed = settings.model_copy(
        update={"broker": settings.broker.model_copy(update={"topic_prefix": mqtt_topic_prefix})}
    )
    writer = process_writer(prefixed, store).start()
    name = uuid.uuid4().hex[:8]
    subscriber = Subscriber(
        url=mosquitto_url,
        client_id=f"ingest-{name}",
        topics=[f"{mqtt_topic_prefix}/loggers/+/telemetry"],
        on_message=writer.submit,
    )
    messages = [single("LG-0", seq) for seq in range(200)] + [pack("LG-1", range(500))]
    messages.append((TOPIC.format("LG-2"), b"garbage", NOW))
    try:
        with subscriber, Publisher(url=mosquitto_url, client_id=f"pub-{name}") as publisher:
            for topic, payload, _ in messages:
                publisher.publish(topic.replace("coldchain/v1", mqtt_topic_prefix, 1), payload)
            publisher.flush()
            deadline = time.monotonic() + WAIT_S
            while subscriber.messages_received < len(messages) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert subscriber.messages_received == len(messages)
            assert writer.drain(WAIT_S)
    finally:
        writer.stop()
    assert stored(store, "LG-0") == list(range(200))
    assert stored(store, "LG-1") == list(range(500))
    (letter,) = store.list_dead_letters()
    assert letter.payload == b"garbage"
    assert writer.counters.messages == len(messages)


# -- Writer (thread) -------------------------------------------------------------------


class SteppedTime:
    """The thread writer's monotonic clock and sleep, moved by the test.

    ``sleep`` reports how long the writer asked to sleep (``next_sleep``) and
    blocks until the test moves the time on (``advance``); nothing depends on
    how fast the machine runs. The timeouts only bound a hang.
    """

    def __init__(self) -> None:
        self._now = 0.0
        self._lock = threading.Lock()
        self._asked: queue.Queue[float] = queue.Queue()
        self._moves: queue.Queue[float] = queue.Queue()

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        self._asked.put(seconds)
        step = self._moves.get(timeout=WAIT_S)
        with self._lock:
            self._now += step

    def next_sleep(self) -> float:
        """How long the writer asked to sleep, once it is asleep."""
        try:
            return self._asked.get(timeout=WAIT_S)
        except queue.Empty:
            pytest.fail(f"the writer did not go to sleep within {WAIT_S:.0f} s")

    def advance(self, seconds: float) -> None:
        """Wake the sleeping writer, ``seconds`` later."""
        self._moves.put(seconds)


def test_thread_writer_collects_until_batch_wait_then_hands_one_batch(
    settings: Settings, store: Store
):
    pipeline = Pipeline(store, settings.load_profiles(), settings, clock=FakeClock(NOW))
    clock = SteppedTime()
    writer = Writer(
        pipeline, batch_max=1000, batch_wait_ms=300, monotonic=clock.monotonic, sleep=clock.sleep
    )
    sizes: list[int] = []
    writer.on_batch = sizes.append
    writer.start()
    try:
        writer.submit(*single("LG-0", 0))
        # The queue is empty after the first message: the writer waits out batch_wait_ms.
        assert clock.next_sleep() == pytest.approx(0.3)
        for seq in range(1, 100):  # arrive while it sleeps
            writer.submit(*single("LG-0", seq))
        clock.advance(0.1)
        # It took them, found the queue empty again, and sleeps the rest of the wait.
        assert clock.next_sleep() == pytest.approx(0.2)
        assert sizes == []  # not cut at an empty queue
        clock.advance(0.2)  # batch_wait_ms is over: one batch
        assert writer.drain(WAIT_S)
    finally:
        writer.stop()
    assert sizes == [100]
    assert stored(store, "LG-0") == list(range(100))


def test_thread_writer_batches_hold_at_most_batch_max(settings: Settings, store: Store):
    pipeline = Pipeline(store, settings.load_profiles(), settings, clock=FakeClock(NOW))
    writer = Writer(pipeline, batch_max=7, batch_wait_ms=50)
    sizes: list[int] = []
    writer.on_batch = sizes.append
    for seq in range(50):  # queued before the writer runs: it never waits for more
        writer.submit(*single("LG-1", seq))
    writer.start()
    writer.stop()
    assert sizes == [7] * 7 + [1]
    assert stored(store, "LG-1") == list(range(50))
