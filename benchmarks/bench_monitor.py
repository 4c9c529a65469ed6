"""The on-arrival monitor's cost per reading, per shipped profile (``make bench-monitor``).

Profiles with ``[predict]`` (cart-ln2, dry-ice) also fit the trend reading by reading;
the others show the plain monitor. Readings arrive in order, 1 minute apart, in packs
of 100, as a buffered logger uploads them. Best of ``--runs``.
"""

from __future__ import annotations

import argparse
import random
import time

from coldchain.profiles import SHIPPED_PRODUCTS_DIR, load_profiles
from coldchain.streaming import ShipmentMonitor

T0_MS = 1_764_115_200_000
BASE_C = {"cart-ln2": -185.0, "dry-ice": -75.0, "frozen": -20.0, "vaccine-2-8": 5.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readings", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    profiles = load_profiles(SHIPPED_PRODUCTS_DIR)
    rng = random.Random(7)
    print(f"{'profile':<12} {'predict':<8} {'µs/reading':>10}")
    for pid in sorted(profiles.profiles):
        profile = profiles.get(pid)
        base = BASE_C.get(pid, 20.0)
        points = [(T0_MS + i * 60_000, base + rng.uniform(-1, 1)) for i in range(args.readings)]
        best = float("inf")
        for _ in range(args.runs):
            monitor = ShipmentMonitor("S-1", profile)
            start = time.perf_counter()
            for i in range(0, len(points), 100):
                monitor.add(points[i : i + 100])
            best = min(best, time.perf_counter() - start)
        predict = "yes" if profile.predict is not None else "no"
        print(f"{pid:<12} {predict:<8} {best / len(points) * 1e6:>10.2f}")


if __name__ == "__main__":
    main()
