"""Evaluation throughput (make bench-eval): batch, streaming, plain Python, bare group-by.

One frame of stored readings (10M readings over 10k shipments by default,
sorted by shipment and device time as the store returns them) and the shipped
``vaccine-2-8`` profile, then, in one run:

* **batch**: ``coldchain.batch.evaluate_frame`` over the whole frame, the full
  evaluation including ``assemble`` (alarms, budgets, verdict) per shipment;
* **streaming**: ``coldchain.streaming.ShipmentMonitor.add`` fed each
  shipment's readings in order, 100 per call (pure Python: a subset);
* **python**: ``coldchain.evaluation.evaluate`` per shipment (the same subset;
  the conversion of the frame to lists of tuples is not timed);
* **bare group-by**: ``df.group_by("shipment_id").agg(((ts.shift(-1) - ts) *
  (temp > 8.0)).sum())`` on the same frame: per shipment, the sum over its
  rows, in frame order, of the time to the next row for rows above 8 °C (the
  last row adds nothing). No cap, max_gap, duplicates, episodes, MKT or
  Python objects: the floor for "one polars pass over the readings".

Targets (issue): batch >= 15M readings/s and >= 0.5x the bare group-by.
Each figure is the median of ``--runs`` runs; batch and bare group-by
alternate within each round so that a noisy neighbour hits both alike.

Signals (``--signal``):

* ``realistic`` (default): readings every 5 min; per shipment a setpoint of
  3.5-6 °C, a daily swing of ±0.8 °C and ±0.15 °C noise, quantised to 0.1 °C;
  half the shipments have one warm excursion (10-120 min, +3 to +11 °C) and a
  quarter one cold one (down to about -3 °C);
* ``oscillating``: the older stress signal, readings every minute with
  5 ± 4.5 °C on a 6.3 h period plus ±0.25 °C noise, so about 45 % of the time
  is out of range and noise makes many short episodes at every crossing.

Both lose 1 % of readings in 40-reading blocks (data gaps), make one reading
in 50 arrive 7 s late, and repeat 0.1 % of readings at the same time
(half with another temperature), as loggers re-sending do.

Usage: python -m benchmarks.bench_eval [--readings N] [--shipments S] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import polars as pl

from coldchain.batch import evaluate_frame, measure_frame
from coldchain.evaluation import Evaluation, Measures, assemble, evaluate
from coldchain.profiles import SHIPPED_PRODUCTS_DIR, Profile, load_profiles
from coldchain.streaming import ShipmentMonitor

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MS_PER_MIN = 60_000
LIMIT_C = 8.0  # the bare group-by's one limit: vaccine-2-8's upper one
CHUNK = 100  # readings per ShipmentMonitor.add call
TARGET_RATE = 15e6  # readings/s
TARGET_VS_BARE = 0.5

_R = TypeVar("_R")


@dataclass(frozen=True)
class Workload:
    frame: pl.DataFrame
    caps: dict[str, int]
    now_ms: int
    interval_min: int


def _unit(expr: pl.Expr, salt: int) -> pl.Expr:
    """A deterministic pseudo-random number in [0, 1) per value of ``expr``."""
    return (expr.hash(salt) % 1_000_003).cast(pl.Float64) / 1_000_003


def _bump(step: pl.Expr, start: pl.Expr, length: pl.Expr, ramp: float) -> pl.Expr:
    """0 outside [start, start + length], rising to 1 over ``ramp`` readings at each end."""
    inside = pl.min_horizontal(step - start, start + length - step)
    return (inside.cast(pl.Float64) / ramp).clip(0.0, 1.0)


def _realistic(s: pl.Expr, step: pl.Expr, i: pl.Expr, per: int, interval_min: int) -> pl.Expr:
    minutes = (step * interval_min).cast(pl.Float64)
    base = 3.5 + 2.5 * _unit(s, 1)
    daily = 0.8 * (minutes * (2 * 3.141592653589793 / 1440) + 6.283 * _unit(s, 2)).sin()
    noise = 0.3 * (_unit(i, 3) - 0.5)
    readings_per_2h = 120 // interval_min
    warm = (
        (_unit(s, 4) < 0.5).cast(pl.Float64)
        * (3.0 + 8.0 * _unit(s, 5))
        * _bump(
            step,
            (_unit(s, 6) * per).floor(),
            2 + (_unit(s, 7) * (readings_per_2h - 2)).floor(),
            ramp=2,
        )
    )
    cold = (
        (_unit(s, 8) < 0.25).cast(pl.Float64)
        * (2.5 + 4.0 * _unit(s, 9))
        * _bump(step, (_unit(s, 10) * per).floor(), 2 + (_unit(s, 11) * 20).floor(), ramp=3)
    )
    return (base + daily + noise + warm - cold).round(1)


def _oscillating(step: pl.Expr, i: pl.Expr) -> pl.Expr:
    noise = _unit(i, 3) - 0.5
    return 5.0 + 4.5 * (step.cast(pl.Float64) / 60.0).sin() + 0.5 * noise


def generate(readings: int, shipments: int, *, signal: str, seed: int = 1) -> Workload:
    """Stored readings, sorted by shipment and device time; caps at each shipment's end."""
    interval_min = 5 if signal == "realistic" else 1
    per = readings // shipments
    i = pl.col("i")
    s = i // per
    step = i % per
    late = (i.hash(seed + 20) % 50 == 0).cast(pl.Int64) * 7_000
    lost = (i // 40).hash(seed + 21) % 100 == 0
    temp = (
        _realistic(s, step, i, per, interval_min)
        if signal == "realistic"
        else _oscillating(step, i)
    )
    rows = (
        pl.DataFrame({"i": pl.int_range(0, per * shipments, dtype=pl.Int64, eager=True)})
        .filter(~lost)
        .select(
            s.alias("s"),
            (T0 + step * interval_min * MS_PER_MIN + late).alias("ts_ms"),
            temp.alias("temp_c"),
            i,
        )
    )
    again = rows.filter(i.hash(seed + 22) % 1000 == 0).with_columns(
        pl.col("temp_c") + (i.hash(seed + 23) % 2).cast(pl.Float64) * 0.5
    )
    frame = (
        pl.concat([rows, again])
        .sort("s", "ts_ms")
        .select(pl.format("S-{}", "s").alias("shipment_id"), "ts_ms", "temp_c")
    )
    end = T0 + per * interval_min * MS_PER_MIN
    caps = {f"S-{k}": end for k in range(shipments)}
    return Workload(frame, caps, end, interval_min)


def bare_group_by(frame: pl.DataFrame) -> pl.DataFrame:
    """Per shipment, the time to the next row summed over rows above LIMIT_C (frame order)."""
    ts, temp = pl.col("ts_ms"), pl.col("temp_c")
    return frame.group_by("shipment_id").agg(((ts.shift(-1) - ts) * (temp > LIMIT_C)).sum())


def batch(work: Workload, profile: Profile) -> dict[str, Evaluation]:
    return evaluate_frame(
        work.frame, dict.fromkeys(work.caps, profile), work.caps, now_ms=work.now_ms
    )


def streaming(points: dict[str, list[tuple[int, float]]], work: Workload, profile: Profile) -> int:
    firings = 0
    for sid, pts in points.items():
        monitor = ShipmentMonitor(sid, profile, end_ms=work.caps[sid])
        for at in range(0, len(pts), CHUNK):
            firings += len(monitor.add(pts[at : at + CHUNK]))
    return firings


def assemble_all(
    measures: dict[str, Measures], work: Workload, profile: Profile
) -> list[Evaluation]:
    return [assemble(sid, profile, m, evaluated_ms=work.now_ms) for sid, m in measures.items()]


def python_loop(
    points: dict[str, list[tuple[int, float]]], work: Workload, profile: Profile
) -> dict[str, Evaluation]:
    return {
        sid: evaluate(sid, profile, pts, now_ms=work.now_ms, end_ms=work.caps[sid])
        for sid, pts in points.items()
    }


def subset(work: Workload, readings: int) -> dict[str, list[tuple[int, float]]]:
    """The first shipments' points, about ``readings`` of them, as Python tuples."""
    shipments = max(readings * len(work.caps) // max(work.frame.height, 1), 1)
    wanted = list(work.caps)[:shipments]
    part = work.frame.filter(pl.col("shipment_id").is_in(wanted))
    points: dict[str, list[tuple[int, float]]] = {sid: [] for sid in wanted}
    for sid, ts, temp in part.iter_rows():
        points[sid].append((ts, temp))
    return points


def timed(fn: Callable[[], _R]) -> tuple[float, float, _R]:
    """Wall seconds, CPU seconds of the whole process (all threads), result."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def machine() -> str:
    cpu = platform.processor() or "?"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = "?"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total_kb = int(meminfo.read_text().split("MemTotal:", 1)[1].split()[0])
        memory = f"{total_kb / 2**20:.0f} GiB"
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"{cpu}; {usable} usable cores (polars pool {pl.thread_pool_size()}); {memory} RAM\n"
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}; "
        f"polars {pl.__version__}; load average {load}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=10_000_000)
    parser.add_argument("--shipments", type=int, default=10_000)
    parser.add_argument("--subset", type=int, default=500_000, help="readings for the Python paths")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--signal", choices=("realistic", "oscillating"), default="realistic")
    parser.add_argument(
        "--quick", action="store_true", help="1M readings, 1k shipments, 50k subset"
    )
    args = parser.parse_args()
    if args.quick:
        args.readings, args.shipments, args.subset = 1_000_000, 1_000, 50_000

    print(machine())
    profile = load_profiles(SHIPPED_PRODUCTS_DIR).get("vaccine-2-8")
    seconds, _, work = timed(lambda: generate(args.readings, args.shipments, signal=args.signal))
    n = work.frame.height
    print(
        f"{args.signal} signal, every {work.interval_min} min: {n:,} readings "
        f"(with repeats), {len(work.caps):,} shipments, sorted; generated in {seconds:.1f} s"
    )
    points = subset(work, args.subset)
    n_sub = sum(len(p) for p in points.values())

    # Warm-up, and the content: what the batch evaluation found, and that it equals Python.
    evaluations = batch(work, profile)
    episodes = sum(len(eps) for ev in evaluations.values() for eps in ev.measures.episodes.values())
    gaps = sum(len(ev.measures.gaps) for ev in evaluations.values())
    verdicts: dict[str, int] = {}
    for ev in evaluations.values():
        verdicts[ev.verdict] = verdicts.get(ev.verdict, 0) + 1
    print(f"found {episodes:,} episodes, {gaps:,} gaps; verdicts {verdicts}")
    reference = python_loop(points, work, profile)
    same = all(evaluations[sid].to_json() == ev.to_json() for sid, ev in reference.items())
    print(f"batch == python on the {len(points):,} subset shipments: {same}")
    bare_group_by(work.frame)

    names = ("batch", "streaming", "python", "bare", "measure", "assemble")
    wall: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}

    def record(name: str, fn: Callable[[], _R]) -> _R:
        seconds, cpu_seconds, result = timed(fn)
        wall[name].append(seconds)
        cpu[name].append(cpu_seconds)
        return result

    for _ in range(args.runs):
        record("bare", lambda: bare_group_by(work.frame))
        record("batch", lambda: batch(work, profile))
        record("streaming", lambda: streaming(points, work, profile))
        record("python", lambda: python_loop(points, work, profile))
        # Where the batch time goes: the polars part (measure_frame, up to Measures) and
        # assemble (alarms, budgets, verdict: evaluation.py, pure Python) per shipment.
        measures = record("measure", lambda: measure_frame(work.frame, profile, work.caps))
        record("assemble", partial(assemble_all, measures, work, profile))
    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    counted = dict.fromkeys(names, n) | {"streaming": n_sub, "python": n_sub}
    rate = {k: counted[k] / med[k] for k in med}

    labels = {
        "batch": "batch evaluate_frame (full, incl. assemble)",
        "streaming": f"streaming ShipmentMonitor.add ({CHUNK}/call)",
        "python": "plain Python evaluate per shipment",
        "bare": f"bare group-by (sum of intervals > {LIMIT_C:g} °C)",
        "measure": "  of batch: measure_frame (polars)",
        "assemble": "  of batch: assemble per shipment (Python)",
    }
    print(f"\nmedians of {args.runs} runs; cpu = CPU time of the process, all threads")
    for k in ("batch", "streaming", "python", "bare", "measure", "assemble"):
        runs = " ".join(f"{t:.3f}" for t in wall[k])
        print(
            f"  {labels[k]:46} {counted[k]:>10,} readings {med[k]:7.3f} s "
            f"{rate[k] / 1e6:7.2f} M/s  cpu {med_cpu[k]:6.3f} s  (runs: {runs})"
        )
    vs_bare = rate["batch"] / rate["bare"]
    per_round = sorted(b / a for a, b in zip(wall["batch"], wall["bare"], strict=True))
    print(
        f"\nbatch: {rate['batch'] / 1e6:.2f} M readings/s vs target {TARGET_RATE / 1e6:g}M: "
        f"{'met' if rate['batch'] >= TARGET_RATE else 'MISSED'}"
    )
    print(
        f"batch / bare group-by: {vs_bare:.2f}x vs target {TARGET_VS_BARE}x: "
        f"{'met' if vs_bare >= TARGET_VS_BARE else 'MISSED'} "
        f"(per round: {' '.join(f'{r:.2f}' for r in per_round)}; "
        f"by CPU time: {med_cpu['bare'] / med_cpu['batch']:.2f}x)"
    )
    print(f"batch / plain Python: {rate['batch'] / rate['python']:.0f}x")
    print(f"batch / streaming: {rate['batch'] / rate['streaming']:.0f}x")


if __name__ == "__main__":
    main()
