"""Decoding tables (docs/PROTOCOL.md): what is accepted, and every reject reason."""

from __future__ import annotations

import orjson
import pytest

from coldchain.decoding import decode_status, decode_telemetry, parse_ts_ms
from coldchain.errors import DecodeError
from coldchain.topics import parse_topic

TOPIC = "coldchain/v1/loggers/LG-1/telemetry"
T0 = 1764126000  # 2025-11-26T03:00:00Z
T0_MS = T0 * 1000


def decode(doc: object, *, raw: bytes | None = None, received_ms: int = T0_MS):
    payload = raw if raw is not None else orjson.dumps(doc)
    return decode_telemetry(payload, logger_id="LG-1", topic=TOPIC, received_ms=received_ms)


@pytest.mark.parametrize(
    ("doc", "ts_ms", "temp_c", "seq"),
    [
        ({"ts": "2025-11-26T03:00:00Z", "temp_c": -162.4, "seq": 1}, T0_MS, -162.4, 1),
        ({"ts": "2025-11-26T11:00:00+08:00", "temp_c": 5}, T0_MS, 5.0, None),
        ({"ts": T0, "temp_c": 5.5}, T0_MS, 5.5, None),
        ({"ts": T0 + 0.25, "temp_c": 5.5}, T0_MS + 250, 5.5, None),
        ({"logger_id": "LG-1", "ts": T0, "temp_c": -200}, T0_MS, -200.0, None),
        ({"ts": T0, "temp_c": 100, "extra_field": "ignored"}, T0_MS, 100.0, None),
    ],
)
def test_decode_native_single_accepted(doc, ts_ms, temp_c, seq):
    out = decode(doc)
    assert [(r.ts_ms, r.temp_c, r.seq) for r in out.readings] == [(ts_ms, temp_c, seq)]
    assert out.rejects == ()


def test_decode_native_pack_keeps_optional_fields_and_battery():
    out = decode(
        {
            "logger_id": "LG-1",
            "readings": [
                {
                    "seq": 1042,
                    "ts": "2025-11-26T03:00:00Z",
                    "temp_c": -162.4,
                    "rh_pct": 41.0,
                    "lat": 1.3521,
                    "lon": 103.8198,
                }
            ],
            "battery_pct": 87.5,
        }
    )
    (r,) = out.readings
    assert (r.seq, r.rh_pct, r.lat, r.lon, out.battery_pct) == (1042, 41.0, 1.3521, 103.8198, 87.5)


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"ts": "2025-11-26T03:00:00", "temp_c": 5}, "has no time zone"),
        ({"ts": "yesterday", "temp_c": 5}, "is not an RFC 3339 timestamp"),
        ({"ts": True, "temp_c": 5}, "expected RFC 3339 text or epoch seconds, got bool"),
        ({"ts": -5, "temp_c": 5}, "epoch seconds must be a finite number >= 0"),
        ({"ts": T0}, "temp_c: required field is missing"),
        ({"temp_c": 5}, "ts: required field is missing"),
        ({"ts": T0, "temp_c": "5.0"}, "temp_c: Input should be a valid number"),
        ({"ts": T0, "temp_c": True}, "temp_c: Input should be a valid number"),
        ({"ts": T0, "temp_c": 101}, "sensor fault"),
        ({"ts": T0, "temp_c": -273}, "sensor fault"),
        ({"ts": T0, "temp_c": 5, "seq": -1}, "seq: Input should be greater than or equal to 0"),
        ({"ts": T0, "temp_c": 5, "lat": 91}, "lat: Input should be less than or equal to 90"),
        ({"logger_id": "LG-2", "ts": T0, "temp_c": 5}, "a logger may only publish for itself"),
        ({"ts": T0, "temp_c": 5, "battery_pct": 120}, "battery_pct: must be a number 0..100"),
        ({"readings": []}, "readings: must be a non-empty list"),
        ({"readings": "x"}, "readings: must be a non-empty list"),
        ([], "SenML pack is empty"),
        (5, "payload must be a JSON object or a SenML array"),
    ],
)
def test_decode_native_rejects_with_reason(doc, reason):
    with pytest.raises(DecodeError, match=reason):
        decode(doc)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "payload is empty"),
        (b"   ", "payload is empty"),
        (b"{not json", "payload is not valid JSON"),
        (b'{"ts": 1764126000, "temp_c": NaN}', "sensor fault"),
        (b'{"ts": 1764126000, "temp_c": Infinity}', "sensor fault"),
    ],
)
def test_decode_raw_rejects_with_reason(raw, reason):
    with pytest.raises(DecodeError, match=reason):
        decode(None, raw=raw)


def test_decode_pack_keeps_good_readings_and_rejects_bad_ones():
    out = decode(
        {
            "readings": [
                {"ts": T0, "temp_c": 5.0},
                {"ts": "2025-11-26T03:05:00", "temp_c": 5.1},
                {"ts": T0 + 600, "temp_c": 150.0},
                {"ts": T0 + 900, "temp_c": 5.2},
            ]
        }
    )
    assert [r.temp_c for r in out.readings] == [5.0, 5.2]
    assert [rej.reason.split(":")[0] for rej in out.rejects] == ["readings[1].ts", "sensor fault"]
    assert orjson.loads(out.rejects[1].payload) == {"ts": T0 + 600, "temp_c": 150.0}
    assert all(rej.topic == TOPIC and rej.logger_id == "LG-1" for rej in out.rejects)


def test_decode_senml_spec_example():
    out = decode(
        [
            {"bn": "urn:dev:logger:LG-1:", "bt": T0, "n": "temp", "u": "Cel", "v": -162.4},
            {"n": "temp", "t": 300, "v": -161.9},
            {"n": "humidity", "u": "%RH", "t": 300, "v": 40.2},
        ]
    )
    assert [(r.ts_ms, r.temp_c, r.rh_pct, r.seq) for r in out.readings] == [
        (T0_MS, -162.4, None, None),
        (T0_MS + 300_000, -161.9, 40.2, None),
    ]


def test_decode_senml_kelvin_relative_time_and_other_records():
    out = decode(
        [
            {"bn": "urn:dev:logger:LG-1:", "n": "temp", "u": "K", "v": 278.15, "t": -60},
            {"n": "pressure", "u": "Pa", "v": 101325},
        ],
        received_ms=T0_MS,
    )
    (r,) = out.readings
    assert r.ts_ms == T0_MS - 60_000  # relative to the receive time (RFC 8428 §4.5.3)
    assert r.temp_c == pytest.approx(5.0)
    assert out.rejects == ()


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        (
            [{"bn": "urn:dev:logger:LG-1:", "bt": T0, "n": "temp", "u": "degF", "v": 41}],
            "temperature unit 'degF' is not supported",
        ),
        (
            [{"bn": "urn:dev:logger:LG-1:", "bt": T0, "n": "temp", "v": 4}],
            "temperature record has no unit",
        ),
        (
            [{"bn": "urn:dev:logger:LG-1:", "bt": T0, "n": "temp", "u": "Cel", "vs": "4"}],
            "needs a numeric value",
        ),
        (
            [{"bn": "urn:dev:logger:LG-1:", "bt": T0, "n": "temp", "u": "Cel", "v": "4"}],
            "must be a number",
        ),
        (
            [{"bn": "urn:dev:logger:LG-1:", "bt": T0, "n": "temp", "u": "Cel", "v": 400}],
            "sensor fault",
        ),
    ],
)
def test_decode_senml_record_rejects(records, reason):
    out = decode(records)
    assert out.readings == ()
    assert len(out.rejects) == 1
    assert reason in out.rejects[0].reason


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        (
            [{"bn": "urn:dev:logger:LG-9:", "bt": T0, "n": "temp", "u": "Cel", "v": 4}],
            "does not name the topic's logger",
        ),
        ([{"bn": "urn:dev:logger:LG-1:", "n": "pressure", "v": 1}], "has no temperature record"),
        ([1, 2], "is not an object"),
    ],
)
def test_decode_senml_pack_rejects(records, reason):
    with pytest.raises(DecodeError, match=reason):
        decode(records)


def test_decode_senml_bad_record_keeps_the_rest():
    out = decode(
        [
            {"bn": "urn:dev:logger:LG-1:", "bt": T0, "n": "temp", "u": "Cel", "v": 4.0},
            {"n": "temp", "u": "degF", "t": 300, "v": 41},
            {"n": "temp", "u": "Cel", "t": 600, "v": 4.5},
        ]
    )
    assert [r.temp_c for r in out.readings] == [4.0, 4.5]
    assert len(out.rejects) == 1


@pytest.mark.parametrize(
    ("topic", "kind", "ident"),
    [
        ("coldchain/v1/loggers/LG-1/telemetry", "telemetry", "LG-1"),
        ("coldchain/v1/loggers/a.b_c-D/status", "status", "a.b_c-D"),
        ("coldchain/v1/shipments/S-1/events", "events", "S-1"),
    ],
)
def test_parse_topic_accepts(topic, kind, ident):
    parsed = parse_topic(topic)
    assert (parsed.kind, parsed.ident) == (kind, ident)


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("other/v1/loggers/LG-1/telemetry", "is not under"),
        ("coldchain/v1/loggers/LG 1/telemetry", "does not match"),
        ("coldchain/v1/loggers/" + "x" * 65 + "/telemetry", "does not match"),
        ("coldchain/v1/loggers/LG-1/other", "unknown topic kind"),
        ("coldchain/v1/loggers/LG-1", "has no form"),
    ],
)
def test_parse_topic_rejects(topic, reason):
    with pytest.raises(DecodeError, match=reason):
        parse_topic(topic)


def test_decode_status_reads_spec_fields_and_will():
    s = decode_status(b'{"online": true, "battery_pct": 14.5, "rssi_dbm": -70, "fw": "1.2"}')
    assert (s.online, s.battery_pct, s.rssi_dbm, s.fw) == (True, 14.5, -70, "1.2")
    assert decode_status(b'{"online": false}').online is False
    with pytest.raises(DecodeError, match="online"):
        decode_status(b'{"battery_pct": 50}')


def test_parse_ts_offsets_are_converted_to_utc():
    assert parse_ts_ms("2025-11-26T03:00:00.500Z") == T0_MS + 500
    assert parse_ts_ms("2025-11-25T22:00:00-05:00") == T0_MS
