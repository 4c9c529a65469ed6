"""Measure candidate embedded MQTT brokers with coldchain's own paho-2 clients.

Usage (from the repository root):
    python benchmarks/bench_brokers.py throughput --broker amqtt --qos 1 --n 20000 --repeat 5
    python benchmarks/bench_brokers.py persist --broker amqtt --offline-s 5 --n 70000
    python benchmarks/bench_brokers.py burst --broker amqtt

Brokers: amqtt (coldchain.broker.EmbeddedBroker), amqtt-anon (same, with amqtt's
default AnonymousAuthPlugin), mosquitto (system binary, in-memory, unlimited
queue), rumqttd (iotcore wheel, run from RUMQTTD_PYTHON's environment).
All traffic is on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from coldchain.broker import EmbeddedBroker
from coldchain.mqtt import MqttVersion, Publisher, Subscriber

RUMQTTD_PYTHON = os.environ.get("RUMQTTD_PYTHON", "/tmp/broker-eval/bin/python")
PAYLOAD = (
    b'{"logger_id":"LG-000123","ts":"2026-01-01T00:00:00.000Z","temp_c":4.93,'
    b'"battery_pct":87.5,"seq":0000000000}'
)


class AnonEmbeddedBroker(EmbeddedBroker):
    def _config(self) -> dict[str, Any]:
        config = super()._config()
        config["plugins"] = {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
        }
        return config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), 0.2),
        ):
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} not listening")


@contextlib.contextmanager
def run_broker(name: str) -> Iterator[str]:
    if name == "amqtt":
        with EmbeddedBroker() as b:
            yield b.url
    elif name == "amqtt-anon":
        with AnonEmbeddedBroker() as b:
            yield b.url
    elif name == "mosquitto":
        port = free_port()
        with tempfile.TemporaryDirectory() as d:
            conf = Path(d) / "m.conf"
            conf.write_text(
                f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                "max_queued_messages 0\nmax_inflight_messages 100\nlog_dest none\n"
            )
            proc = subprocess.Popen(["mosquitto", "-c", str(conf)])
            try:
                wait_port(port)
                yield f"mqtt://127.0.0.1:{port}"
            finally:
                proc.terminate()
                proc.wait(10)
    elif name == "rumqttd":
        port4, port5 = free_port(), free_port()
        with tempfile.TemporaryDirectory() as d:
            conf = Path(d) / "r.toml"
            conf.write_text(
                f"""id = 0
[router]
id = 0
max_connections = 10010
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "127.0.0.1:{port4}"
next_connection_delay_ms = 1
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 20480
    max_inflight_count = 100
    dynamic_filters = true

[v5.1]
name = "v5-1"
listen = "127.0.0.1:{port5}"
next_connection_delay_ms = 1
    [v5.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 20480
    max_inflight_count = 100
"""
            )
            proc = subprocess.Popen(
                [
                    RUMQTTD_PYTHON,
                    "-m",
                    "iotcore",
                    "--config",
                    str(conf),
                    "--log-level",
                    "WARNING",
                ],
                stdout=subprocess.DEVNULL,
            )
            try:
                wait_port(port4)
                wait_port(port5)
                yield f"mqtt://127.0.0.1:{port4 if PROTO is MqttVersion.V311 else port5}"
            finally:
                proc.terminate()
                proc.wait(10)
    else:
        raise SystemExit(f"unknown broker {name}")


PROTO = MqttVersion.V311
VERBOSE = bool(os.environ.get("BENCH_VERBOSE"))


class Counter:
    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.last = 0.0
        self.done = threading.Event()

    def __call__(self, topic: str, payload: bytes, received_ms: int) -> None:
        self.count += 1
        self.last = time.perf_counter()
        if self.count >= self.target:
            self.done.set()


def wait_quiet(counter: Counter, timeout: float, quiet_s: float = 3.0) -> None:
    """Wait until all arrived, or nothing arrived for quiet_s, or timeout."""
    deadline = time.monotonic() + timeout
    seen, since = -1, time.monotonic()
    while time.monotonic() < deadline and not counter.done.is_set():
        if counter.count != seen:
            seen, since = counter.count, time.monotonic()
        elif time.monotonic() - since > quiet_s:
            return
        counter.done.wait(0.1)


def throughput(url: str, qos: int, n: int, tag: str) -> tuple[float, int]:
    counter = Counter(n)
    sub = Subscriber(
        url=url,
        client_id="bench-sub",
        topics=["bench/#"],
        on_message=counter,
        protocol=PROTO,
    )
    pub = Publisher(url=url, client_id=f"bench-pub-{tag}", protocol=PROTO)
    ts = time.perf_counter()
    with sub, pub:
        t0 = time.perf_counter()
        for i in range(n):
            pub.publish(f"bench/logger-{i % 50}/telemetry", PAYLOAD, qos=qos)
        t_loop = time.perf_counter()
        pub.flush(120)
        t_flush = time.perf_counter()
        wait_quiet(counter, 300)
        elapsed = (counter.last or time.perf_counter()) - t0
    if VERBOSE:
        print(
            f"  run {tag}: start {t0 - ts:.1f}s publish-loop {t_loop - t0:.1f}s flush "
            f"{t_flush - t_loop:.1f}s last-rx {elapsed:.1f}s received {counter.count}",
            flush=True,
        )
    return n / elapsed, counter.count


def persist(url: str, offline_s: float, n: int, settle_s: float = 0.0) -> dict[str, Any]:
    first = Counter(1)
    cid = "bench-persist"
    with Subscriber(url=url, client_id=cid, topics=["p/#"], on_message=first, protocol=PROTO):
        pass
    time.sleep(offline_s)
    t0 = time.perf_counter()
    with Publisher(url=url, client_id="bench-persist-pub", protocol=PROTO) as pub:
        for i in range(n):
            pub.publish(f"p/{i % 50}", PAYLOAD, qos=1)
        pub.flush(300)
    t_pub = time.perf_counter() - t0
    time.sleep(settle_s)  # let the broker route what it has acknowledged
    counter = Counter(n)
    t1 = time.perf_counter()
    sub = Subscriber(
        url=url,
        client_id=cid,
        topics=["p/#"],
        on_message=counter,
        protocol=PROTO,
        connect_timeout_s=600,
    )
    with sub:
        wait_quiet(counter, 600, quiet_s=5)
    return {
        "offline_s": offline_s,
        "settle_s": settle_s,
        "published": n,
        "replayed": counter.count,
        "publish_s": round(t_pub, 1),
        "replay_s": round((counter.last or t1) - t1, 1),
    }


def burst(url: str, rounds: int = 20, n: int = 50) -> str:
    """Queue n QoS 1 messages for an offline session, reconnect at once, count losses."""
    lost = 0
    for r in range(rounds):
        counter = Counter(n)
        cid, topic = f"bench-burst-{r}", f"burst/{r}"
        with Subscriber(
            url=url,
            client_id=cid,
            topics=[f"{topic}/#"],
            on_message=counter,
            protocol=PROTO,
        ):
            pass
        with Publisher(url=url, client_id="bench-burst-pub", protocol=PROTO) as pub:
            for i in range(n):
                pub.publish(f"{topic}/x", str(i).encode())
            pub.flush()
        with Subscriber(
            url=url,
            client_id=cid,
            topics=[f"{topic}/#"],
            on_message=counter,
            protocol=PROTO,
        ):
            wait_quiet(counter, 30, quiet_s=3)
        lost += n - counter.count
    return f"{rounds} rounds x {n} QoS 1 messages queued for an offline session: lost {lost}"


def main() -> None:
    global PROTO  # noqa: PLW0603
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["throughput", "persist", "burst"])
    ap.add_argument("--broker", required=True)
    ap.add_argument("--qos", type=int, default=1)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--offline-s", type=float, default=0.0)
    ap.add_argument("--settle-s", type=float, default=0.0)
    ap.add_argument("--proto", choices=["3.1.1", "5"], default="3.1.1")
    args = ap.parse_args()
    PROTO = MqttVersion(args.proto)
    if args.mode == "throughput":
        # A fresh broker per run: leftover sessions must not skew the next run.
        rates, counts = [], []
        for r in range(args.repeat):
            with run_broker(args.broker) as url:
                rate, count = throughput(url, args.qos, args.n, f"{r}")
            rates.append(rate)
            counts.append(count)
        print(
            f"{args.broker} MQTT {args.proto} QoS {args.qos}: n={args.n} "
            f"median {statistics.median(rates):,.0f} msg/s "
            f"(runs: {', '.join(f'{x:,.0f}' for x in rates)}); received {counts}",
            flush=True,
        )
    elif args.mode == "persist":
        with run_broker(args.broker) as url:
            print(
                args.broker,
                persist(url, args.offline_s, args.n, args.settle_s),
                flush=True,
            )
    else:
        with run_broker(args.broker) as url:
            print(args.broker, burst(url), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
