"""`coldchain import` as a new user meets it: the shipment is never changed behind their back,
conflicting readings are visible, alerts report the crossing, errors and dead letters name the
file and line. Real SQLite store in tmp_path, real CLI."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import orjson
import pytest
from dossier_support import pdf_text
from typer.testing import CliRunner

from coldchain.cli import app
from coldchain.config import load_settings
from coldchain.models import Shipment, ShipmentStatus
from coldchain.pipeline import Pipeline
from coldchain.store import open_store
from coldchain.testing import FakeClock

SAMPLES = Path(__file__).resolve().parent / "data" / "berlinger"  # data/SOURCES.md
QTAG = SAMPLES / "QTag-CLm-doc-LR" / "RCPJ00010_02_202211090128.txt"
QTAG_PDF = QTAG.with_suffix(".pdf")
QTAG_END = "2022-11-09T01:28:00Z"  # its TS Stop


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0) -> str:
        result = self.runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    def fails(self, *args: str) -> str:
        result = self.runner.invoke(app, list(args))
        assert result.exit_code != 0, result.output
        assert "Traceback" not in result.output
        return result.output

    def json(self, *args: str) -> object:
        return orjson.loads(self(*args, "--json"))

    def csv(self, name: str, rows: list[str]) -> Path:
        path = self.tmp / name
        path.write_text("ts,temp_c\n" + "\n".join(rows) + "\n")
        return path


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("COLDCHAIN_STORE", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.delenv("COLDCHAIN_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return Cli(tmp_path)


def quarter_hours(day: str, temps: list[float], hour: int = 0) -> list[str]:
    return [
        f"{day}T{hour + (15 * i) // 60:02d}:{(15 * i) % 60:02d}:00Z,{t}"
        for i, t in enumerate(temps)
    ]


# -- 1. an import never changes the shipment unless asked -------------------------------------


def _with_readings(cli: Cli, logger: str = "RCPJ00010") -> None:
    cli("shipment", "create", "S-1", "--product", "vaccine-2-8", "--logger", logger)
    csv = cli.csv("later.csv", quarter_hours("2022-11-20", [5.0] * 8))
    cli("import", str(csv), "--shipment", "S-1")


def test_import_from_device_on_shipment_with_readings_is_refused_and_changes_nothing(cli):
    _with_readings(cli)
    before = cli.json("shipment", "show", "S-1")
    out = cli.fails("import", str(QTAG), "--shipment", "S-1", "--profile", "from-device")
    assert "S-1 already has 8 readings" in out
    assert "--replace-profile" in out
    assert cli.json("shipment", "show", "S-1") == before
    doc = cli.json("evaluate", "S-1")
    assert (doc["profile"]["id"], doc["readings"]) == ("vaccine-2-8", 8)
    assert "reconciliation" not in doc  # the device file was not kept either


def test_import_device_file_keeps_status_end_and_earlier_readings(cli):
    _with_readings(cli)
    out = cli("import", str(QTAG), "--shipment", "S-1")
    assert "imported 124 new readings" in out
    shown = cli.json("shipment", "show", "S-1")
    assert (shown["status"], shown["end"]) == ("in_transit", None)
    doc = cli.json("evaluate", "S-1", "--now", "2022-11-20T02:00:00Z")
    assert doc["profile"]["id"] == "vaccine-2-8"
    assert doc["readings"] == 124 + 8  # the earlier readings still count


def test_import_replace_profile_and_delivered_are_explicit(cli):
    _with_readings(cli)
    out = cli.fails("import", str(QTAG), "--shipment", "S-1", "--delivered")
    assert "8 readings of S-1 are after the device's stop time 2022-11-09T01:28:00Z" in out
    cli("import", str(QTAG), "--shipment", "S-1", "--profile", "from-device", "--replace-profile")
    shown = cli.json("shipment", "show", "S-1")
    assert (shown["status"], shown["end"]) == ("in_transit", None)
    assert cli.json("evaluate", "S-1")["profile"]["id"] == "from-device-RCPJ00010"


def test_import_delivered_ends_shipment_at_device_stop(cli):
    cli("shipment", "create", "S-1", "--product", "vaccine-2-8", "--logger", "RCPJ00010")
    cli("import", str(QTAG), "--shipment", "S-1", "--delivered")
    shown = cli.json("shipment", "show", "S-1")
    assert (shown["status"], shown["end"]) == ("delivered", QTAG_END)


def test_import_device_serial_not_registered_is_refused_naming_both(cli):
    cli("shipment", "create", "S-1", "--product", "vaccine-2-8", "--logger", "LG-1")
    out = cli.fails("import", str(QTAG), "--shipment", "S-1")
    assert "RCPJ00010" in out
    assert "LG-1" in out
    assert "--logger" in out
    assert cli.json("evaluate", "S-1", "--now", QTAG_END)["readings"] == 0


def test_import_logger_option_adds_the_device_as_a_backup(cli):
    cli("shipment", "create", "S-1", "--product", "vaccine-2-8", "--logger", "LG-1")
    cli("import", str(QTAG), "--shipment", "S-1", "--logger", "RCPJ00010")
    assert cli.json("shipment", "show", "S-1")["loggers"] == ["LG-1", "RCPJ00010"]
    assert cli.json("evaluate", "S-1", "--now", QTAG_END)["readings"] == 124
    entries = cli.json("audit", "list", "--action", "logger_added")
    assert [(e["entity_id"], e["detail"]["logger"]) for e in entries] == [("S-1", "RCPJ00010")]


def test_import_logger_option_assigns_the_file_to_a_registered_logger(cli):
    cli("shipment", "create", "S-1", "--product", "vaccine-2-8", "--logger", "LG-1")
    cli("import", str(QTAG), "--shipment", "S-1", "--logger", "LG-1")
    assert cli.json("shipment", "show", "S-1")["loggers"] == ["LG-1"]
    assert cli.json("evaluate", "S-1", "--now", QTAG_END)["readings"] == 124
    (entry,) = cli.json("audit", "list", "--action", "device_file_imported")
    assert (entry["detail"]["serial"], entry["detail"]["logger"]) == ("RCPJ00010", "LG-1")


# -- 2. conflicting readings are counted and listed ----------------------------------------------

CONFLICT_ROWS = [
    "2026-11-20T00:00:00Z,5.0",
    "2026-11-20T00:00:00Z,9.0",
    "2026-11-20T00:15:00Z,5.0",
]


def test_import_summary_counts_conflicts(cli):
    cli("shipment", "create", "S-1", "--product", "vaccine-2-8", "--logger", "LG-1")
    out = cli("import", str(cli.csv("c.csv", CONFLICT_ROWS)), "--shipment", "S-1")
    assert "imported 2 new readings" in out
    assert "0 duplicates, 1 conflict," in out


def test_evaluate_counts_conflicts_in_text_and_json(cli):
    cli("shipment", "create", "S-1", "--product", "vaccine-2-8", "--logger", "LG-1")
    cli("import", str(cli.csv("c.csv", CONFLICT_ROWS)), "--shipment", "S-1")
    cli("import", str(cli.csv("c.csv", CONFLICT_ROWS)), "--shipment", "S-1")  # the same again
    doc = cli.json("evaluate", "S-1", "--now", "2026-11-20T01:00:00Z")
    assert doc["conflicts"] == 1
    assert doc["max_c"] == 5.0  # the first value stays
    text = cli("evaluate", "S-1", "--now", "2026-11-20T01:00:00Z")
    assert "1 conflicting reading" in text


def test_evaluate_conflicts_zero_and_outside_window_not_counted(cli):
    cli("shipment", "create", "S-1", "--product", "vaccine-2-8", "--logger", "LG-1")
    cli("import", str(cli.csv("c.csv", CONFLICT_ROWS)), "--shipment", "S-1")
    cli(
        "shipment",
        "create",
        "S-2",
        "--product",
        "vaccine-2-8",
        "--logger",
        "LG-1",
        "--start",
        "2026-11-20T00:10:00Z",
    )
    assert cli.json("evaluate", "S-2", "--now", "2026-11-20T01:00:00Z")["conflicts"] == 0


def test_audit_list_filters_and_shows_the_refused_value(cli):
    cli("shipment", "create", "S-1", "--product", "vaccine-2-8", "--logger", "LG-1")
    cli("import", str(cli.csv("c.csv", CONFLICT_ROWS)), "--shipment", "S-1")
    (entry,) = cli.json("audit", "list", "--action", "reading_conflict")
    assert (entry["entity"], entry["entity_id"]) == ("logger", "LG-1")
    assert entry["detail"]["refused"]["temp_c"] == 9.0
    assert cli.json("audit", "list", "--entity", "logger") == [entry]
    assert cli.json("audit", "list", "--entity", "LG-1") == [entry]
    assert [e["action"] for e in cli.json("audit", "list", "--entity", "shipment")] == ["created"]
    assert [e["action"] for e in cli.json("audit", "list", "--shipment", "S-1")] == [
        "created",
        "reading_conflict",
    ]
    at = entry["at"]
    assert entry in cli.json("audit", "list", "--since", at, "--until", at)
    assert cli.json("audit", "list", "--since", "2999-01-01T00:00:00Z") == []
    text = cli("audit", "list", "--action", "reading_conflict")
    assert "reading_conflict" in text
    assert "9.0" in text
    assert "no time zone" in cli.fails("audit", "list", "--since", "2026-01-01T00:00:00")


def test_dossier_lists_conflicts_in_pdf_and_member(cli, tmp_path):
    (tmp_path / "coldchain.toml").write_text(
        f'[store]\nurl = "sqlite:///{tmp_path}/cli.db"\n\n'
        f'[dossier]\nsigning_key = "{tmp_path}/keys/dossier.pem"\n'
    )
    cli("shipment", "create", "S-1", "--product", "vaccine-2-8", "--logger", "LG-1")
    cli("import", str(cli.csv("c.csv", CONFLICT_ROWS)), "--shipment", "S-1")
    cli("shipment", "close", "S-1", "--end", "2026-11-20T00:30:00Z")
    out = tmp_path / "d.zip"
    cli("dossier", "S-1", "-o", str(out), "--config", str(tmp_path / "coldchain.toml"))
    with zipfile.ZipFile(io.BytesIO(out.read_bytes())) as z:
        evaluation = orjson.loads(z.read("evaluation.json"))
        audit = orjson.loads(z.read("audit.json"))
        text = pdf_text(z.read("dossier.pdf"), tmp_path / "pdf")
    assert evaluation["conflicts"] == 1
    assert [
        (c["logger_id"], c["ts"], c["kept_c"], c["refused_c"]) for c in audit["reading_conflicts"]
    ] == [("LG-1", "2026-11-20T00:00:00Z", 5.0, 9.0)]
    assert "Conflicting readings" in text
    assert "9.0 °C" in text
    assert "1 reading time(s) held a second, different value" in text  # a release check


# -- 3. an alert reports the crossing reading and the peak ---------------------------------------


def test_batch_import_excursion_alert_reports_crossing_and_peak(cli):
    cli("shipment", "create", "S-1", "--product", "vaccine-2-8", "--logger", "LG-1")
    csv = cli.csv("x.csv", quarter_hours("2026-11-20", [5, 5, 12, 15, 9, 5]))
    cli("import", str(csv), "--shipment", "S-1")
    (alert,) = [a for a in cli.json("alerts", "list") if a["type"] == "excursion"]
    assert alert["rule"] == "high-single"
    assert alert["value_c"] == 12.0
    assert alert["peak_c"] == 15.0
    assert "15.0 °C" in alert["message"]
    assert "12.0 °C" in alert["message"]


def test_streaming_excursion_alert_reports_crossing_and_peak(tmp_path):
    settings = load_settings(environ={"COLDCHAIN_STORE": f"sqlite:///{tmp_path}/s.db"})
    store = open_store(settings.store.url)
    t0 = 1_795_132_800_000  # 2026-11-20T00:00:00Z
    store.create_shipment(
        Shipment(
            id="S-1", product="vaccine-2-8", loggers=("LG-1",), status=ShipmentStatus.IN_TRANSIT
        )
    )
    p = Pipeline(store, settings.load_profiles(), settings, clock=FakeClock(t0 + 2 * 3_600_000))
    raised = []
    for i, temp in enumerate([5, 5, 12, 15, 9, 5]):
        body = {"ts": (t0 + i * 900_000) / 1000, "temp_c": temp}
        raised += p.handle(
            [("coldchain/v1/loggers/LG-1/telemetry", orjson.dumps(body), t0 + i * 900_000)]
        )
    (alert,) = [a for a in raised if a.type == "excursion"]
    assert (alert.value_c, alert.peak_c) == (12.0, 15.0)
    store.close()


# -- 4. a file that is not text ------------------------------------------------------------------


def test_import_pdf_says_to_import_the_txt(cli):
    cli("shipment", "create", "S-1", "--product", "vaccine-2-8", "--logger", "RCPJ00010")
    out = cli.fails("import", str(QTAG_PDF), "--shipment", "S-1")
    assert f"{QTAG_PDF}: a PDF read-out; import the device's .txt export instead" in out
    assert "codec" not in out
    assert len(out.strip().splitlines()) == 1


def test_import_undecodable_file_names_file_and_offset(cli):
    cli("shipment", "create", "S-1", "--product", "vaccine-2-8", "--logger", "LG-1")
    bad = cli.tmp / "latin1.csv"
    bad.write_bytes(b"ts,temp_c\n2026-11-20T00:00:00Z,5\xb0\n")
    out = cli.fails("import", str(bad), "--shipment", "S-1")
    assert f"{bad}: not UTF-8 text: byte 0xb0 at offset 32" in out
    assert "codec" not in out


# -- 5. dead letters name the file and line ------------------------------------------------------


def test_import_rejected_row_dead_letter_names_file_and_line(cli):
    cli("shipment", "create", "S-1", "--product", "vaccine-2-8", "--logger", "LG-1")
    csv = cli.csv("readings.csv", ["2026-11-20T00:00:00Z,5.0", "2026-11-20T00:15:00Z,500"])
    assert "1 rejected to dead letters" in cli("import", str(csv), "--shipment", "S-1")
    (letter,) = cli.json("dead-letters", "list")
    assert letter["topic"] == "import:readings.csv"
    assert letter["reason"].startswith("line 3: ")
    assert "temp_c" in letter["reason"]
    assert letter["logger_id"] == "LG-1"


def test_import_into_a_closed_shipment_is_refused_and_changes_nothing(cli: Cli) -> None:
    cli("shipment", "create", "S-C", "--product", "vaccine-2-8", "--logger", "LG-1")
    cli("import", str(cli.csv("a.csv", ["2026-11-26T00:00:00Z,5", "2026-11-26T00:10:00Z,5"])),
        "--shipment", "S-C")  # fmt: skip
    cli("shipment", "close", "S-C", "--end", "2026-11-26T01:00:00Z")
    before = cli.json("evaluate", "S-C")
    out = cli.fails(
        "import", str(QTAG), "--shipment", "S-C", "--logger", "RCPJ00010",
        "--profile", "from-device", "--replace-profile",
    )  # fmt: skip
    assert "S-C is closed" in " ".join(out.split())
    after = cli.json("evaluate", "S-C")
    assert isinstance(before, dict)
    assert isinstance(after, dict)
    for key in ("verdict", "readings", "profile"):
        assert after[key] == before[key]
    shown = cli.json("shipment", "show", "S-C")
    assert isinstance(shown, dict)
    assert shown["loggers"] == ["LG-1"]


def test_import_delivered_run_again_is_a_no_op_not_an_error(cli: Cli) -> None:
    # what an interrupted import tells the user to do: run the same command again
    cli("shipment", "create", "S-D", "--product", "vaccine-2-8", "--logger", "RCPJ00010")
    cli("import", str(QTAG), "--shipment", "S-D", "--delivered")
    again = " ".join(cli("import", str(QTAG), "--shipment", "S-D", "--delivered").split())
    assert "imported 0 new readings" in again
    assert "124 duplicates" in again
    assert "delivered at" not in again  # nothing changed the second time
