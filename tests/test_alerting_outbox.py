"""The outbox, lifecycle and escalation through the real store and pipeline (docs/ALERTS.md).

Channels are :class:`coldchain.testing.MemoryChannel` (the network adapters
have their own tests with real receivers); time is a :class:`FakeClock`.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from coldchain.alerting import Alerting
from coldchain.cli import app
from coldchain.config import Settings, load_settings
from coldchain.dispatcher import Dispatcher
from coldchain.errors import ConfigError
from coldchain.models import Shipment, ShipmentStatus
from coldchain.pipeline import Pipeline
from coldchain.routing import SHIPPED_ALERT_ROUTES, AlertRouting, parse_routing
from coldchain.store import Store, open_store
from coldchain.testing import FakeClock, MemoryChannel

T0 = 1_764_126_000_000  # 2025-11-26T03:00:00Z, device time of the first reading
M = 60_000
NOW = T0 + 60 * M
TOPIC = "coldchain/v1/loggers/{}/telemetry"

PROBE_PROFILE = """
id = "probe"
name = "Test product, +2 to +8 °C"
max_gap_min = 15
mkt = false

[[alarms]]
id = "warm"
above_c = 8.0
delay_min = 0
severity = "warning"

[[alarms]]
id = "hot"
above_c = 20.0
delay_min = 0
severity = "critical"
"""


def routing(**ops: Any) -> AlertRouting:
    """ops (a log-type channel), feed (MQTT-type: hears every event), duty and head."""
    return parse_routing(
        {
            "channels": {
                "ops": {"type": "log", **ops},
                "feed": {"type": "mqtt"},
                "duty": {"type": "log"},
                "head": {"type": "log"},
            },
            "routes": [
                {
                    "id": "all",
                    "channels": ["ops", "feed"],
                    "escalate_after_min": 15,
                    "escalate_to": "duty",
                },
                {
                    "id": "duty",
                    "escalation_only": True,
                    "channels": ["duty"],
                    "escalate_after_min": 30,
                    "escalate_to": "head",
                },
                {"id": "head", "escalation_only": True, "channels": ["head"]},
            ],
        },
        source="test-alerts.toml",
        environ={},
    )


class Desk:
    """Store, clock, pipeline, alerting and a dispatcher over memory channels."""

    def __init__(self, tmp_path: Path, routes: AlertRouting) -> None:
        products = tmp_path / "products"
        products.mkdir(exist_ok=True)
        (products / "probe.toml").write_text(PROBE_PROFILE, encoding="utf-8")
        self.env = {
            "COLDCHAIN_STORE": f"sqlite:///{tmp_path}/alerts.db",
            "COLDCHAIN_PRODUCTS": str(products),
        }
        self.settings: Settings = load_settings(environ=self.env)
        self.store: Store = open_store(self.settings.store.url)
        self.clock = FakeClock(NOW)
        self.profiles = self.settings.load_profiles()
        self.routing = routes
        self.alerting = Alerting(self.store, self.profiles, routing=routes)
        self.channels = {name: MemoryChannel(name) for name in routes.channels}
        self.dispatcher = Dispatcher(self.store, self.channels, routes, clock=self.clock)
        self.store.create_shipment(
            Shipment(
                id="S-1",
                product="probe",
                loggers=("LG-1",),
                origin="SG",
                destination="ID",
                status=ShipmentStatus.IN_TRANSIT,
            )
        )
        self.pipeline = Pipeline(
            self.store, self.profiles, self.settings, clock=self.clock, alerting=self.alerting
        )
        self._seq = 0

    def readings(self, *temps: float, start_min: int = 0) -> list[str]:
        """Send readings 5 min apart from T0 + start_min; returns the new alerts' ids."""
        rows = []
        for i, temp in enumerate(temps):
            self._seq += 1
            rows.append(
                {"seq": self._seq, "ts": (T0 + (start_min + 5 * i) * M) / 1000, "temp_c": temp}
            )
        message = (TOPIC.format("LG-1"), orjson.dumps({"readings": rows}), self.clock.now_ms())
        return [a.id for a in self.pipeline.handle([message])]

    def deliveries(self, alert_id: str) -> dict[tuple[str, str], Any]:
        return {
            (d.channel, d.event): d
            for d in self.store.list_deliveries(alert_id=alert_id, history=True)
        }

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def desk(tmp_path: Path):
    d = Desk(tmp_path, routing())
    yield d
    d.close()


# -- the outbox ---------------------------------------------------------------------------


def test_pipeline_queues_an_alerts_deliveries_with_the_finding(desk: Desk):
    (alert_id,) = desk.readings(5.0, 9.0)
    deliveries = desk.deliveries(alert_id)
    assert set(deliveries) == {("ops", "raised"), ("feed", "raised")}
    assert {d.status for d in deliveries.values()} == {"pending"}
    assert {d.route for d in deliveries.values()} == {"all"}
    (raised,) = [e for e in desk.store.list_audit(entity_id=alert_id) if e.action == "alert_raised"]
    assert raised.detail["deliveries"] == {"ops": "pending", "feed": "pending"}


def test_outbox_rolls_back_with_the_finding(desk: Desk):
    (alert_id,) = desk.readings(5.0, 9.0)
    alert = desk.store.get_alert(alert_id)
    other = replace(alert, id="AL-other")

    def crash_before_commit() -> None:
        with desk.store.transaction():
            assert desk.store.upsert_alert(other)
            assert desk.alerting.raised(other, now_ms=NOW)
            raise RuntimeError("crash between finding and commit")

    with pytest.raises(RuntimeError):
        crash_before_commit()
    assert [a.id for a in desk.store.list_alerts()] == [alert_id]
    assert desk.store.list_deliveries(alert_id="AL-other") == []


def test_outbox_repeat_of_a_finding_counts_and_queues_nothing_new(desk: Desk):
    (alert_id,) = desk.readings(5.0, 9.0)
    alert = desk.store.get_alert(alert_id)
    # a second worker (or a restart) finding the same thing: same id, same delivery ids
    assert desk.store.upsert_alert(alert) is False
    assert desk.alerting.raised(alert, now_ms=NOW + M) == []
    assert desk.store.get_alert(alert_id).count == 2
    assert len(desk.store.list_deliveries(alert_id=alert_id)) == 2


def test_dispatcher_delivers_each_pending_delivery_once(desk: Desk):
    (alert_id,) = desk.readings(5.0, 9.0)
    done = desk.dispatcher.deliver_due()
    assert sorted(d.channel for d in done) == ["feed", "ops"]
    assert desk.dispatcher.deliver_due() == []
    assert [d.alert_id for d in desk.channels["ops"].sent] == [alert_id]
    for d in desk.deliveries(alert_id).values():
        assert (d.status, d.attempts, d.delivered_ms) == ("delivered", 1, NOW)
        assert [a.ok for a in d.history] == [True]


def test_dispatcher_retries_a_down_channel_with_backoff_and_never_loses(desk: Desk):
    (alert_id,) = desk.readings(5.0, 9.0)
    ops = desk.channels["ops"]
    ops.down = True
    desk.dispatcher.deliver_due()
    assert desk.channels["feed"].sent  # one channel down does not hold the others
    waits = []
    for _ in range(4):
        pending = desk.deliveries(alert_id)[("ops", "raised")]
        assert pending.status == "pending"
        waits.append(pending.next_attempt_ms - desk.clock.now_ms())
        desk.clock.set(pending.next_attempt_ms - 1)
        assert desk.dispatcher.deliver_due("ops") == []  # not yet due
        desk.clock.set(pending.next_attempt_ms)
        desk.dispatcher.deliver_due("ops")
    assert all(later > earlier for earlier, later in itertools.pairwise(waits))
    ops.down = False
    desk.clock.set(desk.deliveries(alert_id)[("ops", "raised")].next_attempt_ms)
    desk.dispatcher.deliver_due("ops")
    desk.clock.advance(3_600_000)
    desk.dispatcher.deliver_due("ops")
    delivered = desk.deliveries(alert_id)[("ops", "raised")]
    assert delivered.status == "delivered"
    assert [a.ok for a in delivered.history] == [False] * 5 + [True]
    assert "unreachable" in (delivered.history[0].error or "")
    assert len(ops.sent) == 1
    assert ops.attempts == 6


def test_dispatcher_fails_a_delivery_only_after_repeated_refusals(tmp_path: Path):
    d = Desk(tmp_path, routing(retry={"initial_s": 1, "give_up_after": 2}))
    try:
        (alert_id,) = d.readings(5.0, 9.0)
        d.channels["ops"].refuse = True
        d.dispatcher.deliver_due()
        d.clock.advance(10_000)
        d.dispatcher.deliver_due()
        d.clock.advance(3_600_000)
        assert d.dispatcher.deliver_due("ops") == []
        failed = d.deliveries(alert_id)[("ops", "raised")]
        assert (failed.status, failed.attempts, failed.refusals) == ("failed", 2, 2)
        audit = [e.action for e in d.store.list_audit(entity_id=alert_id)]
        assert "alert_delivery_failed" in audit
    finally:
        d.close()


# -- lifecycle ------------------------------------------------------------------------------


def test_acknowledge_records_who_when_comment_audits_and_tells_the_feed(desk: Desk):
    ids = desk.readings(5.0, 25.0)
    alert_id = next(i for i in ids if desk.store.get_alert(i).rule == "hot")
    desk.clock.advance(2 * M)
    status = desk.alerting.acknowledge(
        alert_id, by="J. Tan", comment="re-icing", now_ms=NOW + 2 * M
    )
    assert status.state == "acknowledged"
    assert desk.store.get_alert(alert_id).state == "acknowledged"
    (entry,) = [
        e for e in desk.store.list_audit(entity_id=alert_id) if e.action == "alert_acknowledged"
    ]
    assert (entry.actor, entry.detail["comment"]) == ("J. Tan", "re-icing")
    # "hot" and "warm" both fired; acknowledgement goes to the MQTT-type channel only
    assert ("feed", "acknowledged") in desk.deliveries(alert_id)
    assert ("ops", "acknowledged") not in desk.deliveries(alert_id)


def test_warning_excursion_resolves_when_the_temperature_is_back_in_range(desk: Desk):
    (alert_id,) = desk.readings(5.0, 9.0)
    assert desk.readings(7.0, start_min=10) == []
    status = desk.store.get_alert_status(alert_id)
    assert status.state == "resolved"
    assert status.resolution is not None
    assert (status.resolution.reason, status.resolution.by) == ("cleared", "pipeline")
    actions = [e.action for e in desk.store.list_audit(entity_id=alert_id)]
    assert actions == ["alert_raised", "alert_cleared", "alert_resolved"]
    assert ("feed", "resolved") in desk.deliveries(alert_id)


def test_critical_excursion_that_ended_stays_open_until_someone_acknowledges(desk: Desk):
    ids = desk.readings(5.0, 25.0)
    hot = next(i for i in ids if desk.store.get_alert(i).rule == "hot")
    desk.readings(5.0, start_min=10)
    status = desk.store.get_alert_status(hot)
    assert (status.state, status.cleared_ms) == ("open", NOW)
    acked = desk.alerting.acknowledge(hot, by="J. Tan", comment="seen", now_ms=NOW + M)
    assert acked.state == "resolved"


def test_excursion_still_out_of_range_is_not_resolved(desk: Desk):
    (alert_id,) = desk.readings(5.0, 9.0)
    desk.readings(9.5, 10.0, start_min=10)
    assert desk.store.get_alert_status(alert_id).state == "open"


# -- escalation -----------------------------------------------------------------------------


def test_unacknowledged_critical_alert_escalates_along_the_chain(desk: Desk):
    ids = desk.readings(5.0, 25.0)
    hot = next(i for i in ids if desk.store.get_alert(i).rule == "hot")
    desk.dispatcher.deliver_due()
    assert desk.alerting.escalate_due(now_ms=NOW + 15 * M - 1) == []
    (done,) = desk.alerting.escalate_due(now_ms=NOW + 15 * M)
    # to the duty route, and a reminder to the routes that already had it
    assert (done.alert_id, done.route, done.level, done.deliveries) == (hot, "duty", 1, 3)
    assert desk.alerting.escalate_due(now_ms=NOW + 16 * M) == []  # recorded: not twice
    desk.clock.set(NOW + 15 * M)
    desk.dispatcher.deliver_due()
    (sent,) = desk.channels["duty"].sent
    assert sent.event == "escalated"
    assert [d.event for d in desk.channels["ops"].sent if d.alert_id == hot] == [
        "raised",
        "escalated",
    ]
    assert sent.notice.detail == {"route": "duty", "level": 1, "unacknowledged_min": 15.0}
    (record,) = desk.alerting.records(alert_ids={hot})
    assert [(e["route"], e["level"]) for e in record["escalations"]] == [("duty", 1)]
    assert [e.action for e in desk.store.list_audit(entity_id=hot)].count("alert_escalated") == 1
    # the next level counts from the escalation, not from the alert
    assert desk.alerting.escalate_due(now_ms=NOW + 45 * M - 1) == []
    (second,) = desk.alerting.escalate_due(now_ms=NOW + 45 * M)
    assert (second.route, second.level) == ("head", 2)


def test_acknowledged_alert_does_not_escalate_and_warnings_never_do(desk: Desk):
    ids = desk.readings(5.0, 25.0)
    by_rule = {desk.store.get_alert(i).rule: i for i in ids}
    desk.alerting.acknowledge(by_rule["hot"], by="J. Tan", comment="", now_ms=NOW + M)
    assert desk.alerting.escalate_due(now_ms=NOW + 600 * M) == []  # "warm" is a warning


# -- rate limit and digest --------------------------------------------------------------------


def test_rate_limit_holds_the_excess_and_sends_one_digest_when_the_window_ends(tmp_path: Path):
    d = Desk(tmp_path, routing(rate_limit={"max": 1, "window_min": 60}))
    try:
        first = d.readings(5.0, 9.0)
        second = d.readings(5.0, 9.5, start_min=10)
        third = d.readings(5.0, 9.7, start_min=20)
        statuses = [d.deliveries(a[0])[("ops", "raised")].status for a in (first, second, third)]
        assert statuses == ["pending", "held", "held"]
        assert d.deliveries(second[0])[("feed", "raised")].status == "pending"  # no limit there
        d.dispatcher.deliver_due()
        assert d.alerting.release_digests(now_ms=NOW + 60 * M - 1) == 0
        assert d.alerting.release_digests(now_ms=NOW + 60 * M) == 1
        d.clock.set(NOW + 60 * M)
        d.dispatcher.deliver_due()
        digest = d.channels["ops"].sent[-1]
        assert digest.event == "digest"
        assert [x["id"] for x in digest.notice.detail] == [second[0], third[0]]  # type: ignore[union-attr]
        assert d.deliveries(second[0])[("ops", "raised")].status == "digested"
        assert len(d.channels["ops"].sent) == 2
    finally:
        d.close()


# -- the CLI ----------------------------------------------------------------------------------


def test_cli_alerts_list_ack_and_resolve(
    desk: Desk, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.chdir(tmp_path)
    (alert_id,) = desk.readings(5.0, 9.0)
    desk.dispatcher.deliver_due()
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, list(args), env=desk.env)

    listed = run("alerts", "list", "--json")
    assert listed.exit_code == 0, listed.output
    (doc,) = orjson.loads(listed.stdout)
    assert (doc["id"], doc["state"], doc["acknowledgement"]) == (alert_id, "open", None)
    assert {(x["channel"], x["status"]) for x in doc["deliveries"]} == {
        ("ops", "delivered"),
        ("feed", "delivered"),
    }
    assert doc["deliveries"][0]["history"][0]["ok"] is True

    acked = run("alerts", "ack", alert_id, "--by", "J. Tan", "--comment", "on it", "--json")
    assert acked.exit_code == 0, acked.output
    assert orjson.loads(acked.stdout)["acknowledgement"]["by"] == "J. Tan"
    again = run("alerts", "ack", alert_id, "--by", "Other")
    assert again.exit_code == 2
    assert "already acknowledged by J. Tan" in again.output

    no_comment = run("alerts", "resolve", alert_id, "--by", "QA", "--comment", " ")
    assert no_comment.exit_code == 2
    assert "needs a comment" in no_comment.output
    closed = run("alerts", "resolve", alert_id, "--by", "QA", "--comment", "product released")
    assert closed.exit_code == 0, closed.output

    shown = orjson.loads(run("alerts", "show", alert_id, "--json").stdout)
    assert shown["state"] == "resolved"
    assert shown["resolution"]["comment"] == "product released"
    actions = [e.action for e in desk.store.list_audit(entity_id=alert_id)]
    assert actions == ["alert_raised", "alert_acknowledged", "alert_resolved"]
    table = run("alerts", "list")
    assert "resolved" in table.output
    unknown = run("alerts", "ack", "AL-nope", "--by", "x")
    assert unknown.exit_code == 2
    assert "alert 'AL-nope' not found" in unknown.output


def test_settings_routes_path_is_relative_to_the_config_file(tmp_path: Path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "coldchain.toml").write_text(
        '[alerts]\nroutes = "my-alerts.toml"\napi_base_url = "https://cc.example.com"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as missing:  # validated at start (README.md, Configuration)
        load_settings(tmp_path / "etc" / "coldchain.toml", environ={})
    assert str(missing.value) == (
        f"{tmp_path / 'etc' / 'coldchain.toml'}: [alerts] routes: "
        f"alert routing file {tmp_path / 'etc' / 'my-alerts.toml'} does not exist"
    )
    (tmp_path / "etc" / "my-alerts.toml").write_bytes(SHIPPED_ALERT_ROUTES.read_bytes())
    settings = load_settings(tmp_path / "etc" / "coldchain.toml", environ={})
    assert settings.alerts.routes == tmp_path / "etc" / "my-alerts.toml"
    assert settings.load_routing().source == str(tmp_path / "etc" / "my-alerts.toml")
