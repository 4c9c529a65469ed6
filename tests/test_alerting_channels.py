"""Alert channels against real receivers (docs/ALERTS.md): an HTTP server that verifies the
HMAC and the timestamp, an SMTP server (aiosmtpd), a Mosquitto subscriber, and the
whole runtime from a published reading to an escalation."""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import SMTP_PASSWORD, SMTP_USER, WEBHOOK_SECRET, SmtpInbox, WebhookReceiver

from coldchain.alerting import Alerting
from coldchain.alerts import Alert
from coldchain.channels import (
    EmailChannelAdapter,
    MqttChannelAdapter,
    WebhookChannelAdapter,
    build_channels,
)
from coldchain.config import load_settings
from coldchain.dispatcher import Dispatcher
from coldchain.errors import DeliveryError
from coldchain.models import MS_PER_MIN, Shipment, ShipmentStatus
from coldchain.mqtt import Publisher, Subscriber
from coldchain.notify import build_notice
from coldchain.outbox import Delivery
from coldchain.profiles import SHIPPED_PRODUCTS_DIR, load_profiles
from coldchain.routing import AlertRouting, EmailChannel, MqttChannel, WebhookChannel, parse_routing
from coldchain.runtime import Runtime
from coldchain.store import open_store
from coldchain.testing import FakeClock, memory_store

PROFILES = load_profiles(SHIPPED_PRODUCTS_DIR)
WAIT_S = 10.0


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _shipment() -> Shipment:
    return Shipment(
        id="S-42",
        product="cart-ln2",
        loggers=("LG-42",),
        lot="L-9",
        origin="SG",
        destination="ID",
        status=ShipmentStatus.IN_TRANSIT,
    )


def _alert(now_ms: int) -> Alert:
    return Alert(
        id="AL-0123456789abcdef",
        shipment_id="S-42",
        logger_id="LG-42",
        type="excursion",
        severity="critical",
        rule="warm-critical",
        triggered_ms=now_ms - 60_000,
        detected_ms=now_ms,
        value_c=-141.2,
        limit_c=-150.0,
        message="Shipment S-42 went above -150 °C.",
    )


def _delivery(channel: str, now_ms: int) -> Delivery:
    notice = build_notice(
        _alert(now_ms),
        event="raised",
        shipment=_shipment(),
        profile=PROFILES.get("cart-ln2"),
        api_base_url="https://cc.example.com",
    )
    return Delivery(
        id=f"DL-{channel}",
        alert_id="AL-0123456789abcdef",
        shipment_id="S-42",
        channel=channel,
        route="r",
        event="raised",
        notice=notice,
        created_ms=now_ms,
        next_attempt_ms=now_ms,
    )


def _routing(
    channels: dict[str, Any], env: dict[str, str] | None = None, **extra: Any
) -> AlertRouting:
    routes = extra.pop("routes", [{"id": "all", "channels": list(channels)}])
    return parse_routing(
        {"channels": channels, "routes": routes, **extra},
        source="test-alerts.toml",
        environ=env or {"HOOK_SECRET": WEBHOOK_SECRET},
    )


def _webhook(receiver: WebhookReceiver, clock: Any = None) -> WebhookChannelAdapter:
    config = WebhookChannel(type="webhook", url=receiver.url, secret_env="HOOK_SECRET")
    return WebhookChannelAdapter(
        "hook", config, secret=WEBHOOK_SECRET, clock=clock or FakeClock(_now_ms())
    )


# -- webhook ---------------------------------------------------------------------------------


def test_webhook_channel_posts_signed_json_the_receiver_verifies(
    webhook_receiver: WebhookReceiver,
):
    _webhook(webhook_receiver).send(_delivery("hook", _now_ms()))
    (doc,) = webhook_receiver.wait_for(1)
    assert webhook_receiver.refused == []
    assert (doc["id"], doc["event"], doc["delivery_id"]) == (
        "AL-0123456789abcdef",
        "raised",
        "DL-hook",
    )
    assert (doc["shipment_id"], doc["value_c"], doc["limit"]) == ("S-42", -141.2, "above -150 °C")
    headers, _ = webhook_receiver.raw[0]
    assert headers["X-Coldchain-Alert-Id"] == "AL-0123456789abcdef"
    assert headers["X-Coldchain-Signature"].startswith("sha256=")


def _post(receiver: WebhookReceiver, headers: dict[str, str], body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=WAIT_S)
    try:
        conn.request("POST", "/hooks/coldchain", body=body, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_webhook_receiver_refuses_a_replayed_or_tampered_request(
    webhook_receiver: WebhookReceiver,
):
    _webhook(webhook_receiver).send(_delivery("hook", _now_ms()))
    webhook_receiver.wait_for(1)
    headers, body = webhook_receiver.raw[0]
    keep = {k: v for k, v in headers.items() if k.startswith(("X-", "Content-Type"))}
    keep["X-Coldchain-Delivery-Id"] = "DL-replayed"  # not a mere duplicate
    assert _post(webhook_receiver, keep, body.replace(b"-141.2", b"-161.2")) == 401
    webhook_receiver.now_s = lambda: time.time() + 600  # ten minutes later: a replay
    assert _post(webhook_receiver, keep, body) == 401
    assert webhook_receiver.refused == ["bad signature", "stale timestamp (replay?)"]
    assert len(webhook_receiver.accepted) == 1


@pytest.mark.parametrize(
    ("status", "permanent"),
    [(500, False), (503, False), (429, False), (408, False), (400, True), (404, True), (301, True)],
)
def test_webhook_channel_tells_a_refusal_from_a_receiver_in_trouble(
    webhook_receiver: WebhookReceiver, status: int, permanent: bool
):
    webhook_receiver.status = status
    with pytest.raises(DeliveryError) as info:
        _webhook(webhook_receiver).send(_delivery("hook", _now_ms()))
    assert info.value.permanent is permanent
    assert f"HTTP {status}" in str(info.value)


def test_webhook_down_then_up_delivers_exactly_once_with_its_retries_in_the_history(
    webhook_receiver: WebhookReceiver,
):
    """The fault test: the receiver is down for a while, then up again."""
    clock = FakeClock(_now_ms())
    webhook_receiver.now_s = lambda: clock.now_ms() / 1000  # the receiver shares our clock
    routing = _routing(
        {
            "hook": {
                "type": "webhook",
                "url": webhook_receiver.url,
                "secret_env": "HOOK_SECRET",
                "timeout_s": 2,
                "retry": {"initial_s": 2, "max_s": 60, "jitter": 0.2},
            }
        }
    )
    store = memory_store()
    store.create_shipment(_shipment())
    alerting = Alerting(store, PROFILES, routing=routing)
    channels = build_channels(routing, publisher=None, prefix="cc", clock=clock)
    dispatcher = Dispatcher(store, channels, routing, clock=clock)
    alert = _alert(clock.now_ms())
    with store.transaction():  # as the pipeline does: finding and outbox together
        assert store.upsert_alert(alert)
        alerting.raised(alert, now_ms=clock.now_ms())

    webhook_receiver.down()
    for _ in range(3):
        (attempted,) = dispatcher.deliver_due()
        assert attempted.status == "pending"
        assert "ConnectionRefusedError" in (attempted.last_error or "")
        clock.set(attempted.next_attempt_ms)
    webhook_receiver.up()
    (delivered,) = dispatcher.deliver_due()
    assert delivered.status == "delivered"
    clock.advance(3_600_000)
    assert dispatcher.deliver_due() == []

    (doc,) = webhook_receiver.wait_for(1)
    assert doc["id"] == alert.id
    assert (webhook_receiver.requests, webhook_receiver.duplicates) == (1, 0)
    ((record,),) = [alerting.records(alert_ids={alert.id})]
    (hook,) = record["deliveries"]
    assert (hook["status"], hook["attempts"]) == ("delivered", 4)
    assert [h["ok"] for h in hook["history"]] == [False, False, False, True]
    # exponential back-off, 2 s doubling, ±20 % jitter
    (stored,) = store.list_deliveries(alert_id=alert.id, history=True)
    waits = [b.at_ms - a.at_ms for a, b in itertools.pairwise(stored.history)]
    for wait, base_ms in zip(waits, (2000, 4000, 8000), strict=True):
        assert 0.8 * base_ms <= wait <= 1.2 * base_ms


# -- e-mail ----------------------------------------------------------------------------------


def test_email_channel_sends_plain_text_and_html(smtp_server: tuple[int, SmtpInbox]):
    port, inbox = smtp_server
    config = EmailChannel(
        type="email",
        host="127.0.0.1",
        port=port,
        sender="coldchain@example.com",
        to=("duty@example.com", "qa@example.com"),
    )
    EmailChannelAdapter("mail", config, password=None).send(_delivery("mail", _now_ms()))
    (mail,) = inbox.wait_for(1)
    assert inbox.mails[0][0] == ["duty@example.com", "qa@example.com"]
    assert mail["Subject"] == "[coldchain] CRITICAL excursion: shipment S-42 above -150 °C"
    assert mail["Message-ID"] == "<DL-mail.AL-0123456789abcdef@coldchain>"
    assert mail["X-Priority"] == "1"
    text = mail.get_body(("plain",))
    page = mail.get_body(("html",))
    assert text is not None
    assert page is not None
    for fact in ("S-42", "-141.2 °C", "above -150 °C", "SG → ID", "https://cc.example.com/api"):
        assert fact in text.get_content()
        assert fact in page.get_content()


def test_email_channel_uses_starttls_and_login(
    smtp_tls_server: tuple[int, Path, SmtpInbox], monkeypatch: pytest.MonkeyPatch
):
    port, ca_file, inbox = smtp_tls_server
    routing = _routing(
        {
            "mail": {
                "type": "email",
                "host": "127.0.0.1",
                "port": port,
                "starttls": True,
                "ca_file": str(ca_file),
                "username": SMTP_USER,
                "password_env": "SMTP_PASSWORD",
                "sender": "coldchain@example.com",
                "to": ["duty@example.com"],
            }
        },
        env={"SMTP_PASSWORD": SMTP_PASSWORD},
    )
    (mail_channel,) = build_channels(
        routing, publisher=None, prefix="cc", clock=FakeClock(0)
    ).values()
    mail_channel.send(_delivery("mail", _now_ms()))
    (mail,) = inbox.wait_for(1)
    assert "S-42" in mail["Subject"]

    config = routing.channels["mail"]
    assert isinstance(config, EmailChannel)
    wrong = EmailChannelAdapter("mail", config, password="wrong")
    with pytest.raises(DeliveryError, match="refused the login") as info:
        wrong.send(_delivery("mail", _now_ms()))
    assert info.value.permanent
    plain = EmailChannelAdapter(
        "mail", config.model_copy(update={"starttls": False}), password=SMTP_PASSWORD
    )
    with pytest.raises(DeliveryError) as refused:  # the server insists on TLS first
        plain.send(_delivery("mail", _now_ms()))
    assert refused.value.permanent
    assert "needs starttls = true" in str(refused.value)


def test_email_channel_server_down_is_transient():
    config = EmailChannel(
        type="email", host="127.0.0.1", port=1, sender="a@example.com", to=("b@example.com",)
    )
    with pytest.raises(DeliveryError) as info:
        EmailChannelAdapter("mail", config, password=None).send(_delivery("mail", _now_ms()))
    assert not info.value.permanent


# -- MQTT ------------------------------------------------------------------------------------


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._cond = threading.Condition()

    def __call__(self, topic: str, payload: bytes, received_ms: int) -> None:
        with self._cond:
            self.messages.append((topic, orjson.loads(payload)))
            self._cond.notify_all()

    def wait_for(self, n: int) -> list[tuple[str, dict[str, Any]]]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages) >= n, WAIT_S):
                pytest.fail(f"alert topic: {len(self.messages)} of {n} messages")
            return list(self.messages[:n])


def test_mqtt_channel_publishes_the_spec_alert_on_the_alert_topic(
    mosquitto_url: str, mqtt_topic_prefix: str
):
    inbox = _Inbox()
    watcher = Subscriber(
        url=mosquitto_url,
        client_id=f"watch-{mqtt_topic_prefix[-12:]}",
        topics=[f"{mqtt_topic_prefix}/shipments/+/alerts"],
        on_message=inbox,
    )
    publisher = Publisher(url=mosquitto_url, client_id=f"pub-{mqtt_topic_prefix[-12:]}")
    with watcher, publisher:
        channel = MqttChannelAdapter(
            "mqtt", MqttChannel(type="mqtt"), publisher=publisher, prefix=mqtt_topic_prefix
        )
        channel.send(_delivery("mqtt", _now_ms()))  # returns once the broker has it
        ((topic, doc),) = inbox.wait_for(1)
    assert topic == f"{mqtt_topic_prefix}/shipments/S-42/alerts"
    assert (doc["id"], doc["severity"], doc["state"], doc["event"]) == (
        "AL-0123456789abcdef",
        "critical",
        "open",
        "raised",
    )


# -- the whole runtime ---------------------------------------------------------------------------

PROBE = """
id = "probe"
name = "Test product"
max_gap_min = 15
mkt = false
[[alarms]]
id = "hot"
above_c = 20.0
delay_min = 0
severity = "critical"
"""


def test_runtime_sends_an_excursion_to_mqtt_and_webhook_then_escalates(
    mosquitto_url: str,
    mqtt_topic_prefix: str,
    webhook_receiver: WebhookReceiver,
    tmp_path: Path,
):
    products = tmp_path / "products"
    products.mkdir()
    (products / "probe.toml").write_text(PROBE, encoding="utf-8")
    settings = load_settings(
        environ={
            "COLDCHAIN_STORE": f"sqlite:///{tmp_path}/rt.db",
            "COLDCHAIN_BROKER": mosquitto_url,
            "COLDCHAIN_PRODUCTS": str(products),
        }
    )
    settings = settings.model_copy(
        update={
            "broker": settings.broker.model_copy(
                update={"topic_prefix": mqtt_topic_prefix, "client_id": f"rt-{tmp_path.name}"}
            )
        }
    )
    routing = _routing(
        {
            "mqtt": {"type": "mqtt"},
            "hook": {"type": "webhook", "url": webhook_receiver.url, "secret_env": "HOOK_SECRET"},
        },
        routes=[
            {"id": "ops", "channels": ["mqtt"], "escalate_after_min": 15, "escalate_to": "duty"},
            {"id": "duty", "escalation_only": True, "channels": ["hook"]},
        ],
    )
    store = open_store(settings.store.url)
    clock = FakeClock(_now_ms())
    webhook_receiver.now_s = lambda: clock.now_ms() / 1000
    store.create_shipment(
        Shipment(id="S-7", product="probe", loggers=("LG-7",), status=ShipmentStatus.IN_TRANSIT)
    )
    inbox = _Inbox()
    watcher = Subscriber(
        url=mosquitto_url,
        client_id=f"watch-{tmp_path.name}",
        topics=[f"{mqtt_topic_prefix}/shipments/+/alerts"],
        on_message=inbox,
    )
    profiles = settings.load_profiles()
    with (
        watcher,
        Runtime(
            settings, store, profiles, clock=clock, routing=routing, escalation_check_s=0.05
        ) as rt,
        Publisher(url=mosquitto_url, client_id=f"logger-{tmp_path.name}") as logger,
    ):
        t = clock.now_ms() - 10 * MS_PER_MIN
        body = {
            "readings": [
                {"seq": 1, "ts": t / 1000, "temp_c": 5.0},
                {"seq": 2, "ts": t / 1000 + 300, "temp_c": 24.0},
            ]
        }
        logger.publish(f"{mqtt_topic_prefix}/loggers/LG-7/telemetry", orjson.dumps(body))
        ((topic, raised),) = inbox.wait_for(1)
        assert (topic.split("/")[-2], raised["rule"], raised["event"]) == ("S-7", "hot", "raised")
        assert webhook_receiver.accepted == []  # the webhook is the escalation route

        clock.advance(15 * MS_PER_MIN)  # nobody acknowledged
        (escalated,) = webhook_receiver.wait_for(1)
        assert (escalated["event"], escalated["id"]) == ("escalated", raised["id"])
        assert escalated["escalation"]["route"] == "duty"
        _, mqtt_escalated = inbox.wait_for(2)[1]
        assert mqtt_escalated["event"] == "escalated"  # the alert topic follows its lifecycle
        rt.alerting.acknowledge(raised["id"], by="J. Tan", comment="on it", now_ms=clock.now_ms())
        rt.check_alerts()  # wakes the dispatcher, as the scheduled job does
        _, mqtt_acked = inbox.wait_for(3)[2]
        assert (mqtt_acked["event"], mqtt_acked["state"]) == ("acknowledged", "acknowledged")
        assert mqtt_acked["acknowledgement"]["by"] == "J. Tan"
    status = store.get_alert_status(raised["id"])
    assert [e.route for e in status.escalations] == ["duty"]
    store.close()
