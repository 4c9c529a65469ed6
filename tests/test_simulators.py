"""Tests of the simulators: the fleet and load generators (pure) and the publisher
(against a real Mosquitto).

Payloads are checked against docs/PROTOCOL.md (native JSON and SenML) by the small reader below, on
purpose independent of coldchain's own decoders.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from coldchain.simulation.fleet import (
    LANES,
    PRODUCTS,
    Fleet,
    Message,
    Scenario,
    build_fleet,
    fleet_start,
)
from coldchain.simulation.loadgen import make_load
from coldchain.simulation.publish import (
    BrokerURL,
    Collector,
    MqttVersion,
    Outgoing,
    PublishError,
    publish,
)
from simulators.__main__ import app

START = datetime(2026, 11, 22, 3, 0, 0, tzinfo=UTC)
FOUR_DAYS_MS = 4 * 86_400_000
ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
RFC3339_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
TOPIC_RE = re.compile(r"^coldchain/v1/loggers/([^/]+)/(telemetry|status)$")
NATIVE_READING_KEYS = {"seq", "ts", "temp_c", "rh_pct", "lat", "lon", "light", "shock_g"}


# ---------------------------------------------------------------------------
# An independent reader of docs/PROTOCOL.md payloads (native JSON and SenML)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    ts_ms: int
    temp_c: float
    seq: int | None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _ts_ms(value: Any) -> int:
    if _number(value):
        return round(float(value) * 1000)
    if not isinstance(value, str) or not RFC3339_RE.match(value):
        msg = f"ts {value!r} is not RFC 3339 with a zone nor epoch seconds"
        raise ValueError(msg)
    return round(datetime.fromisoformat(value).timestamp() * 1000)


def _temp(value: Any) -> float:
    if not _number(value) or not math.isfinite(value) or not -200 <= value <= 100:
        msg = f"temperature {value!r} is not a number in -200...100 °C"
        raise ValueError(msg)
    if round(value, 1) != value:
        msg = f"temperature {value!r} is not rounded to 0.1"
        raise ValueError(msg)
    return float(value)


def _native_reading(obj: Any) -> Point:
    if not isinstance(obj, dict) or not set(obj) <= NATIVE_READING_KEYS or "temp_c" not in obj:
        msg = f"not a docs/PROTOCOL.md, native JSON reading: {obj!r}"
        raise ValueError(msg)
    seq = obj.get("seq")
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool) or seq < 0):
        msg = f"seq {seq!r} is not an int >= 0"
        raise ValueError(msg)
    for key in ("rh_pct", "lat", "lon"):
        if key in obj and not _number(obj[key]):
            msg = f"{key} {obj[key]!r} is not a number"
            raise ValueError(msg)
    return Point(_ts_ms(obj["ts"]), _temp(obj["temp_c"]), seq)


def read_telemetry(logger_id: str, payload: bytes) -> list[Point]:
    """The readings of one telemetry payload; ValueError when it breaks docs/PROTOCOL.md (native
    JSON and SenML)."""
    doc = orjson.loads(payload)
    if isinstance(doc, dict) and "readings" in doc:
        if not set(doc) <= {"logger_id", "readings", "battery_pct"}:
            msg = f"unexpected pack keys {sorted(doc)}"
            raise ValueError(msg)
        if doc.get("logger_id", logger_id) != logger_id:
            msg = "pack speaks for another logger"
            raise ValueError(msg)
        if "battery_pct" in doc and not 0 <= doc["battery_pct"] <= 100:
            raise ValueError("battery_pct out of range")
        if not isinstance(doc["readings"], list) or not doc["readings"]:
            raise ValueError("readings must be a non-empty list")
        return [_native_reading(r) for r in doc["readings"]]
    if isinstance(doc, dict):
        return [_native_reading(doc)]
    if not isinstance(doc, list) or not doc:
        raise ValueError("neither a JSON object nor a SenML pack")
    first = doc[0]
    if first.get("bn") != f"urn:dev:logger:{logger_id}:":
        msg = f"bn {first.get('bn')!r} does not name logger {logger_id}"
        raise ValueError(msg)
    bt = first.get("bt")
    if not _number(bt) or bt < 2**28:
        msg = f"bt {bt!r} is not absolute Unix seconds"
        raise ValueError(msg)
    points = []
    for i, record in enumerate(doc):
        if i and ({"bn", "bt"} & set(record)):
            raise ValueError("base fields after the first record")
        t = record.get("t", 0)
        if not _number(t) or not _number(record.get("v")):
            msg = f"record {i} has no numeric t/v"
            raise ValueError(msg)
        if record.get("n") == "temp":
            if record.get("u") != "Cel":
                msg = f"temperature record {i} has unit {record.get('u')!r}"
                raise ValueError(msg)
            points.append(Point(round((bt + t) * 1000), _temp(record["v"]), None))
        elif record.get("n") == "humidity":
            if record.get("u") != "%RH" or not 0 <= record["v"] <= 100:
                msg = f"humidity record {i} is invalid"
                raise ValueError(msg)
        else:
            msg = f"unexpected record name {record.get('n')!r}"
            raise ValueError(msg)
    if not points:
        raise ValueError("SenML pack without a temperature")
    return points


def read_status(payload: bytes) -> dict[str, Any]:
    doc = orjson.loads(payload)
    assert set(doc) == {"online", "battery_pct", "rssi_dbm", "fw"}
    assert doc["online"] is True
    assert 15 < doc["battery_pct"] <= 100  # never `battery_low` (docs/ALERTS.md, logger health)
    assert isinstance(doc["rssi_dbm"], int)
    assert -120 < doc["rssi_dbm"] < 0
    assert isinstance(doc["fw"], str)
    return dict(doc)


def _logger(message: Message) -> str:
    match = TOPIC_RE.match(message.topic)
    assert match, message.topic
    return match.group(1)


def _telemetry(fleet: Fleet) -> Iterator[Message]:
    return (m for m in fleet.messages if m.topic.endswith("/telemetry"))


def _points_by_logger(fleet: Fleet) -> dict[str, list[Point]]:
    points: dict[str, list[Point]] = defaultdict(list)
    for m in _telemetry(fleet):
        if m.note not in ("malformed", "duplicate"):
            points[_logger(m)].extend(read_telemetry(_logger(m), m.payload))
    for values in points.values():
        values.sort(key=lambda p: p.ts_ms)
    return points


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return build_fleet(shipments=10, start=START, seed=7)


# ---------------------------------------------------------------------------
# fleet: structure
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shipments", "seed", "interval_min"), [(10, 7, 5.0), (3, 1, 1.0), (12, 99, 15.0)]
)
def test_build_fleet_same_seed_gives_same_bytes(
    shipments: int, seed: int, interval_min: float
) -> None:
    a = build_fleet(shipments=shipments, start=START, seed=seed, interval_min=interval_min)
    b = build_fleet(shipments=shipments, start=START, seed=seed, interval_min=interval_min)
    assert a == b
    assert a.plans_json() == b.plans_json()


def test_build_fleet_other_seed_gives_other_data() -> None:
    a = build_fleet(start=START, seed=7)
    b = build_fleet(start=START, seed=8)
    assert [m.payload for m in a.messages] != [m.payload for m in b.messages]


def test_build_fleet_ten_shipments_cover_every_scenario_product_and_lane(fleet: Fleet) -> None:
    assert len(fleet.plans) == 10
    scenarios = [p.scenario for p in fleet.plans]
    assert set(scenarios) == {str(s) for s in Scenario}
    assert scenarios.count("nominal") >= 3
    assert {p.product for p in fleet.plans} == set(PRODUCTS)
    assert [(p.origin, p.destination) for p in fleet.plans] == list(LANES)
    assert {p.payload_format for p in fleet.plans} == {"native-single", "native-pack", "senml"}
    for p in fleet.plans:
        assert p.verdict == p.expected.split(":")[0]
        assert p.verdict == (
            "FAIL" if "failure" in p.scenario or "spikes" in p.scenario else "PASS"
        )


def test_build_fleet_ids_match_spec_pattern_and_are_unique(fleet: Fleet) -> None:
    for p in fleet.plans:
        assert ID_RE.match(p.shipment_id)
        assert ID_RE.match(p.logger_id)
        assert len(p.destination) == 2
        assert p.destination.isupper()
        assert len(p.origin) == 2
    assert len({p.shipment_id for p in fleet.plans}) == 10
    assert len({p.logger_id for p in fleet.plans}) == 10
    loggers = {p.logger_id for p in fleet.plans}
    assert {_logger(m) for m in fleet.messages} == loggers


def test_build_fleet_messages_belong_to_their_shipment(fleet: Fleet) -> None:
    logger_of = {p.shipment_id: p.logger_id for p in fleet.plans}
    for m in fleet.messages:
        assert _logger(m) == logger_of[m.shipment_id]
        assert m.qos == 1
        assert m.retain == m.topic.endswith("/status")


@pytest.mark.parametrize("shipments", [1, 10, 25])
def test_build_fleet_has_exactly_one_malformed_message(shipments: int) -> None:
    built = build_fleet(shipments=shipments, start=START)
    malformed = [m for m in built.messages if m.note == "malformed"]
    if shipments < 8:  # the malformed scenario is the eighth slot
        assert malformed == []
        return
    (bad,) = malformed
    with pytest.raises(ValueError, match="zone"):
        read_telemetry(_logger(bad), bad.payload)
    assert [p.scenario for p in built.plans].count("malformed") == 1


def test_build_fleet_every_other_payload_is_valid(fleet: Fleet) -> None:
    for m in fleet.messages:
        if m.topic.endswith("/status"):
            read_status(m.payload)
        elif m.note != "malformed":
            points = read_telemetry(_logger(m), m.payload)
            assert m.device_time_ms == max(p.ts_ms for p in points)


def test_build_fleet_uses_both_formats_and_both_timestamp_styles(fleet: Fleet) -> None:
    kinds: set[str] = set()
    for m in _telemetry(fleet):
        doc = orjson.loads(m.payload)
        if isinstance(doc, list):
            kinds.add("senml")
            kinds.update("senml-humidity" for r in doc if r["n"] == "humidity")
        elif "readings" in doc:
            kinds.add("pack")
        else:
            kinds.add("single-epoch" if isinstance(doc["ts"], int) else "single-rfc3339")
    assert kinds == {"senml", "senml-humidity", "pack", "single-epoch", "single-rfc3339"}


def test_build_fleet_device_times_lie_in_the_four_days_from_start() -> None:
    start = datetime(2026, 11, 22, 3, 0, 0, 250_000, tzinfo=timezone(timedelta(hours=8)))
    built = build_fleet(start=start)
    start_ms = round(start.timestamp() * 1000)
    times = [m.device_time_ms for m in built.messages]
    times += [p.ts_ms for values in _points_by_logger(built).values() for p in values]
    assert min(times) >= start_ms
    assert min(times) - start_ms < 1000  # the earliest reading is `start`, to the second
    assert max(times) <= start_ms + FOUR_DAYS_MS
    for p in built.plans:
        assert p.start.tzinfo is not None
        assert p.start.utcoffset() == timedelta(0)
        assert start_ms <= p.start.timestamp() * 1000 < p.end.timestamp() * 1000
        assert p.end.timestamp() * 1000 <= start_ms + FOUR_DAYS_MS
        assert timedelta(days=1) <= p.end - p.start <= timedelta(days=4)


def test_build_fleet_readings_cover_each_shipment_without_gaps(fleet: Fleet) -> None:
    points = _points_by_logger(fleet)
    for p in fleet.plans:
        times = sorted({pt.ts_ms for pt in points[p.logger_id]})
        assert times[0] == p.start.timestamp() * 1000
        assert p.end.timestamp() * 1000 - times[-1] == 5 * 60_000
        assert {b - a for a, b in itertools.pairwise(times)} == {5 * 60_000}


def test_build_fleet_seq_increases_with_device_time(fleet: Fleet) -> None:
    for values in _points_by_logger(fleet).values():
        seqs = [p.seq for p in values if p.seq is not None]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == len(seqs)


def test_build_fleet_messages_are_interleaved_in_device_time_order(fleet: Fleet) -> None:
    in_order = [m.device_time_ms for m in fleet.messages if m.note != "late-burst"]
    assert in_order == sorted(in_order)
    assert len({m.shipment_id for m in fleet.messages[:50]}) > 1


def test_build_fleet_duplicates_are_byte_identical_copies(fleet: Fleet) -> None:
    duplicates = [i for i, m in enumerate(fleet.messages) if m.note == "duplicate"]
    assert len(duplicates) >= 3
    originals = {(m.topic, m.payload) for m in fleet.messages if m.note == ""}
    for i in duplicates:
        copy = fleet.messages[i]
        earlier = {(m.topic, m.payload) for m in fleet.messages[:i] if m.note == ""}
        assert (copy.topic, copy.payload) in earlier
    telemetry = [(m.topic, m.payload) for m in _telemetry(fleet) if m.note != "duplicate"]
    assert len(telemetry) == len(set(telemetry))  # no accidental copies elsewhere
    assert originals


def test_build_fleet_offline_burst_arrives_late_and_out_of_order(fleet: Fleet) -> None:
    (plan,) = [p for p in fleet.plans if p.scenario == "offline-bulk-upload"]
    mine = [m for m in _telemetry(fleet) if m.shipment_id == plan.shipment_id]
    burst_at = [i for i, m in enumerate(mine) if m.note == "late-burst"]
    assert len(burst_at) >= 2  # several packs
    assert burst_at == list(range(burst_at[0], burst_at[-1] + 1))
    burst = [p for i in burst_at for p in read_telemetry(plan.logger_id, mine[i].payload)]
    before = [p for m in mine[: burst_at[0]] for p in read_telemetry(plan.logger_id, m.payload)]
    newest_before = max(p.ts_ms for p in before)
    # Live readings after the silent hour were published before the buffer...
    assert all(p.ts_ms < newest_before for p in burst)
    assert len([p for p in before if p.ts_ms > max(q.ts_ms for q in burst)]) >= 2
    # ...which holds exactly that hour, shuffled.
    times = [p.ts_ms for p in burst]
    assert times != sorted(times)
    assert sorted(times) == list(range(min(times), min(times) + 60 * 60_000, 5 * 60_000))
    assert not any(min(times) <= p.ts_ms <= max(times) for p in before)


def test_build_fleet_ln2_failure_warms_past_minus_150_on_day_two(fleet: Fleet) -> None:
    (plan,) = [p for p in fleet.plans if p.scenario == "ln2-warming-failure"]
    assert plan.product == "cart-ln2"
    values = _points_by_logger(fleet)[plan.logger_id]
    start_ms = plan.start.timestamp() * 1000
    assert values[0].temp_c < -185
    first_160 = next(p for p in values if p.temp_c > -160)
    first_150 = next(p for p in values if p.temp_c > -150)
    assert first_160.ts_ms + 15 * 60_000 < first_150.ts_ms  # warm-early fires before
    assert (first_150.ts_ms - start_ms) // 86_400_000 == 1  # day 2
    assert "day 2" in plan.expected
    assert max(p.temp_c for p in values) > -110
    end_ms = plan.end.timestamp() * 1000
    above_ms = sum(5 * 60_000 for p in values if p.temp_c > -150)
    assert above_ms > 30 * 60_000  # warm-cumulative
    assert end_ms - first_150.ts_ms > 12 * 3_600_000  # well before the end


def test_build_fleet_vaccine_spikes_are_short_but_add_up(fleet: Fleet) -> None:
    (plan,) = [p for p in fleet.plans if p.scenario == "vaccine-door-spikes"]
    values = _points_by_logger(fleet)[plan.logger_id]
    runs: list[int] = []
    run = 0
    for p in values:
        assert p.temp_c >= 2.0
        if p.temp_c > 8.0:
            assert 9.0 <= p.temp_c <= 12.0
            run += 1
        elif run:
            runs.append(run * 5)
            run = 0
    assert len(runs) >= 3
    assert all(10 <= minutes <= 20 for minutes in runs)  # below the 30-min single alarm
    assert sum(runs) > 60  # the 60-min cumulative alarm fires
    assert min(p.temp_c for p in values) >= 4.0


@pytest.mark.parametrize(
    ("product", "low", "high"),
    [
        ("cart-ln2", -200.0, -160.0),
        ("dry-ice", -100.0, -70.0),
        ("frozen", -25.0, -15.0),
        ("vaccine-2-8", 2.0, 8.0),
        ("crt-15-25", 15.0, 25.0),
    ],
)
def test_build_fleet_nominal_shipments_stay_inside_every_limit(
    fleet: Fleet, product: str, low: float, high: float
) -> None:
    points = _points_by_logger(fleet)
    plans = [p for p in fleet.plans if p.product == product and p.verdict == "PASS"]
    assert plans
    for plan in plans:
        assert all(low < p.temp_c < high for p in points[plan.logger_id]), plan.shipment_id


def test_build_fleet_plans_json_round_trips(fleet: Fleet) -> None:
    plans = orjson.loads(fleet.plans_json())
    assert [p["shipment_id"] for p in plans] == [p.shipment_id for p in fleet.plans]
    assert plans[0]["start"].endswith("Z")
    assert datetime.fromisoformat(plans[0]["start"]) == fleet.plans[0].start


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start": datetime(2026, 1, 1)}, "timezone"),
        ({"start": START, "shipments": 0}, "shipments"),
        ({"start": START, "interval_min": 0.1}, "interval"),
        ({"start": START, "interval_min": 30}, "interval"),
    ],
)
def test_build_fleet_refuses_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_fleet(**kwargs)


def test_fleet_start_is_four_days_before_now() -> None:
    now = datetime(2026, 11, 26, 12, 0, 30, 500_000, tzinfo=UTC)
    assert fleet_start(now) == datetime(2026, 11, 22, 12, 0, 30, tzinfo=UTC)


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    shipments=st.integers(8, 12),
    interval_min=st.sampled_from([2.5, 5.0, 10.0, 15.0]),
)
def test_build_fleet_any_seed_keeps_the_contract(
    seed: int, shipments: int, interval_min: float
) -> None:
    built = build_fleet(shipments=shipments, start=START, seed=seed, interval_min=interval_min)
    start_ms = START.timestamp() * 1000
    assert [m.note for m in built.messages].count("malformed") == 1
    for m in built.messages:
        if m.topic.endswith("/status"):
            read_status(m.payload)
        elif m.note != "malformed":
            for p in read_telemetry(_logger(m), m.payload):
                assert start_ms <= p.ts_ms <= start_ms + FOUR_DAYS_MS
    for plan in built.plans:
        if plan.scenario == "ln2-warming-failure":
            assert "day 2" in plan.expected


# ---------------------------------------------------------------------------
# loadgen
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("loggers", "messages", "pack_size"), [(1, 5, 1), (7, 100, 1), (3, 30, 5)])
def test_make_load_interleaves_loggers_with_increasing_seq(
    loggers: int, messages: int, pack_size: int
) -> None:
    start_ms = 1_790_000_000_000
    load = make_load(loggers=loggers, messages=messages, pack_size=pack_size, start_ms=start_ms)
    assert load == make_load(
        loggers=loggers, messages=messages, pack_size=pack_size, start_ms=start_ms
    )
    assert len(load) == messages
    seen: dict[str, list[Point]] = defaultdict(list)
    for n, (topic, payload) in enumerate(load):
        match = TOPIC_RE.match(topic)
        assert match
        logger_id = match.group(1)
        assert ID_RE.match(logger_id)
        doc = orjson.loads(payload)
        assert ("readings" in doc) == (pack_size > 1)
        points = read_telemetry(logger_id, payload)
        assert len(points) == pack_size
        seen[logger_id].extend(points)
        if n >= loggers:
            assert load[n - loggers][0] == topic  # round-robin
    assert len(seen) == loggers
    for points in seen.values():
        assert [p.seq for p in points] == list(range(len(points)))
        assert [p.ts_ms for p in points] == [start_ms + k * 60_000 for k in range(len(points))]
        assert all(3.0 <= p.temp_c <= 7.0 for p in points)


def test_make_load_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="loggers"):
        make_load(loggers=0, messages=1, pack_size=1, start_ms=0)


# ---------------------------------------------------------------------------
# publish: pure parts
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1:1883", BrokerURL("127.0.0.1", 1883)),
        ("mqtt://broker.example", BrokerURL("broker.example", 1883)),
        ("mqtts://broker.example", BrokerURL("broker.example", 8883, tls=True)),
        ("mqtt://user:p%40ss@host:1999", BrokerURL("host", 1999, "user", "p@ss")),
        ("mqtt://user@host", BrokerURL("host", 1883, "user", None)),
    ],
)
def test_broker_url_parse_table(url: str, expected: BrokerURL) -> None:
    assert BrokerURL.parse(url) == expected


@pytest.mark.parametrize("url", ["http://host", "mqtt://", "host:1883", "mqtt://host:99999"])
def test_broker_url_parse_refuses_other_urls(url: str) -> None:
    with pytest.raises(ValueError, match="broker URL"):
        BrokerURL.parse(url)


def test_broker_url_str_hides_the_password() -> None:
    assert str(BrokerURL.parse("mqtt://user:secret@host:1")) == "mqtt://user@host:1"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"speed": 10.0, "duration_s": 1.0}, "not both"),
        ({"speed": 0.0}, "speed"),
        ({"duration_s": -1.0}, "duration_s"),
        ({"max_inflight": 0}, "max_inflight"),
        ({"max_inflight": 70_000}, "max_inflight"),
    ],
)
def test_publish_refuses_contradictory_options(kwargs: dict[str, Any], match: str) -> None:
    messages = [Outgoing("t/a", b"1", device_time_ms=0), Outgoing("t/a", b"2", device_time_ms=9)]
    with pytest.raises(ValueError, match=match):
        publish(messages, url="mqtt://127.0.0.1:1", client_id="never-connects", **kwargs)


def test_publish_unreachable_broker_raises_publish_error() -> None:
    with pytest.raises(PublishError, match="cannot connect"):
        publish([Outgoing("t/a", b"1")], url="mqtt://127.0.0.1:1", client_id="sim-test")


# ---------------------------------------------------------------------------
# publish: against a real broker
# ---------------------------------------------------------------------------


def _load_messages(prefix: str, count: int) -> list[Outgoing]:
    pairs = make_load(loggers=50, messages=count, pack_size=1, start_ms=0, prefix=prefix)
    return [Outgoing(topic, payload) for topic, payload in pairs]


@pytest.mark.mosquitto
@pytest.mark.parametrize("mqtt_version", ["3.1.1", "5"])
def test_publish_5000_qos1_messages_all_delivered(
    mosquitto_url: str, mqtt_topic_prefix: str, mqtt_version: MqttVersion
) -> None:
    messages = _load_messages(mqtt_topic_prefix, 5000)
    progress: list[tuple[int, int]] = []
    with Collector(
        f"{mqtt_topic_prefix}/#",
        url=mosquitto_url,
        client_id=f"sub-{mqtt_topic_prefix[-12:]}",
        mqtt_version=mqtt_version,
    ) as collector:
        stats = publish(
            messages,
            url=mosquitto_url,
            client_id=f"pub-{mqtt_topic_prefix[-12:]}",
            max_inflight=100,
            on_progress=lambda done, total: progress.append((done, total)),
            mqtt_version=mqtt_version,
        )
        received = collector.wait_for(5000, timeout_s=30)
    assert stats.messages == stats.acked == 5000
    assert stats.refused == stats.lost == 0
    assert stats.msgs_per_s > 0
    assert len(received) == 5000
    assert set(received) == {(m.topic, m.payload) for m in messages}  # none overwritten
    assert progress[-1] == (5000, 5000)


@pytest.mark.mosquitto
@pytest.mark.slow
def test_publish_past_the_16_bit_message_id_wrap_loses_nothing(
    mosquitto_url: str, mqtt_topic_prefix: str
) -> None:
    messages = _load_messages(mqtt_topic_prefix, 70_000)
    with Collector(f"{mqtt_topic_prefix}/#", url=mosquitto_url, client_id="sub-wrap") as collector:
        stats = publish(messages, url=mosquitto_url, client_id="pub-wrap")
        received = collector.wait_for(70_000, timeout_s=60)
    assert stats.acked == 70_000
    assert set(received) == {(m.topic, m.payload) for m in messages}


class _PacingClock:
    """publish()'s monotonic clock and sleep: a sleep is recorded and moves the time at once."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.mosquitto
def test_publish_duration_paces_by_device_time(
    mosquitto_url: str, mqtt_topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Device time 0…10 min, with a late message (device time 1 min) at the end.
    messages = [
        Outgoing(f"{mqtt_topic_prefix}/t", str(k).encode(), device_time_ms=k * 60_000)
        for k in range(11)
    ]
    messages.append(Outgoing(f"{mqtt_topic_prefix}/t", b"late", device_time_ms=60_000))
    clock = _PacingClock()
    # Only the publish module's clock: paho and the broker keep real time.
    monkeypatch.setattr("coldchain.simulation.publish.time", clock)
    with Collector(f"{mqtt_topic_prefix}/#", url=mosquitto_url, client_id="sub-pace") as collector:
        stats = publish(messages, url=mosquitto_url, client_id="pub-pace", duration_s=1.0)
        received = collector.wait_for(12, timeout_s=10)
    # 10 min of device time over 1 s: each minute 0.1 s after the last; the first
    # message and the late one (behind what was sent) go at once.
    assert clock.slept == pytest.approx([0.1] * 10)
    assert stats.elapsed_s == pytest.approx(1.0)
    assert stats.acked == 12
    assert [payload for _, payload in received] == [m.payload for m in messages]


@pytest.mark.mosquitto
def test_publish_fleet_status_is_retained(mosquitto_url: str, mqtt_topic_prefix: str) -> None:
    built = build_fleet(shipments=2, start=START, prefix=mqtt_topic_prefix)
    stats = publish(built.messages, url=mosquitto_url, client_id="pub-fleet")
    assert stats.acked == len(built.messages)
    with Collector(
        f"{mqtt_topic_prefix}/loggers/+/status", url=mosquitto_url, client_id="sub-status"
    ) as late_subscriber:
        retained = late_subscriber.wait_for(2, timeout_s=5)
    assert {topic for topic, _ in retained} == {
        f"{mqtt_topic_prefix}/loggers/{p.logger_id}/status" for p in built.plans
    }


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def test_cli_help_names_both_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "fleet" in result.output
    assert "load" in result.output


def test_cli_fleet_dry_run_prints_every_message_and_writes_plans(tmp_path: Any) -> None:
    plans = tmp_path / "plans.json"
    args = ["fleet", "--dry-run", "--start", "2026-11-22T03:00:00Z", "--plan-json", str(plans)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    built = build_fleet(start=START)
    lines = [orjson.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [line["payload"].encode() for line in lines] == [m.payload for m in built.messages]
    assert orjson.loads(plans.read_bytes()) == orjson.loads(built.plans_json())


@pytest.mark.mosquitto
def test_cli_load_reports_messages_per_second(mosquitto_url: str, mqtt_topic_prefix: str) -> None:
    args = ["load", "--broker", mosquitto_url, "--messages", "500", "--prefix", mqtt_topic_prefix]
    result = CliRunner().invoke(app, [*args, "--pack-size", "5", "--json"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert report["messages"] == report["acked"] == 500
    assert report["readings"] == 2500
    assert report["msgs_per_s"] > 0


def test_cli_fleet_unreachable_broker_exits_non_zero() -> None:
    result = CliRunner().invoke(
        app, ["fleet", "--shipments", "1", "--broker", "mqtt://127.0.0.1:1"]
    )
    assert result.exit_code == 1
