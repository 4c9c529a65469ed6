"""Wiring shared by the CLI commands: settings → store, profiles, pipeline, evaluation.

The one place that knows how the pieces fit; each command stays a thin shell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import polars as pl

from coldchain import berlinger
from coldchain.alerting import Alerting
from coldchain.batch import evaluate_frame
from coldchain.berlinger import device_profile
from coldchain.clock import Clock, SystemClock
from coldchain.config import Settings, load_settings
from coldchain.conflicts import ACTION as CONFLICT_ACTION
from coldchain.conflicts import reading_conflicts
from coldchain.errors import ConfigError
from coldchain.evaluation import Evaluation, prepare
from coldchain.models import MS_PER_MIN, Shipment, iso
from coldchain.profiles import Profile, ProfileSet
from coldchain.reconcile import reconcile
from coldchain.routing import AlertRouting
from coldchain.store import Store, open_store
from coldchain.timeline import merge

FROM_DEVICE = "from-device"
"""``--profile from-device``: evaluate with the imported device file's own alarm settings."""


@dataclass
class Context:
    """Settings loaded once, and what they open on first use."""

    config_file: Path | None = None
    clock: Clock = field(default_factory=SystemClock)
    create_store: bool = False
    """False (read-only commands): a store file that does not exist is an error."""

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_file)

    @cached_property
    def profiles(self) -> ProfileSet:
        return self.settings.load_profiles()

    @cached_property
    def store(self) -> Store:
        return open_store(
            self.settings.store.url,
            create=self.create_store,
            setting=self.settings.describe("store", "url"),
        )

    @cached_property
    def routing(self) -> AlertRouting:
        """The validated alert routing (``[alerts] routes``)."""
        return self.settings.load_routing(products=self.profiles.profiles.keys())

    @cached_property
    def alerting(self) -> Alerting:
        """Alert lifecycle and notifications, queued in this store's outbox."""
        return Alerting(
            self.store,
            self.profiles,
            routing=self.routing,
            api_base_url=self.settings.alerts.api_base_url,
        )

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()


def shipment_series(store: Store, shipment: Shipment) -> dict[str, list[tuple[int, float]]]:
    """Each logger's corrected ``(ts_ms, temp_c)`` within the shipment's window, by logger."""
    series: dict[str, list[tuple[int, float]]] = {lg: [] for lg in shipment.loggers}
    for r in store.readings_for_loggers(
        list(shipment.loggers), start_ms=shipment.start_ms, end_ms=shipment.end_ms
    ):
        series[r.logger_id].append((r.ts_ms, r.temp_c))
    return {lg: prepare(points) for lg, points in series.items()}


def shipment_timeline(
    store: Store, shipment: Shipment, profile: Profile
) -> list[tuple[int, float]]:
    """The evaluated timeline: the primary, with backups filling its gaps (docs/EVALUATION.md,
    coverage)."""
    series = shipment_series(store, shipment)
    gap_ms = round(profile.max_gap_min * MS_PER_MIN)
    return merge([series[lg] for lg in shipment.loggers], gap_ms=gap_ms)


def shipment_conflicts(store: Store, shipment: Shipment) -> list[dict[str, object]]:
    """The shipment's conflicting readings, from the audit log (:mod:`coldchain.conflicts`)."""
    entries = store.list_audit(
        entity="logger", entity_ids=list(shipment.loggers), action=CONFLICT_ACTION
    )
    return reading_conflicts(entries, shipment)


def profile_for(store: Store, profiles: ProfileSet, shipment: Shipment) -> Profile:
    """The shipment's product profile, or the device's own (``--profile from-device``)."""
    if shipment.extra.get("profile") == FROM_DEVICE:
        files = store.device_files(shipment.id)
        if not files:
            msg = f"shipment {shipment.id} is set to --profile from-device but has no device file"
            raise ConfigError(msg)
        last = files[-1]
        return device_profile(berlinger.parse(last.text, source=last.source))
    return profiles.get(shipment.product)


def readings_frame(
    store: Store,
    shipments: list[Shipment],
    profiles: Mapping[str, Profile],
    timelines: Mapping[str, Sequence[tuple[int, float]]] | None = None,
) -> pl.DataFrame:
    """The evaluated timeline of each shipment, as one polars frame.

    ``timelines`` holds ones the caller already read (the dossier), by shipment id.
    """
    ids: list[str] = []
    ts: list[int] = []
    temps: list[float] = []
    for s in shipments:
        known = timelines.get(s.id) if timelines else None
        for t, v in known if known is not None else shipment_timeline(store, s, profiles[s.id]):
            ids.append(s.id)
            ts.append(t)
            temps.append(v)
    return pl.DataFrame(
        {"shipment_id": ids, "ts_ms": ts, "temp_c": temps},
        schema={"shipment_id": pl.String, "ts_ms": pl.Int64, "temp_c": pl.Float64},
    )


def _leg_order(s: Shipment) -> tuple[int, int, str]:
    return (s.start_ms if s.start_ms is not None else s.created_ms, s.created_ms, s.id)


def prior_budget_min(
    store: Store, profiles: ProfileSet, shipment: Shipment, *, now_ms: int
) -> dict[str, float]:
    """Budget minutes the lot used on earlier legs, less QA add-backs (docs/EVALUATION.md)."""
    if not shipment.lot:
        return {}
    earlier = [
        s
        for s in store.list_shipments()
        if s.lot == shipment.lot and s.id != shipment.id and _leg_order(s) < _leg_order(shipment)
    ]
    used: dict[str, float] = {}
    if earlier:
        for ev in evaluate_shipments(
            store, profiles, earlier, now_ms=now_ms, with_prior=False
        ).values():
            for b in ev.budgets:
                used[b.id] = used.get(b.id, 0.0) + b.shipment_min
    for entry in store.budget_add_backs(shipment.lot):
        used[entry.budget_id] = used.get(entry.budget_id, 0.0) - entry.minutes
    return used


def evaluate_shipments(
    store: Store,
    profiles: ProfileSet,
    shipments: list[Shipment],
    *,
    now_ms: int,
    with_prior: bool = True,
    timelines: Mapping[str, Sequence[tuple[int, float]]] | None = None,
) -> dict[str, Evaluation]:
    """Batch (polars) evaluation of stored readings, with lot budgets and device reconciliation."""
    profile_of = {s.id: profile_for(store, profiles, s) for s in shipments}
    frame = readings_frame(store, shipments, profile_of, timelines)
    caps = {s.id: (s.end_ms if s.end_ms is not None else now_ms) for s in shipments}
    prior = (
        {s.id: prior_budget_min(store, profiles, s, now_ms=now_ms) for s in shipments if s.lot}
        if with_prior
        else {}
    )
    evaluations = evaluate_frame(frame, profile_of, caps, now_ms=now_ms, prior_budget_min=prior)
    for s in shipments:
        # readings refused for another value at the same identity (the first stays)
        evaluations[s.id].extra["conflicts"] = len(shipment_conflicts(store, s))
        files = store.device_files(s.id)
        if files:
            ev = evaluations[s.id]
            device = berlinger.parse(files[-1].text, source=files[-1].source)
            ev.extra["reconciliation"] = reconcile(device, ev.to_json())
            ev.extra["reconciliation"]["source"] = files[-1].source
            ev.extra["profile_source"] = (
                "device" if s.extra.get("profile") == FROM_DEVICE else "product"
            )
    return evaluations


def budget_ledger(
    store: Store, profiles: ProfileSet, lot: str, *, now_ms: int
) -> list[dict[str, object]]:
    """Every consumption of the lot's budgets (per leg and episode) and every add-back, in order."""
    legs = sorted((s for s in store.list_shipments() if s.lot == lot), key=_leg_order)
    entries: list[dict[str, object]] = []
    if legs:
        evaluations = evaluate_shipments(store, profiles, legs, now_ms=now_ms, with_prior=False)
        for leg in legs:
            ev = evaluations[leg.id]
            for budget in ev.profile.budget:
                for episode in ev.measures.episodes.get(budget.limit_key, ()):
                    entries.append(
                        {
                            "kind": "consumption",
                            "budget_id": budget.id,
                            "shipment_id": leg.id,
                            "episode_start": iso(episode.start_ms),
                            "at": iso(episode.start_ms),
                            "minutes": round(episode.duration_ms / MS_PER_MIN, 3),
                        }
                    )
    for add_back in store.budget_add_backs(lot):
        entries.append(
            {
                "kind": "add_back",
                "budget_id": add_back.budget_id,
                "at": iso(add_back.ts_ms),
                "minutes": -add_back.minutes,
                "by": add_back.actor,
                "reason": add_back.reason,
                "signature": add_back.signature,
            }
        )
    return sorted(entries, key=lambda e: str(e["at"]))
