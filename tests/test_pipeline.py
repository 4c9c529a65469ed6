"""The pipeline without a transport: decode, store, evaluate, alert (docs/PROTOCOL.md,
docs/EVALUATION.md, docs/ALERTS.md)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from coldchain.alerts import Alert
from coldchain.config import load_settings
from coldchain.errors import ImportFileError
from coldchain.importers import parse_csv, to_messages
from coldchain.models import Shipment, ShipmentStatus
from coldchain.pipeline import Pipeline
from coldchain.service import evaluate_shipments
from coldchain.store import open_store
from coldchain.testing import FakeClock

T0 = 1_764_126_000_000  # 2025-11-26T03:00:00Z
M = 60_000
TOPIC = "coldchain/v1/loggers/{}/telemetry"


@pytest.fixture
def world(tmp_path: Path):
    settings = load_settings(environ={"COLDCHAIN_STORE": f"sqlite:///{tmp_path}/t.db"})
    store = open_store(settings.store.url)
    clock = FakeClock(T0 + 48 * 60 * M)
    raised: list[Alert] = []

    def make(*shipments: Shipment) -> Pipeline:
        for s in shipments:
            store.create_shipment(s)
        return Pipeline(
            store, settings.load_profiles(), settings, clock=clock, alert_sinks=[raised.append]
        )

    yield make, store, clock, raised
    store.close()


def ship(sid: str, logger: str, product: str = "vaccine-2-8") -> Shipment:
    return Shipment(id=sid, product=product, loggers=(logger,), status=ShipmentStatus.IN_TRANSIT)


def native(logger: str, readings: list[tuple[int, int, float]], received: int = T0 + 24 * 60 * M):
    body = {"readings": [{"seq": s, "ts": t / 1000, "temp_c": v} for s, t, v in readings]}
    return (TOPIC.format(logger), orjson.dumps(body), received)


def test_pipeline_malformed_message_goes_to_dead_letters_and_ingestion_continues(world):
    make, store, _, _ = world
    p = make(ship("S-1", "LG-1"))
    good = native("LG-1", [(1, T0, 5.0)])
    bad = (TOPIC.format("LG-1"), b'{"ts": "2025-11-26T03:05:00", "temp_c": 5.1}', T0)
    garbage = ("coldchain/v1/loggers/LG-1/telemetry", b"\xff\xfe", T0)
    wrong_topic = ("coldchain/v1/loggers/bad id/telemetry", b"{}", T0)
    later = native("LG-1", [(2, T0 + 5 * M, 5.2)])
    p.handle([good, bad, garbage, wrong_topic, later])
    assert [r.temp_c for r in store.readings_for_loggers(["LG-1"])] == [5.0, 5.2]
    letters = store.list_dead_letters()
    assert len(letters) == 3
    reasons = " | ".join(d.reason for d in letters)
    assert "has no time zone" in reasons
    assert "not valid JSON" in reasons
    assert "does not match" in reasons
    assert {d.payload for d in letters} == {bad[1], garbage[1], wrong_topic[1]}
    assert p.counters.rejected == 3


def test_pipeline_duplicates_ignored_and_conflicts_audited(world):
    make, store, _, _ = world
    p = make(ship("S-1", "LG-1"))
    p.handle([native("LG-1", [(1, T0, 5.0), (2, T0 + 5 * M, 5.0)])])
    p.handle([native("LG-1", [(1, T0, 5.0)]), native("LG-1", [(2, T0 + 5 * M, 7.5)])])
    stored = store.readings_for_loggers(["LG-1"])
    assert [r.temp_c for r in stored] == [5.0, 5.0]  # the first copy stays
    assert (p.counters.duplicates, p.counters.conflicts) == (1, 1)
    (entry,) = [e for e in store.list_audit() if e.action == "reading_conflict"]
    assert entry.detail["kept"]["temp_c"] == 5.0
    assert entry.detail["refused"]["temp_c"] == 7.5


def test_pipeline_raises_one_alert_per_finding_however_often_data_repeats(world):
    make, store, _, raised = world
    p = make(ship("S-1", "LG-1"))
    rows = [(i, T0 + i * 5 * M, 12.0 if 2 <= i < 12 else 5.0) for i in range(20)]
    for _ in range(3):
        p.handle([native("LG-1", rows)])
    alerts = store.list_alerts(shipment_id="S-1")
    assert sorted(a.rule for a in alerts) == ["high-single"]
    assert len(raised) == 1
    (alert,) = alerts
    assert alert.triggered_ms == T0 + 10 * M + 30 * M
    assert "S-1" in alert.message
    assert "8 °C" in alert.message


def test_pipeline_clock_skew_alert_once_and_reading_kept(world):
    make, store, _, raised = world
    p = make(ship("S-1", "LG-1"))
    future = T0 + 10 * M  # received at T0: 10 minutes ahead
    p.handle([native("LG-1", [(1, future, 5.0)], T0), native("LG-1", [(2, future + M, 5.0)], T0)])
    assert [a.type for a in raised] == ["clock_skew"]
    assert len(store.readings_for_loggers(["LG-1"])) == 2


def test_pipeline_sensor_fault_after_repeated_impossible_values(world):
    make, store, _, raised = world
    p = make(ship("S-1", "LG-1"))
    bad = [
        (TOPIC.format("LG-1"), orjson.dumps({"ts": T0 / 1000 + i, "temp_c": 250.0}), T0)
        for i in range(3)
    ]
    p.handle(bad)
    assert [a.type for a in raised] == ["sensor_fault"]
    assert store.count_dead_letters() == 3


def test_csv_import_equals_mqtt_evaluation(world, tmp_path):
    make, store, clock, _ = world
    p = make(ship("S-MQTT", "LG-A"), ship("S-CSV", "LG-B"))
    temps = [5.0, 9.0, 9.5, 10.0, 9.0, 9.0, 9.0, 9.0, 5.0, 1.0, 5.0]
    rows = [(i, T0 + i * 10 * M, v) for i, v in enumerate(temps)]
    # MQTT: out of order, with duplicates
    p.handle([native("LG-A", rows[5:]), native("LG-A", rows[:6]), native("LG-A", rows[2:4])])
    csv_text = "ts,temp_c\n" + "\n".join(
        f"{(T0 + i * 10 * M) // 1000},{v}" for i, v in enumerate(temps)
    )
    for message in to_messages(
        parse_csv(csv_text, source="x.csv"), logger_id="LG-B", received_ms=clock.now_ms()
    ):
        p.handle([message])
    shipments = [store.get_shipment("S-MQTT"), store.get_shipment("S-CSV")]
    evs = evaluate_shipments(store, p.profiles, shipments, now_ms=clock.now_ms())
    a, b = evs["S-MQTT"].to_json(), evs["S-CSV"].to_json()
    a.pop("shipment_id")
    b.pop("shipment_id")
    assert a == b
    assert a["verdict"] == "FAIL"


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("", None, "the file is empty"),
        ("time,value\n1,2\n", 1, "lacks 'ts' and 'temp_c'"),
        ("ts,temp_c\n2025-11-26T03:00:00Z,5\n2025-11-26T03:05:00,5\n", 3, "has no time zone"),
        ("ts,temp_c\n2025-11-26T03:00:00Z,warm\n", 2, "'warm' is not a number"),
        ("ts,temp_c\n2025-11-26T03:00:00Z\n", 2, "expected 2 columns"),
        ("ts,temp_c\n", None, "no readings"),
    ],
)
def test_parse_csv_refuses_with_line_and_reason(text, line, reason):
    with pytest.raises(ImportFileError, match=reason) as info:
        parse_csv(text, source="f.csv")
    assert info.value.line == line
