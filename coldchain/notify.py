"""What an alert notification says, and how a webhook is signed (docs/ALERTS.md). Pure.

A :class:`Notice` is everything a reader needs, decided when the notification
is queued (in the outbox, in the same transaction as the finding): the alert
alert, the product's name, the lane, the limit, how long, what to do and a
link. The channels only render it:

* :func:`render_payload` — JSON for MQTT and webhooks: the alert fields (docs/ALERTS.md) at
  the top level (so an alert-topic consumer reads it as docs/PROTOCOL.md, topics says), plus
  ``event``, the context above and the event's detail;
* :func:`render_subject`, :func:`render_text`, :func:`render_html` — e-mail
  (and the log line), written to read well on a phone: the headline first,
  then one fact a line.

Webhook signature: ``X-Coldchain-Signature: sha256=<hex>``, the HMAC-SHA256
of ``"{timestamp}.{body}"`` with the channel's secret, where ``timestamp`` is
the ``X-Coldchain-Timestamp`` header (Unix seconds at sending). A receiver
recomputes it over the raw body and refuses a timestamp older than a few
minutes, so a captured request cannot be replayed; :func:`verify_signature`
does both.
"""

from __future__ import annotations

import hashlib
import hmac
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from coldchain.alerts import Alert
from coldchain.models import MS_PER_MIN, Shipment
from coldchain.profiles import Profile

Event = Literal["raised", "escalated", "acknowledged", "resolved", "digest"]
EVENTS: tuple[Event, ...] = ("raised", "escalated", "acknowledged", "resolved", "digest")

SIGNATURE_HEADER = "X-Coldchain-Signature"
TIMESTAMP_HEADER = "X-Coldchain-Timestamp"
ALERT_ID_HEADER = "X-Coldchain-Alert-Id"
DELIVERY_ID_HEADER = "X-Coldchain-Delivery-Id"
EVENT_HEADER = "X-Coldchain-Event"
DEFAULT_TOLERANCE_S = 300
"""How old a signed webhook request may be before a receiver refuses it as a replay."""

_DETAIL_KEY: dict[Event, str] = {
    "raised": "",
    "escalated": "escalation",
    "acknowledged": "acknowledgement",
    "resolved": "resolution",
    "digest": "digest",
}

_ACTIONS: dict[str, str] = {
    "excursion": (
        "Call the courier now: have the packaging checked (re-ice, recharge the dry "
        "shipper or move the product to qualified storage); quarantine on arrival "
        "until QA decides."
    ),
    "cumulative": (
        "Tell QA: the shipment's total time out of range is over its limit; "
        "quarantine on arrival until QA decides."
    ),
    "predicted_breach": (
        "Act before the forecast breach: ask the courier to check the packaging now."
    ),
    "budget_low": "Tell QA: the lot's stability budget is nearly used up; plan the rest.",
    "budget_exhausted": "Tell QA: the lot's stability budget is used up; quarantine on arrival.",
    "logger_silent": "Call the courier: the logger stopped reporting; have it checked.",
    "data_gap": "Ask the courier why the logger had no data; QA reviews the gap.",
    "sensor_disagreement": "Have both loggers checked; QA decides which one to trust.",
    "sensor_fault": "Have the logger's sensor checked; rely on the backup logger if there is one.",
    "battery_low": "Ask the courier to replace or charge the logger's battery.",
    "clock_skew": "Have the logger's clock set; readings are kept and evaluated on device time.",
    "excursion_ended": "No immediate action; QA reviews the excursion in the dossier.",
}
_WARNING_EXCURSION = "Ask the courier to check the packaging before the limit becomes critical."


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification about one alert (or, for ``digest``, about several)."""

    event: Event
    alert: Mapping[str, Any]
    """The alert JSON (docs/ALERTS.md), as it stood when the notice was queued."""
    headline: str
    product_name: str | None
    lot: str | None
    lane: str
    consignee: str | None
    limit: str | None
    duration: str | None
    action: str
    link: str | None
    detail: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None

    def to_doc(self) -> dict[str, Any]:
        """What the outbox stores; :meth:`from_doc` reads it back."""
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Notice:
        return cls(**doc)


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _minutes(minutes: float) -> str:
    if minutes < 90:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h"


def _temp(value: float | None) -> str:
    return f"{value:.1f} °C" if value is not None else "n/a"


def _limit_and_duration(alert: Alert, profile: Profile | None) -> tuple[str | None, str | None]:
    alarm = next((a for a in profile.alarms if a.id == alert.rule), None) if profile else None
    if alarm is None:
        limit = f"{alert.limit_c:g} °C" if alert.limit_c is not None else None
        return limit, None
    limit = f"{alarm.direction} {alarm.limit_c:g} °C"
    if alert.type == "cumulative":
        return limit, f"more than {_minutes(alarm.cumulative_min or 0)} in total"
    delay = alarm.delay_min or 0
    since = _clock(alert.triggered_ms - round(delay * MS_PER_MIN))
    if delay:
        return limit, f"more than {_minutes(delay)}, since {since}"
    return limit, f"from the first reading out of range, at {since}"


def _type_words(alert: Mapping[str, Any]) -> str:
    return str(alert["type"]).replace("_", " ")


def build_notice(
    alert: Alert,
    *,
    event: Event,
    shipment: Shipment | None,
    profile: Profile | None,
    api_base_url: str | None = None,
    action: str | None = None,
    detail: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
) -> Notice:
    """The notice for ``event`` on ``alert``; ``action`` overrides the default advice."""
    doc = alert.to_json()
    limit, duration = _limit_and_duration(alert, profile)
    if action is None:
        action = _ACTIONS.get(alert.type, "Check the shipment.")
        if alert.type == "excursion" and alert.severity != "critical":
            action = _WARNING_EXCURSION
    link = None
    if api_base_url:
        link = f"{api_base_url.rstrip('/')}/api/v1/alerts/{alert.id}"
    name = f"{alert.severity.upper()} {_type_words(doc)}"
    subject = f"shipment {alert.shipment_id}"
    if limit is not None:
        subject += f" {limit}"
    headline = {
        "raised": f"{name}: {subject}",
        "escalated": f"ESCALATED, unacknowledged — {name}: {subject}",
        "acknowledged": f"Acknowledged — {name}: {subject}",
        "resolved": f"Resolved — {name}: {subject}",
        "digest": f"Digest — alerts held for shipment {alert.shipment_id}",
    }[event]
    return Notice(
        event=event,
        alert=doc,
        headline=headline,
        product_name=(f"{profile.name} ({profile.id})" if profile else None),
        lot=shipment.lot if shipment else None,
        lane=(shipment.lane if shipment else "?→?").replace("→", " → "),
        consignee=shipment.extra.get("consignee") if shipment else None,
        limit=limit,
        duration=duration,
        action=action,
        link=link,
        detail=detail,
    )


# -- rendering ------------------------------------------------------------------------------


def render_payload(notice: Notice, *, delivery_id: str | None = None) -> bytes:
    """The JSON document for MQTT and webhooks: the alert plus context and detail."""
    doc: dict[str, Any] = dict(notice.alert)
    doc.update(
        event=notice.event,
        headline=notice.headline,
        product_name=notice.product_name,
        lot=notice.lot,
        lane=notice.lane,
        consignee=notice.consignee,
        limit=notice.limit,
        duration=notice.duration,
        action=notice.action,
        link=notice.link,
    )
    key = _DETAIL_KEY[notice.event]
    if key:
        doc[key] = notice.detail
    if delivery_id is not None:
        doc["delivery_id"] = delivery_id
    return orjson.dumps(doc)


def render_subject(notice: Notice, *, prefix: str = "") -> str:
    return f"{prefix} {notice.headline}".strip()


def _facts(notice: Notice) -> list[tuple[str, str]]:
    a = notice.alert
    facts = [("Shipment", str(a["shipment_id"]))]
    if notice.product_name:
        facts.append(("Product", notice.product_name))
    if notice.lot:
        facts.append(("Lot", notice.lot))
    facts.append(("Value", _temp(a.get("value_c"))))
    if notice.limit:
        facts.append(("Limit", notice.limit))
    if notice.duration:
        facts.append(("Duration", notice.duration))
    facts.append(("Lane", notice.lane))
    if notice.consignee:
        facts.append(("Consignee", notice.consignee))
    return facts


def _event_lines(notice: Notice) -> list[str]:
    d = notice.detail
    if notice.event == "escalated" and isinstance(d, Mapping):
        return [
            f"Not acknowledged for {_minutes(float(d['unacknowledged_min']))}: "
            f"escalated to {d['route']} (level {d['level']})."
        ]
    if notice.event == "acknowledged" and isinstance(d, Mapping):
        comment = f': "{d["comment"]}"' if d.get("comment") else ""
        return [f"Acknowledged by {d['by']} at {d['at']}{comment}"]
    if notice.event == "resolved" and isinstance(d, Mapping):
        comment = f': "{d["comment"]}"' if d.get("comment") else ""
        return [f"Resolved ({d['reason']}) by {d['by']} at {d['at']}{comment}"]
    if notice.event == "digest" and isinstance(d, Sequence):
        return [f"{len(d)} alerts were held by the rate limit:"] + [
            f"- {x['severity'].upper()} {x['type']}: {x['message']}" for x in d
        ]
    return []


def render_text(notice: Notice) -> str:
    """Plain text: headline, the alert's sentence, one fact a line, what to do, the link."""
    a = notice.alert
    width = max(len(k) for k, _ in _facts(notice))
    lines = [notice.headline, "", *_event_lines(notice)]
    if notice.event != "digest":
        lines += [str(a["message"]), ""]
        lines += [f"{k + ':':<{width + 1}} {v}" for k, v in _facts(notice)]
    lines += ["", f"What to do: {notice.action}"]
    if notice.link:
        lines.append(f"Open: {notice.link}")
    lines += [
        "",
        f"Alert {a['id']} · rule {a['rule']} · triggered {a['triggered_at']} (device time)",
        f"Acknowledge: coldchain alerts ack {a['id']} --by NAME --comment TEXT",
    ]
    return "\n".join(line for i, line in enumerate(lines) if line or (i and lines[i - 1]))


_COLOUR = {"critical": "#b00020", "warning": "#b26a00", "info": "#00579c"}


def render_html(notice: Notice) -> str:
    """The same content as :func:`render_text`, as a small HTML mail (inline styles only)."""
    a = notice.alert
    e = html.escape
    colour = _COLOUR.get(str(a["severity"]), "#333")
    rows = "".join(
        f'<tr><td style="padding:2px 12px 2px 0;color:#555">{e(k)}</td><td><b>{e(v)}</b></td></tr>'
        for k, v in _facts(notice)
    )
    parts = [
        '<!DOCTYPE html><html><body style="font-family:sans-serif;font-size:15px;'
        'line-height:1.4;max-width:600px">',
        f'<p style="color:{colour};font-size:18px;margin:0 0 8px"><b>{e(notice.headline)}</b></p>',
    ]
    parts += [f"<p>{e(line)}</p>" for line in _event_lines(notice)]
    if notice.event != "digest":
        parts.append(f"<p>{e(str(a['message']))}</p>")
        parts.append(f'<table style="border-collapse:collapse">{rows}</table>')
    parts.append(f"<p><b>What to do:</b> {e(notice.action)}</p>")
    if notice.link:
        parts.append(f'<p><a href="{e(notice.link, quote=True)}">Open the alert</a></p>')
    parts.append(
        f'<p style="color:#777;font-size:12px">Alert {e(str(a["id"]))} · rule '
        f"{e(str(a['rule']))} · triggered {e(str(a['triggered_at']))} (device time)<br>"
        f"Acknowledge: <code>coldchain alerts ack {e(str(a['id']))} --by NAME "
        "--comment TEXT</code></p></body></html>"
    )
    return "".join(parts)


def render_line(notice: Notice) -> str:
    """One log line."""
    a = notice.alert
    return f"{notice.event} {a['id']} {a['severity']} {a['type']}: {a['message']}"


# -- webhook signatures -------------------------------------------------------------------


def sign(secret: str, *, timestamp_s: int, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``"{timestamp_s}.{body}"`` with ``secret``."""
    mac = hmac.new(secret.encode(), f"{timestamp_s}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(
    secret: str,
    *,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    now_s: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> str | None:
    """Why a received webhook request must be refused, or None when it is genuine and fresh.

    For receivers: pass the raw body and the ``X-Coldchain-Timestamp`` and
    ``X-Coldchain-Signature`` headers. The comparison is constant-time.
    """
    if not timestamp or not signature:
        return "missing signature or timestamp header"
    try:
        ts = int(timestamp)
    except ValueError:
        return f"timestamp {timestamp!r} is not Unix seconds"
    if abs(now_s - ts) > tolerance_s:
        return f"timestamp is {now_s - ts:.0f} s off (more than {tolerance_s:.0f} s): a replay?"
    if not hmac.compare_digest(sign(secret, timestamp_s=ts, body=body), signature):
        return "signature does not match"
    return None
