"""The dossier ZIP (docs/DOSSIER.md): every member, the PDF page by page, EPCIS against the GS1
schema,
the signed manifest and `coldchain verify`."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from dossier_support import (
    EPCIS_EXAMPLES,
    QTAG_RUN3,
    World,
    add_shipment,
    epcis_validator,
    flip_byte,
    make_world,
    members,
    pdf_pages,
    register_signer,
    rewrite_zip,
)

from coldchain.dossier.manifest import (
    MANIFEST,
    content_digest,
    sha256,
    signed_bytes,
    verify_dossier,
    with_signature,
)
from coldchain.signing import load_or_create_key, load_public_key, public_path_for

SID = "S-QA-1"
PASSWORD = "correct horse 42"
EXPECTED_MEMBERS = {
    "dossier.pdf",
    "readings.csv",
    "readings.parquet",
    "evaluation.json",
    "alerts.json",
    "custody.json",
    "audit.json",
    "epcis.jsonld",
    "manifest.json",
    *(
        f"customs/{stem}.{ext}"
        for stem in ("invoice", "packing-list", "dangerous-goods", "temperature-record", "permits")
        for ext in ("json", "pdf")
    ),
    "customs/rule-pack.json",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, bytes, str]:
    """One delivered shipment, QA-rejected and with a signed add-back, and its dossier."""
    world = make_world(tmp_path_factory.mktemp("dossier"))
    add_shipment(world, SID)
    register_signer(world, password=PASSWORD)
    first = world.store.list_alerts(shipment_id=SID)[0]
    world.cli("alerts", "ack", first.id, "--by", "J. Tan", "--comment", "courier re-iced at SIN")
    world.cli(
        "budget", "add-back", SID, "--budget", "warm-exposure", "--minutes", "10",
        "--meaning", "Stability study STB-114 supports 10 min more", "--by", "a.tan",
        "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    world.cli(
        "disposition", SID, "--decision", "rejected", "--meaning",
        "Rejected: 40 min above -150 °C", "--by", "a.tan", "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    out = world.root / "out" / f"{SID}.zip"
    result = world.cli("dossier", SID, "-o", str(out))
    return world, out.read_bytes(), result.stderr


def test_dossier_zip_holds_every_member_listed_in_the_manifest(built):
    _, data, _ = built
    files = members(data)
    assert set(files) == EXPECTED_MEMBERS
    manifest = orjson.loads(files[MANIFEST])
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    assert set(listed) == EXPECTED_MEMBERS - {MANIFEST}
    assert all(sha256(files[p]) == h for p, h in listed.items())
    assert manifest["generator"] == {"name": "coldchain", "version": "0.1.0"}
    assert manifest["signature"]["algorithm"] == "Ed25519"
    assert manifest["content_sha256"] == content_digest(listed)
    assert manifest["audit_head"]["hash"]


def test_dossier_signing_key_created_on_first_use_with_backup_advice(built):
    world, _, stderr = built
    key_path = world.settings.dossier.signing_key
    assert key_path.exists()
    assert public_path_for(key_path).exists()
    assert oct(key_path.stat().st_mode & 0o777) == "0o600"
    assert str(key_path.resolve()) in stderr.replace("\n", "")
    assert "Back it up" in stderr


def test_dossier_pdf_every_page_renders_and_page_one_answers_release(built, tmp_path):
    _, data, _ = built
    files = members(data)
    pages = pdf_pages(files["dossier.pdf"], tmp_path)
    assert len(pages) >= 3
    content = orjson.loads(files[MANIFEST])["content_sha256"]
    for number, (png, text) in enumerate(pages, start=1):
        assert png.stat().st_size > 5_000  # a real page, not a blank
        assert f"Page {number} of {len(pages)}" in text
        assert content in text  # the manifest's content hash on every page
    first = " ".join(pages[0][1].split())  # wrapped lines joined
    for expected in (
        "can it be released?",
        "SYSTEM VERDICT",
        "FAIL",
        "QA DISPOSITION",
        "REJECTED",
        "Autologous CAR-T cell suspension, cryopreserved",
        "LOT-S-QA-1",
        "COI-SG-2026-000123",
        "SG → SIN → CGK → ID",
        "Release checklist",
        "Temperature within",
        "Stability budget",
        "Custody chain",
        "Minimum / maximum",
        "Budget warm-exposure remaining",
        "Alicia Tan (a.tan)",
        "+08:00 (Asia/Singapore)",
    ):
        assert expected in first, expected
    whole = " ".join(" ".join(text for _, text in pages).split())
    for expected in (
        "Temperature record",
        "Excursion episodes",
        "Alerts and acknowledgements",
        "acknowledged by J. Tan",
        "courier re-iced at SIN",
        "Custody timeline",
        "customs hold",
        "holding / unavailable",
        "Loggers and calibration",
        "DAkkS D-K-15001",
        "Data gaps",
        "QA disposition and electronic signatures",
        "Meaning: Rejected: 40 min above -150 °C",
        "Budget add-back: 10.0 min of warm-exposure restored",
        "Stability study STB-114",
    ):
        assert expected in whole, expected


def test_dossier_readings_csv_and_parquet_hold_every_reading_of_every_logger(built):
    world, data, _ = built
    files = members(data)
    stored = world.store.readings_for_loggers(["LG-P", "LG-B"])
    rows = list(csv.DictReader(io.StringIO(files["readings.csv"].decode())))
    assert len(rows) == len(stored)
    assert set(rows[0]) == {
        "device_time_utc", "logger_id", "role", "seq", "raw_temp_c", "temp_c",
        "calibration_offset_c", "received_at_utc", "source", "evaluated", "flags",
    }  # fmt: skip
    assert rows[0]["device_time_utc"].endswith("Z")
    excursion = [r for r in rows if r["logger_id"] == "LG-P" and float(r["temp_c"]) == -140.0]
    assert len(excursion) == 8
    assert all("above:-150" in r["flags"] for r in excursion)
    assert {r["role"] for r in rows} == {"primary", "backup"}
    frame = pl.read_parquet(io.BytesIO(files["readings.parquet"]))
    assert frame.height == len(stored)
    assert str(frame.schema["device_time"]) == "Datetime(time_unit='ms', time_zone='UTC')"


def test_dossier_evaluation_json_is_what_evaluate_prints(built):
    world, data, _ = built
    shipped = orjson.loads(members(data)["evaluation.json"])
    printed = world.json("evaluate", SID, "--now", shipped["evaluated_at"])
    assert shipped == printed
    assert shipped["budgets"][0]["prior_consumed_min"] == -10.0  # the signed add-back


def test_dossier_alerts_custody_and_audit_members(built):
    _, data, _ = built
    files = members(data)
    alerts = orjson.loads(files["alerts.json"])
    assert {a["type"] for a in alerts} >= {"excursion", "cumulative"}
    assert all("history" in a for a in alerts)
    custody = orjson.loads(files["custody.json"])
    assert [e["type"] for e in custody["events"]] == [
        "dispatched", "handover", "departed", "arrived",
        "customs_hold", "customs_cleared", "delivered", "received",
    ]  # fmt: skip
    assert [leg["label"] for leg in custody["legs"]] == [
        "at Helix Biopolis",
        "SIN → CGK",
        "at CGK",
    ]
    audit = orjson.loads(files["audit.json"])
    assert audit["chain"]["intact"] is True
    actions = {e["action"] for e in audit["entries"]}
    assert {"custody_event", "disposition_signed", "budget_add_back_signed"} <= actions
    signed = next(e for e in audit["entries"] if e["action"] == "disposition_signed")
    manifestation = signed["detail"]["signature"]
    assert manifestation["printed_name"] == "Alicia Tan"
    assert manifestation["signed_at_local"].endswith("+08:00 (Asia/Singapore)")
    assert manifestation["meaning"] == "Rejected: 40 min above -150 °C"


def test_dossier_epcis_validates_against_the_gs1_schema(built):
    doc = orjson.loads(members(built[1])["epcis.jsonld"])
    validator = epcis_validator()
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(doc)]
    assert errors == []
    events = doc["epcisBody"]["eventList"]
    custody = [e for e in events if "cc:custodyType" in e]
    assert [(e["bizStep"], e["disposition"]) for e in custody] == [
        ("shipping", "in_transit"),
        ("accepting", "in_transit"),
        ("departing", "in_transit"),
        ("arriving", "in_transit"),
        ("holding", "unavailable"),
        ("inspecting", "in_transit"),
        ("unloading", "in_progress"),
        ("receiving", "in_progress"),
    ]
    sensors = [e for e in events if e["bizStep"] == "sensor_reporting"]
    assert len(sensors) == 3  # one per leg
    summaries = [el["sensorReport"][0] for e in sensors for el in e["sensorElementList"]]
    plain = [r for r in summaries if "exception" not in r]
    assert all(r["type"] == "gs1:Temperature" and r["uom"] == "CEL" for r in summaries)
    assert all({"minValue", "maxValue", "meanValue"} <= set(r) for r in plain)
    alarms = [r for r in summaries if r.get("exception") == "ALARM_CONDITION"]
    assert alarms
    assert {r["maxValue"] for r in alarms} == {-140.0}
    qa = [e for e in events if "cc:qaDecision" in e]
    assert [(e["bizStep"], e["disposition"]) for e in qa] == [("inspecting", "non_conformant")]


@pytest.mark.parametrize("example", EPCIS_EXAMPLES, ids=lambda p: p.name)
def test_epcis_validator_accepts_the_gs1_examples(example: Path):
    assert list(epcis_validator().iter_errors(orjson.loads(example.read_bytes()))) == []


def test_epcis_validator_refuses_an_unknown_biz_step(built):
    doc = orjson.loads(members(built[1])["epcis.jsonld"])
    doc["epcisBody"]["eventList"][0]["bizStep"] = "teleporting"
    assert list(epcis_validator().iter_errors(doc))


# -- verify ------------------------------------------------------------------------------------


def _verify(world: World, data: bytes, tmp_path: Path, *extra: str) -> Any:
    path = tmp_path / "candidate.zip"
    path.write_bytes(data)
    result = world.cli("verify", str(path), "--json", *extra, code=None)
    return result.exit_code, orjson.loads(result.stdout)


def test_verify_intact_dossier_exits_zero_with_trusted_key(built, tmp_path):
    world, data, _ = built
    code, report = _verify(world, data, tmp_path)
    assert code == 0, report
    assert report["ok"] is True
    assert report["trusted_key"] is True  # this machine's own key


@pytest.mark.parametrize("member", sorted(EXPECTED_MEMBERS))
def test_verify_changed_byte_in_any_member_fails_naming_it(built, tmp_path, member):
    world, data, _ = built
    changed = rewrite_zip(data, lambda name, b: flip_byte(b) if name == member else b)
    code, report = _verify(world, changed, tmp_path)
    assert code == 1
    assert member in {f["path"] for f in report["findings"]}, report["findings"]


def test_verify_byte_flipped_inside_the_zip_names_the_member(built, tmp_path):
    world, data, _ = built
    # flip a byte inside evaluation.json's compressed data: the CRC-32 check names it
    offset = data.index(b"evaluation.json") + len("evaluation.json") + 20
    code, report = _verify(world, flip_byte(data, offset), tmp_path)
    assert code == 1
    assert "evaluation.json" in {f["path"] for f in report["findings"]}


def test_verify_swapped_signature_fails_naming_the_manifest(built, tmp_path):
    world, data, _ = built
    other = load_or_create_key(tmp_path / "other.pem")

    def swap(name: str, body: bytes) -> bytes:
        if name != MANIFEST:
            return body
        doc = orjson.loads(body)
        doc["signature"]["value"] = other.sign(b"another manifest")
        return orjson.dumps(doc)

    code, report = _verify(world, rewrite_zip(data, swap), tmp_path)
    assert code == 1
    (finding,) = report["findings"]
    assert finding["path"] == MANIFEST
    assert "signature does not verify" in finding["reason"]


def test_verify_resigned_by_another_key_fails_unless_that_key_is_trusted(built, tmp_path):
    world, data, _ = built
    other = load_or_create_key(tmp_path / "other.pem")

    def resign(name: str, body: bytes) -> bytes:
        if name == "evaluation.json":
            return body.replace(b'"FAIL"', b'"PASS"')
        return body

    forged = rewrite_zip(data, resign)
    files = members(forged)
    doc = orjson.loads(files[MANIFEST])
    for entry in doc["files"]:
        entry["sha256"] = sha256(files[entry["path"]])
        entry["bytes"] = len(files[entry["path"]])
    doc["content_sha256"] = content_digest({f["path"]: f["sha256"] for f in doc["files"]})
    doc.pop("signature")
    doc = with_signature(
        doc, public_b64=other.public_b64, signature_b64=other.sign(signed_bytes(doc))
    )
    forged = rewrite_zip(forged, lambda n, b: orjson.dumps(doc) if n == MANIFEST else b)
    code, report = _verify(world, forged, tmp_path)
    assert code == 1
    assert "not one of the trusted keys" in report["findings"][0]["reason"]
    # embedded key alone: consistent, and origin unproven
    plain = verify_dossier(forged)
    assert plain.ok
    assert plain.trusted is None
    # a recipient who trusts that key accepts it
    assert verify_dossier(forged, trusted_keys=[load_public_key(tmp_path / "other.pub.pem")]).ok


def test_verify_member_added_or_removed_fails_naming_it(built, tmp_path):
    world, data, _ = built
    buf = io.BytesIO(data)
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr("extra.txt", b"slipped in")
    code, report = _verify(world, buf.getvalue(), tmp_path)
    assert (code, report["findings"][0]["path"]) == (1, "extra.txt")
    removed = rewrite_zip(data, lambda n, b: None if n == "alerts.json" else b)
    code, report = _verify(world, removed, tmp_path)
    assert code == 1
    assert "alerts.json" in {f["path"] for f in report["findings"]}


def test_verify_not_a_zip_exits_two(built, tmp_path):
    world, _, _ = built
    path = tmp_path / "not.zip"
    path.write_bytes(b"hello")
    result = world.cli("verify", str(path), code=2)
    assert "not a ZIP" in result.output


# -- device reconciliation ------------------------------------------------------------------------


def test_dossier_shows_device_read_out_beside_coldchain(tmp_path):
    world = make_world(tmp_path / "w")
    world.cli(
        "shipment", "create", "Q-1", "--product", "vaccine-2-8", "--logger", "RCPJ00010",
        "--lot", "LOT-Q", "--origin", "SG", "--destination", "JP",
    )  # fmt: skip
    world.cli("import", str(QTAG_RUN3), "--shipment", "Q-1", "--format", "berlinger")
    world.cli("shipment", "close", "Q-1", "--end", "2023-04-20T13:59:00Z")
    out = tmp_path / "q.zip"
    world.cli("dossier", "Q-1", "-o", str(out), "--now", "2023-04-21T00:00:00Z")
    pages = pdf_pages(members(out.read_bytes())["dossier.pdf"], tmp_path / "pages")
    text = " ".join((pages[0][1] + pages[1][1]).split())
    assert "Device read-out beside coldchain" in text
    # vaccine-2-8 mirrors the Q-tag's alarm configuration, so the alarms are compared too
    assert "Q-tag CLm doc LR RCPJ00010: min, max, MKT, average and alarms agree." in text
    assert "+12.7 °C" in text
    assert "+9.7 °C" in text
