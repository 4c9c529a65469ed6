"""`coldchain demo` end to end: embedded broker, pipeline, simulated fleet, summary."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from coldchain.cli import app


@pytest.mark.slow
def test_demo_runs_to_the_summary_and_exits_zero(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("COLDCHAIN_BROKER", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["demo", "--duration", "12", "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "ln2-warming-failure" in result.output
    assert "evaluations written to" in result.output
    evaluations = sorted((tmp_path / "evaluations").glob("*.json"))
    assert len(evaluations) == 10
    verdicts = [orjson.loads(p.read_bytes())["verdict"] for p in evaluations]
    assert verdicts.count("FAIL") == 2
    assert verdicts.count("PASS") == 8
