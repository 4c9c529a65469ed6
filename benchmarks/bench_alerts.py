"""Alert latency: from a reading's publish to the alert at an MQTT subscriber and a webhook.

Starts its own Mosquitto (as :mod:`benchmarks.bench_ingest` does) and three
kinds of process, so that no client shares an interpreter with the system
under test:

* **receivers** (one child process): an MQTT subscriber on the alert topic
  ``{prefix}/shipments/+/alerts`` (QoS 1) and an HTTP server that verifies each
  webhook's HMAC signature and timestamp, as a real receiver would;
* **background load** (one child process): native JSON single readings from
  1,000 loggers, paced at ``--rate`` messages/s (default 1,000), each logger on
  a registered ``vaccine-2-8`` shipment, all in range (no alert);
* **coldchain** (this process): :class:`coldchain.runtime.Runtime` with the
  settings' ingest mode (default: the pipeline in a child process), a SQLite
  file store, and routing to two channels, ``mqtt`` and ``webhook``.

Each probe is a ``cart-ln2`` shipment whose logger publishes one reading at
-140 °C: ``warm-critical`` (above -150 °C, no delay) fires at once. The clock
starts just before the probe is published and stops when the alert arrives
(``time.monotonic_ns``, which on Linux is one clock for every process). The
report gives percentiles per channel, for "both arrived", and the share of
the time spent before the alert was committed (ingest) and after (dispatch).

Usage: python -m benchmarks.bench_alerts [--probes 300] [--rate 1000] [--quick]
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from tempfile import TemporaryDirectory
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from benchmarks.bench_ingest import Mosquitto, loadavg, machine_info, mosquitto_binary
from coldchain.alerts import Alert
from coldchain.clock import SystemClock
from coldchain.config import load_settings
from coldchain.models import MS_PER_MIN, Shipment, ShipmentStatus
from coldchain.mqtt import Publisher, Subscriber
from coldchain.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from coldchain.routing import parse_routing
from coldchain.runtime import Runtime
from coldchain.simulation.loadgen import make_load
from coldchain.store import open_store
from coldchain.topics import alerts_topic, telemetry_topic

PREFIX = "coldchain/v1"
LOAD_LOGGERS = 1_000
LOAD_PRODUCT = "vaccine-2-8"
PROBE_PRODUCT = "cart-ln2"
PROBE_TEMP_C = -140.0  # above cart-ln2's warm-critical limit of -150 °C, no delay
PROBE_INTERVAL_S = 0.1
DEFAULT_PROBES = 300
QUICK_PROBES = 60
DEFAULT_RATE = 1_000
WARMUP_S = 3.0
ARRIVAL_TIMEOUT_S = 15.0
TARGET_P99_MS = 100.0
SECRET = "bench-webhook-secret"
CHANNELS = ("mqtt", "webhook")

console = Console(highlight=False)
if not console.is_terminal:
    console.width = 110


# -- child processes -----------------------------------------------------------------------


def receivers_main(url: str, port: int, arrivals: Queue[Any], ready: Event, stop: Event) -> None:
    """The MQTT subscriber and the webhook server; each arrival is ``(shipment, channel, ns)``."""

    def on_alert(topic: str, payload: bytes, received_ms: int) -> None:
        now = time.monotonic_ns()
        doc = orjson.loads(payload)
        if doc.get("event") == "raised":
            arrivals.put((doc["shipment_id"], "mqtt", now))

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            now = time.monotonic_ns()
            refused = verify_signature(
                SECRET,
                body=body,
                timestamp=self.headers.get(TIMESTAMP_HEADER),
                signature=self.headers.get(SIGNATURE_HEADER),
                now_s=time.time(),
            )
            self.send_response(401 if refused else 200)
            self.end_headers()
            if refused:
                arrivals.put(("", "refused", 0))
                return
            doc = orjson.loads(body)
            if doc.get("event") == "raised":
                arrivals.put((doc["shipment_id"], "webhook", now))

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    subscriber = Subscriber(
        url=url,
        client_id=f"bench-alert-watch-{os.getpid()}",
        topics=[alerts_topic("+", prefix=PREFIX)],
        on_message=on_alert,
    )
    with subscriber:
        ready.set()
        stop.wait()
    server.shutdown()


def load_main(url: str, rate: float, duration_s: float, start_ms: int, done: Queue[Any]) -> None:
    """Publish single readings at ``rate`` msg/s for ``duration_s``; report what was sent."""
    count = int(rate * duration_s)
    pairs = make_load(
        loggers=LOAD_LOGGERS, messages=count, pack_size=1, start_ms=start_ms, prefix=PREFIX
    )
    publisher = Publisher(url=url, client_id=f"bench-load-{os.getpid()}")
    late = 0
    with publisher:
        started = time.monotonic()
        for n, (topic, payload) in enumerate(pairs):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.05:
                late += 1
            publisher.publish(topic, payload, qos=1)
        publisher.flush()
        elapsed = time.monotonic() - started
    done.put((count, elapsed, late))


# -- measurement ---------------------------------------------------------------------------


@dataclass
class Probe:
    shipment_id: str
    logger_id: str
    sent_ns: int = 0
    committed_ns: int = 0
    arrived: dict[str, int] = field(default_factory=dict)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]  # nearest rank


def run(args: argparse.Namespace) -> int:
    binary = mosquitto_binary()
    info = machine_info(binary)
    probes_n = QUICK_PROBES if args.quick else args.probes
    duration_s = WARMUP_S + probes_n * PROBE_INTERVAL_S + 5.0
    ctx = mp.get_context("spawn")
    now_ms = time.time_ns() // 1_000_000
    console.print(
        f"alert latency: {probes_n} probes, one every {PROBE_INTERVAL_S * 1000:.0f} ms, under "
        f"{args.rate:,.0f} msg/s of background load from {LOAD_LOGGERS:,} loggers"
    )
    with (
        TemporaryDirectory(prefix="coldchain-bench-alerts-") as tmp,
        Mosquitto(binary, max_queued_messages=10 * int(args.rate * duration_s)) as broker,
    ):
        port = _free_port()
        settings = load_settings(
            environ={"COLDCHAIN_STORE": f"sqlite:///{tmp}/bench.db", "COLDCHAIN_BROKER": broker.url}
        )
        settings = settings.model_copy(
            update={"broker": settings.broker.model_copy(update={"client_id": "bench-alerts"})}
        )
        if args.mode:
            settings = settings.model_copy(
                update={"ingest": settings.ingest.model_copy(update={"mode": args.mode})}
            )
        profiles = settings.load_profiles()
        routing = parse_routing(
            {
                "channels": {
                    "mqtt": {"type": "mqtt"},
                    "webhook": {
                        "type": "webhook",
                        "url": f"http://127.0.0.1:{port}/alerts",
                        "secret_env": "BENCH_SECRET",
                    },
                },
                "routes": [{"id": "all", "channels": list(CHANNELS)}],
            },
            source="bench",
            environ={"BENCH_SECRET": SECRET},
        )
        store = open_store(settings.store.url)
        load_loggers = [f"LOAD-{n:05d}" for n in range(LOAD_LOGGERS)]
        probes = [Probe(f"PROBE-{n:04d}", f"PL-{n:04d}") for n in range(probes_n)]
        for logger in load_loggers:
            store.create_shipment(_shipment(f"S-{logger}", LOAD_PRODUCT, logger, now_ms))
        for p in probes:
            store.create_shipment(_shipment(p.shipment_id, PROBE_PRODUCT, p.logger_id, now_ms))
        by_shipment = {p.shipment_id: p for p in probes}

        def committed(alert: Alert) -> None:
            probe = by_shipment.get(alert.shipment_id)
            if probe is not None and not probe.committed_ns:
                probe.committed_ns = time.monotonic_ns()

        arrivals: Queue[Any] = ctx.Queue()
        load_done: Queue[Any] = ctx.Queue()
        ready, stop = ctx.Event(), ctx.Event()
        receivers = ctx.Process(
            target=receivers_main, args=(broker.url, port, arrivals, ready, stop), daemon=True
        )
        receivers.start()
        if not ready.wait(30):
            raise SystemExit("the receivers did not start")
        load_start_ms = now_ms - 24 * 60 * MS_PER_MIN  # in the past: no clock-skew alerts
        with Runtime(
            settings,
            store,
            profiles,
            clock=SystemClock(),
            routing=routing,
            extra_sinks=(committed,),
        ) as rt:
            load = ctx.Process(
                target=load_main,
                args=(broker.url, args.rate, duration_s, load_start_ms, load_done),
                daemon=True,
            )
            load.start()
            with Publisher(url=broker.url, client_id="bench-probe-publisher") as pub:
                # an in-range reading first, so the probes' first alert is not a cold start
                t0 = time.time() - 120
                for p in probes:
                    pub.publish(_topic(p), _reading(1, t0, -185.0))
                pub.flush()
                time.sleep(WARMUP_S)
                for p in probes:
                    body = _reading(2, time.time() - 1, PROBE_TEMP_C)
                    p.sent_ns = time.monotonic_ns()
                    pub.publish(_topic(p), body)
                    _collect(arrivals, by_shipment, until=time.monotonic() + PROBE_INTERVAL_S)
            deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
            while time.monotonic() < deadline and any(len(p.arrived) < 2 for p in probes):
                _collect(arrivals, by_shipment, until=time.monotonic() + 0.1)
            load.join(duration_s + 30)
            sent, load_elapsed, late = load_done.get(timeout=30)
            dispatched = rt.dispatcher.counters if rt.dispatcher else None
        stop.set()
        receivers.join(10)
        store.close()

    return report(
        probes,
        sent=sent,
        load_elapsed=load_elapsed,
        late=late,
        info=info,
        dispatched=dispatched,
        args=args,
    )


def _collect(arrivals: Queue[Any], probes: dict[str, Probe], *, until: float) -> None:
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return
        try:
            shipment_id, channel, ns = arrivals.get(timeout=left)
        except Exception:  # queue.Empty
            return
        probe = probes.get(shipment_id)
        if probe is not None and channel not in probe.arrived:
            probe.arrived[channel] = ns


def _shipment(sid: str, product: str, logger: str, now_ms: int) -> Shipment:
    return Shipment(
        id=sid,
        product=product,
        loggers=(logger,),
        origin="SG",
        destination="ID",
        status=ShipmentStatus.IN_TRANSIT,
        created_ms=now_ms,
    )


def _topic(p: Probe) -> str:
    return telemetry_topic(p.logger_id, prefix=PREFIX)


def _reading(seq: int, ts_s: float, temp_c: float) -> bytes:
    return orjson.dumps({"seq": seq, "ts": round(ts_s, 3), "temp_c": temp_c})


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# -- report --------------------------------------------------------------------------------


def report(
    probes: Sequence[Probe],
    *,
    sent: int,
    load_elapsed: float,
    late: int,
    info: dict[str, str],
    dispatched: Any,
    args: argparse.Namespace,
) -> int:
    def ms(ns: int) -> float:
        return ns / 1e6

    series: dict[str, list[float]] = {c: [] for c in (*CHANNELS, "both")}
    ingest: list[float] = []
    dispatch: list[float] = []
    for p in probes:
        for channel in CHANNELS:
            if channel in p.arrived:
                series[channel].append(ms(p.arrived[channel] - p.sent_ns))
        if len(p.arrived) == len(CHANNELS):
            last = max(p.arrived.values())
            series["both"].append(ms(last - p.sent_ns))
            if p.committed_ns:
                ingest.append(ms(p.committed_ns - p.sent_ns))
                dispatch.append(ms(last - p.committed_ns))
    table = Table(title="Alert latency, publish → arrival (ms)", title_justify="left")
    for col in ("path", "arrived", "p50", "p90", "p99", "max", "mean"):
        table.add_column(col, justify="left" if col == "path" else "right")
    rows = [
        ("MQTT subscriber", series["mqtt"]),
        ("webhook receiver", series["webhook"]),
        ("both (the later of the two)", series["both"]),
        ("  of which: until committed", ingest),
        ("  of which: committed → both", dispatch),
    ]
    for label, values in rows:
        table.add_row(
            label,
            f"{len(values)}/{len(probes)}",
            *(f"{percentile(values, q):.1f}" for q in (50, 90, 99)),
            f"{max(values, default=float('nan')):.1f}",
            f"{statistics.fmean(values) if values else float('nan'):.1f}",
        )
    console.print()
    console.print(table)
    console.print(
        f"background load: {sent:,} messages in {load_elapsed:.1f} s = "
        f"{sent / load_elapsed:,.0f} msg/s (late by > 50 ms: {late})"
    )
    if dispatched is not None:
        console.print(
            f"dispatcher: {dispatched.delivered} delivered, {dispatched.retried} retried, "
            f"{dispatched.failed} failed"
        )
    console.print(
        f"machine: {info['cpu']}, nproc {info['nproc']}, Python {info['python']}, "
        f"{info['mosquitto']}; load avg {loadavg()} at end; ingest mode "
        f"{args.mode or 'from settings'}"
    )
    p99 = percentile(series["both"], 99)
    lost = sum(1 for p in probes if len(p.arrived) < len(CHANNELS))
    ok = p99 <= TARGET_P99_MS and lost == 0
    verdict = "[green]met" if ok else "[red]missed"
    console.print(
        f"p99 (both channels) {p99:.1f} ms, target <= {TARGET_P99_MS:.0f} ms, "
        f"{lost} probes incomplete: {verdict}"
    )
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--probes", type=int, default=DEFAULT_PROBES)
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="background msg/s")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_PROBES} probes")
    parser.add_argument(
        "--mode",
        choices=("process", "thread"),
        default=None,
        help="ingest mode (default: settings)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    raise SystemExit(run(args))


if __name__ == "__main__":
    main()
