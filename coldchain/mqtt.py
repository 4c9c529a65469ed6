"""The one adapter between paho-mqtt and the rest of coldchain (docs/PROTOCOL.md, docs/BROKER.md).

No other module of the package imports paho. Here paho's thread callbacks
become plain calls with the project's own types, and paho's exceptions become
:class:`~coldchain.errors.BrokerError` (``raise BrokerError(...) from exc``).

::

    BrokerAddress       parsed ``mqtt://`` / ``mqtts://`` URL (frozen)
    Subscriber          QoS 1, persistent session, stable client id, optional
                        shared subscription; calls on_message(topic, payload,
                        received_ms) on paho's network thread
    Publisher           thread-safe publish with a cap on unacknowledged
                        messages, and flush()

Threading: each client runs paho's network loop in its own thread
(``loop_start``). ``Subscriber``'s ``on_message`` runs on that thread and must
be cheap: hand the message to a queue and return. Never touch the database
there; while it runs, paho neither reads nor acknowledges nor pings.

Errors: ``start()`` raises BrokerError naming ``host:port`` when the broker is
unreachable, refuses the connection (with the broker's reason) or refuses a
subscription. After a successful start, lost connections are retried by paho
with exponential back-off (``reconnect_min_delay_s`` doubling up to
``reconnect_max_delay_s``); the subscription is renewed on every reconnect.
"""

from __future__ import annotations

import enum
import logging
import re
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from coldchain.errors import BrokerError

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT_S",
    "DEFAULT_KEEPALIVE_S",
    "DEFAULT_MAX_UNACKED",
    "DEFAULT_SESSION_EXPIRY_S",
    "BrokerAddress",
    "MessageHandler",
    "MqttVersion",
    "Publisher",
    "Subscriber",
    "Will",
    "parse_broker_url",
]

logger = logging.getLogger(__name__)
paho_logger = logging.getLogger(f"{__name__}.paho")
"""paho's own log lines, one child logger per client id (``coldchain.mqtt.paho.<id>``)."""

DEFAULT_SESSION_EXPIRY_S = 7 * 24 * 3600
"""How long the broker keeps a subscriber's offline session and queue (MQTT 5), seconds."""

DEFAULT_MAX_UNACKED = 100
"""Publisher cap on messages not yet acknowledged (QoS 1) or written (QoS 0)."""

DEFAULT_CONNECT_TIMEOUT_S = 10.0
"""How long ``start()`` waits for TCP connect + CONNACK (+ SUBACK), seconds."""

DEFAULT_KEEPALIVE_S = 30
DEFAULT_RECONNECT_MIN_DELAY_S = 1
DEFAULT_RECONNECT_MAX_DELAY_S = 60
DEFAULT_FLUSH_TIMEOUT_S = 10.0

_SCHEMES = {"mqtt": (False, 1883), "mqtts": (True, 8883)}
_MAX_SESSION_EXPIRY_S = 0xFFFFFFFF  # MQTT 5: this value means "never expires"
_SHARE_GROUP_RE = re.compile(r"^[^/+#]+$")

MessageHandler = Callable[[str, bytes, int], None]
"""``on_message(topic, payload, received_ms)``; ``received_ms`` is UTC epoch ms."""


class MqttVersion(enum.Enum):
    """The MQTT protocol version a client speaks."""

    V311 = "3.1.1"
    V5 = "5"


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker is and how to log in, parsed from ``COLDCHAIN_BROKER``.

    ``mqtt://[user[:password]@]host[:port]`` (default port 1883) or
    ``mqtts://…`` for TLS (default port 8883, system CA store). The password
    is left out of ``repr`` and ``str``.
    """

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False

    @property
    def netloc(self) -> str:
        """``host:port`` (IPv6 hosts in brackets), for messages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username is not None else ""
        return f"{scheme}://{user}{self.netloc}"


def parse_broker_url(url: str) -> BrokerAddress:
    """Parse ``mqtt://user:pass@host:port`` or ``mqtts://…`` into a BrokerAddress.

    User name and password may be percent-encoded. Raises BrokerError saying
    what is wrong and what form is expected.
    """
    expected = "expected mqtt://[user[:password]@]host[:port] or mqtts://…"
    if not isinstance(url, str) or not url.strip():
        msg = f"empty MQTT broker URL; {expected}"
        raise BrokerError(msg)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        msg = f"invalid MQTT broker URL {_redact(url)!r}: {exc}; {expected}"
        raise BrokerError(msg) from exc
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        msg = f"unsupported scheme {parts.scheme!r} in MQTT broker URL {_redact(url)!r}; {expected}"
        raise BrokerError(msg)
    if not parts.hostname:
        msg = f"no host in MQTT broker URL {_redact(url)!r}; {expected}"
        raise BrokerError(msg)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        msg = f"MQTT broker URL {_redact(url)!r} has a path, query or fragment; {expected}"
        raise BrokerError(msg)
    if port == 0:
        msg = f"port 0 in MQTT broker URL {_redact(url)!r}; {expected}"
        raise BrokerError(msg)
    tls, default_port = _SCHEMES[scheme]
    return BrokerAddress(
        host=parts.hostname,
        port=port if port is not None else default_port,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
        tls=tls,
    )


def _redact(url: str) -> str:
    """The URL with any password replaced by ``***``, for error messages."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


@dataclass(frozen=True, slots=True)
class Will:
    """The message the broker publishes for us if we vanish (docs/PROTOCOL.md, topics status
    topic)."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def _not_connected_is_debug(record: logging.LogRecord) -> bool:
    """Log filter: paho's "Client is not connected" is DEBUG, not ERROR.

    paho 2.2 logs it at ERROR whenever its loop runs into a closed socket,
    which every stop does; ``_on_disconnect`` already reports a lost connection.
    """
    if record.levelno > logging.DEBUG and str(record.msg).startswith("Client is not connected"):
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        # The logger let it through as ERROR; handlers at NOTSET would still print it.
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
    return True


def _paho_logger_for(client_id: str) -> logging.Logger:
    child = paho_logger.getChild(client_id)
    if _not_connected_is_debug not in child.filters:  # filters are not inherited
        child.addFilter(_not_connected_is_debug)
    return child


class _Client:
    """What Subscriber and Publisher share: one paho client, its thread and its start."""

    def __init__(
        self,
        *,
        url: str,
        client_id: str,
        protocol: MqttVersion,
        clean_start: bool,
        session_expiry_s: int | None,
        keepalive_s: int,
        connect_timeout_s: float,
        reconnect_min_delay_s: int,
        reconnect_max_delay_s: int,
        will: Will | None,
    ) -> None:
        if not client_id:
            msg = "client_id must not be empty: a stable id is what makes the session persistent"
            raise BrokerError(msg)
        if not 1 <= reconnect_min_delay_s <= reconnect_max_delay_s:
            msg = (
                f"need 1 <= reconnect_min_delay_s <= reconnect_max_delay_s, "
                f"not {reconnect_min_delay_s} and {reconnect_max_delay_s}"
            )
            raise BrokerError(msg)
        self.address = parse_broker_url(url)
        self.client_id = client_id
        self.protocol = protocol
        self._clean_start = clean_start
        self._session_expiry_s = session_expiry_s
        self._keepalive_s = keepalive_s
        self._connect_timeout_s = connect_timeout_s
        self._reconnect_delays_s = (reconnect_min_delay_s, reconnect_max_delay_s)
        self._will = will
        self._lock = threading.Lock()
        self._connack = threading.Event()
        self._startup_error: str | None = None
        self._started = False
        self._stopping = False
        self._connected = False
        self._connects = 0
        self._client = self._new_client()

    def _new_client(self) -> paho.Client:
        """A fresh paho client, for each start()."""
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=(
                MQTTProtocolVersion.MQTTv5
                if self.protocol is MqttVersion.V5
                else MQTTProtocolVersion.MQTTv311
            ),
            clean_session=self._clean_start if self.protocol is MqttVersion.V311 else None,
            reconnect_on_failure=True,
        )
        # Not on_log: paho formats every line (two DEBUG lines per message, about
        # 6 µs) before calling on_log, but asks a logger whether it is enabled first.
        client.enable_logger(_paho_logger_for(self.client_id))
        client.connect_timeout = self._connect_timeout_s
        client.reconnect_delay_set(*self._reconnect_delays_s)
        if self.address.username is not None:
            client.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            client.tls_set_context(ssl.create_default_context())
        if self._will is not None:
            will = self._will
            try:
                client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
            except ValueError as exc:
                msg = f"invalid will message for {self.client_id!r}: {exc}"
                raise BrokerError(msg) from exc
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._configure(client)
        return client

    def _configure(self, client: paho.Client) -> None:
        """Hook: set the subclass's own callbacks and options on a new client."""

    # -- public ---------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a CONNACK-accepted connection is up."""
        return self._connected

    @property
    def reconnects(self) -> int:
        """Successful connections after the first one."""
        return max(self._connects - 1, 0)

    def start(self) -> None:
        """Connect, start paho's network thread and wait for CONNACK.

        Raises BrokerError naming ``host:port`` if the broker is unreachable,
        refuses us, or does not answer within ``connect_timeout_s``.
        """
        if self._started:
            msg = f"MQTT client {self.client_id!r} is already started"
            raise BrokerError(msg)
        self._connack.clear()
        self._startup_error = None
        properties = None
        if self.protocol is MqttVersion.V5:
            # paho's Properties.__init__ is unannotated.
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            if self._session_expiry_s:
                properties.SessionExpiryInterval = self._session_expiry_s
        deadline = time.monotonic() + self._connect_timeout_s
        try:
            self._client.connect(
                self.address.host,
                self.address.port,
                keepalive=self._keepalive_s,
                clean_start=self._clean_start
                if self.protocol is MqttVersion.V5
                else paho.MQTT_CLEAN_START_FIRST_ONLY,
                properties=properties,
            )
        except (OSError, ValueError) as exc:
            self._client = self._new_client()
            msg = f"cannot connect to MQTT broker at {self.address.netloc}: {exc}"
            raise BrokerError(msg) from exc
        self._started = True
        self._client.loop_start()
        try:
            self._await_ready(deadline)
        except BrokerError:
            self._shutdown()
            raise

    def stop(self) -> None:
        """Disconnect cleanly and join paho's thread. Idempotent.

        The broker keeps a persistent session (and queues for it) after this.
        """
        if not self._started:
            return
        self._shutdown()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- for subclasses ---------------------------------------------------------

    def _await_ready(self, deadline: float) -> None:
        self._wait(self._connack, deadline, "CONNACK")

    def _wait(self, event: threading.Event, deadline: float, what: str) -> None:
        event.wait(max(deadline - time.monotonic(), 0.0))
        if self._startup_error is not None:
            raise BrokerError(self._startup_error)
        if not event.is_set():
            msg = (
                f"MQTT broker at {self.address.netloc} sent no {what} "
                f"within {self._connect_timeout_s}s"
            )
            if what == "CONNACK" and self.protocol is MqttVersion.V5:
                # amqtt (the embedded broker) does not answer an MQTT 5 CONNECT at all.
                msg += (
                    "; a broker that speaks only MQTT 3.1.1 (like the embedded one) may not"
                    " answer MQTT 5: try protocol=MqttVersion.V311"
                )
            raise BrokerError(msg)

    def _fail_startup(self, message: str) -> None:
        """Record why start() must fail and wake it (paho thread)."""
        if self._startup_error is None:
            self._startup_error = message
        self._wake_startup()

    def _wake_startup(self) -> None:
        self._connack.set()

    def _on_connected(self, client: paho.Client, session_present: bool) -> None:
        """Hook run on paho's thread after every accepted CONNACK."""

    def _shutdown(self) -> None:
        self._stopping = True
        try:
            self._client.disconnect()
        except (OSError, ValueError) as exc:  # pragma: no cover - socket already gone
            logger.debug("disconnect of %s failed: %s", self.client_id, exc)
        self._client.loop_stop()
        # A fresh client for the next start(): paho leaks its socket pair when
        # one client is restarted, and dropping the old one now (it and this
        # object refer to each other) closes its sockets at once, not whenever
        # the garbage collector breaks the cycle.
        self._client = self._new_client()
        self._connected = False
        self._started = False
        self._stopping = False

    # -- paho callbacks (paho's network thread) ---------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            reason = str(reason_code)
            if reason == "Unsupported protocol version" and self.protocol is MqttVersion.V5:
                reason += (
                    "; this broker does not speak MQTT 5 (the embedded broker is 3.1.1 only):"
                    " use protocol=MqttVersion.V311"
                )
            message = f"MQTT broker at {self.address.netloc} refused {self.client_id!r}: {reason}"
            if not self._connack.is_set():
                self._fail_startup(message)
            else:
                logger.error("%s; retrying with back-off", message)
            return
        self._connected = True
        self._connects += 1
        if self._connects > 1:
            logger.info(
                "MQTT client %s reconnected to %s (session present: %s)",
                self.client_id,
                self.address.netloc,
                flags.session_present,
            )
        self._on_connected(client, flags.session_present)
        self._connack.set()

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was_connected = self._connected
        self._connected = False
        if self._stopping:
            return
        if not self._connack.is_set():
            self._fail_startup(
                f"MQTT broker at {self.address.netloc} closed the connection of "
                f"{self.client_id!r} before it was ready: {reason_code}"
            )
        elif was_connected:
            logger.warning(
                "MQTT client %s lost its connection to %s (%s); reconnecting with back-off",
                self.client_id,
                self.address.netloc,
                reason_code,
            )


class Subscriber(_Client):
    """A QoS 1 subscriber with a persistent session (docs/PROTOCOL.md, topics).

    MQTT 5 (default): clean start false and a Session Expiry Interval of
    ``session_expiry_s``; MQTT 3.1.1: clean session false (the broker's
    expiry applies). With a stable ``client_id`` a restart loses nothing
    queued while it was away. With ``shared_group`` it subscribes
    ``$share/{group}/{topic}`` so N workers split the messages; each worker
    still needs its own stable ``client_id``.

    ``on_message(topic, payload, received_ms)`` runs on paho's network thread:
    hand off to a queue and return. An exception it raises is logged and
    counted (``callback_errors``), never propagated into paho; the message is
    acknowledged all the same.
    """

    def __init__(
        self,
        *,
        url: str,
        client_id: str,
        topics: Sequence[str],
        on_message: MessageHandler,
        shared_group: str | None = None,
        session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S,
        protocol: MqttVersion = MqttVersion.V5,
        keepalive_s: int = DEFAULT_KEEPALIVE_S,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        reconnect_min_delay_s: int = DEFAULT_RECONNECT_MIN_DELAY_S,
        reconnect_max_delay_s: int = DEFAULT_RECONNECT_MAX_DELAY_S,
    ) -> None:
        if isinstance(topics, str):
            msg = "topics must be a sequence of topic filters, not one string"
            raise BrokerError(msg)
        if not topics or any(not t for t in topics):
            msg = "topics must be a non-empty sequence of non-empty topic filters"
            raise BrokerError(msg)
        if shared_group is not None:
            if not _SHARE_GROUP_RE.match(shared_group):
                msg = f"shared_group {shared_group!r} must be non-empty without '/', '+' or '#'"
                raise BrokerError(msg)
            if any(t.startswith("$share/") for t in topics):
                msg = "give plain topic filters with shared_group, not '$share/…' filters"
                raise BrokerError(msg)
        if not 1 <= session_expiry_s <= _MAX_SESSION_EXPIRY_S:
            msg = (
                f"session_expiry_s must be 1..{_MAX_SESSION_EXPIRY_S} for a persistent session,"
                f" not {session_expiry_s}"
            )
            raise BrokerError(msg)
        self.filters: tuple[str, ...] = tuple(
            f"$share/{shared_group}/{t}" if shared_group is not None else t for t in topics
        )
        self._handler = on_message
        self._suback = threading.Event()
        self._subscribe_mid: int | None = None
        self._messages_received = 0
        self._callback_errors = 0
        super().__init__(
            url=url,
            client_id=client_id,
            protocol=protocol,
            clean_start=False,
            session_expiry_s=session_expiry_s,
            keepalive_s=keepalive_s,
            connect_timeout_s=connect_timeout_s,
            reconnect_min_delay_s=reconnect_min_delay_s,
            reconnect_max_delay_s=reconnect_max_delay_s,
            will=None,
        )

    def _configure(self, client: paho.Client) -> None:
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe

    @property
    def messages_received(self) -> int:
        """Messages handed to ``on_message`` since construction."""
        return self._messages_received

    @property
    def callback_errors(self) -> int:
        """Exceptions raised by ``on_message`` (logged, not propagated)."""
        return self._callback_errors

    def start(self) -> None:
        """Connect, subscribe and wait for CONNACK and SUBACK.

        Raises BrokerError naming ``host:port`` when the broker is unreachable,
        refuses the connection or refuses a subscription.
        """
        self._suback.clear()
        super().start()

    def _await_ready(self, deadline: float) -> None:
        super()._await_ready(deadline)
        self._wait(self._suback, deadline, "SUBACK")

    def _wake_startup(self) -> None:
        super()._wake_startup()
        self._suback.set()

    def _on_connected(self, client: paho.Client, session_present: bool) -> None:
        # Renew the subscription on every connect: harmless when the session
        # is present, and it restores it when the broker lost the session.
        with self._lock:
            result, mid = client.subscribe([(f, 1) for f in self.filters])
            self._subscribe_mid = mid
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:  # pragma: no cover - socket gone meanwhile
            logger.warning("SUBSCRIBE of %s not sent: %s", self.client_id, result)

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._lock:
            if mid != self._subscribe_mid:
                return
        refused = [
            f"{f} ({rc})"
            for f, rc in zip(self.filters, reason_codes, strict=False)
            if rc.is_failure
        ]
        if refused:
            message = (
                f"MQTT broker at {self.address.netloc} refused the subscription of "
                f"{self.client_id!r} to {', '.join(refused)}"
            )
            if not self._suback.is_set():
                self._fail_startup(message)
            else:
                logger.error(message)
            return
        self._suback.set()

    def _on_message(
        self,
        client: paho.Client,
        userdata: Any,
        message: paho.MQTTMessage,
    ) -> None:
        received_ms = time.time_ns() // 1_000_000
        self._messages_received += 1
        try:
            self._handler(message.topic, bytes(message.payload), received_ms)
        except Exception:
            # An exception escaping into paho would end its network thread.
            self._callback_errors += 1
            logger.exception(
                "on_message of %s failed for topic %r; message dropped",
                self.client_id,
                message.topic,
            )


class Publisher(_Client):
    """A thread-safe publisher with a cap on unacknowledged messages.

    ``publish`` blocks while ``max_unacked`` messages await their PUBACK
    (QoS 1) or their write (QoS 0). paho's own queue is unbounded, rescans
    its whole in-flight list on each acknowledgement, and has only 65,535
    message ids; the cap keeps all three harmless. ``flush`` waits until every
    message is acknowledged. QoS 1 messages published while the connection is
    down are kept by paho and sent on reconnect.
    """

    def __init__(
        self,
        *,
        url: str,
        client_id: str,
        protocol: MqttVersion = MqttVersion.V5,
        max_unacked: int = DEFAULT_MAX_UNACKED,
        will: Will | None = None,
        keepalive_s: int = DEFAULT_KEEPALIVE_S,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        reconnect_min_delay_s: int = DEFAULT_RECONNECT_MIN_DELAY_S,
        reconnect_max_delay_s: int = DEFAULT_RECONNECT_MAX_DELAY_S,
    ) -> None:
        if not 1 <= max_unacked <= 65_535:
            msg = f"max_unacked must be 1..65535, not {max_unacked}"
            raise BrokerError(msg)
        self.max_unacked = max_unacked
        self._window = threading.Condition()
        self._pending: dict[int, int] = {}  # mid -> qos, published and not yet acked
        self._acked_early: set[int] = set()  # acked before publish() recorded the mid
        self._reserved = 0  # slots taken: pending + being published
        self._messages_published = 0
        super().__init__(
            url=url,
            client_id=client_id,
            protocol=protocol,
            clean_start=True,
            session_expiry_s=None,
            keepalive_s=keepalive_s,
            connect_timeout_s=connect_timeout_s,
            reconnect_min_delay_s=reconnect_min_delay_s,
            reconnect_max_delay_s=reconnect_max_delay_s,
            will=will,
        )

    def _configure(self, client: paho.Client) -> None:
        client.max_inflight_messages_set(self.max_unacked)
        client.on_publish = self._on_publish
        # A new paho client: what the old one still held is gone (stop() said so).
        with self._window:
            self._pending.clear()
            self._acked_early.clear()
            self._reserved = 0
            self._window.notify_all()

    @property
    def messages_published(self) -> int:
        """Messages acknowledged by the broker (QoS 1) or written (QoS 0)."""
        return self._messages_published

    @property
    def unacked(self) -> int:
        """Messages published and not yet acknowledged or written."""
        with self._window:
            return self._reserved

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        *,
        timeout_s: float = DEFAULT_FLUSH_TIMEOUT_S,
    ) -> None:
        """Publish ``payload`` to ``topic``; safe to call from any thread.

        Blocks while ``max_unacked`` messages are unacknowledged, and raises
        BrokerError if no slot frees up within ``timeout_s`` (broker down or
        too slow), if the client is not started, if the topic is invalid, or
        if a QoS 0 message cannot be written because the connection is down.
        """
        if qos not in (0, 1, 2):
            msg = f"qos must be 0, 1 or 2, not {qos}"
            raise BrokerError(msg)
        if not self._started:
            msg = f"publisher {self.client_id!r} is not started; call start() first"
            raise BrokerError(msg)
        if not topic:
            # paho would send it (MQTT 5 topic aliases); the broker then drops
            # the connection, and paho resends it on every reconnect, forever.
            msg = f"cannot publish to an empty topic on {self.address.netloc}"
            raise BrokerError(msg)
        with self._window:
            if not self._window.wait_for(lambda: self._reserved < self.max_unacked, timeout_s):
                msg = (
                    f"{self._reserved} messages to {self.address.netloc} unacknowledged "
                    f"for {timeout_s}s; is the broker down?"
                )
                raise BrokerError(msg)
            self._reserved += 1
        try:
            info = self._client.publish(topic, payload, qos=qos, retain=retain)
        except (ValueError, TypeError) as exc:
            self._release()
            msg = f"cannot publish to {topic!r} on {self.address.netloc}: {exc}"
            raise BrokerError(msg) from exc
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS and (
            qos == 0 or info.rc != MQTTErrorCode.MQTT_ERR_NO_CONN
        ):
            # Not queued by paho: no acknowledgement will ever come.
            self._release()
            msg = (
                f"message to {topic!r} not sent to {self.address.netloc}: "
                f"{paho.error_string(info.rc)}"
            )
            raise BrokerError(msg)
        with self._window:
            if info.mid in self._acked_early:
                self._acked_early.discard(info.mid)
                self._done_locked()
            else:
                self._pending[info.mid] = qos

    def flush(self, timeout_s: float = DEFAULT_FLUSH_TIMEOUT_S) -> None:
        """Wait until every published message is acknowledged; BrokerError on timeout."""
        with self._window:
            if not self._window.wait_for(lambda: self._reserved == 0, timeout_s):
                msg = (
                    f"{self._reserved} messages to {self.address.netloc} still "
                    f"unacknowledged after {timeout_s}s"
                )
                raise BrokerError(msg)

    def stop(self, flush_timeout_s: float = DEFAULT_FLUSH_TIMEOUT_S) -> None:
        """Wait up to ``flush_timeout_s`` for acknowledgements, then disconnect.

        Messages still unacknowledged then are logged as lost, not raised.
        """
        if not self._started:
            return
        try:
            self.flush(flush_timeout_s)
        except BrokerError as exc:
            logger.warning("stopping publisher %s: %s; they are lost", self.client_id, exc)
        self._shutdown()

    def _release(self) -> None:
        with self._window:
            self._reserved -= 1
            self._window.notify_all()

    def _done_locked(self) -> None:
        self._reserved -= 1
        self._messages_published += 1
        self._window.notify_all()

    def _on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        # Runs under paho's message lock: take only our own lock, briefly.
        if reason_code.is_failure:
            logger.warning("broker refused message %d of %s: %s", mid, self.client_id, reason_code)
        with self._window:
            if self._pending.pop(mid, None) is None:
                self._acked_early.add(mid)
            else:
                self._done_locked()
