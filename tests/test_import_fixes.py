"""`coldchain import` as a new user meets it: alerts report the crossing and the peak.
Real SQLite store in tmp_path, real CLI."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from coldchain.cli import app
from coldchain.config import load_settings
from coldchain.models import Shipment, ShipmentStatus
from coldchain.pipeline import Pipeline
from coldchain.store import open_store
from coldchain.testing import FakeClock


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
