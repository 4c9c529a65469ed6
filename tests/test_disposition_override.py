"""Releasing a shipment against its system verdict needs a signed, explicit override
(docs/DOSSIER.md, QA disposition)."""

from __future__ import annotations

import orjson
import pytest
from dossier_support import add_shipment, make_world, members, pdf_pages, register_signer

SID = "S-QA-1"
PASSWORD = "correct horse 42"
REASON = "Stability study STB-114 covers 40 min above -150 C"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    w = make_world(tmp_path_factory.mktemp("override"))
    add_shipment(w, SID)  # a 40-minute warm excursion: verdict FAIL
    register_signer(w, password=PASSWORD)
    return w


def _release(world, *extra: str, code: int = 0):
    return world.cli(
        "disposition", SID, "--decision", "released", "--meaning", "Released for infusion",
        "--by", "a.tan", "--password-stdin", *extra, code=code, stdin=PASSWORD + "\n",
    )  # fmt: skip


def _signed(world) -> list:
    return [e for e in world.store.list_audit(entity_id=SID) if e.action == "disposition_signed"]


def test_release_of_a_fail_without_override_is_refused_before_the_password(world):
    result = _release(world, code=2)
    text = " ".join(result.output.split())
    assert "the system verdict is FAIL: releasing it overrides the verdict" in text
    assert '--override-verdict "REASON"' in text
    assert _signed(world) == []
    signer_entries = [e.action for e in world.store.list_audit(entity_id="a.tan")]
    assert "signature_made" not in signer_entries  # the password was not even asked for
    assert "signature_refused" not in signer_entries


def test_override_on_a_decision_that_overrides_nothing_is_refused(world):
    result = world.cli(
        "disposition", SID, "--decision", "rejected", "--meaning", "Rejected: warm",
        "--by", "a.tan", "--password-stdin", "--override-verdict", REASON,
        code=2, stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert "--override-verdict is only for releasing" in " ".join(result.output.split())
    assert _signed(world) == []


def test_release_with_override_is_signed_stored_audited_and_printed_in_the_dossier(world, tmp_path):
    doc = orjson.loads(_release(world, "--override-verdict", REASON, "--json").stdout)
    assert (doc["decision"], doc["verdict_at_signing"], doc["verdict_override"]) == (
        "released",
        "FAIL",
        REASON,
    )
    (entry,) = _signed(world)
    assert entry.detail["verdict_override"] == REASON
    assert entry.detail["record"]["verdict_override"] == REASON  # inside what is signed
    out = tmp_path / "d.zip"
    world.cli("dossier", SID, "-o", str(out))
    files = members(out.read_bytes())
    audit = orjson.loads(files["audit.json"])["entries"]
    (signed,) = [e for e in audit if e["action"] == "disposition_signed"]
    assert signed["detail"]["verdict_override"] == REASON
    pages = pdf_pages(files["dossier.pdf"], tmp_path / "pdf")
    first = " ".join(pages[0][1].split())
    assert f"Overrides the system verdict FAIL: {REASON}" in first  # beside RELEASED
    whole = " ".join(" ".join(t for _, t in pages).split())
    assert f"RELEASED — Overrides the system verdict FAIL: {REASON}" in whole
