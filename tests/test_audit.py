"""The tamper-evident audit trail and electronic signatures (21 CFR Part 11 §11.50, §11.200)."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest
from dossier_support import T0, World, add_shipment, make_world, register_signer

from coldchain.audit import GENESIS, verify_chain
from coldchain.disposition import (
    MAX_FAILURES,
    check_password,
    dispositions_from_audit,
    evaluation_digest,
    hash_password,
    local_time,
)
from coldchain.store import open_store

PASSWORD = "correct horse 42"


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = make_world(tmp_path)
    for i in range(5):
        w.store.audit(
            actor="ops", action=f"step-{i}", entity="shipment", entity_id="S-1",
            detail={"i": i, "note": "ok", "value": 1.5}, ts_ms=T0 + i,
        )  # fmt: skip
    return w


def _sql(world: World, statement: str, *args: object) -> None:
    db = sqlite3.connect(world.settings.store.url.removeprefix("sqlite:///"))
    with db:
        db.execute(statement, args)
    db.close()


def _verify(world: World, *extra: str, code: int) -> dict:
    return world.json("audit", "verify", *extra, code=code)


def test_audit_chain_links_every_entry_to_the_one_before(world):
    entries = world.store.list_audit()
    assert entries[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    assert len({e.hash for e in entries}) == len(entries)
    report = _verify(world, code=0)
    assert (report["ok"], report["entries"], report["head_id"]) == (True, 5, 5)


def test_audit_entry_edited_in_the_database_is_detected(world):
    _sql(
        world,
        "UPDATE audit_log SET detail = ? WHERE id = 3",
        '{"i":3,"note":"changed","value":1.5}',
    )
    report = _verify(world, code=1)
    assert report["problems"] == [
        {
            "entry_id": 3,
            "reason": "content does not match its hash (step-2 on shipment 'S-1' was edited "
            "after it was written)",
        }
    ]
    result = world.cli("audit", "verify", code=1)
    assert "audit entry #3" in result.output


@pytest.mark.parametrize(
    ("column", "value"),
    [("actor", "someone else"), ("ts_ms", 0), ("action", "step-x"), ("entity_id", "S-2")],
)
def test_audit_any_field_edited_is_detected(world, column: str, value: object):
    _sql(world, f"UPDATE audit_log SET {column} = ? WHERE id = 2", value)
    report = _verify(world, code=1)
    assert [p["entry_id"] for p in report["problems"]] == [2]


def test_audit_entry_removed_is_detected(world):
    _sql(world, "DELETE FROM audit_log WHERE id = 2")
    report = _verify(world, code=1)
    reasons = {p["reason"] for p in report["problems"] if p["entry_id"] == 3}
    assert "entry #2 is missing (removed)" in reasons
    assert any(r.startswith("prev_hash does not match") for r in reasons)


def test_audit_rechained_after_an_edit_is_caught_by_reopening_and_not_healed(world):
    # blanking a hash to have the store "re-chain" it must not launder the edit
    _sql(world, "UPDATE audit_log SET detail = '{}', hash = NULL WHERE id = 2")
    world.store.close()
    reopened = open_store(world.settings.store.url)
    report = verify_chain(reopened.list_audit())
    assert not report.ok
    assert report.problems[0].entry_id == 2
    assert "no hash" in report.problems[0].reason
    reopened.close()


def test_audit_tail_removed_or_chain_rebuilt_is_caught_by_a_dossier_anchor(tmp_path):
    world = make_world(tmp_path)
    add_shipment(world, "S-A")
    out = tmp_path / "d.zip"
    world.cli("dossier", "S-A", "-o", str(out))
    assert _verify(world, "--dossier", str(out), code=0)["ok"]
    head = max(e.id for e in world.store.list_audit() if e.action != "dossier_issued")
    # the newest entries removed: a shorter chain is still a valid chain ...
    _sql(world, "DELETE FROM audit_log WHERE id >= ?", head)
    assert _verify(world, code=0)["ok"]
    # ... but the signed dossier remembers the head it saw
    report = _verify(world, "--dossier", str(out), code=1)
    assert report["problems"][0]["entry_id"] == head
    assert "removed" in report["problems"][0]["reason"]


def test_audit_entries_written_before_the_chain_are_chained_once_on_upgrade(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE audit_log (id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, actor TEXT NOT "
        "NULL, action TEXT NOT NULL, entity TEXT NOT NULL, entity_id TEXT NOT NULL, detail TEXT "
        "NOT NULL)"
    )
    db.execute(
        "INSERT INTO audit_log VALUES (1, 1, 'cli', 'created', 'shipment', 'S', ?)",
        ('{"b": 1, "a": 2}',),
    )
    db.commit()
    db.close()
    store = open_store(f"sqlite:///{path}")
    store.audit(actor="x", action="later", entity="shipment", entity_id="S", detail={}, ts_ms=2)
    assert verify_chain(store.list_audit()).ok
    store.close()


# -- signatures --------------------------------------------------------------------------------


def test_password_hash_is_salted_scrypt_and_checks_in_constant_time():
    stored = hash_password(PASSWORD, salt=b"s" * 16)
    assert stored.startswith("scrypt$32768$8$1$")
    assert PASSWORD not in stored
    assert check_password(PASSWORD, stored)
    assert not check_password(PASSWORD + "!", stored)
    assert not check_password(PASSWORD, "md5$whatever")
    assert hash_password(PASSWORD, salt=b"t" * 16) != stored


def test_local_time_shows_the_zone():
    assert local_time(1_764_126_000_000, "Asia/Singapore") == (
        "2025-11-26 11:00:00 +08:00 (Asia/Singapore)"
    )
    assert local_time(1_764_126_000_000, "UTC") == "2025-11-26 03:00:00 +00:00 (UTC)"


def _dispose(world: World, password: str, *, code: int, decision: str = "quarantined") -> str:
    # add_shipment's verdict is FAIL: a release would need --override-verdict
    return world.cli(
        "disposition", "S-D", "--decision", decision, "--meaning",
        "Quarantined pending the deviation report", "--by", "a.tan", "--password-stdin",
        stdin=password + "\n", code=code,
    ).output  # fmt: skip


def test_disposition_signed_with_manifestation_in_the_audit_log(tmp_path):
    world = make_world(tmp_path)
    add_shipment(world, "S-D")
    register_signer(world, password=PASSWORD)
    signed = world.json(
        "disposition", "S-D", "--decision", "quarantined", "--meaning",
        "Quarantined pending deviation DEV-12", "--by", "a.tan", "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    sig = signed["signature"]
    assert sig["printed_name"] == "Alicia Tan"
    assert sig["meaning"] == "Quarantined pending deviation DEV-12"
    assert sig["signed_at_local"].endswith("+08:00 (Asia/Singapore)")
    assert sig["manifestation"].startswith("Electronically signed by Alicia Tan (a.tan) on ")
    (found,) = dispositions_from_audit(world.store.list_audit(entity_id="S-D"), "S-D")
    assert found.decision == "quarantined"
    assert found.signature.record_sha256 == sig["record_sha256"]
    evaluation = world.json("evaluate", "S-D", "--now", found.to_json()["signature"]["signed_at"])
    assert found.evaluation_sha256 == evaluation_digest(evaluation)
    assert verify_chain(world.store.list_audit()).ok


def test_disposition_wrong_password_is_refused_audited_and_locks_after_five(tmp_path):
    world = make_world(tmp_path)
    add_shipment(world, "S-D")
    register_signer(world, password=PASSWORD)
    assert "wrong password" in _dispose(world, "guess", code=2)
    refused = [
        e for e in world.store.list_audit(entity_id="a.tan") if e.action == "signature_refused"
    ]
    assert [e.detail["reason"] for e in refused] == ["wrong password"]
    for _ in range(MAX_FAILURES - 1):
        _dispose(world, "guess", code=2)
    assert "is locked" in _dispose(world, PASSWORD, code=2)  # even the right one now
    assert not dispositions_from_audit(world.store.list_audit(entity_id="S-D"), "S-D")
    world.cli("signer", "unlock", "a.tan", "--by", "admin.lee")
    _dispose(world, PASSWORD, code=0)
    assert len(dispositions_from_audit(world.store.list_audit(entity_id="S-D"), "S-D")) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--decision", "approved"], "is not one of released, rejected, quarantined"),
        (["--meaning", "ok"], "--meaning must say what the signature means"),
        (["--by", "nobody"], "no signer 'nobody' is registered"),
    ],
)
def test_disposition_refusals(tmp_path, args: list[str], message: str):
    world = make_world(tmp_path)
    add_shipment(world, "S-D")
    register_signer(world, password=PASSWORD)
    base = {"--decision": "quarantined", "--meaning": "Quarantined for review", "--by": "a.tan"}
    base |= dict(zip(args[::2], args[1::2], strict=True))
    flat = [x for pair in base.items() for x in pair]
    result = world.cli(
        "disposition", "S-D", *flat, "--password-stdin", stdin=PASSWORD + "\n", code=2
    )
    assert message in " ".join(result.output.split())


def test_signer_add_refuses_short_password_and_duplicate(tmp_path):
    world = make_world(tmp_path)
    short = world.cli(
        "signer", "add", "b.lim", "--full-name", "Ben Lim", "--password-stdin",
        stdin="short\nshort\n", code=2,
    )  # fmt: skip
    assert "at least 10 characters" in short.output
    register_signer(world, "b.lim")
    again = world.cli(
        "signer", "add", "b.lim", "--full-name", "Ben Lim", "--password-stdin",
        stdin=f"{PASSWORD}\n{PASSWORD}\n", code=2,
    )  # fmt: skip
    assert "already registered" in again.output
    listed = world.json("signer", "list")
    assert listed == [
        {
            "id": "b.lim",
            "full_name": "Alicia Tan",
            "active": True,
            "created_at": listed[0]["created_at"],
        }
    ]


def test_budget_add_back_is_signed_and_restores_the_lot_budget(tmp_path):
    world = make_world(tmp_path)
    add_shipment(world, "S-B")
    register_signer(world, password=PASSWORD)
    before = world.json("evaluate", "S-B")["budgets"][0]
    too_much = world.cli(
        "budget", "add-back", "S-B", "--budget", "warm-exposure", "--minutes", "500",
        "--meaning", "Stability data STB-9", "--by", "a.tan", "--password-stdin",
        stdin=PASSWORD + "\n", code=2,
    )  # fmt: skip
    assert "at most what lot LOT-S-B has consumed" in " ".join(too_much.output.split())
    world.cli(
        "budget", "add-back", "S-B", "--budget", "warm-exposure", "--minutes", "15",
        "--meaning", "Stability data STB-9", "--by", "a.tan", "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    after = world.json("evaluate", "S-B")["budgets"][0]
    assert after["remaining_min"] == before["remaining_min"] + 15
    (entry,) = world.store.budget_add_backs("LOT-S-B")
    assert entry.signature is not None
    assert entry.signature.startswith("Electronically signed by Alicia Tan (a.tan)")
    signed = list(world.store.list_audit(entity_id="LOT-S-B"))
    assert [e.action for e in signed] == ["budget_add_back_signed"]
    assert signed[0].detail["signature"]["meaning"] == "Stability data STB-9"
