"""Wiring shared by the CLI commands: settings → store, profiles, pipeline, evaluation.

The one place that knows how the pieces fit; each command stays a thin shell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import polars as pl

from coldchain.batch import evaluate_frame
from coldchain.clock import Clock, SystemClock
from coldchain.config import Settings, load_settings
from coldchain.evaluation import Evaluation
from coldchain.models import Shipment
from coldchain.profiles import ProfileSet
from coldchain.store import Store, open_store


@dataclass
class Context:
    """Settings loaded once, and what they open on first use."""

    config_file: Path | None = None
    clock: Clock = field(default_factory=SystemClock)

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_file)

    @cached_property
    def profiles(self) -> ProfileSet:
        return self.settings.load_profiles()

    @cached_property
    def store(self) -> Store:
        return open_store(self.settings.store.url)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()


def readings_frame(store: Store, shipments: list[Shipment]) -> pl.DataFrame:
    """The primary logger's readings of each shipment within its window, as polars."""
    ids: list[str] = []
    ts: list[int] = []
    temps: list[float] = []
    for s in shipments:
        for r in store.readings_for_loggers(s.loggers[:1], start_ms=s.start_ms, end_ms=s.end_ms):
            ids.append(s.id)
            ts.append(r.ts_ms)
            temps.append(r.temp_c)
    return pl.DataFrame(
        {"shipment_id": ids, "ts_ms": ts, "temp_c": temps},
        schema={"shipment_id": pl.String, "ts_ms": pl.Int64, "temp_c": pl.Float64},
    )


def evaluate_shipments(
    store: Store, profiles: ProfileSet, shipments: list[Shipment], *, now_ms: int
) -> dict[str, Evaluation]:
    """Batch (polars) evaluation of stored readings: the primary logger of each shipment."""
    frame = readings_frame(store, shipments)
    caps = {s.id: (s.end_ms if s.end_ms is not None else now_ms) for s in shipments}
    return evaluate_frame(
        frame, {s.id: profiles.get(s.product) for s in shipments}, caps, now_ms=now_ms
    )
