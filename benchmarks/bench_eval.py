"""Throughput of the polars re-evaluation (coldchain.batch.measure_frame).

Generates N readings over S shipments (1-minute readings with a slow
oscillation through the vaccine-2-8 limits, noise, dropped readings that make
gaps, duplicates and a shuffled order), then times:

* ``measure_frame`` with the shipped vaccine-2-8 profile (3 limits), and
* a bare polars baseline: sort, then per shipment sum the intervals above 8 °C.

Usage: python benchmarks/bench_eval.py [--readings 10000000] [--shipments 10000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import polars as pl
from polars._typing import EngineType

from coldchain.batch import measure_frame
from coldchain.profiles import SHIPPED_PRODUCTS_DIR, load_profiles

T0 = 1_767_225_600_000
MS_PER_MIN = 60_000


def generate(n: int, shipments: int, seed: int = 1) -> tuple[pl.DataFrame, dict[str, int]]:
    per = n // shipments
    i = pl.col("i")
    step = i % per
    noise = (i.hash(seed) % 1000).cast(pl.Float64) / 1000.0 - 0.5
    late = (i.hash(seed + 1) % 50 == 0).cast(pl.Int64) * 7_000  # one in ~50 a little late
    lost = (i // 40).hash(seed + 2) % 100 == 0  # 1 % lost in 40-min blocks: data gaps
    df = (
        pl.DataFrame({"i": pl.int_range(0, n, dtype=pl.Int64, eager=True)})
        .filter(~lost)
        .select(
            pl.format("S-{}", i // per).alias("shipment_id"),
            (T0 + step * MS_PER_MIN + late).alias("ts_ms"),
            (5.0 + 4.5 * (step.cast(pl.Float64) / 60.0).sin() + 0.5 * noise).alias("temp_c"),
        )
    )
    dup = df.sample(fraction=0.001, seed=seed)
    df = pl.concat([df, dup]).sample(fraction=1.0, shuffle=True, seed=seed)
    caps = {f"S-{k}": T0 + per * MS_PER_MIN for k in range(shipments)}
    return df, caps


def baseline_sorted(df: pl.DataFrame, engine: EngineType) -> pl.DataFrame:
    """Per shipment, the summed time to the next reading of readings above 8 °C: sort first."""
    return (
        df.lazy()
        .sort("shipment_id", "ts_ms")
        .with_columns(nxt=pl.col("ts_ms").shift(-1).over("shipment_id"))
        .group_by("shipment_id")
        .agg(((pl.col("nxt") - pl.col("ts_ms")) * (pl.col("temp_c") > 8.0)).sum().alias("above"))
        .collect(engine=engine)
    )


def baseline_grouped(df: pl.DataFrame, engine: EngineType) -> pl.DataFrame:
    """The same sum with the ordering done inside each group."""
    ts = pl.col("ts_ms").sort()
    above = pl.col("temp_c").sort_by("ts_ms") > 8.0
    return (
        df.lazy()
        .group_by("shipment_id")
        .agg(((ts.shift(-1) - ts) * above).sum().alias("above"))
        .collect(engine=engine)
    )


def best_of(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=10_000_000)
    parser.add_argument("--shipments", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    profile = load_profiles(SHIPPED_PRODUCTS_DIR).get("vaccine-2-8")
    t = time.perf_counter()
    df, caps = generate(args.readings, args.shipments)
    print(
        f"generated {df.height:,} rows, {len(caps):,} shipments in {time.perf_counter() - t:.1f} s"
    )

    result = measure_frame(df, profile, caps)
    episodes = sum(len(e) for m in result.values() for e in m.episodes.values())
    gaps = sum(len(m.gaps) for m in result.values())
    print(f"found {episodes:,} episodes and {gaps:,} gaps")

    timings = {"measure_frame": best_of(args.runs, lambda: measure_frame(df, profile, caps))}
    engines: tuple[EngineType, ...] = ("in-memory", "streaming")
    for fn in (baseline_sorted, baseline_grouped):
        for engine in engines:
            timings[f"{fn.__name__} ({engine})"] = best_of(args.runs, partial(fn, df, engine))
    for name, seconds in timings.items():
        print(f"{name:32} {seconds:6.2f} s  {df.height / seconds / 1e6:6.2f} M readings/s")
    fastest = min(v for k, v in timings.items() if k != "measure_frame")
    print(f"measure_frame / fastest baseline: {timings['measure_frame'] / fastest:.1f}x")


if __name__ == "__main__":
    main()
