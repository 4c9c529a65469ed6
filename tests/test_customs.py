"""Customs-ready documents (docs/DOSSIER.md, customs): rule packs, `customs check`, the documents,
and privacy."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import orjson
import pytest
from dossier_support import (
    FULL_ID,
    PATIENT,
    add_note,
    add_shipment,
    make_world,
    members,
    pdf_text,
    register_signer,
)

from coldchain.customs.documents import A152, customs_documents, customs_input
from coldchain.customs.rules import SHIPPED_CUSTOMS_DIR, check, load_rule_packs, parse_pack
from coldchain.details import FIELDS, apply_changes, field_for
from coldchain.errors import ConfigError, ShipmentError
from coldchain.models import Shipment
from coldchain.profiles import SHIPPED_PRODUCTS_DIR, load_profiles

COUNTRIES = ("SG", "ID", "VN", "PH", "MY", "TH", "JP", "KR", "CN", "TW", "HK", "AU", "IN", "US")
PROFILES = load_profiles(SHIPPED_PRODUCTS_DIR)
PACKS = load_rule_packs()
BASE = {k: v for k, v in FULL_ID.items() if not k.startswith("permit:")}


def _shipment(destination: str, details: dict[str, str], product: str = "cart-ln2") -> Shipment:
    return Shipment(
        id="S-C",
        product=product,
        loggers=("LG-1",),
        lot="LOT-C",
        origin="SG",
        destination=destination,
        extra=apply_changes({}, details),
    )


def _complete(country: str) -> dict[str, str]:
    pack = PACKS.for_country(country)
    permits = {f"permit:{p.id}": f"{p.id.upper()}-0001" for p in pack.permits}
    return BASE | permits


def test_rule_packs_cover_every_country_with_sources_and_reviewed_date():
    assert set(PACKS.packs) == {*COUNTRIES, "default"}
    for country, pack in PACKS.packs.items():
        assert pack.sources, country
        assert all(s.url.startswith("http") for s in pack.sources)
        assert date(2026, 1, 1) <= pack.reviewed <= date.today(), country
        assert pack.customs_authority
        assert pack.language
        if country != "default":
            assert pack.permits, f"{country} names no permit"
            assert pack.regulators, country


def test_rule_pack_refused_with_file_field_and_reason(tmp_path: Path):
    bad = (SHIPPED_CUSTOMS_DIR / "SG.toml").read_text().replace("reviewed = 2026-11-26", "")
    with pytest.raises(ConfigError) as info:
        parse_pack(bad.encode(), source="SG.toml")
    assert "SG.toml: reviewed: Field required" in str(info.value)
    unknown = (
        (SHIPPED_CUSTOMS_DIR / "SG.toml")
        .read_text()
        .replace('required_fields = ["importer_tax_id"]', 'required_fields = ["patient_name"]')
    )
    with pytest.raises(ConfigError, match="unknown shipment detail 'patient_name'"):
        parse_pack(unknown.encode(), source="SG.toml")


@pytest.mark.parametrize("country", ["ID", "PH", "JP", "US", "CN", "AU", "DE"])
def test_customs_check_lists_every_missing_item(country: str):
    result = check(_shipment(country, {}), PROFILES.get("cart-ln2"), PACKS)
    assert not result.ready
    keys = {m.key for m in result.missing}
    assert set(PACKS.required_fields(result.pack)) <= keys
    assert {f"permit:{p.id}" for p in result.pack.permits if p.required} <= keys
    assert all(m.how.startswith("coldchain shipment set S-C ") for m in result.missing)
    if country == "DE":
        assert result.pack.country == "default"


@pytest.mark.parametrize("country", ["SG", "ID", "PH", "JP", "KR", "US", "DE"])
def test_customs_check_complete_shipment_is_ready(country: str):
    result = check(_shipment(country, _complete(country)), PROFILES.get("cart-ln2"), PACKS)
    assert result.missing == ()
    assert result.ready


def test_customs_check_dry_ice_needs_net_kg_per_package():
    details = _complete("SG") | {"packaging": "dry-ice"}
    result = check(_shipment("SG", details), PROFILES.get("dry-ice"), PACKS)
    assert [m.key for m in result.missing] == ["dry_ice_kg"]


def test_cli_customs_check_exit_codes_for_missing_and_complete(tmp_path: Path):
    world = make_world(tmp_path)
    world.cli(
        "shipment", "create", "S-1", "--product", "vaccine-2-8", "--logger", "LG-1",
        "--origin", "SG", "--destination", "VN",
    )  # fmt: skip
    missing = world.json("customs", "check", "S-1", code=1)
    assert missing["ready"] is False
    assert "permit:dav-import-licence" in {m["key"] for m in missing["missing"]}
    text = world.cli("customs", "check", "S-1", code=1).output
    assert "not ready S-1 for Viet Nam" in text
    assert "[permit:dav-import-licence]" in text
    assignments = [f"{k}={v}" for k, v in _complete("VN").items()]
    world.cli("shipment", "set", "S-1", *assignments)
    ready = world.json("customs", "check", "S-1")
    assert ready == ready | {"ready": True, "missing": []}
    assert ready["rule_pack"]["reviewed"] == "2026-11-26"


DRY_ICE_2 = "UN1845, Dry ice, Class 9, 5.5 kg net per package (2 packages, 11 kg net in total)"


@pytest.mark.parametrize(
    ("packaging", "extra", "expected"),
    [
        ("dry-ice", {"dry_ice_kg": "5.5", "packages": "2"}, [DRY_ICE_2]),
        ("dry-ice", {"dry_ice_kg": "10"}, ["UN1845, Dry ice, Class 9, 10 kg net per package"]),
        ("ln2-dry-shipper", {}, [A152]),
        ("ln2-dry-shipper", {"un3373": "true"}, [A152, "UN3373, Biological Substance, Category B"]),
        ("passive-2-8", {}, ["Not dangerous goods: passive packaging"]),
    ],
)
def test_customs_dangerous_goods_statement(packaging, extra, expected):
    details = _complete("SG") | {"packaging": packaging} | extra
    shipment = _shipment("SG", details)
    profile = PROFILES.get("cart-ln2")
    inp = customs_input(shipment, profile, evaluation_json=None, calibration_offsets={}, now_ms=0)
    docs = customs_documents(inp, PACKS.for_country("SG"), check(shipment, profile, PACKS))
    texts = [d["text"] for d in docs["dangerous-goods"]["declarations"]]
    assert len(texts) == len(expected)
    assert all(t.startswith(e) for t, e in zip(texts, expected, strict=True))


def test_customs_invoice_carries_what_a_broker_needs(tmp_path: Path):
    world = make_world(tmp_path)
    add_shipment(world, "S-INV")
    out = tmp_path / "d.zip"
    world.cli("dossier", "S-INV", "-o", str(out))
    files = members(out.read_bytes())
    invoice = orjson.loads(files["customs/invoice.json"])
    assert invoice["title"] == "Pro-forma invoice"
    assert "No commercial value — value for customs purposes only." in invoice["statements"]
    item = invoice["items"][0]
    assert (item["hs_code"], item["lot"], item["chain_of_identity_code"]) == (
        "3002.51",
        "LOT-S-INV",
        "COI-SG-2026-000123",
    )
    assert invoice["importer_of_record"]["tax_id"] == "01.234.567.8-901.000"
    assert [p["number"] for p in invoice["permits"]] == ["SKI-2026-000123", "9120001234567"]
    text = " ".join(pdf_text(files["customs/invoice.pdf"], tmp_path / "inv").split())
    for expected in ("Pro-forma invoice", "3002.51", "COI-SG-2026-000123", "Incoterm", "DAP"):
        assert expected in text
    temp = orjson.loads(files["customs/temperature-record.json"])
    assert temp["verdict"] == "FAIL"
    assert temp["loggers"][0]["logger_id"] == "LG-P"
    assert "excursion episode(s)" in temp["statement"]


# -- no patient name can reach a customs document ----------------------------------------------


def test_details_have_no_field_a_name_could_hide_in():
    # every field that reaches customs is structured, or names an organisation or address
    free_text = {f.key for f in FIELDS if f.customs and f.kind in {"text", "org", "address"}}
    assert free_text == {
        "consignor", "consignor_address", "consignee", "consignee_address", "origin_site",
        "destination_site", "importer_of_record", "importer_address", "courier",
    }  # fmt: skip
    assert not any(re.search("patient|name|birth|dob", f.key) for f in FIELDS)


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("patient_name", PATIENT, "unknown shipment detail 'patient_name'"),
        ("patient", PATIENT, "unknown shipment detail"),
        ("coi_code", PATIENT, "never a patient's name"),
        ("coi_code", "MARIA-SANTOS", "at least 4 digits"),
        ("consignee", f"Mrs {PATIENT}", "looks like a person"),
        ("consignee", "Ms. Maria Santos", "looks like a person"),
        ("permit:for-maria", PATIENT, "is not a code"),
        ("awb", PATIENT, "is not an air waybill number"),
        ("quantity", PATIENT, "with at least one digit"),
        ("importer_tax_id", "Maria Santos", "with at least one digit"),
        ("description_of_use", f"therapy for {PATIENT}", "is not one of clinical-trial"),
    ],
)
def test_details_refuse_a_patient_name(key: str, value: str, reason: str):
    with pytest.raises(ShipmentError, match=re.escape(reason)):
        apply_changes({}, {key: value})
    assert field_for("coi_code").customs


def test_customs_documents_never_carry_a_patient_name(tmp_path: Path):
    """A name typed into every free-text field that is not a customs field stays out of customs/."""
    world = make_world(tmp_path)
    add_shipment(world, "S-PRIV")
    # free text everywhere a person can type it outside customs fields
    add_note(world, "S-PRIV", f"patient {PATIENT} confirmed at ramp")
    world.cli("shipment", "set", "S-PRIV", f"calibration:LG-P=checked for {PATIENT}")
    register_signer(world)
    world.cli(
        "disposition", "S-PRIV", "--decision", "quarantined", "--meaning",
        f"Hold for {PATIENT}'s physician", "--by", "a.tan", "--password-stdin",
        stdin="correct horse 42\n",
    )  # fmt: skip
    alert = world.store.list_alerts(shipment_id="S-PRIV")[0]
    world.store.audit(
        actor="ops",
        action="acknowledged",
        entity="alert",
        entity_id=alert.id,
        ts_ms=0,
        detail={"comment": f"called {PATIENT}'s ward"},
    )
    # and attempts to put it where customs would read it are refused
    for key in ("patient_name", "coi_code"):
        world.cli("shipment", "set", "S-PRIV", f"{key}={PATIENT}", code=2)
    out = tmp_path / "d.zip"
    world.cli("dossier", "S-PRIV", "-o", str(out))
    files = members(out.read_bytes())
    # it is in the dossier's own records, which are QA's, not the broker's
    assert PATIENT in files["custody.json"].decode()
    customs = {name: body for name, body in files.items() if name.startswith("customs/")}
    assert len(customs) == 11
    surname = PATIENT.split()[-1]
    for name, body in customs.items():
        text = (
            pdf_text(body, tmp_path / "pdf", Path(name).stem)
            if name.endswith(".pdf")
            else body.decode()
        )
        assert surname not in text, name
        assert "COI-SG-2026-000123" in text or name == "customs/rule-pack.json"
