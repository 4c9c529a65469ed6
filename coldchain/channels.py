"""Alert channels: the adapters that put a notification on the wire (docs/ALERTS.md).

Every channel implements :class:`Channel`: ``send(delivery)`` returns when
the receiver has taken the notification, or raises
:class:`~coldchain.errors.DeliveryError` (``permanent`` when the receiver
refused it, else transient: the outbox retries). Foreign exceptions (socket,
http.client, smtplib, the MQTT client) are mapped here, at the boundary.

::

    LogChannel       one line on the ``coldchain.alerts`` logger
    MqttChannel      the alert topic (docs/PROTOCOL.md), QoS 1, through coldchain's
                     broker connection; delivered once the broker acknowledged it (PUBACK)
    WebhookChannel   JSON POST, signed (``X-Coldchain-Signature``, ``X-Coldchain-Timestamp``);
                     2xx is delivered, 408/425/429/5xx and network errors are transient
    EmailChannel     plain text + HTML over SMTP (STARTTLS and login when configured);
                     the Message-ID is the delivery id, so a re-sent mail is recognisable

The in-memory fake for tests is :class:`coldchain.testing.MemoryChannel`.
"""

from __future__ import annotations

import http.client
import logging
import smtplib
import ssl
from collections.abc import Mapping
from email import policy
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol
from urllib.parse import urlsplit

from coldchain import __version__
from coldchain.clock import Clock
from coldchain.errors import BrokerError, DeliveryError
from coldchain.mqtt import Publisher
from coldchain.notify import (
    ALERT_ID_HEADER,
    DELIVERY_ID_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    render_html,
    render_line,
    render_payload,
    render_subject,
    render_text,
    sign,
)
from coldchain.outbox import Delivery
from coldchain.routing import (
    AlertRouting,
    ChannelConfig,
    EmailChannel,
    LogChannel,
    MqttChannel,
    WebhookChannel,
)

alerts_log = logging.getLogger("coldchain.alerts")

DEFAULT_MQTT_ACK_TIMEOUT_S = 5.0
_TRANSIENT_HTTP = frozenset({408, 425, 429})
_LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_RESPONSE_EXCERPT = 200
# RFC 5322 allows 998; at 78 Python folds a subject with "°C" into encoded words that
# unfold with a doubled space ("-150  °C")
_MAIL_POLICY = policy.default.clone(max_line_length=998)


class Channel(Protocol):
    """Where notifications go. ``send`` may block (network); one thread per channel."""

    @property
    def name(self) -> str: ...

    def send(self, delivery: Delivery) -> None:
        """Deliver, or raise :class:`~coldchain.errors.DeliveryError`."""
        ...

    def close(self) -> None: ...


class LogChannelAdapter:
    """One line per notification on the ``coldchain.alerts`` logger."""

    def __init__(self, name: str, config: LogChannel) -> None:
        self._name = name
        self._level = _LOG_LEVELS[config.level]

    @property
    def name(self) -> str:
        return self._name

    def send(self, delivery: Delivery) -> None:
        alerts_log.log(self._level, "%s", render_line(delivery.notice))

    def close(self) -> None:
        """Nothing to release."""


class MqttChannelAdapter:
    """Publishes the alert JSON on ``{prefix}/shipments/{shipment_id}/alerts`` (QoS 1).

    ``send`` waits for the broker's acknowledgement; the publisher is owned by
    the runtime (its one connection for alerts), not by this channel.
    """

    def __init__(
        self,
        name: str,
        config: MqttChannel,
        *,
        publisher: Publisher,
        prefix: str,
        ack_timeout_s: float = DEFAULT_MQTT_ACK_TIMEOUT_S,
    ) -> None:
        self._name = name
        self._topic = config.topic
        self._publisher = publisher
        self._prefix = prefix
        self._ack_timeout_s = ack_timeout_s

    @property
    def name(self) -> str:
        return self._name

    def topic(self, shipment_id: str) -> str:
        return self._topic.format(prefix=self._prefix, shipment_id=shipment_id)

    def send(self, delivery: Delivery) -> None:
        payload = render_payload(delivery.notice, delivery_id=delivery.id)
        try:
            self._publisher.publish(
                self.topic(delivery.shipment_id), payload, qos=1, timeout_s=self._ack_timeout_s
            )
            self._publisher.flush(self._ack_timeout_s)
        except BrokerError as exc:
            raise DeliveryError(str(exc), channel=self._name) from exc

    def close(self) -> None:
        """The runtime stops the publisher."""


class WebhookChannelAdapter:
    """JSON POST with an HMAC-SHA256 signature over the timestamp and the body."""

    def __init__(self, name: str, config: WebhookChannel, *, secret: str, clock: Clock) -> None:
        self._name = name
        self._config = config
        self._secret = secret
        self._clock = clock
        parts = urlsplit(config.url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._context: ssl.SSLContext | None = None
        if self._https:
            self._context = ssl.create_default_context(
                cafile=str(config.ca_file) if config.ca_file else None
            )

    @property
    def name(self) -> str:
        return self._name

    def request(self, delivery: Delivery) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the POST for ``delivery`` (signed now)."""
        body = render_payload(delivery.notice, delivery_id=delivery.id)
        timestamp_s = self._clock.now_ms() // 1000
        headers = {
            **self._config.headers,
            "Content-Type": "application/json",
            "User-Agent": f"coldchain/{__version__}",
            TIMESTAMP_HEADER: str(timestamp_s),
            SIGNATURE_HEADER: sign(self._secret, timestamp_s=timestamp_s, body=body),
            ALERT_ID_HEADER: delivery.alert_id,
            DELIVERY_ID_HEADER: delivery.id,
            EVENT_HEADER: delivery.event,
            "Idempotency-Key": delivery.id,
        }
        return body, headers

    def send(self, delivery: Delivery) -> None:
        body, headers = self.request(delivery)
        timeout = self._config.timeout_s
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._context
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        try:
            conn.request("POST", self._path, body=body, headers=headers)
            # the response owns the socket once the server says it will close it
            with conn.getresponse() as response:
                excerpt = response.read(_RESPONSE_EXCERPT).decode("utf-8", "replace").strip()
        except (OSError, http.client.HTTPException) as exc:
            msg = f"POST {self._config.url}: {type(exc).__name__}: {exc}"
            raise DeliveryError(msg, channel=self._name) from exc
        finally:
            conn.close()
        status = response.status
        if 200 <= status < 300:
            return
        msg = f"POST {self._config.url}: HTTP {status} {response.reason}" + (
            f": {excerpt}" if excerpt else ""
        )
        permanent = status < 500 and status not in _TRANSIENT_HTTP
        raise DeliveryError(msg, channel=self._name, permanent=permanent)

    def close(self) -> None:
        """One connection per request: nothing kept open."""


class EmailChannelAdapter:
    """A multipart (plain text + HTML) mail per notification, over SMTP."""

    def __init__(self, name: str, config: EmailChannel, *, password: str | None) -> None:
        self._name = name
        self._config = config
        self._password = password

    @property
    def name(self) -> str:
        return self._name

    def message(self, delivery: Delivery) -> EmailMessage:
        """The mail for ``delivery``; its Message-ID is derived from the delivery id."""
        cfg = self._config
        notice = delivery.notice
        msg = EmailMessage(policy=_MAIL_POLICY)
        msg["Subject"] = render_subject(notice, prefix=cfg.subject_prefix)
        msg["From"] = cfg.sender
        msg["To"] = ", ".join(cfg.to)
        msg["Date"] = formatdate(delivery.created_ms / 1000, usegmt=True)
        msg["Message-ID"] = f"<{delivery.id}.{delivery.alert_id}@coldchain>"
        msg[ALERT_ID_HEADER] = delivery.alert_id
        msg[EVENT_HEADER] = delivery.event
        if notice.alert.get("severity") == "critical" and delivery.event != "resolved":
            msg["X-Priority"] = "1"
            msg["Importance"] = "high"
        msg.set_content(render_text(notice))
        msg.add_alternative(render_html(notice), subtype="html")
        return msg

    def send(self, delivery: Delivery) -> None:
        cfg = self._config
        message = self.message(delivery)
        try:
            with smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s) as smtp:
                if cfg.starttls:
                    cafile = str(cfg.ca_file) if cfg.ca_file else None
                    smtp.starttls(context=ssl.create_default_context(cafile=cafile))
                if cfg.username is not None:
                    smtp.login(cfg.username, self._password or "")
                refused = smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"SMTP {cfg.host}:{cfg.port} refused the login: {exc.smtp_code}",
                channel=self._name,
                permanent=True,
            ) from exc
        except smtplib.SMTPResponseException as exc:
            msg = f"SMTP {cfg.host}:{cfg.port}: {exc.smtp_code} {exc.smtp_error!r}"
            raise DeliveryError(msg, channel=self._name, permanent=exc.smtp_code >= 500) from exc
        except smtplib.SMTPNotSupportedError as exc:
            msg = (
                f"SMTP {cfg.host}:{cfg.port}: {exc}; a server that offers login only "
                "after STARTTLS needs starttls = true"
            )
            raise DeliveryError(msg, channel=self._name, permanent=True) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            msg = f"SMTP {cfg.host}:{cfg.port} refused every recipient: {exc.recipients}"
            raise DeliveryError(msg, channel=self._name, permanent=True) from exc
        except (OSError, smtplib.SMTPException) as exc:
            msg = f"SMTP {cfg.host}:{cfg.port}: {type(exc).__name__}: {exc}"
            raise DeliveryError(msg, channel=self._name) from exc
        if refused:
            # Some recipients took it: re-sending would duplicate theirs; say who missed it.
            alerts_log.error(
                "mail for %s not accepted for %s", delivery.alert_id, ", ".join(refused)
            )

    def close(self) -> None:
        """One SMTP session per mail: nothing kept open."""


def build_channels(
    routing: AlertRouting,
    *,
    publisher: Publisher | None,
    prefix: str,
    clock: Clock,
) -> dict[str, Channel]:
    """One adapter per configured channel. MQTT channels need ``publisher``."""
    built: dict[str, Channel] = {}
    for name, config in routing.channels.items():
        built[name] = _build(
            name, config, routing.secrets, publisher=publisher, prefix=prefix, clock=clock
        )
    return built


def _build(
    name: str,
    config: ChannelConfig,
    secrets: Mapping[str, str],
    *,
    publisher: Publisher | None,
    prefix: str,
    clock: Clock,
) -> Channel:
    if isinstance(config, LogChannel):
        return LogChannelAdapter(name, config)
    if isinstance(config, MqttChannel):
        if publisher is None:
            msg = f"channel {name}: an MQTT channel needs the broker connection"
            raise BrokerError(msg)
        return MqttChannelAdapter(name, config, publisher=publisher, prefix=prefix)
    if isinstance(config, WebhookChannel):
        return WebhookChannelAdapter(name, config, secret=secrets[name], clock=clock)
    return EmailChannelAdapter(name, config, password=secrets.get(name))


__all__ = [
    "Channel",
    "EmailChannelAdapter",
    "LogChannelAdapter",
    "MqttChannelAdapter",
    "WebhookChannelAdapter",
    "build_channels",
]
