"""Careless files and impatient users meet `coldchain import`: one line naming the file and
line, no traceback; an interrupted import says what it stored. Real CLI, real SQLite store."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from coldchain.cli import app

COLDCHAIN = str(Path(sys.executable).parent / "coldchain")


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("COLDCHAIN_STORE", f"sqlite:///{tmp_path}/cc.db")
    monkeypatch.delenv("COLDCHAIN_CONFIG", raising=False)
    monkeypatch.delenv("COLDCHAIN_PRODUCTS", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return result.output

    invoke("shipment", "create", "S-1", "--product", "vaccine-2-8", "--logger", "LG-1")
    return invoke


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("2026-11-26T03:00:00Z,5" + "x" * 200_000, "x.csv:2: not a CSV row: field larger"),
        ("1e30,5", "x.csv:2: ts: '1e30' is outside the years 1 to 9999"),
        ("253402300800,5", "x.csv:2: ts: '253402300800' is outside the years 1 to 9999"),
    ],
    ids=["huge-field", "epoch-overflow", "epoch-year-10000"],
)
def test_import_unreadable_row_is_one_line_naming_file_and_line(run, tmp_path, row, reason):
    (tmp_path / "x.csv").write_text(f"ts,temp_c\n{row}\n2026-11-26T03:10:00Z,5\n")
    out = run("import", "x.csv", "--shipment", "S-1", code=2)
    assert reason in out
    assert "readings 0" in run("evaluate", "S-1") or "no readings" in run("evaluate", "S-1")


@pytest.mark.parametrize("value", ["NaN", "inf", "-Infinity"])
def test_import_non_finite_value_is_dead_lettered_naming_the_value(run, tmp_path, value):
    (tmp_path / "x.csv").write_text(f"ts,temp_c\n2026-11-26T03:00:00Z,{value}\n")
    run("import", "x.csv", "--shipment", "S-1")
    letters = orjson.loads(run("dead-letters", "list", "--json"))
    assert len(letters) == 1
    assert letters[0]["reason"].startswith("line 2: ")
    assert f"got '{float(value)}'" in letters[0]["reason"]
    assert "None" not in letters[0]["reason"]


def _stored(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return int(con.execute("SELECT count(*) FROM readings").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_import_interrupted_says_what_it_stored_and_a_rerun_finishes(run, tmp_path):
    rows = "\n".join(f"{1_764_126_000 + 60 * i},5.0" for i in range(300_000))
    (tmp_path / "big.csv").write_text(f"ts,temp_c\n{rows}\n")
    env = {k: v for k, v in os.environ.items() if k != "COLDCHAIN_CONFIG"}
    proc = subprocess.Popen(
        [COLDCHAIN, "import", "big.csv", "--shipment", "S-1"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while _stored(tmp_path / "cc.db") == 0:  # Ctrl-C once the first pack is committed
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no reading was ever stored"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, errs = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + errs
    assert "Traceback" not in errs
    stored = _stored(tmp_path / "cc.db")
    assert 0 < stored < 300_000
    assert f"interrupted: {stored} of the file's 300000 readings are stored" in " ".join(
        errs.split()
    )
    again = run("import", "big.csv", "--shipment", "S-1")
    assert f"imported {300_000 - stored} new readings" in " ".join(again.split())
    assert _stored(tmp_path / "cc.db") == 300_000
