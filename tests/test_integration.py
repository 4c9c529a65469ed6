"""End to end through a real Mosquitto: MQTT in, store, evaluation, alert topic out."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import orjson
import pytest

from coldchain.config import load_settings
from coldchain.importers import parse_csv, to_messages
from coldchain.models import Shipment, ShipmentStatus
from coldchain.mqtt import Publisher, Subscriber
from coldchain.runtime import Runtime
from coldchain.service import evaluate_shipments
from coldchain.store import open_store
from coldchain.testing import FakeClock

T0 = 1_764_126_000_000
M = 60_000


def _wait(predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting for the pipeline")
        time.sleep(0.02)


@pytest.mark.mosquitto
def test_mqtt_out_of_order_with_duplicates_equals_csv_import(
    mosquitto_url: str, mqtt_topic_prefix: str, tmp_path: Path
):
    settings = load_settings(
        environ={"COLDCHAIN_STORE": f"sqlite:///{tmp_path}/c.db", "COLDCHAIN_BROKER": mosquitto_url}
    )
    settings = settings.model_copy(
        update={
            "broker": settings.broker.model_copy(
                update={"topic_prefix": mqtt_topic_prefix, "client_id": f"it-{tmp_path.name}"}
            )
        }
    )
    store = open_store(settings.store.url)
    clock = FakeClock(T0 + 3 * 24 * 60 * M)
    for sid, logger in (("S-MQTT", "LG-A"), ("S-CSV", "LG-B")):
        store.create_shipment(
            Shipment(
                id=sid, product="vaccine-2-8", loggers=(logger,), status=ShipmentStatus.IN_TRANSIT
            )
        )
    rng = random.Random(3)
    temps = [round(5 + 4 * rng.random() + (6 if 40 <= i < 52 else 0), 1) for i in range(200)]
    rows = [(i, T0 + i * 5 * M, v) for i, v in enumerate(temps)]

    alerts_seen: list[dict[str, object]] = []
    got_alert = threading.Event()

    def on_alert(topic: str, payload: bytes, received_ms: int) -> None:
        alerts_seen.append(orjson.loads(payload))
        got_alert.set()

    watcher = Subscriber(
        url=mosquitto_url,
        client_id=f"watch-{tmp_path.name}",
        topics=[f"{mqtt_topic_prefix}/shipments/+/alerts"],
        on_message=on_alert,
    )
    with watcher, Runtime(settings, store, settings.load_profiles(), clock=clock) as rt:
        packs = [rows[i : i + 7] for i in range(0, len(rows), 7)]
        rng.shuffle(packs)  # a buffered upload arrives out of order
        redelivered = rng.sample(packs, 5)  # and QoS 1 redeliveries duplicate some
        packs += redelivered
        topic = f"{mqtt_topic_prefix}/loggers/LG-A/telemetry"
        with Publisher(url=mosquitto_url, client_id=f"pub-{tmp_path.name}") as pub:
            for n, pack in enumerate(packs):
                body = {"readings": [{"seq": s, "ts": t / 1000, "temp_c": v} for s, t, v in pack]}
                pub.publish(topic, orjson.dumps(body))
                if n == 3:
                    pub.publish(topic, b'{"readings": [{"ts": "not a time", "temp_c": 1}]}')
            pub.flush()
        _wait(
            lambda: rt.subscriber is not None and rt.subscriber.messages_received >= len(packs) + 1
        )
        assert rt.writer.drain(20)
        assert got_alert.wait(10), "no alert reached the MQTT alert topic"
        csv_text = "ts,temp_c\n" + "\n".join(f"{t // 1000},{v}" for _, t, v in rows)
        for message in to_messages(
            parse_csv(csv_text, source="x.csv"),
            logger_id="LG-B",
            received_ms=clock.now_ms(),
            prefix=mqtt_topic_prefix,
        ):
            rt.writer.handle([message])
        counters = rt.writer.counters

    assert counters.readings == 2 * len(rows)
    assert counters.duplicates == sum(len(p) for p in redelivered)
    assert [d.reason for d in store.list_dead_letters()] == [
        "readings[0].ts: 'not a time' is not an RFC 3339 timestamp"
    ]
    shipments = [store.get_shipment("S-MQTT"), store.get_shipment("S-CSV")]
    evs = evaluate_shipments(store, settings.load_profiles(), shipments, now_ms=clock.now_ms())
    a, b = evs["S-MQTT"].to_json(), evs["S-CSV"].to_json()
    assert a.pop("shipment_id") == "S-MQTT"
    assert b.pop("shipment_id") == "S-CSV"
    assert a == b
    assert a["verdict"] == "FAIL"
    assert {x["rule"] for x in alerts_seen if x["shipment_id"] == "S-MQTT"} >= {"high-single"}
    store.close()
