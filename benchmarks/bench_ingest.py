"""Ingest throughput: what the coldchain subscriber sustains next to bare paho.

Starts its own Mosquitto on a free loopback port (temp config, persistence
off) and measures, as medians of ``--runs`` runs, for two loads (single
readings and 100-reading packs, QoS 1, from :func:`simulators.loadgen.make_load`):

(a) a bare paho subscriber (MQTT 5, QoS 1) that only counts messages;
(b) the coldchain pipeline: :class:`coldchain.mqtt.Subscriber` →
    :class:`coldchain.pipeline.Writer` → :class:`coldchain.pipeline.Pipeline`
    (decode, validate, store in a fresh SQLite file, streaming evaluation of a
    ``vaccine-2-8`` shipment per logger), timed until every reading is stored;
(c) the store ceiling: :meth:`SqliteStore.insert_readings` of the same
    readings, straight from Python objects, in batches of the Writer's size.

To time the subscriber and not the publisher, each run pre-loads the backlog
while the subscriber is offline: it subscribes once with a persistent session
and disconnects, the load is published (at most 100 unacknowledged), and the
clock runs from the reconnect (same client id) until the backlog is drained.
Every run gets a fresh broker, so no other session's queue is in the way.

Usage: python -m benchmarks.bench_ingest [--quick] [--runs 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import getpass
import importlib.metadata
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
from coldchain.config import Settings, load_settings
from coldchain.decoding import decode_telemetry
from coldchain.models import MS_PER_MIN, Reading, Shipment, ShipmentStatus
from coldchain.mqtt import Subscriber, parse_broker_url
from coldchain.pipeline import Pipeline, Writer
from coldchain.profiles import ProfileSet
from coldchain.store.sqlite import SqliteStore
from coldchain.topics import subscriptions
from simulators.loadgen import make_load
from simulators.publish import Outgoing, publish

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

console = Console(highlight=False)
if not console.is_terminal:
    console.width = 110  # rich's default of 80 columns wraps the tables in logs


# -- machine -------------------------------------------------------------------------


def mosquitto_binary() -> str:
    binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
    if binary is None:
        sys.exit("mosquitto is not installed; run scripts/install-mosquitto.sh")
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
    return {
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


def bare_drain(url: str, client_id: str, expected: int) -> float:
    """Reconnect and count the queued messages; seconds from connect to the last one."""
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
    finally:
        client.disconnect()
        client.loop_stop()
    return elapsed


def run_bare(binary: str, load: Load, prefix: str) -> float:
    with Mosquitto(binary, max_queued_messages=_queue_size(load)) as broker:
        bare_subscribe_once(broker.url, "bench-bare", f"{prefix}/loggers/+/telemetry")
        preload(broker.url, load)
        return bare_drain(broker.url, "bench-bare", load.backlog)


def _queue_size(load: Load) -> int:
    size = 2 * load.backlog
    assert size >= load.backlog, "Mosquitto must be able to queue the whole backlog"
    return size


# -- (b) the coldchain pipeline --------------------------------------------------------


@dataclass
class PipelineRun:
    elapsed_s: float
    readings: int
    batches: list[int] = field(default_factory=list)
    alerts: int = 0


def run_pipeline(
    binary: str,
    load: Load,
    base: Settings,
    profiles: ProfileSet,
    *,
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
        pipeline = Pipeline(store, profiles, settings, clock=clock)
        # Create the persistent session, go offline, queue the backlog.
        with Subscriber(
            url=broker.url, client_id=client_id, topics=topics, on_message=lambda _t, _p, _r: None
        ):
            pass
        preload(broker.url, load)

        batches: list[int] = []
        handled = 0
        done = threading.Event()

        def on_batch(size: int) -> None:  # the writer thread, after Pipeline.handle
            nonlocal handled
            batches.append(size)
            handled += size
            if handled >= load.backlog:
                done.set()

        writer = Writer(
            pipeline,
            batch_max=settings.ingest.batch_max,
            batch_wait_ms=settings.ingest.batch_wait_ms,
        )
        writer.on_batch = on_batch
        subscriber = Subscriber(
            url=broker.url, client_id=client_id, topics=topics, on_message=writer.submit
        )
        with thread_profiles or _nothing():
            writer.start()
            started = time.perf_counter()
            subscriber.start()
            try:
                wait_for(done, lambda: handled, load.backlog, "coldchain pipeline")
                elapsed = time.perf_counter() - started
            finally:
                subscriber.stop()
                writer.stop()
        counters = pipeline.counters
        store.close()
    if counters.readings != len(load.readings) or counters.rejected:
        msg = (
            f"pipeline stored {counters.readings} of {len(load.readings)} readings "
            f"({counters.rejected} rejected, {counters.duplicates} duplicates)"
        )
        raise RuntimeError(msg)
    return PipelineRun(elapsed, counters.readings, batches, counters.alerts)


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
    """cProfile every thread started inside the ``with`` block, one profile per thread."""

    def __init__(self) -> None:
        self.profiles: list[tuple[str, cProfile.Profile]] = []
        self._lock = threading.Lock()

    def _start(self, _frame: FrameType, _event: str, _arg: object) -> None:
        sys.setprofile(None)
        profile = cProfile.Profile()
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
            table = Table(
                title=f"{title}: thread {name} ({total:.2f} s wall)", title_justify="left"
            )
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
class Figures:
    bare_s: list[float] = field(default_factory=list)
    pipeline_s: list[float] = field(default_factory=list)
    store_s: list[float] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    alerts: int = 0


def rate(count: int, times: Sequence[float]) -> float:
    return count / statistics.median(times)


def spread(times: Sequence[float]) -> str:
    return " / ".join(f"{t:.2f}" for t in times)


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
        help="after the runs, cProfile one more pipeline run per load",
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
    console.print(
        f"{'settings':>10}: batch_max {batch_max}, batch_wait_ms {base.ingest.batch_wait_ms} "
        f"(from {base.source}); broker max_inflight_messages {BROKER_MAX_INFLIGHT}, "
        f"max_queued_messages 2 x backlog; publisher window {PUBLISH_MAX_INFLIGHT}; "
        f"{args.runs} runs, median"
    )

    results: dict[str, Figures] = {}
    for load in loads:
        figures = results.setdefault(load.name, Figures())
        console.print(
            f"\n[bold]{load.name}[/]: {load.backlog:,} messages, "
            f"{len(load.readings):,} readings from {len(load.loggers):,} loggers"
        )
        for run in range(1, args.runs + 1):
            figures.bare_s.append(run_bare(binary, load, prefix))
            result = run_pipeline(binary, load, base, profiles)
            figures.pipeline_s.append(result.elapsed_s)
            figures.batches.extend(result.batches)
            figures.alerts += result.alerts
            figures.store_s.append(run_store(load, batch_max))
            console.print(
                f"  run {run}: (a) {figures.bare_s[-1]:.2f} s  "
                f"(b) {figures.pipeline_s[-1]:.2f} s  (c) {figures.store_s[-1]:.2f} s"
            )

    table = Table(title="Ingest throughput (median)", title_justify="left")
    for col in ("load", "measure", "msgs/s", "readings/s", "runs (s)"):
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
        )
        table.add_row(
            "",
            "(b) coldchain pipeline",
            f"{rate(n, f.pipeline_s):,.0f}",
            f"{rate(r, f.pipeline_s):,.0f}",
            spread(f.pipeline_s),
        )
        table.add_row(
            "",
            f"(c) store ceiling, {batch_max}/batch",
            "",
            f"{rate(r, f.store_s):,.0f}",
            spread(f.store_s),
            end_section=True,
        )
    console.print()
    console.print(table)

    single, pack = loads
    fs, fp = results[single.name], results[pack.name]
    single_ratio = rate(single.backlog, fs.pipeline_s) / rate(single.backlog, fs.bare_s)
    pack_bare = rate(len(pack.readings), fp.bare_s)
    pack_store = rate(len(pack.readings), fp.store_s)
    pack_ratio = rate(len(pack.readings), fp.pipeline_s) / min(pack_bare, pack_store)
    for label, value, target in (
        ("single readings: b / a (msgs/s)", single_ratio, SINGLE_TARGET),
        ("packs: b / min(a, c) (readings/s)", pack_ratio, PACK_TARGET),
    ):
        verdict = "[green]met" if value >= target else "[red]missed"
        console.print(f"{label:<36} {value:.2f}  target >= {target}  {verdict}")
    for load in loads:
        sizes = results[load.name].batches
        console.print(
            f"writer batches, {load.name}: {len(sizes)} batches, "
            f"mean {statistics.fmean(sizes):,.0f} messages, max {max(sizes):,}; "
            f"alerts raised: {results[load.name].alerts}"
        )

    if args.profile:
        for load in loads:
            profiled = ThreadProfiles()
            result = run_pipeline(binary, load, base, profiles, thread_profiles=profiled)
            console.print(
                f"\n[bold]profile, {load.name}[/]: {result.elapsed_s:.2f} s "
                "under cProfile (wall time per thread)"
            )
            profiled.report(load.name)


if __name__ == "__main__":
    main()
