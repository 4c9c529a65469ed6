"""Ingest throughput: what the coldchain subscriber sustains next to bare paho.

Starts its own Mosquitto on a free loopback port (temp config, persistence
off) and measures, as medians of ``--runs`` runs, for two loads (single
readings and 100-reading packs, QoS 1, from :func:`coldchain.simulation.loadgen.make_load`):

(a) a bare paho subscriber (MQTT 5, QoS 1) that only counts messages;
(b) the coldchain pipeline as ``serve`` runs it: :class:`coldchain.mqtt.Subscriber`
    → :class:`coldchain.ingest.ProcessWriter` → :class:`coldchain.pipeline.Pipeline`
    in the ingest process (decode, validate, store in a fresh SQLite file,
    streaming evaluation of a ``vaccine-2-8`` shipment per logger), timed
    until the child has acknowledged every message as stored;
(b') the same with the thread writer (:class:`coldchain.ingest.Writer`,
    ``[ingest] mode = "thread"``), for comparison;
(c) the store ceiling: :meth:`SqliteStore.insert_readings` of the same
    readings, straight from Python objects, in batches of ``batch_max``.

To time the subscriber and not the publisher, each run pre-loads the backlog
while the subscriber is offline: it subscribes once with a persistent session
and disconnects, the load is published (at most 100 unacknowledged), and the
clock runs from the reconnect (same client id) until the backlog is drained.
Every run gets a fresh broker, so no other session's queue is in the way.

The CPU time per message of each party is printed too. Threads of one
process share a GIL, so in (b') paho's thread and the writer thread add up;
in (b) the pipeline runs in its own interpreter and paho's thread shares the
GIL only with the hand-off's sender and receiver threads.

Usage: python -m benchmarks.bench_ingest [--quick] [--runs 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import getpass
import importlib.metadata
import math
import os
import platform
import pstats
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from types import FrameType, TracebackType
from typing import Any, Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from rich.console import Console
from rich.table import Table

from coldchain.clock import SystemClock
from coldchain.config import IngestMode, Settings, load_settings
from coldchain.decoding import decode_telemetry
from coldchain.ingest import PipelineFactory, ProcessWriter, Writer
from coldchain.models import MS_PER_MIN, Reading, Shipment, ShipmentStatus
from coldchain.mqtt import Subscriber, parse_broker_url
from coldchain.pipeline import Pipeline
from coldchain.profiles import ProfileSet
from coldchain.simulation.loadgen import make_load
from coldchain.simulation.publish import Outgoing, publish
from coldchain.store.sqlite import SqliteStore
from coldchain.topics import subscriptions

PRODUCT = "vaccine-2-8"
LOGGERS = 1_000
SINGLE_MESSAGES = 50_000
PACK_MESSAGES = 2_000
PACK_SIZE = 100
QUICK_SINGLE_MESSAGES = 10_000
QUICK_PACK_MESSAGES = 400
PUBLISH_MAX_INFLIGHT = 100
BROKER_MAX_INFLIGHT = 100
"""Mosquitto's window of unacknowledged QoS 1 messages per client (the shipped config's)."""
SESSION_EXPIRY_S = 3600
STALL_S = 30.0
"""A run fails when nothing progresses for this long (a lost backlog, a hung writer)."""
BROKER_START_TIMEOUT_S = 10.0
BROKER_START_ATTEMPTS = 3
SINGLE_TARGET = 0.9
PACK_TARGET = 0.7
PROFILE_TOP = 25
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# The names coldchain.ingest gives its threads.
WRITER_THREAD = "coldchain-writer"
SENDER_THREAD = "coldchain-ingest-sender"
RECEIVER_THREAD = "coldchain-ingest-receiver"
MODES: tuple[IngestMode, ...] = ("process", "thread")
"""(b) with the process writer (what `serve` runs), then with the thread writer."""

console = Console(highlight=False)
if not console.is_terminal:
    console.width = 150  # rich's default of 80 columns wraps the tables in logs


# -- machine -------------------------------------------------------------------------


def mosquitto_binary() -> str:
    binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
    if binary is None:
        sys.exit("mosquitto is not installed; run scripts/install-system-deps.sh")
    return binary


def machine_info(binary: str) -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    help_text = subprocess.run([binary, "-h"], capture_output=True, text=True, check=False)
    first = (help_text.stdout or help_text.stderr).splitlines()
    repo = Path(__file__).resolve().parents[1]
    try:
        described = subprocess.run(
            ["git", "-C", str(repo), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        described = ""
    return {
        "coldchain": f"{importlib.metadata.version('coldchain')} ({described or 'no git'})",
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "os": platform.platform(),
        "python": platform.python_version(),
        "paho-mqtt": importlib.metadata.version("paho-mqtt"),
        "sqlite": sqlite3.sqlite_version,
        "mosquitto": first[0] if first else "unknown",
    }


# -- broker --------------------------------------------------------------------------


class Mosquitto:
    """A throw-away Mosquitto on a free loopback port; ``url`` once entered."""

    def __init__(self, binary: str, *, max_queued_messages: int) -> None:
        self.binary = binary
        self.max_queued_messages = max_queued_messages
        self.url = ""
        self._tmp = TemporaryDirectory(prefix="coldchain-bench-mosquitto-")
        self._process: subprocess.Popen[bytes] | None = None

    def config(self, port: int) -> str:
        return "\n".join(
            [
                f"listener {port} 127.0.0.1",
                "allow_anonymous true",
                "persistence false",
                f"max_inflight_messages {BROKER_MAX_INFLIGHT}",
                # Beyond this a queued QoS 1 message for an offline client is dropped
                # silently (the publisher still gets its PUBACK).
                f"max_queued_messages {self.max_queued_messages}",
                "max_queued_bytes 0",
                "queue_qos0_messages false",
                # As root, mosquitto would drop to the `mosquitto` user.
                f"user {getpass.getuser()}",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                "",
            ]
        )

    @property
    def pid(self) -> int:
        assert self._process is not None, "enter the broker first"
        return self._process.pid

    def __enter__(self) -> Self:
        work = Path(self._tmp.name)
        log_path = work / "mosquitto.log"
        for _ in range(BROKER_START_ATTEMPTS):
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port: int = probe.getsockname()[1]
            conf = work / "mosquitto.conf"
            conf.write_text(self.config(port), encoding="utf-8")
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    [self.binary, "-c", str(conf)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            deadline = time.monotonic() + BROKER_START_TIMEOUT_S
            while process.poll() is None and time.monotonic() < deadline:
                if _accepts(port) and process.poll() is None:
                    self._process = process
                    self.url = f"mqtt://127.0.0.1:{port}"
                    return self
                time.sleep(0.02)
            if process.poll() is None:
                process.kill()
                process.wait()
        self._tmp.cleanup()
        msg = f"mosquitto did not start; its log:\n{log_path.read_text(errors='replace')}"
        raise RuntimeError(msg)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._tmp.cleanup()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


# -- loads ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    name: str
    messages: list[tuple[str, bytes]]
    outgoing: list[Outgoing]
    readings: list[Reading]
    loggers: tuple[str, ...]
    start_ms: int

    @property
    def backlog(self) -> int:
        return len(self.messages)


def build_load(name: str, *, messages: int, pack_size: int, prefix: str, now_ms: int) -> Load:
    # A day back: readings are in the past, so no clock-skew alert is due.
    start_ms = now_ms - 24 * 60 * MS_PER_MIN
    pairs = make_load(
        loggers=LOGGERS, messages=messages, pack_size=pack_size, start_ms=start_ms, prefix=prefix
    )
    loggers = tuple(dict.fromkeys(topic.split("/")[-2] for topic, _ in pairs))
    readings: list[Reading] = []
    for topic, payload in pairs:
        decoded = decode_telemetry(
            payload, logger_id=topic.split("/")[-2], topic=topic, received_ms=now_ms
        )
        if decoded.rejects:
            msg = f"load {name}: the generator produced a rejected reading: {decoded.rejects[0]}"
            raise RuntimeError(msg)
        readings.extend(decoded.readings)
    return Load(name, pairs, [Outgoing(t, p) for t, p in pairs], readings, loggers, start_ms)


def preload(url: str, load: Load) -> None:
    """Publish the whole load; the offline subscriber's session queues it."""
    stats = publish(
        load.outgoing,
        url=url,
        client_id="bench-publisher",
        max_inflight=PUBLISH_MAX_INFLIGHT,
        mqtt_version="5",
    )
    if stats.acked != load.backlog:
        msg = f"publisher: {stats.acked} of {load.backlog} acknowledged ({stats.refused} refused)"
        raise RuntimeError(msg)


def wait_for(done: threading.Event, progress: Callable[[], int], target: int, what: str) -> None:
    last = -1
    while not done.wait(STALL_S):
        now = progress()
        if now == last:
            msg = (
                f"{what}: stalled at {now} of {target} for {STALL_S:.0f} s; "
                "did the broker drop part of the backlog (max_queued_messages)?"
            )
            raise RuntimeError(msg)
        last = now


def thread_cpu_s(name: str) -> float:
    """CPU seconds (user + system) used so far by the live thread ``name``; NaN off Linux."""
    for thread in threading.enumerate():
        if thread.name == name and thread.native_id is not None:
            return _stat_cpu_s(f"/proc/self/task/{thread.native_id}/stat")
    return float("nan")


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) used so far by process ``pid``; NaN off Linux."""
    return _stat_cpu_s(f"/proc/{pid}/stat")


def _stat_cpu_s(path: str) -> float:
    try:
        stat = Path(path).read_text()
    except OSError:
        return float("nan")
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)"
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# -- (a) bare paho -------------------------------------------------------------------


def _bare_client(client_id: str) -> paho.Client:
    return paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )


def _connect_persistent(client: paho.Client, url: str) -> None:
    address = parse_broker_url(url)
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = SESSION_EXPIRY_S
    client.connect(address.host, address.port, clean_start=False, properties=properties)


def bare_subscribe_once(url: str, client_id: str, topic_filter: str) -> None:
    """Create the persistent session and its subscription, then go offline."""
    ready = threading.Event()

    def on_subscribe(
        _c: paho.Client, _u: Any, _mid: int, codes: list[ReasonCode], _p: Properties | None
    ) -> None:
        if any(code.is_failure for code in codes):
            console.print(f"[red]subscription refused: {codes}")
        ready.set()

    def on_connect(
        c: paho.Client, _u: Any, _f: paho.ConnectFlags, _rc: ReasonCode, _p: Properties | None
    ) -> None:
        c.subscribe(topic_filter, qos=1)

    client = _bare_client(client_id)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    _connect_persistent(client, url)
    client.loop_start()
    if not ready.wait(10):
        msg = "bare subscriber: no SUBACK within 10 s"
        raise RuntimeError(msg)
    client.disconnect()
    client.loop_stop()


def bare_drain(url: str, client_id: str, expected: int) -> tuple[float, float]:
    """Reconnect and count the queued messages.

    Returns the seconds from connect to the last message, and the CPU seconds
    of paho's network thread.
    """
    received = 0
    done = threading.Event()

    def on_message(_c: paho.Client, _u: Any, _m: paho.MQTTMessage) -> None:
        nonlocal received
        received += 1
        if received >= expected:
            done.set()

    client = _bare_client(client_id)
    client.on_message = on_message
    started = time.perf_counter()
    _connect_persistent(client, url)
    client.loop_start()
    try:
        wait_for(done, lambda: received, expected, "bare paho")
        elapsed = time.perf_counter() - started
        cpu = thread_cpu_s(f"paho-mqtt-client-{client_id}")
    finally:
        client.disconnect()
        client.loop_stop()
    return elapsed, cpu


def run_bare(binary: str, load: Load, prefix: str) -> tuple[float, float, float]:
    """Seconds, and the CPU seconds of paho's network thread and of the broker."""
    with Mosquitto(binary, max_queued_messages=_queue_size(load)) as broker:
        bare_subscribe_once(broker.url, "bench-bare", f"{prefix}/loggers/+/telemetry")
        preload(broker.url, load)
        broker_before = process_cpu_s(broker.pid)
        elapsed, paho_cpu = bare_drain(broker.url, "bench-bare", load.backlog)
        return elapsed, paho_cpu, process_cpu_s(broker.pid) - broker_before


def _queue_size(load: Load) -> int:
    size = 2 * load.backlog
    assert size >= load.backlog, "Mosquitto must be able to queue the whole backlog"
    return size


# -- (b) the coldchain pipeline --------------------------------------------------------


@dataclass
class PipelineRun:
    elapsed_s: float
    readings: int
    paho_cpu_s: float
    handoff_cpu_s: float
    """Process writer: the parent's sender and receiver threads. Thread writer: NaN."""
    pipeline_cpu_s: float
    """Process writer: the child process. Thread writer: the writer thread."""
    broker_cpu_s: float
    batches: list[int] = field(default_factory=list)
    alerts: int = 0


def run_pipeline(
    binary: str,
    load: Load,
    base: Settings,
    profiles: ProfileSet,
    *,
    mode: IngestMode,
    thread_profiles: ThreadProfiles | None = None,
) -> PipelineRun:
    clock = SystemClock()
    client_id = "bench-coldchain"
    with (
        TemporaryDirectory(prefix="coldchain-bench-db-") as tmp,
        Mosquitto(binary, max_queued_messages=_queue_size(load)) as broker,
    ):
        settings = base.model_copy(
            update={
                "store": base.store.model_copy(update={"url": f"sqlite:///{tmp}/bench.db"}),
                "broker": base.broker.model_copy(
                    update={"url": broker.url, "client_id": client_id}
                ),
                "ingest": base.ingest.model_copy(update={"mode": mode}),
            }
        )
        topics = subscriptions(prefix=settings.broker.topic_prefix)
        store = SqliteStore(f"{tmp}/bench.db")
        for logger_id in load.loggers:
            store.create_shipment(
                Shipment(
                    id=f"SHP-{logger_id}",
                    product=PRODUCT,
                    loggers=(logger_id,),
                    status=ShipmentStatus.IN_TRANSIT,
                    start_ms=load.start_ms,
                    created_ms=clock.now_ms(),
                )
            )
        # Create the persistent session, go offline, queue the backlog.
        with Subscriber(
            url=broker.url, client_id=client_id, topics=topics, on_message=lambda _t, _p, _r: None
        ):
            pass
        preload(broker.url, load)

        batches: list[int] = []
        handled = 0
        done = threading.Event()

        def on_batch(size: int) -> None:  # after Pipeline.handle committed a batch
            nonlocal handled
            batches.append(size)
            handled += size
            if handled >= load.backlog:
                done.set()

        # What Runtime builds for `serve`, without the scheduler and the dispatcher
        # (both idle here: no alert fires).
        writer: ProcessWriter | Writer
        if mode == "process":
            writer = ProcessWriter(
                PipelineFactory(settings, clock, profiles=profiles),
                batch_max=settings.ingest.batch_max,
                batch_wait_ms=settings.ingest.batch_wait_ms,
                fallback_store=store,
            )
        else:
            writer = Writer(
                Pipeline(store, profiles, settings, clock=clock),
                batch_max=settings.ingest.batch_max,
                batch_wait_ms=settings.ingest.batch_wait_ms,
            )
        writer.on_batch = on_batch
        subscriber = Subscriber(
            url=broker.url, client_id=client_id, topics=topics, on_message=writer.submit
        )
        with thread_profiles or _nothing():
            writer.start()
            try:
                before = _writer_cpu_s(writer)
                broker_before = process_cpu_s(broker.pid)
                started = time.perf_counter()
                subscriber.start()
                try:
                    wait_for(done, lambda: handled, load.backlog, f"coldchain ({mode} writer)")
                    elapsed = time.perf_counter() - started
                    paho_cpu = thread_cpu_s(f"paho-mqtt-client-{client_id}")
                    after = _writer_cpu_s(writer)
                    broker_cpu = process_cpu_s(broker.pid) - broker_before
                finally:
                    subscriber.stop()
            finally:
                writer.stop()
        counters = writer.counters
        store.close()
    if counters.readings != len(load.readings) or counters.rejected:
        msg = (
            f"{mode} writer: stored {counters.readings} of {len(load.readings)} readings "
            f"({counters.rejected} rejected, {counters.duplicates} duplicates)"
        )
        raise RuntimeError(msg)
    return PipelineRun(
        elapsed,
        counters.readings,
        paho_cpu,
        after[0] - before[0],
        after[1] - before[1],
        broker_cpu,
        batches,
        counters.alerts,
    )


def _writer_cpu_s(writer: ProcessWriter | Writer) -> tuple[float, float]:
    """CPU seconds so far: (hand-off threads in this process, the pipeline's side)."""
    if isinstance(writer, Writer):
        return float("nan"), thread_cpu_s(WRITER_THREAD)
    assert writer.pid is not None
    handoff = thread_cpu_s(SENDER_THREAD) + thread_cpu_s(RECEIVER_THREAD)
    return handoff, process_cpu_s(writer.pid)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


# -- (c) the store ceiling -------------------------------------------------------------


def run_store(load: Load, batch: int) -> float:
    chunks = [load.readings[i : i + batch] for i in range(0, len(load.readings), batch)]
    with TemporaryDirectory(prefix="coldchain-bench-db-") as tmp:
        store = SqliteStore(f"{tmp}/ceiling.db")
        try:
            started = time.perf_counter()
            for chunk in chunks:
                store.insert_readings(chunk)
            return time.perf_counter() - started
        finally:
            store.close()


# -- profiling (--profile) ---------------------------------------------------------------


class ThreadProfiles:
    """cProfile every thread started inside the ``with`` block, one profile per thread.

    The timer is the thread's own CPU time, so time a thread spends waiting
    (for the GIL, the socket or the queue) is not charged to what it waits in.
    """

    def __init__(self) -> None:
        self.profiles: list[tuple[str, cProfile.Profile]] = []
        self._lock = threading.Lock()

    def _start(self, _frame: FrameType, _event: str, _arg: object) -> None:
        sys.setprofile(None)
        profile = cProfile.Profile(time.thread_time)
        with self._lock:
            self.profiles.append((threading.current_thread().name, profile))
        profile.enable()

    def __enter__(self) -> Self:
        threading.setprofile(self._start)
        return self

    def __exit__(self, *_exc: object) -> None:
        threading.setprofile(None)

    def report(self, title: str) -> None:
        for name, profile in self.profiles:
            stats = pstats.Stats(profile)
            rows: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
            rows = stats.stats  # type: ignore[attr-defined]  # pstats keeps it undeclared
            if not rows:
                continue
            total = max(ct for _cc, _nc, _tt, ct, _callers in rows.values())
            table = Table(title=f"{title}: thread {name} ({total:.2f} s CPU)", title_justify="left")
            for col in ("cum %", "self %", "calls", "function"):
                table.add_column(col, justify="right" if col != "function" else "left")
            ranked = sorted(rows.items(), key=lambda kv: kv[1][3], reverse=True)
            for (file, line, func), (_cc, calls, tt, ct, _callers) in ranked[:PROFILE_TOP]:
                where = f"{Path(file).name}:{line}" if line else file
                table.add_row(
                    f"{100 * ct / total:.1f}",
                    f"{100 * tt / total:.1f}",
                    str(calls),
                    f"{func} ({where})",
                )
            console.print(table)


# -- report ------------------------------------------------------------------------------


@dataclass
class Series:
    """One measure of (b), over the runs."""

    seconds: list[float] = field(default_factory=list)
    paho_cpu_s: list[float] = field(default_factory=list)
    handoff_cpu_s: list[float] = field(default_factory=list)
    pipeline_cpu_s: list[float] = field(default_factory=list)
    broker_cpu_s: list[float] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    alerts: int = 0

    def add(self, run: PipelineRun) -> None:
        self.seconds.append(run.elapsed_s)
        self.paho_cpu_s.append(run.paho_cpu_s)
        self.handoff_cpu_s.append(run.handoff_cpu_s)
        self.pipeline_cpu_s.append(run.pipeline_cpu_s)
        self.broker_cpu_s.append(run.broker_cpu_s)
        self.batches.extend(run.batches)
        self.alerts += run.alerts


@dataclass
class Figures:
    bare_s: list[float] = field(default_factory=list)
    bare_cpu_s: list[float] = field(default_factory=list)
    bare_broker_cpu_s: list[float] = field(default_factory=list)
    pipeline: dict[str, Series] = field(default_factory=lambda: {m: Series() for m in MODES})
    store_s: list[float] = field(default_factory=list)


def rate(count: int, times: Sequence[float]) -> float:
    return count / statistics.median(times)


def spread(times: Sequence[float]) -> str:
    return " / ".join(f"{t:.2f}" for t in times)


def per_message_us(cpu_s: Sequence[float], messages: int) -> str:
    if not cpu_s or any(math.isnan(x) for x in cpu_s):
        return ""
    return f"{1e6 * statistics.median(cpu_s) / messages:,.1f}"


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


MEASURE = {
    "process": "(b) coldchain, process writer (serve)",
    "thread": "(b') coldchain, thread writer",
}


def report(loads: Sequence[Load], results: dict[str, Figures], batch_max: int) -> None:
    table = Table(title="Ingest throughput (median)", title_justify="left")
    columns = (
        "load",
        "measure",
        "msgs/s",
        "readings/s",
        "runs (s)",
        "paho µs",
        "hand-off µs",
        "pipeline µs",
        "broker µs",
    )
    for col in columns:
        table.add_column(col, justify="left" if col in ("load", "measure") else "right")
    for load in loads:
        f = results[load.name]
        n, r = load.backlog, len(load.readings)
        table.add_row(
            load.name,
            "(a) bare paho",
            f"{rate(n, f.bare_s):,.0f}",
            f"{rate(r, f.bare_s):,.0f}",
            spread(f.bare_s),
            per_message_us(f.bare_cpu_s, n),
            "",
            "",
            per_message_us(f.bare_broker_cpu_s, n),
        )
        for mode in MODES:
            series = f.pipeline[mode]
            table.add_row(
                "",
                MEASURE[mode],
                f"{rate(n, series.seconds):,.0f}",
                f"{rate(r, series.seconds):,.0f}",
                spread(series.seconds),
                per_message_us(series.paho_cpu_s, n),
                per_message_us(series.handoff_cpu_s, n),
                per_message_us(series.pipeline_cpu_s, n),
                per_message_us(series.broker_cpu_s, n),
            )
        table.add_row(
            "",
            f"(c) store, {batch_max}/batch",
            "",
            f"{rate(r, f.store_s):,.0f}",
            spread(f.store_s),
            "",
            "",
            "",
            "",
            end_section=True,
        )
    console.print()
    console.print(table)
    console.print(
        "CPU time per message (median): paho µs, paho's network thread; hand-off µs, the "
        "process writer's sender and receiver threads; pipeline µs, the child process "
        "(process writer) or the writer thread (thread writer); broker µs, Mosquitto. "
        "Threads of one process share one GIL; the child has its own."
    )

    single, pack = loads
    fs, fp = results[single.name], results[pack.name]
    pack_bare = rate(len(pack.readings), fp.bare_s)
    pack_store = rate(len(pack.readings), fp.store_s)
    for mode in MODES:
        single_ratio = rate(single.backlog, fs.pipeline[mode].seconds) / rate(
            single.backlog, fs.bare_s
        )
        pack_ratio = rate(len(pack.readings), fp.pipeline[mode].seconds) / min(
            pack_bare, pack_store
        )
        b = "b" if mode == "process" else "b'"
        for label, value, target in (
            (f"single readings: {b} / a (msgs/s)", single_ratio, SINGLE_TARGET),
            (f"packs: {b} / min(a, c) (readings/s)", pack_ratio, PACK_TARGET),
        ):
            if mode == "process":
                verdict = "[green]met" if value >= target else "[red]missed"
            else:
                verdict = "(for comparison)"
            console.print(f"{label:<37} {value:.2f}  target >= {target}  {verdict}")
    for load in loads:
        for mode in MODES:
            series = results[load.name].pipeline[mode]
            sizes = series.batches
            console.print(
                f"{mode} writer batches, {load.name}: {len(sizes)} batches, "
                f"mean {statistics.fmean(sizes):,.0f} messages, max {max(sizes):,}; "
                f"alerts raised: {series.alerts}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_SINGLE_MESSAGES} single messages and "
        f"{QUICK_PACK_MESSAGES} packs instead of "
        f"{SINGLE_MESSAGES} and {PACK_MESSAGES}",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the runs, cProfile one more run of each writer per load (this "
        "process's threads; profile the ingest process with py-spy)",
    )
    args = parser.parse_args()

    binary = mosquitto_binary()
    base = load_settings(environ={})
    profiles = base.load_profiles()
    prefix = base.broker.topic_prefix
    batch_max = base.ingest.batch_max
    now_ms = SystemClock().now_ms()
    singles = QUICK_SINGLE_MESSAGES if args.quick else SINGLE_MESSAGES
    packs = QUICK_PACK_MESSAGES if args.quick else PACK_MESSAGES
    loads = [
        build_load("single readings", messages=singles, pack_size=1, prefix=prefix, now_ms=now_ms),
        build_load(
            f"{PACK_SIZE}-reading packs",
            messages=packs,
            pack_size=PACK_SIZE,
            prefix=prefix,
            now_ms=now_ms,
        ),
    ]

    info = machine_info(binary)
    console.rule("coldchain ingest benchmark")
    for key, text in info.items():
        console.print(f"{key:>10}: {text}")
    console.print(f"{'load avg':>10}: {loadavg()} (1, 5, 15 min) at start")
    console.print(
        f"{'settings':>10}: batch_max {batch_max}, batch_wait_ms {base.ingest.batch_wait_ms} "
        f"(from {base.source}); broker max_inflight_messages {BROKER_MAX_INFLIGHT}, "
        f"max_queued_messages 2 x backlog; publisher window {PUBLISH_MAX_INFLIGHT}; "
        f"{args.runs} runs, median"
    )

    results: dict[str, Figures] = {}
    for load in loads:
        f = results.setdefault(load.name, Figures())
        console.print(
            f"\n[bold]{load.name}[/]: {load.backlog:,} messages, "
            f"{len(load.readings):,} readings from {len(load.loggers):,} loggers"
        )
        for run in range(1, args.runs + 1):
            elapsed, cpu, broker_cpu = run_bare(binary, load, prefix)
            f.bare_s.append(elapsed)
            f.bare_cpu_s.append(cpu)
            f.bare_broker_cpu_s.append(broker_cpu)
            for mode in MODES:
                f.pipeline[mode].add(run_pipeline(binary, load, base, profiles, mode=mode))
            f.store_s.append(run_store(load, batch_max))
            console.print(
                f"  run {run}: (a) {f.bare_s[-1]:.2f} s  "
                f"(b) {f.pipeline['process'].seconds[-1]:.2f} s  "
                f"(b') {f.pipeline['thread'].seconds[-1]:.2f} s  (c) {f.store_s[-1]:.2f} s"
            )

    report(loads, results, batch_max)
    console.print(f"load avg: {loadavg()} at end")

    if args.profile:
        for load in loads:
            for mode in MODES:
                profiled = ThreadProfiles()
                result = run_pipeline(
                    binary, load, base, profiles, mode=mode, thread_profiles=profiled
                )
                console.print(
                    f"\n[bold]profile, {load.name}, {mode} writer[/]: {result.elapsed_s:.2f} s "
                    "under cProfile (CPU time per thread of this process)"
                )
                profiled.report(f"{load.name}, {mode} writer")


if __name__ == "__main__":
    main()
