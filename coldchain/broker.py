"""The embedded zero-setup MQTT broker (docs/BROKER.md, "embedded default").

``coldchain demo`` and ``coldchain serve`` start one when ``COLDCHAIN_BROKER``
is unset, so a new user needs nothing but Python. It is amqtt's broker, run in
a daemon thread with its own asyncio event loop, listening on loopback only.

It is for demos, not production: amqtt speaks MQTT 3.1.1 only (no MQTT 5, so
no shared subscriptions and no session expiry property), keeps sessions in
memory, manages about 2,000 QoS 1 messages/s, and can have at most 65,535
messages in flight to one client. Production uses Mosquitto
(``configs/mosquitto/``). Three amqtt defects are worked around here: its
anonymous login disables persistent sessions (:class:`OpenAuthPlugin`), it
silently accepts ``$share/`` filters that never match
(:class:`NoSharedSubscriptionsPlugin`), and it drops what a publisher sent just
before disconnecting (``_RoutingBroker``). Measurements and limits are in
``docs/BROKER.md``.

::

    with EmbeddedBroker() as broker:
        url = broker.url          # "mqtt://127.0.0.1:54321"
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

from coldchain.errors import BrokerError, ListenError

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from amqtt.session import Session

__all__ = [
    "DEFAULT_SESSION_EXPIRY_S",
    "DEFAULT_START_TIMEOUT_S",
    "EmbeddedBroker",
    "check_listen",
]

DEFAULT_START_TIMEOUT_S = 10.0
"""How long :meth:`EmbeddedBroker.start` waits for the port to accept connections."""

DEFAULT_SESSION_EXPIRY_S = 24 * 3600
"""How long the broker keeps an offline persistent session (and its queue), seconds."""

_STOP_TIMEOUT_S = 10.0
_LOGGED_LOOP_ERRORS = 3
_AMQTT_LOGGERS = ("amqtt", "transitions")


class OpenAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt ships no type information
    """Accept every client without marking its session anonymous.

    amqtt's own ``AnonymousAuthPlugin`` flags each session ``is_anonymous``,
    and amqtt then neither queues QoS 1 messages for such a session while it is
    offline nor keeps the session: it is dropped by the next sweep of the
    session monitor (within about a second). That breaks the persistent
    sessions docs/PROTOCOL.md, topics relies on, so the embedded broker uses this plugin
    instead. It listens on loopback only.
    """

    async def authenticate(self, *, session: Session) -> bool | None:
        """Accept the connection (the listener is bound to loopback)."""
        return True


class NoSharedSubscriptionsPlugin(BaseTopicPlugin):  # type: ignore[misc]  # amqtt ships no type information
    """Refuse ``$share/…`` subscriptions instead of accepting them silently.

    amqtt has no shared subscriptions: it would take ``$share/g/t`` as a
    literal filter that never matches, and the subscriber would wait forever.
    Refusing it (SUBACK 0x80) makes ``Subscriber.start()`` fail loudly.
    """

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool:
        """False only for a subscription to a ``$share/`` filter."""
        return not (
            action == Action.SUBSCRIBE and topic is not None and topic.startswith("$share/")
        )


class _RoutingBroker(Broker):  # type: ignore[misc]  # amqtt ships no type information
    """amqtt's broker, fixed to route what a client published before it left.

    amqtt acknowledges a client's QoS 1 PUBLISH when it queues it for routing,
    and routes that queue one message at a time in the client's message loop.
    When the client disconnects, the loop ends and the rest of the queue is
    dropped: a publisher that disconnects right after its last PUBACK loses
    its last messages (measured: up to 40% of a 2,000-message burst). This
    routes them first. It relies on amqtt internals (checked by the tests).
    """

    async def _handle_disconnect(
        self, client_session: Session, handler: Any, disconnect_waiter: asyncio.Future[Any]
    ) -> None:
        queue = client_session.delivered_message_queue
        loop = asyncio.get_running_loop()
        while not queue.empty():
            delivered: asyncio.Future[Any] = loop.create_future()
            delivered.set_result(queue.get_nowait())
            await self._handle_message_delivery(client_session, handler, delivered)
        await super()._handle_disconnect(client_session, handler, disconnect_waiter)

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        """Serve one TCP client, and close its transport when done.

        amqtt leaves some transports open (a connection that closes before
        CONNECT, some take-overs), which surface as ResourceWarnings later.
        """
        try:
            await super().stream_connected(reader, writer, listener_name)
        finally:
            if not writer.is_closing():
                writer.close()


class EmbeddedBroker:
    """An in-process MQTT 3.1.1 broker on ``host:port`` (``port=0``: a free port).

    ``start()`` blocks until the port accepts TCP connections and returns the
    broker URL. ``stop()`` shuts the broker down, ends its thread and closes its
    event loop; it is safe to call twice. Use it as a context manager.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> None:
        if not 0 <= port <= 65535:
            msg = f"port must be 0 (pick a free one) or 1..65535, not {port}"
            raise BrokerError(msg)
        if session_expiry_s < 0:
            msg = f"session_expiry_s must be >= 0, not {session_expiry_s}"
            raise BrokerError(msg)
        self._host = host
        self._requested_port = port
        self._session_expiry_s = session_expiry_s
        self._start_timeout_s = start_timeout_s
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._amqtt: Broker | None = None
        self._ready = threading.Event()
        self._stop_requested = threading.Event()
        self._error: BaseException | None = None
        self._loop_errors = 0

    # -- public API ---------------------------------------------------------

    @property
    def url(self) -> str:
        """``mqtt://host:port`` of the running broker; BrokerError if not started."""
        if self._port is None:
            msg = "the embedded broker is not running; call start() first"
            raise BrokerError(msg)
        return f"mqtt://{_netloc(self._host, self._port)}"

    @property
    def running(self) -> bool:
        """True between a successful ``start()`` and ``stop()``."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> str:
        """Start the broker thread and wait until its port is listening.

        It returns once amqtt's listener is bound and listening, so a client
        may connect at once. (No probe connection is made: amqtt leaks the
        transport of a connection that closes before sending CONNECT.)

        Returns the broker URL. Raises BrokerError if it cannot bind the port or
        does not come up within ``start_timeout_s``.
        """
        if self._thread is not None:
            msg = f"the embedded broker is already started at {self.url}"
            raise BrokerError(msg)
        check_listen(self._host, self._requested_port)
        self._ready.clear()
        self._stop_requested.clear()
        self._error = None
        self._loop_errors = 0
        thread = threading.Thread(target=self._run, name="coldchain-embedded-broker", daemon=True)
        self._thread = thread
        thread.start()
        if not self._ready.wait(self._start_timeout_s) or self._error is not None:
            error = self._error
            self.stop()
            where = f"{self._host}:{self._requested_port}"
            if error is None:
                msg = f"embedded broker did not start on {where} within {self._start_timeout_s}s"
                raise BrokerError(msg)
            cause = _os_error(error)
            if cause is not None:  # lost a race for the port since check_listen
                raise _listen_error(self._host, self._requested_port, cause) from error
            msg = f"embedded broker could not start on {where}: {error}"
            raise BrokerError(msg) from error
        return self.url

    def stop(self) -> None:
        """Shut the broker down and join its thread. Idempotent."""
        thread = self._thread
        if thread is None:
            return
        self._stop_requested.set()
        loop, stop_event = self._loop, self._stop_event
        if loop is not None and stop_event is not None:
            # The loop may already be closed if startup failed.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop_event.set)
        thread.join(_STOP_TIMEOUT_S)
        was_serving = self._port is not None
        self._thread = None
        self._port = None
        if thread.is_alive():
            msg = f"embedded broker thread did not stop within {_STOP_TIMEOUT_S}s"
            raise BrokerError(msg)
        if self._loop_errors > _LOGGED_LOOP_ERRORS:
            logger.warning("embedded broker: %d amqtt internal errors in all", self._loop_errors)
        if self._error is not None and was_serving:
            logger.warning("embedded broker stopped with an error: %r", self._error)

    def sessions(self) -> dict[str, bool]:
        """Client id → connected, for every session the broker holds.

        Offline persistent sessions are listed (False) until they expire; amqtt's
        once-a-second sweep removes offline clean sessions. For tests and
        diagnostics; BrokerError if not running.
        """
        loop, amqtt = self._loop, self._amqtt
        if loop is None or amqtt is None or self._port is None:
            msg = "the embedded broker is not running; call start() first"
            raise BrokerError(msg)

        async def read() -> dict[str, bool]:  # on the broker's loop, which owns the sessions
            return {
                client_id: session.transitions.state == "connected"
                for client_id, (session, _handler) in amqtt.sessions.items()
            }

        return asyncio.run_coroutine_threadsafe(read(), loop).result(_STOP_TIMEOUT_S)

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

    def __repr__(self) -> str:
        state = self.url if self._port is not None else "stopped"
        return f"<EmbeddedBroker {state}>"

    # -- the broker thread --------------------------------------------------

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {
                "default": {"type": "tcp", "bind": f"{self._host}:{self._requested_port}"},
            },
            "session_expiry_interval": self._session_expiry_s,
            # Only our auth plugin: no $SYS publisher, no packet/event loggers.
            "plugins": {
                f"{__name__}.{OpenAuthPlugin.__name__}": {},
                f"{__name__}.{NoSharedSubscriptionsPlugin.__name__}": {},
            },
        }

    def _run(self) -> None:
        _quiet_amqtt_logging()
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # handed to start()/stop() in the caller's thread
            self._error = exc
        finally:
            self._loop = None
            self._stop_event = None
            self._ready.set()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._on_loop_error)
        self._stop_event = asyncio.Event()
        self._loop = loop
        broker = _RoutingBroker(self._config())
        await broker.start()
        self._amqtt = broker
        try:
            self._port = _bound_port(broker)
            self._ready.set()
            if not self._stop_requested.is_set():
                await self._stop_event.wait()
        finally:
            self._amqtt = None
            await broker.shutdown()

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Log amqtt's unhandled task errors without flooding the log.

        Under overload amqtt leaves one failed task per message (e.g. "More
        than 65535 messages pending"); log the first few, count the rest.
        """
        self._loop_errors += 1
        if self._loop_errors <= _LOGGED_LOOP_ERRORS:
            exc = context.get("exception")
            logger.warning(
                "embedded broker (amqtt) internal error: %s%s",
                context.get("message", "unknown"),
                f": {exc!r}" if exc is not None else "",
            )
        elif self._loop_errors == _LOGGED_LOOP_ERRORS + 1:
            logger.warning("embedded broker: further amqtt internal errors are only counted")


def check_listen(host: str, port: int) -> None:
    """Raise ListenError, one line, if nothing could listen on ``host:port`` now.

    Binds (and closes) a socket the way asyncio's server does (``SO_REUSEADDR``),
    so that a busy port is reported before amqtt logs a traceback about it.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        msg = f"cannot listen on {_netloc(host, port)}: unknown host ({exc.strerror})"
        raise ListenError(msg) from exc
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise _listen_error(host, port, exc) from exc


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listen_error(host: str, port: int, exc: OSError) -> ListenError:
    in_use = exc.errno == errno.EADDRINUSE
    reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    if in_use:
        reason += "; is another broker running?"
    return ListenError(f"cannot listen on {_netloc(host, port)}: {reason}", in_use=in_use)


def _os_error(error: BaseException) -> OSError | None:
    """The OSError (bind failure) behind amqtt's startup exception, if any."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _bound_port(broker: Broker) -> int:
    """The TCP port the broker's default listener actually bound (``port=0`` case)."""
    server = broker._servers["default"].instance  # amqtt has no public accessor
    sockets = server.sockets
    port = sockets[0].getsockname()[1]
    return int(port)


def _quiet_amqtt_logging() -> None:
    """amqtt logs every connection at INFO; keep it to WARNING unless the user chose."""
    for name in _AMQTT_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
