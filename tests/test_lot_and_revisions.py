"""Late data revises (docs/EVALUATION.md, streaming equals batch), lot budgets across legs, several
loggers."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from coldchain.alerts import Alert
from coldchain.config import load_settings
from coldchain.models import Shipment, ShipmentStatus
from coldchain.pipeline import Pipeline
from coldchain.service import evaluate_shipments
from coldchain.store import BudgetAddBack, open_store
from coldchain.testing import FakeClock

T0 = 1_764_126_000_000
M = 60_000
H = 60 * M


@pytest.fixture
def env(tmp_path: Path):
    settings = load_settings(environ={"COLDCHAIN_STORE": f"sqlite:///{tmp_path}/t.db"})
    store = open_store(settings.store.url)
    clock = FakeClock(T0 + 10 * 24 * H)
    raised: list[Alert] = []
    yield settings, store, clock, raised
    store.close()


def pipeline(env) -> Pipeline:
    settings, store, clock, raised = env
    return Pipeline(
        store, settings.load_profiles(), settings, clock=clock, alert_sinks=[raised.append]
    )


def telemetry(logger: str, rows: list[tuple[int, float]], seq0: int = 0):
    body = {
        "readings": [
            {"seq": seq0 + i, "ts": t / 1000, "temp_c": v} for i, (t, v) in enumerate(rows)
        ]
    }
    return (f"coldchain/v1/loggers/{logger}/telemetry", orjson.dumps(body), T0 + 10 * 24 * H)


def test_late_burst_lengthening_excursion_supersedes_and_rerun_adds_nothing(env):
    _settings, store, _clock, raised = env
    store.create_shipment(
        Shipment(
            id="S-1", product="vaccine-2-8", loggers=("LG-1",), status=ShipmentStatus.IN_TRANSIT
        )
    )
    p = pipeline(env)
    # 5 °C every 5 min for 4 h; an excursion to 12 °C from 120 to 165 min (45 min)
    temps = {i * 5: (12.0 if 120 <= i * 5 < 165 else 5.0) for i in range(48)}
    rows = [(T0 + t * M, v) for t, v in sorted(temps.items())]
    # the logger was offline 90-120 min: those readings (12 °C from 100 on) come late
    for t in range(100, 120, 5):
        temps[t] = 12.0
    late = [(T0 + t * M, temps[t]) for t in range(90, 120, 5)]
    live = [r for r in rows if not T0 + 90 * M <= r[0] < T0 + 120 * M]
    p.handle([telemetry("LG-1", live)])
    first = [a for a in raised if a.rule == "high-single"]
    assert [a.triggered_ms for a in first] == [T0 + 150 * M]  # 120 + 30

    p.handle([telemetry("LG-1", late, seq0=1000)])
    revised = [a for a in raised if a.supersedes == first[0].id]
    assert len(revised) == 1
    assert revised[0].triggered_ms == T0 + 130 * M  # the episode now starts at 100
    assert "Revised after late readings" in revised[0].message
    audit = [e for e in store.list_audit(entity_id=first[0].id) if e.action == "alert_revised"]
    assert audit
    assert audit[0].detail["superseded_by"] == revised[0].id

    count = len(store.list_alerts(shipment_id="S-1"))
    # a second run over the same data: redelivered, and a fresh pipeline over the store
    p.handle([telemetry("LG-1", live), telemetry("LG-1", late, seq0=1000)])
    pipeline(env)
    assert len(store.list_alerts(shipment_id="S-1")) == count


def test_second_leg_shows_budget_consumed_by_first_leg(env):
    settings, store, clock, raised = env
    profiles = settings.load_profiles()
    for sid, logger, start in (("LEG-1", "LG-A", T0), ("LEG-2", "LG-B", T0 + 24 * H)):
        store.create_shipment(
            Shipment(
                id=sid,
                product="cart-ln2",
                loggers=(logger,),
                lot="LOT-7",
                status=ShipmentStatus.IN_TRANSIT,
                start_ms=start,
                end_ms=start + 10 * H,
            )
        )
    p = pipeline(env)
    # leg 1: 40 min above -150 °C (budget warm-exposure: 60 min); leg 2: 30 min
    leg1 = [(T0 + i * 5 * M, -140.0 if 24 <= i < 32 else -190.0) for i in range(120)]
    leg2 = [(T0 + 24 * H + i * 5 * M, -140.0 if 60 <= i < 66 else -190.0) for i in range(120)]
    p.handle([telemetry("LG-A", leg1)])
    p.reload_shipments()  # leg 2's monitor learns leg 1's consumption
    p.handle([telemetry("LG-B", leg2)])
    shipments = [store.get_shipment("LEG-1"), store.get_shipment("LEG-2")]
    evs = evaluate_shipments(store, profiles, shipments, now_ms=clock.now_ms())
    (b1,) = evs["LEG-1"].to_json()["budgets"]
    (b2,) = evs["LEG-2"].to_json()["budgets"]
    assert (b1["prior_consumed_min"], b1["shipment_consumed_min"]) == (0.0, 40.0)
    assert (b2["prior_consumed_min"], b2["shipment_consumed_min"]) == (40.0, 30.0)
    assert b2["remaining_min"] == -10.0
    assert b2["low_at"] is not None
    assert b2["exhausted_at"] is not None
    assert evs["LEG-2"].verdict == "FAIL"
    kinds = {a.type for a in raised if a.shipment_id == "LEG-2"}
    assert {"budget_low", "budget_exhausted"} <= kinds
    # a QA add-back restores budget with who, why and when, and changes the figures
    store.add_budget_add_back(
        BudgetAddBack(
            "LOT-7", "warm-exposure", 15.0, "qa.lim", "stability data supports 15 min more", T0
        )
    )
    evs = evaluate_shipments(store, profiles, [shipments[1]], now_ms=clock.now_ms())
    (b2,) = evs["LEG-2"].to_json()["budgets"]
    assert (b2["prior_consumed_min"], b2["remaining_min"]) == (25.0, 5.0)


def test_backup_logger_fills_primary_gap_and_disagreement_alerts(env):
    settings, store, _clock, raised = env
    store.create_shipment(
        Shipment(
            id="S-2", product="vaccine-2-8", loggers=("P", "B"), status=ShipmentStatus.IN_TRANSIT
        )
    )
    store.set_logger_calibration("B", -0.5)
    p = pipeline(env)
    primary = [(T0 + i * 5 * M, 5.0) for i in range(60) if not 20 <= i < 40]  # 100-min hole
    backup = [(T0 + i * 5 * M, 5.5 if i < 45 else 9.0) for i in range(60)]
    p.handle([telemetry("P", primary), telemetry("B", backup)])
    doc = evaluate_shipments(
        store, settings.load_profiles(), [store.get_shipment("S-2")], now_ms=T0 + 300 * M
    )["S-2"].to_json()
    # 40 from the primary; the backup's 15 readings in the primary's gap, which starts
    # when the primary's last reading stops holding (95 min + max_gap 30 = 125 min)
    assert doc["readings"] == 55
    assert doc["gaps"] == []
    assert doc["max_c"] == 5.0  # backup corrected: 5.5 - 0.5; its later 9.0 is not evaluated
    stored = store.readings_for_loggers(["B"])
    assert (stored[0].raw_temp_c, stored[0].temp_c) == (5.5, 5.0)
    (alert,) = [a for a in raised if a.type == "sensor_disagreement"]
    assert alert.logger_id == "B"
    assert alert.triggered_ms == T0 + 45 * 5 * M
