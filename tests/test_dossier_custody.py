"""Custody events (docs/DOSSIER.md, custody and shipment details): the pure decoder, MQTT and CLI
ingestion, legs, EPCIS steps."""

from __future__ import annotations

import itertools

import orjson
import pytest
from dossier_support import T0, H, custody_message, make_world, members, pdf_pages

from coldchain.custody import (
    CUSTODY_TYPES,
    EPCIS_STEPS,
    CustodyEvent,
    decode_custody_event,
    segment_of,
    segments,
)
from coldchain.errors import DecodeError
from coldchain.models import Shipment, ShipmentStatus, iso

GOOD = {"type": "handover", "ts": "2026-11-26T03:00:00Z", "actor": "SkyCold SIN", "location": "SIN"}


def _decode(doc: object, sid: str = "S-1") -> CustodyEvent:
    return decode_custody_event(orjson.dumps(doc), shipment_id=sid, received_ms=T0)


def test_custody_decode_good_event_with_note_and_epoch_time():
    event = _decode(GOOD | {"note": "seal 004512 intact", "ts": 1_764_126_000})
    assert (event.type, event.ts_ms, event.actor, event.location, event.note) == (
        "handover",
        1_764_126_000_000,
        "SkyCold SIN",
        "SIN",
        "seal 004512 intact",
    )
    assert event.to_json()["epcis_biz_step"] == "accepting"


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (GOOD | {"type": "teleported"}, "type 'teleported' is not one of"),
        ({k: v for k, v in GOOD.items() if k != "type"}, "'type' is required"),
        ({k: v for k, v in GOOD.items() if k != "ts"}, "'ts' is required"),
        ({k: v for k, v in GOOD.items() if k != "actor"}, "'actor' is required"),
        ({k: v for k, v in GOOD.items() if k != "location"}, "'location' is required"),
        (GOOD | {"ts": "2026-11-26T03:00:00"}, "has no time zone"),
        (GOOD | {"actor": "  "}, "'actor' must be non-empty text"),
        (GOOD | {"location": 42}, "'location' must be non-empty text"),
        (GOOD | {"note": "x" * 501}, "longer than 500"),
        (GOOD | {"actor": "a\nb"}, "control characters"),
        (GOOD | {"shipment_id": "S-2"}, "differs from the topic's 'S-1'"),
        (GOOD | {"patient": "someone"}, "unknown field(s) patient"),
        ([GOOD], "expected a JSON object"),
    ],
)
def test_custody_decode_refuses_with_reason(doc: object, reason: str):
    with pytest.raises(DecodeError) as info:
        _decode(doc)
    assert reason in info.value.reason
    assert info.value.reason.startswith("custody event:")


def test_custody_decode_refuses_invalid_json():
    with pytest.raises(DecodeError, match="not valid JSON"):
        decode_custody_event(b"{nope", shipment_id="S-1", received_ms=T0)


def test_custody_every_type_maps_to_a_cbv_biz_step_and_disposition():
    assert set(EPCIS_STEPS) == set(CUSTODY_TYPES)
    assert EPCIS_STEPS["dispatched"] == ("shipping", "in_transit")
    assert EPCIS_STEPS["departed"][0] == "departing"
    assert EPCIS_STEPS["arrived"][0] == "arriving"
    assert EPCIS_STEPS["received"][0] == "receiving"


def _event(kind: str, hour: float, where: str) -> CustodyEvent:
    return CustodyEvent("S-1", kind, T0 + round(hour * H), "actor", where)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("events", "labels"),
    [
        ([], ["SG → ID"]),
        (
            [_event("departed", 2, "SIN"), _event("arrived", 4, "CGK")],
            ["at SG", "SIN → CGK", "at CGK"],
        ),
        (
            [
                _event("departed", 1, "SIN"),
                _event("arrived", 2, "KUL"),
                _event("departed", 3, "KUL"),
                _event("arrived", 5, "CGK"),
            ],
            ["at SG", "SIN → KUL", "at KUL", "KUL → CGK", "at CGK"],
        ),
        ([_event("departed", 2, "SIN")], ["at SG", "SIN → ID"]),  # still flying at the end
        ([_event("arrived", 2, "CGK")], ["SG → CGK", "at CGK"]),  # in transit from the start
    ],
)
def test_custody_segments_split_the_journey_at_departures_and_arrivals(events, labels):
    segs = segments(events, start_ms=T0, end_ms=T0 + 10 * H, origin="SG", destination="ID")
    assert [s.label for s in segs] == labels
    assert segs[0].start_ms == T0
    assert segs[-1].end_ms == T0 + 10 * H
    assert all(a.end_ms == b.start_ms for a, b in itertools.pairwise(segs))
    assert segment_of(segs, T0 + 10 * H - 1) == len(segs) - 1


def test_pipeline_stores_custody_events_from_the_events_topic_once(tmp_path):
    world = make_world(tmp_path)
    world.store.create_shipment(
        Shipment("S-1", "cart-ln2", ("LG-1",), status=ShipmentStatus.IN_TRANSIT, created_ms=T0)
    )
    pipeline = world.pipeline()
    good = custody_message("S-1", GOOD, T0)
    pipeline.handle([good, good])  # QoS 1 redelivery: one event
    pipeline.handle(
        [
            custody_message("S-1", GOOD | {"type": "beamed"}, T0),
            custody_message("S-404", GOOD, T0),
        ]
    )
    (event,) = world.store.list_custody_events("S-1")
    assert (event.type, iso(event.ts_ms), event.source) == ("handover", GOOD["ts"], "mqtt")
    reasons = [d.reason for d in world.store.list_dead_letters()]
    assert any("type 'beamed'" in r for r in reasons)
    assert any("shipment 'S-404' is not registered" in r for r in reasons)
    audited = [e for e in world.store.list_audit(entity_id="S-1") if e.action == "custody_event"]
    assert len(audited) == 1
    assert audited[0].actor == "SkyCold SIN"


def test_cli_custody_add_and_list(tmp_path):
    world = make_world(tmp_path)
    world.cli("shipment", "create", "S-1", "--product", "cart-ln2", "--logger", "LG-1")
    added = world.json(
        "custody", "add", "S-1", "--type", "customs_hold", "--actor", "DJBC",
        "--location", "CGK cargo terminal", "--at", "2026-11-26T10:00:00+07:00",
        "--note", "awaiting BPOM SKI check",
    )  # fmt: skip
    assert added["at"] == "2026-11-26T03:00:00Z"
    assert added["epcis_biz_step"] == "holding"
    assert added["new"] is True
    listed = world.json("custody", "list", "S-1")
    assert [(e["type"], e["source"]) for e in listed] == [("customs_hold", "cli")]
    bad = world.cli(
        "custody", "add", "S-1", "--type", "lost", "--actor", "x", "--location", "y", code=2
    )
    assert "type 'lost' is not one of" in bad.output


def test_cli_custody_add_on_a_closed_shipment_is_refused(tmp_path):
    world = make_world(tmp_path)
    world.cli("shipment", "create", "S-1", "--product", "cart-ln2", "--logger", "LG-1")
    world.cli(
        "custody", "add", "S-1", "--type", "received", "--actor", "JCTC", "--location", "CGK",
        "--at", "2026-11-26T10:00:00Z",
    )  # fmt: skip
    world.cli("shipment", "close", "S-1", "--end", "2026-11-26T10:00:00Z")
    late = world.cli(
        "custody", "add", "S-1", "--type", "dispatched", "--actor", "Helix QA",
        "--location", "SIN", code=2,
    )  # fmt: skip
    assert "shipment 'S-1' is closed at 2026-11-26T10:00:00Z" in late.output
    assert "cannot be added after close" in late.output
    assert [e["type"] for e in world.json("custody", "list", "S-1")] == ["received"]


def test_pipeline_dead_letters_a_custody_event_for_a_closed_shipment(tmp_path):
    world = make_world(tmp_path)
    world.store.create_shipment(
        Shipment(
            "S-1", "cart-ln2", ("LG-1",), status=ShipmentStatus.CLOSED, end_ms=T0, created_ms=T0
        )
    )
    world.pipeline().handle([custody_message("S-1", GOOD, T0 + H)])
    assert world.store.list_custody_events("S-1") == []
    (letter,) = world.store.list_dead_letters()
    assert letter.reason.startswith("custody event: shipment 'S-1' is closed at ")
    assert "cannot be added after close" in letter.reason


def test_dossier_custody_timeline_is_in_device_time_order_whatever_the_arrival(tmp_path):
    """Events recorded newest first still read oldest first: custody.json, the PDF's table and
    page 1's "Dispatched → received"."""
    world = make_world(tmp_path)
    world.cli(
        "shipment", "create", "S-1", "--product", "cart-ln2", "--logger", "LG-1",
        "--start", "2026-11-26T00:00:00Z",
    )  # fmt: skip
    for kind, at in (("received", "12:00"), ("handover", "03:00"), ("dispatched", "01:00")):
        world.cli(
            "custody", "add", "S-1", "--type", kind, "--actor", f"actor {kind}",
            "--location", f"site {kind}", "--at", f"2026-11-26T{at}:00Z",
        )  # fmt: skip
    world.cli("shipment", "close", "S-1", "--end", "2026-11-26T12:00:00Z")
    out = tmp_path / "S-1.zip"
    world.cli("dossier", "S-1", "-o", str(out), "--now", "2026-11-26T13:00:00Z")
    files = members(out.read_bytes())
    events = orjson.loads(files["custody.json"])["events"]
    assert [e["type"] for e in events] == ["dispatched", "handover", "received"]
    pages = pdf_pages(files["dossier.pdf"], tmp_path / "pdf")
    first = " ".join(pages[0][1].split())
    assert "2026-11-26 09:00 +08:00 → 2026-11-26 20:00 +08:00" in first  # dispatched → received
    text = "\n".join(t for _, t in pages)
    table = text[text.index("Custody timeline") :]
    assert (
        table.index("site dispatched") < table.index("site handover") < table.index("site received")
    )


def test_dossier_with_a_custody_event_outside_the_monitoring_window_warns_nothing(tmp_path):
    """A dispatch before monitoring started used to be drawn off the chart's axes, unclipped,
    and matplotlib printed "UserWarning: Tight layout not applied" (an error under pytest)."""
    world = make_world(tmp_path)
    world.cli(
        "shipment", "create", "S-1", "--product", "cart-ln2", "--logger", "LG-1",
        "--start", "2026-11-26T00:00:00Z",
    )  # fmt: skip
    world.cli(
        "custody", "add", "S-1", "--type", "dispatched", "--actor", "Helix QA",
        "--location", "SIN", "--at", "2026-11-23T00:00:00Z",
    )  # fmt: skip
    world.cli("shipment", "close", "S-1", "--end", "2026-11-26T12:00:00Z")
    out = tmp_path / "S-1.zip"
    result = world.cli("dossier", "S-1", "-o", str(out), "--now", "2026-11-26T13:00:00Z")
    assert "Warning" not in result.output
    events = orjson.loads(members(out.read_bytes())["custody.json"])["events"]
    assert [e["type"] for e in events] == ["dispatched"]  # still listed, just not drawn
