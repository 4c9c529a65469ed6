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

import polars as pl

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
            (5.0 + 4.5 * (step.cast(pl.Float64) / 60.0).sin() + 2.0 * noise).alias("temp_c"),
        )
    )
    dup = df.sample(fraction=0.001, seed=seed)
    df = pl.concat([df, dup]).sample(fraction=1.0, shuffle=True, seed=seed)
    caps = {f"S-{k}": T0 + per * MS_PER_MIN for k in range(shipments)}
    return df, caps


def baseline(df: pl.DataFrame) -> pl.DataFrame:
    """Per shipment, the summed time to the next reading of readings above 8 °C."""
    return (
        df.lazy()
        .sort("shipment_id", "ts_ms")
        .with_columns(nxt=pl.col("ts_ms").shift(-1).over("shipment_id"))
        .group_by("shipment_id")
        .agg(((pl.col("nxt") - pl.col("ts_ms")) * (pl.col("temp_c") > 8.0)).sum().alias("above"))
        .collect()
    )


def best_of(runs: int, fn: object) -> float:
    assert callable(fn)
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

    t_measure = best_of(args.runs, lambda: measure_frame(df, profile, caps))
    t_base = best_of(args.runs, lambda: baseline(df))
    print(f"measure_frame: {t_measure:6.2f} s  {df.height / t_measure / 1e6:6.2f} M readings/s")
    print(f"baseline:      {t_base:6.2f} s  {df.height / t_base / 1e6:6.2f} M readings/s")
    print(f"ratio measure_frame / baseline: {t_measure / t_base:.1f}x")


if __name__ == "__main__":
    main()
