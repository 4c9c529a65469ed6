"""The command line (README.md): stable forms, JSON output, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from coldchain.cli import app
from coldchain.cli import out as cli_out
from coldchain.store import open_store

SAMPLES = Path(__file__).resolve().parent / "data" / "berlinger"  # data/SOURCES.md
QTAG = SAMPLES / "QTag-CLm-doc-LR" / "RCPJ00010_02_202211090128.txt"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("COLDCHAIN_STORE", f"sqlite:///{tmp_path}/cli.db")
    open_store(f"sqlite:///{tmp_path}/cli.db").close()  # read-only commands need it to exist
    monkeypatch.delenv("COLDCHAIN_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    return run


def test_cli_shipment_create_list_show_json(cli):
    created = orjson.loads(
        cli(
            "shipment",
            "create",
            "S-1",
            "--product",
            "cart-ln2",
            "--logger",
            "LG-1",
            "--logger",
            "LG-2",
            "--lot",
            "L1",
            "--origin",
            "SG",
            "--destination",
            "ID",
            "--json",
        )
    )
    assert (created["id"], created["loggers"], created["status"]) == (
        "S-1",
        ["LG-1", "LG-2"],
        "in_transit",
    )
    listed = orjson.loads(cli("shipment", "list", "--json"))
    assert [s["id"] for s in listed] == ["S-1"]
    assert orjson.loads(cli("shipment", "show", "S-1", "--json"))["destination"] == "ID"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["shipment", "create", "S 1", "--product", "cart-ln2", "--logger", "L"], "must match"),
        (
            ["shipment", "create", "S-1", "--product", "nope", "--logger", "L"],
            "unknown product profile 'nope'",
        ),
        (
            [
                "shipment",
                "create",
                "S-1",
                "--product",
                "cart-ln2",
                "--logger",
                "L",
                "--origin",
                "Singapore",
            ],
            "ISO 3166",
        ),
        (["shipment", "show", "S-404"], "shipment 'S-404' not found"),
        (["evaluate", "S-404", "--json"], "shipment 'S-404' not found"),
    ],
)
def test_cli_errors_name_the_problem_and_exit_2(cli, args, message):
    assert message in cli(*args, code=2)


def test_cli_import_csv_then_evaluate_json_has_spec_shape(cli, tmp_path):
    cli("shipment", "create", "S-1", "--product", "vaccine-2-8", "--logger", "LG-1")
    csv = tmp_path / "r.csv"
    rows = [
        f"2026-11-20T{h:02d}:{m:02d}:00Z,{9.5 if 6 <= h < 8 else 5.0}"
        for h in range(12)
        for m in (0, 15, 30, 45)
    ]
    csv.write_text("ts,temp_c\n" + "\n".join(rows) + "\n")
    assert "imported 48 new readings" in cli("import", str(csv), "--shipment", "S-1")
    assert "0 new readings" in cli("import", str(csv), "--shipment", "S-1")  # idempotent
    cli("shipment", "close", "S-1", "--end", "2026-11-20T12:00:00Z")
    doc = orjson.loads(cli("evaluate", "S-1", "--json"))
    assert doc["verdict"] == "FAIL"
    assert doc["limits"][0]["episodes"][0]["minutes"] == 120.0
    alerts = orjson.loads(cli("alerts", "list", "--shipment", "S-1", "--json"))
    assert {a["rule"] for a in alerts} >= {"high-single", "high-cumulative"}


def test_cli_import_refuses_bad_csv_with_line(cli, tmp_path):
    cli("shipment", "create", "S-1", "--product", "vaccine-2-8", "--logger", "LG-1")
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,temp_c\n2026-11-20T00:00:00Z,5\n2026-11-20T00:15:00,5\n")
    assert "bad.csv:3: ts: '2026-11-20T00:15:00' has no time zone" in cli(
        "import", str(bad), "--shipment", "S-1", code=2
    )


def test_cli_import_berlinger_from_device_reconciles(cli):
    cli("shipment", "create", "S-Q", "--product", "vaccine-2-8", "--logger", "RCPJ00010")
    # --delivered: the device's stop time ends the shipment (never implied by an import)
    out = cli("import", str(QTAG), "--shipment", "S-Q", "--profile", "from-device", "--delivered")
    assert "Q-tag CLm doc LR serial RCPJ00010" in out
    doc = orjson.loads(cli("evaluate", "S-Q", "--json"))
    assert doc["profile"]["id"] == "from-device-RCPJ00010"
    rec = doc["reconciliation"]
    assert (rec["min"]["agrees"], rec["max"]["agrees"], rec["mkt"]["agrees"]) == (True,) * 3
    assert [a["id"] for a in rec["alarms"] if a["device_fired"]] == [
        "device-1",
        "device-2",
        "device-4",
        "device-5",
    ]


def test_cli_logger_calibrate_and_budget_ledger(cli, tmp_path):
    assert "+0.3 °C" in cli(
        "logger", "calibrate", "LG-1", "--offset", "0.3", "--certificate", "CAL-2026-17"
    )
    cli("shipment", "create", "S-1", "--product", "cart-ln2", "--logger", "LG-1", "--lot", "L9")
    csv = tmp_path / "r.csv"
    csv.write_text(
        "ts,temp_c\n"
        + "\n".join(
            f"2026-11-20T00:{m:02d}:00Z,{-140.3 if 10 <= m < 30 else -190.3}"
            for m in range(0, 60, 5)
        )
        + "\n"
    )
    cli("import", str(csv), "--shipment", "S-1")
    ledger = orjson.loads(cli("budget", "ledger", "L9", "--json"))
    assert [(e["kind"], e["shipment_id"], e["minutes"]) for e in ledger] == [
        ("consumption", "S-1", 20.0)
    ]


def test_cli_reconciliation_matches_device_alarms_to_equal_product_alarms(cli):
    """vaccine-2-8 mirrors the Q-tag's configuration: its alarms are compared by condition."""
    cli("shipment", "create", "S-Q", "--product", "vaccine-2-8", "--logger", "RCPJ00010")
    run3 = QTAG.with_name("RCPJ00010_03_202304201359.txt")
    cli("import", str(run3), "--shipment", "S-Q", "--delivered")
    rec = orjson.loads(cli("evaluate", "S-Q", "--json"))["reconciliation"]
    assert [(a["id"], a["coldchain_alarm"], a["agrees"]) for a in rec["alarms"]] == [
        ("device-1", "high-single", True),
        ("device-2", "high-cumulative", True),
        ("device-4", "low-cumulative", True),
        ("device-5", "low-single", True),
    ]
    assert rec["agrees"] is True


FRIDGE = SAMPLES / "FridgeTag-2" / "130400191542_202302140605.txt"


def _no_python_values(text: str) -> None:
    for leak in ("None", "['", "[]", "True", "False"):
        assert leak not in text, f"{leak!r} in human output:\n{text}"


def test_cli_human_output_shows_dashes_and_joined_lists_not_python_values(cli, tmp_path):
    cli(
        "shipment", "create", "S-1", "--product", "cart-ln2", "--logger", "LG-1", "--logger", "LG-2"
    )
    shown = cli("shipment", "show", "S-1")
    _no_python_values(shown)
    assert "LG-1, LG-2" in shown
    assert any(line.split() == ["lot", "—"] for line in shown.splitlines())
    csv = tmp_path / "r.csv"
    csv.write_text("ts,temp_c\n2026-11-20T00:00:00Z,-190\n2026-11-20T00:05:00Z,-190\n")
    cli("import", str(csv), "--shipment", "S-1")
    evaluated = cli("evaluate", "S-1", "--now", "2026-11-20T00:10:00Z")
    _no_python_values(evaluated)
    assert "MKT n/a (disabled by profile)" in " ".join(evaluated.split())  # cart-ln2: no MKT
    cli("shipment", "create", "S-F", "--product", "vaccine-2-8", "--logger", "130400191542")
    imported = cli("import", str(FRIDGE), "--shipment", "S-F")
    _no_python_values(imported)
    assert "MKT —" in " ".join(imported.split())  # the Fridge-tag reports no MKT
    empty = cli("evaluate", "S-F")
    _no_python_values(empty)
    assert "min —, max —, mean —" in " ".join(empty.split())


def test_cli_evaluate_text_shows_the_device_reconciliation(cli):
    cli("shipment", "create", "S-Q", "--product", "vaccine-2-8", "--logger", "RCPJ00010")
    cli("import", str(QTAG), "--shipment", "S-Q", "--profile", "from-device", "--delivered")
    text = " ".join(cli("evaluate", "S-Q").split())
    assert "device Q-tag CLm doc LR serial RCPJ00010 (RCPJ00010_02_202211090128.txt)" in text
    assert "min device 0.9 °C, coldchain 0.9 °C: agrees" in text
    assert "MKT device 10.5 °C, coldchain 10.5" in text
    assert "alarm device-1 (device-1): device fired, coldchain fired: agrees" in text
    assert "evaluated against profile from-device-RCPJ00010" in text


def test_cli_empty_lists_say_so_and_unknown_filters_are_errors(cli):
    assert "no dead letters" in cli("dead-letters", "list")
    assert "no shipments" in cli("shipment", "list")
    assert "no alerts" in cli("alerts", "list")
    assert cli("dead-letters", "list", "--json").strip() == "[]"
    assert "shipment 'NOPE' not found" in cli("alerts", "list", "--shipment", "NOPE", code=2)
    assert "shipment 'NOPE' not found" in cli(
        "alerts", "list", "--shipment", "NOPE", "--json", code=2
    )
    assert "lot 'LOT-UNKNOWN' not found" in cli("budget", "ledger", "LOT-UNKNOWN", code=2)
    cli("shipment", "create", "S-1", "--product", "cart-ln2", "--logger", "LG-1", "--lot", "L1")
    assert "no alerts for shipment S-1" in cli("alerts", "list", "--shipment", "S-1")
    assert "lot L1 has consumed no stability budget" in cli("budget", "ledger", "L1")
    assert "no custody events for S-1" in cli("custody", "list", "S-1")
    assert "no signers registered" in cli("signer", "list")
    assert "Invalid value" in cli("alerts", "list", "--state", "closed", code=2)


def test_cli_alerts_list_names_the_resolver_and_the_acknowledger(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(cli_out, "width", 250)  # one line per row
    cli("shipment", "create", "S-1", "--product", "vaccine-2-8", "--logger", "LG-1")
    csv = tmp_path / "r.csv"
    csv.write_text(
        "ts,temp_c\n"
        + "\n".join(f"2026-11-20T{h:02d}:00:00Z,{12 if h < 3 else 5}" for h in range(6))
    )
    cli("import", str(csv), "--shipment", "S-1")
    alerts = orjson.loads(cli("alerts", "list", "--json"))
    first, second = alerts[0]["id"], alerts[1]["id"]
    cli("alerts", "ack", first, "--by", "J. Tan", "--comment", "on it")
    cli("alerts", "resolve", first, "--by", "QA Lee", "--comment", "product released")
    cli("alerts", "ack", second, "--by", "M. Ong")
    rows = {
        line.split("│")[1].strip(): line
        for line in cli("alerts", "list").splitlines()
        if "│" in line
    }
    assert "resolved by QA Lee (acknowledged by J. Tan)" in rows[first]
    assert "acknowledged by M. Ong" in rows[second]
    shown = cli("alerts", "show", second)
    assert "acknowledgement: M. Ong at " in shown
    assert not shown.rstrip().endswith(":")


def test_cli_alerts_list_piped_shows_whole_ids_an_operator_can_ack(cli, tmp_path):
    # What an operator copies from `alerts list | grep …` must be the whole id, not "AL-7903b…".
    cli("shipment", "create", "S-1", "--product", "vaccine-2-8", "--logger", "LG-1")
    csv = tmp_path / "r.csv"
    csv.write_text(
        "ts,temp_c\n"
        + "\n".join(f"2026-11-20T{h:02d}:00:00Z,{12 if h < 3 else 5}" for h in range(6))
    )
    cli("import", str(csv), "--shipment", "S-1")
    ids = [a["id"] for a in orjson.loads(cli("alerts", "list", "--json"))]
    assert ids
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    piped = subprocess.run(
        [str(Path(sys.executable).parent / "coldchain"), "alerts", "list"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    for alert_id in ids:
        assert alert_id in piped
    cli("alerts", "ack", ids[0], "--by", "J. Tan")


def test_cli_signer_add_without_a_terminal_says_to_use_password_stdin(cli, tmp_path):
    # a password is never read from a non-terminal prompt (no GetPassWarning, no echo)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_")}
    env["COLDCHAIN_STORE"] = f"sqlite:///{tmp_path}/cli.db"
    exe = str(Path(sys.executable).parent / "coldchain")
    proc = subprocess.run(
        [exe, "signer", "add", "c.x", "--full-name", "Chris X"],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--password-stdin" in proc.stderr
    assert "Warning" not in proc.stderr
    assert "no signers registered" in cli("signer", "list")
