"""The pure rules of alerting (docs/ALERTS.md): routing, escalation, back-off, rate limits,
signatures, lifecycle and what a notification says. No I/O."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import orjson
import pytest

from coldchain.alerts import Alert, alarm_alert
from coldchain.errors import AlertError, ConfigError
from coldchain.evaluation import Firing
from coldchain.lifecycle import AlertStatus, acknowledge, clear, escalate, resolve
from coldchain.models import Shipment, ShipmentStatus
from coldchain.notify import (
    Notice,
    build_notice,
    render_html,
    render_payload,
    render_subject,
    render_text,
    sign,
    verify_signature,
)
from coldchain.outbox import (
    Delivery,
    after_attempt,
    backoff_ms,
    delivery_id,
    due_digests,
    is_rate_limited,
)
from coldchain.profiles import SHIPPED_PRODUCTS_DIR, load_profiles
from coldchain.routing import (
    SHIPPED_ALERT_ROUTES,
    AlertRouting,
    RateLimit,
    RetryPolicy,
    due_escalations,
    load_routing,
    parse_routing,
    routes_for,
    targets,
)

T0 = 1_764_126_000_000
M = 60_000
PROFILES = load_profiles(SHIPPED_PRODUCTS_DIR)
ENV = {"HOOK_SECRET": "s3cret", "SMTP_PASSWORD": "pw"}

CHANNELS: dict[str, Any] = {
    "log": {"type": "log"},
    "mqtt": {"type": "mqtt"},
    "hook": {"type": "webhook", "url": "https://ops.example.com/h", "secret_env": "HOOK_SECRET"},
    "mail": {
        "type": "email",
        "host": "smtp.example.com",
        "sender": "cc@example.com",
        "to": ["duty@example.com"],
    },
}


def routing(routes: list[dict[str, Any]], **extra: Any) -> AlertRouting:
    return parse_routing(
        {"channels": CHANNELS, "routes": routes, **extra}, source="alerts.toml", environ=ENV
    )


def shipment(**kw: Any) -> Shipment:
    base: dict[str, Any] = {
        "id": "S-1",
        "product": "cart-ln2",
        "loggers": ("LG-1",),
        "lot": "L-7",
        "origin": "SG",
        "destination": "ID",
        "status": ShipmentStatus.IN_TRANSIT,
        "extra": {"consignee": "RS Harapan Kita"},
    }
    return Shipment(**{**base, **kw})


def alert(**kw: Any) -> Alert:
    base: dict[str, Any] = {
        "id": "AL-1",
        "shipment_id": "S-1",
        "logger_id": "LG-1",
        "type": "excursion",
        "severity": "critical",
        "rule": "warm-critical",
        "triggered_ms": T0,
        "detected_ms": T0 + 1000,
        "value_c": -140.2,
        "limit_c": -150.0,
        "message": "Shipment S-1 is warm.",
    }
    return Alert(**{**base, **kw})


# -- routing file -----------------------------------------------------------------------


def test_load_routing_shipped_file_is_valid():
    r = load_routing(SHIPPED_ALERT_ROUTES, environ={}, products=PROFILES.profiles.keys())
    assert set(r.channels) == {"log", "mqtt"}
    everything = routes_for(r, alert(severity="info", type="battery_low"), None)
    assert [t.channel for t in targets(r, everything, "raised")] == ["log", "mqtt"]


def _mutate(doc: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    for key in keys[:-1]:
        doc = doc[int(key)] if isinstance(doc, list) else doc[key]  # type: ignore[assignment]
    if value is _DELETE:
        del doc[keys[-1]]
    else:
        doc[keys[-1]] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field", "reason"),
    [
        ("routes.0.channels", ["nope"], "routes[0].channels[0]", "unknown channel 'nope'"),
        ("routes.0.escalate_to", "ghost", "routes[0].escalate_to", "unknown route 'ghost'"),
        ("routes.0.escalate_after_min", _DELETE, "routes[0]", "set both escalate_to and"),
        ("routes.0.match", {"severity": ["urgent"]}, "routes[0].match.severity[0]", "'info'"),
        ("routes.0.match", {"product": ["ghee"]}, "routes[0].match.product[0]", "unknown product"),
        ("routes.0.match", {"origin": ["sg"]}, "routes[0].match.origin[0]", "pattern"),
        ("routes.1.escalate_to", "first", "routes[0].escalate_to", "escalation loops"),
        ("routes.1.escalation_only", True, "routes[1].escalation_only", "no route escalates"),
        ("channels.hook.url", "ftp://x", "channels.hook", "must be http:// or https://"),
        ("channels.hook.secret_env", "UNSET_VAR", "channels.hook.secret_env", "is not set"),
        ("channels.mail.to", [], "channels.mail.to", "at least 1 item"),
        ("channels.log.type", "pager", "channels.log", "does not match any of the expected"),
        ("channels.mqtt.topic", "alerts/#", "channels.mqtt", "{shipment_id}"),
        ("channels.log.colour", "red", "channels.log.colour", "Extra inputs are not permitted"),
    ],
)
def test_parse_routing_refuses_with_file_field_and_reason(path, value, field, reason):
    doc: dict[str, Any] = {
        "channels": {k: dict(v) for k, v in CHANNELS.items()},
        "routes": [
            {
                "id": "first",
                "channels": ["log"],
                "escalate_after_min": 15,
                "escalate_to": "second",
            },
            {
                "id": "second",
                "channels": ["mail"],
                "escalation_only": True,
                "escalate_after_min": 15,
            },
        ],
    }
    doc["routes"][1]["escalate_to"] = "first" if path == "routes.1.escalate_to" else None
    if doc["routes"][1]["escalate_to"] is None:
        del doc["routes"][1]["escalate_to"], doc["routes"][1]["escalate_after_min"]
    if path == "routes.1.escalation_only":
        doc["routes"][0].pop("escalate_to")
        doc["routes"][0].pop("escalate_after_min")
    _mutate(doc, path, value)
    with pytest.raises(ConfigError) as info:
        parse_routing(doc, source="alerts.toml", environ=ENV, products=PROFILES.profiles.keys())
    assert info.value.file == "alerts.toml"
    assert info.value.field == field
    assert reason in str(info.value)


def test_load_routing_names_the_file_when_toml_is_broken(tmp_path: Path):
    bad = tmp_path / "alerts.toml"
    bad.write_text("[[routes]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"alerts.toml: not valid TOML"):
        load_routing(bad, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_routing(tmp_path / "missing.toml", environ={})


# -- matching -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("match", "alert_kw", "shipment_kw", "matched"),
    [
        ({}, {}, {}, True),
        ({"severity": ["critical"]}, {"severity": "warning"}, {}, False),
        ({"severity": ["warning", "critical"]}, {}, {}, True),
        ({"type": ["battery_low"]}, {}, {}, False),
        ({"type": ["excursion", "cumulative"]}, {}, {}, True),
        ({"product": ["cart-ln2"]}, {}, {}, True),
        ({"product": ["vaccine-2-8"]}, {}, {}, False),
        ({"origin": ["SG"], "destination": ["ID"]}, {}, {}, True),
        ({"destination": ["VN"]}, {}, {}, False),
        ({"destination": ["VN"]}, {}, {"destination": "VN"}, True),
        ({"consignee": ["RS Harapan Kita"]}, {}, {}, True),
        ({"consignee": ["Other hospital"]}, {}, {}, False),
        ({"consignee": ["RS Harapan Kita"]}, {}, {"extra": {}}, False),
        ({"severity": ["critical"], "product": ["cart-ln2"], "origin": ["JP"]}, {}, {}, False),
    ],
)
def test_routes_for_matches_every_field_that_is_set(match, alert_kw, shipment_kw, matched):
    r = routing([{"id": "r", "match": match, "channels": ["hook"]}])
    got = routes_for(r, alert(**alert_kw), shipment(**shipment_kw))
    assert [x.id for x in got] == (["r"] if matched else [])


def test_targets_give_each_channel_once_and_respect_its_events():
    r = routing(
        [
            {"id": "all", "channels": ["log", "mqtt"]},
            {"id": "crit", "match": {"severity": ["critical"]}, "channels": ["mqtt", "hook"]},
        ]
    )
    routes = routes_for(r, alert(), shipment())
    assert [(t.channel, t.route) for t in targets(r, routes, "raised")] == [
        ("log", "all"),
        ("mqtt", "all"),
        ("hook", "crit"),
    ]
    # by default only MQTT hears of acknowledgements
    assert [t.channel for t in targets(r, routes, "acknowledged")] == ["mqtt"]


# -- escalation ---------------------------------------------------------------------------


CHAIN = [
    {"id": "first", "channels": ["hook"], "escalate_after_min": 15, "escalate_to": "duty"},
    {
        "id": "duty",
        "escalation_only": True,
        "channels": ["mail"],
        "escalate_after_min": 30,
        "escalate_to": "head",
    },
    {"id": "head", "escalation_only": True, "channels": ["mail", "log"]},
]
DETECTED = T0 + 1000


@pytest.mark.parametrize(
    ("state", "severity", "escalated", "now", "expected"),
    [
        ("open", "critical", {}, DETECTED + 15 * M - 1, []),
        ("open", "critical", {}, DETECTED + 15 * M, [("duty", 1)]),
        ("open", "critical", {}, DETECTED + 120 * M, [("duty", 1)]),  # one level per check
        ("open", "critical", {"duty": DETECTED + 20 * M}, DETECTED + 49 * M, []),
        ("open", "critical", {"duty": DETECTED + 20 * M}, DETECTED + 50 * M, [("head", 2)]),
        ("open", "critical", {"duty": 1, "head": 2}, DETECTED + 999 * M, []),
        ("acknowledged", "critical", {}, DETECTED + 60 * M, []),
        ("resolved", "critical", {}, DETECTED + 60 * M, []),
        ("open", "warning", {}, DETECTED + 60 * M, []),
    ],
)
def test_due_escalations_follow_the_chain_one_step_at_a_time(
    state, severity, escalated, now, expected
):
    r = routing(CHAIN)
    steps = due_escalations(
        r,
        alert(severity=severity, detected_ms=DETECTED),
        shipment(),
        state=state,
        escalated=escalated,
        now_ms=now,
    )
    assert [(s.route.id, s.level) for s in steps] == expected


def test_due_escalations_of_warnings_when_configured():
    r = routing(CHAIN, escalate_severities=["warning", "critical"])
    steps = due_escalations(
        r, alert(severity="warning"), None, state="open", escalated={}, now_ms=DETECTED + 15 * M
    )
    assert [s.route.id for s in steps] == ["duty"]


# -- delivery rules --------------------------------------------------------------------------


def test_backoff_ms_doubles_to_the_cap_with_bounded_reproducible_jitter():
    policy = RetryPolicy(initial_s=1, max_s=60, jitter=0.2)
    for attempt, base_s in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (40, 60), (500, 60)]:
        for key in ("DL-a", "DL-b", "DL-c"):
            wait = backoff_ms(policy, attempt=attempt, key=key)
            assert 0.8 * base_s * 1000 <= wait <= 1.2 * base_s * 1000
            assert wait == backoff_ms(policy, attempt=attempt, key=key)
    spread = {backoff_ms(policy, attempt=3, key=f"DL-{i}") for i in range(20)}
    assert len(spread) > 10  # deliveries failing together do not retry together
    exact = RetryPolicy(initial_s=2, max_s=8, jitter=0)
    assert [backoff_ms(exact, attempt=n, key="k") for n in (1, 2, 3, 4)] == [2000, 4000, 8000, 8000]


def _delivery(**kw: Any) -> Delivery:
    notice = build_notice(alert(), event="raised", shipment=None, profile=None)
    base: dict[str, Any] = {
        "id": "DL-1",
        "alert_id": "AL-1",
        "shipment_id": "S-1",
        "channel": "hook",
        "route": "r",
        "event": "raised",
        "notice": notice,
        "created_ms": T0,
        "next_attempt_ms": T0,
    }
    return Delivery(**{**base, **kw})


@pytest.mark.parametrize(
    ("ok", "permanent", "refusals", "status"),
    [
        (True, False, 0, "delivered"),
        (False, False, 0, "pending"),
        (False, False, 99, "pending"),  # a receiver that is down never makes it fail
        (False, True, 0, "pending"),
        (False, True, 1, "failed"),  # give_up_after = 2 below
    ],
)
def test_after_attempt_delivers_retries_or_gives_up_only_on_refusals(
    ok, permanent, refusals, status
):
    policy = RetryPolicy(initial_s=1, max_s=10, jitter=0, give_up_after=2)
    outcome = after_attempt(
        _delivery(attempts=3, refusals=refusals), policy, ok=ok, permanent=permanent, now_ms=T0
    )
    assert outcome.status == status
    if status == "pending":
        assert outcome.next_attempt_ms == T0 + 8000  # 4th attempt: 1 s · 2³
        assert outcome.refused == permanent


@pytest.mark.parametrize(
    ("limit", "event", "severity", "sent", "held"),
    [
        (None, "raised", "warning", 100, False),
        (RateLimit(max=2, window_min=60), "raised", "warning", 1, False),
        (RateLimit(max=2, window_min=60), "raised", "warning", 2, True),
        (RateLimit(max=2, window_min=60), "escalated", "warning", 2, True),
        (RateLimit(max=2, window_min=60), "acknowledged", "warning", 9, False),
        (RateLimit(max=2, window_min=60), "raised", "critical", 9, False),
        (RateLimit(max=2, window_min=60, include_critical=True), "raised", "critical", 2, True),
    ],
)
def test_is_rate_limited_holds_only_beyond_the_limit(limit, event, severity, sent, held):
    assert is_rate_limited(limit, event=event, severity=severity, sent_in_window=sent) is held


def test_due_digests_group_by_shipment_and_channel_when_the_window_ends():
    held = [
        _delivery(id="DL-a", created_ms=T0, status="held"),
        _delivery(id="DL-b", created_ms=T0 + 5 * M, status="held"),
        _delivery(id="DL-c", created_ms=T0 + 1 * M, status="held", shipment_id="S-2"),
        _delivery(id="DL-d", created_ms=T0, status="delivered"),
    ]
    windows = {"hook": 60 * M}
    assert due_digests(held, windows_ms=windows, now_ms=T0 + 60 * M - 1) == []
    plans = due_digests(held, windows_ms=windows, now_ms=T0 + 60 * M)
    assert [(p.shipment_id, [d.id for d in p.held]) for p in plans] == [("S-1", ["DL-a", "DL-b"])]


def test_delivery_id_is_stable_per_alert_event_and_channel():
    assert delivery_id("AL-1", "raised", "hook") == delivery_id("AL-1", "raised", "hook")
    ids = {delivery_id(a, e, c) for a in ("AL-1", "AL-2") for e in ("raised", "x") for c in "ab"}
    assert len(ids) == 8


# -- signatures --------------------------------------------------------------------------------


def test_sign_is_hmac_sha256_of_timestamp_dot_body():
    # what a receiver computes from the documented recipe
    expected = hmac.new(b"key", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert sign("key", timestamp_s=1_700_000_000, body=b'{"a":1}') == f"sha256={expected}"


NOW_S = 1_700_000_000


@pytest.mark.parametrize(
    ("secret", "body", "ts", "now", "reason"),
    [
        ("k", b"{}", NOW_S, NOW_S, None),
        ("k", b"{}", NOW_S, NOW_S + 299, None),
        ("k", b"{}", NOW_S, NOW_S + 301, "a replay?"),
        ("k", b"{}", NOW_S, NOW_S - 301, "a replay?"),
        ("other", b"{}", NOW_S, NOW_S, "does not match"),
        ("k", b'{"x":1}', NOW_S, NOW_S, "does not match"),
    ],
)
def test_verify_signature_refuses_forged_tampered_and_replayed_requests(
    secret, body, ts, now, reason
):
    signature = sign("k", timestamp_s=ts, body=b"{}")
    got = verify_signature(secret, body=body, timestamp=str(ts), signature=signature, now_s=now)
    assert got == reason or (reason is not None and got is not None and reason in got)


def test_verify_signature_refuses_missing_headers():
    assert verify_signature("k", body=b"", timestamp=None, signature="x", now_s=0) is not None
    assert "Unix seconds" in (
        verify_signature("k", body=b"", timestamp="yesterday", signature="x", now_s=0) or ""
    )


# -- lifecycle ------------------------------------------------------------------------------


def test_acknowledge_records_who_when_and_comment_once():
    status = acknowledge(AlertStatus(), alert_id="AL-1", by=" J. Tan ", comment="on it", now_ms=T0)
    assert status.state == "acknowledged"
    assert status.acknowledgement is not None
    assert (status.acknowledgement.by, status.acknowledgement.at_ms) == ("J. Tan", T0)
    with pytest.raises(AlertError, match=r"already acknowledged by J\. Tan"):
        acknowledge(status, alert_id="AL-1", by="Other", comment="", now_ms=T0 + 1)
    with pytest.raises(AlertError, match="--by NAME must not be empty"):
        acknowledge(AlertStatus(), alert_id="AL-1", by="  ", comment="", now_ms=T0)


def test_resolve_needs_a_comment_and_happens_once():
    with pytest.raises(AlertError, match="needs a comment"):
        resolve(AlertStatus(), alert_id="AL-1", by="QA", comment=" ", now_ms=T0)
    done = resolve(AlertStatus(), alert_id="AL-1", by="QA", comment="false alarm", now_ms=T0)
    assert done.state == "resolved"
    assert done.resolution is not None
    assert done.resolution.reason == "closed"
    with pytest.raises(AlertError, match="already resolved"):
        resolve(done, alert_id="AL-1", by="QA", comment="again", now_ms=T0)
    with pytest.raises(AlertError, match="nothing to acknowledge"):
        acknowledge(done, alert_id="AL-1", by="QA", comment="", now_ms=T0)


@pytest.mark.parametrize(
    ("state", "severity", "after"),
    [
        ("open", "warning", "resolved"),
        ("open", "info", "resolved"),
        ("open", "critical", "open"),  # a critical finding waits for a person
        ("acknowledged", "critical", "resolved"),
    ],
)
def test_clear_resolves_unless_an_unacknowledged_critical(state, severity, after):
    status = AlertStatus()
    if state == "acknowledged":
        status = acknowledge(status, alert_id="A", by="x", comment="", now_ms=T0)
    cleared = clear(status, severity=severity, now_ms=T0 + M)
    assert cleared.state == after
    assert cleared.cleared_ms == T0 + M
    if after == "resolved":
        assert cleared.resolution is not None
        assert cleared.resolution.reason == "cleared"


def test_acknowledging_a_cleared_critical_alert_resolves_it():
    cleared = clear(AlertStatus(), severity="critical", now_ms=T0)
    acked = acknowledge(cleared, alert_id="A", by="J. Tan", comment="seen", now_ms=T0 + M)
    assert acked.state == "resolved"
    assert acked.acknowledgement is not None
    assert acked.resolution is not None
    assert acked.resolution.reason == "cleared"


def test_escalate_only_open_alerts_once_per_route():
    status = escalate(AlertStatus(), alert_id="A", route="duty", level=1, now_ms=T0)
    assert status.level == 1
    with pytest.raises(AlertError, match="already escalated"):
        escalate(status, alert_id="A", route="duty", level=1, now_ms=T0)
    acked = acknowledge(status, alert_id="A", by="x", comment="", now_ms=T0)
    with pytest.raises(AlertError, match="only an unacknowledged alert"):
        escalate(acked, alert_id="A", route="head", level=2, now_ms=T0)
    assert AlertStatus.from_doc(acked.to_doc()) == acked


# -- what a notification says ----------------------------------------------------------------


def _excursion_notice(**kw: Any) -> Notice:
    profile = PROFILES.get("cart-ln2")
    firing = Firing("warm-early", T0 + 15 * M, T0)
    a = alarm_alert(
        firing, shipment=shipment(), profile=profile, value_c=-141.5, detected_ms=T0 + 16 * M
    )
    return build_notice(
        a,
        event="raised",
        shipment=shipment(),
        profile=profile,
        api_base_url="https://cc.example.com/",
        **kw,
    )


def test_alarm_alert_message_is_one_sentence_naming_what_spec_asks():
    notice = _excursion_notice()
    message = str(notice.alert["message"])
    assert message.count(". ") == 0  # one sentence
    assert message.endswith(".")
    for part in ("S-1", "CAR-T", "-141.5 °C", "-160 °C", "15 min", "SG→ID"):
        assert part in message


def test_render_text_reads_well_on_a_phone():
    text = render_text(_excursion_notice())
    lines = text.splitlines()
    assert lines[0] == "WARNING excursion: shipment S-1 above -160 °C"
    for fact in (
        "Shipment:  S-1",
        "Product:   Autologous CAR-T cell suspension, cryopreserved (cart-ln2)",
        "Lot:       L-7",
        "Value:     -141.5 °C",
        "Limit:     above -160 °C",
        "Duration:  more than 15 min, since 2025-11-26 03:00 UTC",
        "Lane:      SG → ID",
        "Consignee: RS Harapan Kita",
        "Open: https://cc.example.com/api/v1/alerts/",
        "What to do: Ask the courier to check the packaging",
        "coldchain alerts ack AL-",
    ):
        assert any(fact in line for line in lines), fact
    labels = {"Shipment", "Product", "Lot", "Value", "Limit", "Duration", "Lane", "Consignee"}
    facts = [line for line in lines if line.split(":")[0] in labels]
    assert len(facts) == len(labels)
    assert all(len(line) <= 80 for line in facts)  # one fact a line, no wrapping
    assert "\n\n\n" not in text


def test_render_html_escapes_and_carries_the_same_facts():
    notice = _excursion_notice(action="Call <Desk> & re-ice")
    page = render_html(notice)
    assert "Call &lt;Desk&gt; &amp; re-ice" in page
    assert "<Desk>" not in page
    for fact in ("S-1", "-141.5 °C", "above -160 °C", "SG → ID", "https://cc.example.com/"):
        assert fact in page


def test_render_payload_is_the_spec_alert_plus_context():
    notice = _excursion_notice()
    doc = orjson.loads(render_payload(notice, delivery_id="DL-1"))
    for field in (
        "id",
        "shipment_id",
        "logger_id",
        "type",
        "severity",
        "rule",
        "triggered_at",
        "detected_at",
        "value_c",
        "limit_c",
        "message",
        "state",
        "supersedes",
    ):
        assert field in doc, field
    assert (doc["event"], doc["delivery_id"], doc["lane"]) == ("raised", "DL-1", "SG → ID")
    assert doc["link"].startswith("https://cc.example.com/api/v1/alerts/AL-")
    assert Notice.from_doc(notice.to_doc()) == notice


def test_render_subject_marks_escalations():
    notice = build_notice(
        alert(),
        event="escalated",
        shipment=shipment(),
        profile=PROFILES.get("cart-ln2"),
        detail={"route": "duty", "level": 1, "unacknowledged_min": 15.0},
    )
    assert render_subject(notice, prefix="[cc]").startswith("[cc] ESCALATED, unacknowledged")
    assert "Not acknowledged for 15 min: escalated to duty (level 1)." in render_text(notice)
