"""`coldchain demo` end to end: embedded broker, pipeline, simulated fleet, summary."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from coldchain.cli import app
from coldchain.config import load_settings
from coldchain.demo import FLEET_DAYS_BACK, demo_settings, register_fleet
from coldchain.models import dt_to_ms, ms_to_dt
from coldchain.pipeline import Pipeline
from coldchain.simulation.fleet import build_fleet
from coldchain.store import Store, open_store
from coldchain.testing import FakeClock

DAY_MS = 86_400_000


def _alerts(store: Store) -> Counter[tuple[str, str, str]]:
    return Counter((a.type, a.shipment_id, a.rule) for a in store.list_alerts())


def replayed_alerts(workdir: Path, *, shipments: int, seed: int, start_ms: int) -> Counter:
    """The demo's alerts as a pure function of the seed: the fleet's messages through the
    pipeline in one batch, on a fake clock, then every shipment delivered (as the demo does)."""
    settings = demo_settings(load_settings(environ={}), workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.store.url)
    fleet = build_fleet(
        shipments=shipments, start=ms_to_dt(start_ms), seed=seed,
        prefix=settings.broker.topic_prefix,
    )  # fmt: skip
    now = start_ms + FLEET_DAYS_BACK * DAY_MS
    register_fleet(store, fleet, created_ms=now)
    pipeline = Pipeline(store, settings.load_profiles(), settings, clock=FakeClock(now))
    pipeline.handle([(m.topic, m.payload, now) for m in fleet.messages])
    for plan in fleet.plans:
        pipeline.deliver(plan.shipment_id, end_ms=dt_to_ms(plan.end))
    try:
        return _alerts(store)
    finally:
        store.close()


@pytest.mark.slow
def test_demo_runs_to_the_summary_with_the_seeds_alerts_and_writes_only_its_folder(
    tmp_path: Path, monkeypatch
):
    monkeypatch.delenv("COLDCHAIN_BROKER", raising=False)
    monkeypatch.delenv("COLDCHAIN_CONFIG", raising=False)
    cwd, workdir = tmp_path / "cwd", tmp_path / "demo"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(app, ["demo", "--duration", "12", "--workdir", str(workdir)])
    assert result.exit_code == 0, result.output
    assert "ln2-warming-failure" in result.output
    assert "evaluations written to" in result.output
    evaluations = sorted((workdir / "evaluations").glob("*.json"))
    assert len(evaluations) == 10
    verdicts = [orjson.loads(p.read_bytes())["verdict"] for p in evaluations]
    assert verdicts.count("FAIL") == 2
    assert verdicts.count("PASS") == 8
    # every file under the demo folder: the signing key too, nothing in the working directory
    assert list(cwd.iterdir()) == []
    assert (workdir / "keys" / "dossier-ed25519.pem").is_file()
    assert len(list((workdir / "dossiers").glob("*.zip"))) == 10
    # same seed, same alerts: those of a replay without MQTT, timing or wall clock
    store = open_store(f"sqlite:///{workdir / 'coldchain-demo.db'}")
    try:
        seen = _alerts(store)
        messages = [a.message for a in store.list_alerts()]
        start_ms = min(s.start_ms or 0 for s in store.list_shipments())
    finally:
        store.close()
    expected = replayed_alerts(tmp_path / "replay", shipments=10, seed=7, start_ms=start_ms)
    assert seen == expected
    assert sum(expected.values()) >= 7  # the LN2 failure and the door spikes at least
    assert not [m for m in messages if " 0 min" in m]
