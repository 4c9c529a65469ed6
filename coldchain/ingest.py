"""The hand-off between a transport and the :class:`~coldchain.pipeline.Pipeline`.

A transport calls ``submit(topic, payload, received_ms)`` on paho's network
thread; it must return at once. A writer batches the messages and has the
pipeline decode, store and evaluate them. Two writers, one interface
(:class:`IngestWriter`):

::

    Writer          a thread beside paho's. Simple, but paho and the writer
                    share one GIL, so their costs per message add up.
    ProcessWriter   the pipeline in a child process ("spawn"), so paho's
                    network thread has its interpreter to itself. The parent
                    appends to a list; a sender thread ships the list every
                    batch_wait_ms (or at batch_max messages) as one pickled
                    batch over a pipe; the child acknowledges each batch once
                    Pipeline.handle has committed it.

The process hand-off speaks these messages over one duplex pipe::

    parent → child  ("batch", id, [(topic, payload, received_ms), ...])
                    ("call", id, method, args, kwargs)   tick, deliver, handle…
                    ("stop",)
    child → parent  ("ready",) once its pipeline is built, or ("failed", traceback)
                    ("ack", id, messages, counters, alerts)
                    ("reply", id, ok, value or exception, counters, alerts)
                    ("log", LogRecord)                   the child's log records
                    ("stopped", counters)

**Alerts** are raised, stored and counted in the child, then sent back with
the ack or reply; the parent calls its alert sinks (log, MQTT alert topic, the
demo's screen). Sinks stay plain callables with whatever they close over (a
publisher, a rich console inside a live progress bar), the MQTT alert
publisher is one client per process, and the sinks see alerts in the order
the child raised them. Sinks run on the parent's receiver thread: they must
not call back into the writer.

**Failure**: a batch that fails as a whole is dead-lettered by the child,
like the thread writer does. If the child dies, every message it has not
acknowledged (sent, still buffered, or submitted later) is written to the
``fallback_store``'s dead letters, to be replayed (the store ignores
duplicates); the failure is logged at CRITICAL, ``on_failure`` is called,
``drain`` returns False and ``stop`` raises :class:`IngestError`.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing
import pickle
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Literal, Protocol, Self

from coldchain.alerting import Alerting
from coldchain.alerts import Alert
from coldchain.clock import Clock
from coldchain.config import Settings
from coldchain.errors import ColdchainError, ConfigError, IngestError
from coldchain.models import Shipment
from coldchain.pipeline import AlertSink, Counters, Message, Pipeline, dead_letters_for
from coldchain.profiles import ProfileSet
from coldchain.routing import AlertRouting
from coldchain.store import Store, open_store

__all__ = [
    "BATCH_FAILED",
    "UNCONFIRMED",
    "IngestWriter",
    "PipelineFactory",
    "ProcessWriter",
    "Writer",
    "handle_batch",
]

log = logging.getLogger("coldchain.ingest")

BATCH_FAILED = "batch failed to store; replay from dead letters"
UNCONFIRMED = (
    "the ingest process died before confirming this message was stored; "
    "replay it (duplicates are ignored)"
)
MAX_BATCHES_IN_FLIGHT = 2
"""Batches sent to the child and not yet acknowledged: one being handled, one
waiting. While the child is busy the parent's list grows into a bigger batch,
which the child handles at a lower cost per message."""

MAX_BUFFERED_BATCHES = 4
"""Backpressure: once this many batches (of batch_max messages) wait in the
parent, ``submit`` blocks; paho's thread then stops reading and the broker
keeps the rest in the session's queue, instead of this process's memory."""

START_TIMEOUT_S = 300.0
"""Spawning the child and building its pipeline (every open shipment's monitor)."""
STOP_TIMEOUT_S = 60.0
"""For the child to handle what was sent before ``stop``, and exit."""
CALL_TIMEOUT_S = 300.0

_PICKLE = pickle.HIGHEST_PROTOCOL
_CALLS = frozenset({"handle", "tick", "check_silence", "reload_shipments", "deliver"})


class IngestWriter(Protocol):
    """What the runtime needs from a writer, in a thread or in a child process."""

    @property
    def counters(self) -> Counters:
        """The pipeline's counters (in process mode, as of the last acknowledgement)."""
        ...

    def submit(self, topic: str, payload: bytes, received_ms: int) -> None:
        """Take one message; cheap enough for paho's network thread."""
        ...

    def start(self) -> Self: ...

    def stop(self) -> None:
        """Handle everything submitted so far, then stop."""
        ...

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Wait until every message submitted so far is handled; False on timeout or failure."""
        ...

    def handle(self, messages: Sequence[Message]) -> list[Alert]:
        """Handle a batch now (an import, a test), besides the submitted messages."""
        ...

    def tick(self) -> list[Alert]: ...
    def check_silence(self) -> list[Alert]: ...
    def reload_shipments(self) -> list[Alert]: ...
    def deliver(self, shipment_id: str, *, end_ms: int) -> Shipment: ...


def handle_batch(pipeline: Pipeline, batch: Sequence[Message]) -> None:
    """:meth:`Pipeline.handle`; a batch that fails as a whole goes to dead letters."""
    try:
        pipeline.handle(batch)
    except ColdchainError:
        log.exception("batch of %d messages failed; kept in dead letters", len(batch))
    except Exception:
        log.exception("unexpected failure on a batch of %d messages", len(batch))
    else:
        return
    try:
        pipeline.store.add_dead_letters(dead_letters_for(batch, BATCH_FAILED))
    except Exception:
        log.critical("could not even dead-letter %d messages; they are lost", len(batch))
        log.exception("dead-lettering failed")


# -- in a thread ---------------------------------------------------------------------


class Writer:
    """The pipeline in a thread beside the transport's: queue in, batches out.

    ``submit`` only enqueues. Once a message arrives the writer collects for
    ``batch_wait_ms`` (sleeping, so it is not woken once per message) or
    until ``batch_max`` messages, then hands the batch to
    :meth:`Pipeline.handle`. ``monotonic`` and ``sleep`` time that wait
    (a test passes its own, to move time itself).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        batch_max: int,
        batch_wait_ms: int,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.pipeline = pipeline
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_ms / 1000
        self._monotonic = monotonic
        self._sleep = sleep
        self._queue: queue.SimpleQueue[Message | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="coldchain-writer", daemon=True)
        self._idle = threading.Event()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self.on_batch: Callable[[int], None] | None = None
        """Called on the writer thread after each batch with its size (benchmarks, metrics)."""

    @property
    def counters(self) -> Counters:
        return self.pipeline.counters

    def submit(self, topic: str, payload: bytes, received_ms: int) -> None:
        with self._pending_lock:
            self._pending += 1
            self._idle.clear()
        self._queue.put((topic, payload, received_ms))

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Wait until every submitted message has been handled; True when idle."""
        with self._pending_lock:
            if self._pending == 0:
                return True
        return self._idle.wait(timeout_s)

    def handle(self, messages: Sequence[Message]) -> list[Alert]:
        return self.pipeline.handle(messages)

    def tick(self) -> list[Alert]:
        return self.pipeline.tick()

    def check_silence(self) -> list[Alert]:
        return self.pipeline.check_silence()

    def reload_shipments(self) -> list[Alert]:
        return self.pipeline.reload_shipments()

    def deliver(self, shipment_id: str, *, end_ms: int) -> Shipment:
        return self.pipeline.deliver(shipment_id, end_ms=end_ms)

    def _collect(self, first: Message) -> tuple[list[Message], bool]:
        """The batch that starts with ``first``; True when the stop marker was seen."""
        batch = [first]
        deadline = self._monotonic() + self.batch_wait_s
        while len(batch) < self.batch_max:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - self._monotonic()
                if remaining <= 0:
                    break
                # Sleep rather than block on the queue: a blocked get wakes (and
                # takes the GIL from paho's thread) once per message.
                self._sleep(remaining)
                continue
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                break
            batch, stopping = self._collect(item)
            handle_batch(self.pipeline, batch)
            with self._pending_lock:
                self._pending -= len(batch)
                if self._pending == 0:
                    self._idle.set()
            if self.on_batch is not None:
                self.on_batch(len(batch))


# -- in a child process --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PipelineFactory:
    """Builds the child's pipeline: its own store connection, alerting and clock.

    Pickled into the child, so ``clock`` must be picklable. ``profiles``
    default to the settings' (loaded in the child); ``routing`` is the alert
    routing already validated by the parent (None: no notifications queued).
    The store must be a file (or a server): a database in memory cannot be
    shared between processes.
    """

    settings: Settings
    clock: Clock
    profiles: ProfileSet | None = None
    routing: AlertRouting | None = None

    def __post_init__(self) -> None:
        if self.settings.store.url.endswith(":memory:"):
            msg = (
                "a store in memory cannot be shared with the ingest process; "
                'use a store file or [ingest] mode = "thread"'
            )
            raise ConfigError(msg, field="ingest.mode")

    def __call__(self) -> Pipeline:
        store = open_store(self.settings.store.url)
        try:
            profiles = self.profiles or self.settings.load_profiles()
            alerting = Alerting(
                store,
                profiles,
                routing=self.routing,
                api_base_url=self.settings.alerts.api_base_url,
            )
            return Pipeline(store, profiles, self.settings, clock=self.clock, alerting=alerting)
        except BaseException:
            store.close()
            raise


class ProcessWriter:
    """The pipeline in a child process; see the module docstring for the protocol.

    ``factory`` builds the pipeline in the child and must be picklable (e.g.
    :class:`PipelineFactory`). ``alert_sinks`` run in this process, on the
    receiver thread. ``fallback_store`` receives, as dead letters, whatever
    the child did not confirm should it die; ``on_failure`` is then called
    (on the receiver thread) with the error that ``stop`` will raise.
    ``submit`` blocks while ``max_buffered`` messages (default
    ``MAX_BUFFERED_BATCHES * batch_max``) wait to be sent.

    With "spawn" the child imports the parent's ``__main__`` module: a script
    that starts a ProcessWriter (or a Runtime in process mode) needs the
    ``if __name__ == "__main__":`` guard, as every multiprocessing program does.
    """

    def __init__(
        self,
        factory: Callable[[], Pipeline],
        *,
        batch_max: int,
        batch_wait_ms: int,
        alert_sinks: Sequence[AlertSink] = (),
        fallback_store: Store | None = None,
        on_failure: Callable[[IngestError], None] | None = None,
        start_method: Literal["spawn", "forkserver"] = "spawn",
        start_timeout_s: float = START_TIMEOUT_S,
        stop_timeout_s: float = STOP_TIMEOUT_S,
        max_buffered: int | None = None,
    ) -> None:
        if batch_max < 1:
            msg = f"batch_max must be at least 1, not {batch_max}"
            raise ValueError(msg)
        # "fork" is refused: forking a process that runs threads (paho's) is unsafe.
        self._context = (
            multiprocessing.get_context("spawn")
            if start_method == "spawn"
            else multiprocessing.get_context("forkserver")
        )
        self._factory = factory
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_ms / 1000
        self.alert_sinks = list(alert_sinks)
        self._fallback_store = fallback_store
        self._on_failure = on_failure
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self.on_batch: Callable[[int], None] | None = None
        """Called on the receiver thread with the size of each acknowledged batch."""

        self._max_buffered = max_buffered or MAX_BUFFERED_BATCHES * batch_max
        self._buffer: list[Message] = []
        self._lock = threading.Lock()  # _buffer, _submitted, _stopping
        self._room = threading.Condition(self._lock)  # the sender took a batch
        self._submitted = 0
        self._stopping = False
        self._wake = threading.Event()  # the buffer got its first message, or stop
        self._full = threading.Event()  # the buffer holds batch_max messages, or drain/stop
        self._state = threading.Condition()  # the fields below
        self._handled = 0
        self._next_id = 0
        self._in_flight: dict[int, list[Message]] = {}
        self._replies: dict[int, tuple[bool, Any]] = {}
        self._counters = Counters()
        self._failure: IngestError | None = None
        self._dead = False  # the pipe broke before "stopped": nothing more goes in flight
        self._stopped = False  # the child said "stopped"
        self._closed = False  # stop() ran
        self._send_lock = threading.Lock()
        self._conn: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._sender: threading.Thread | None = None
        self._receiver: threading.Thread | None = None

    # -- the interface ---------------------------------------------------------------

    @property
    def counters(self) -> Counters:
        with self._state:
            return self._counters

    @property
    def pid(self) -> int | None:
        """The child's process id once started (for CPU accounting)."""
        return None if self._process is None else self._process.pid

    @property
    def exitcode(self) -> int | None:
        """The child's exit code once it has exited (0 after a clean stop)."""
        return None if self._process is None else self._process.exitcode

    @property
    def failure(self) -> IngestError | None:
        """Why the child died, once it has."""
        with self._state:
            return self._failure

    def submit(self, topic: str, payload: bytes, received_ms: int) -> None:
        # On paho's network thread: about 1 µs. The sender thread does the rest.
        with self._lock:
            if len(self._buffer) >= self._max_buffered:
                self._await_room()
            self._buffer.append((topic, payload, received_ms))
            self._submitted += 1
            size = len(self._buffer)
        if size == 1:
            self._wake.set()
        elif size == self.batch_max:
            self._full.set()

    def _await_room(self) -> None:
        """Backpressure (called holding ``_lock``): wait until the sender takes a batch."""
        if self._sender is None or not self._sender.is_alive():
            return  # not started, or stopped: nothing would make room
        self._full.set()
        self._room.wait_for(lambda: len(self._buffer) < self._max_buffered or self._stopping)

    def start(self) -> Self:
        """Spawn the child and wait until its pipeline is built.

        Raises :class:`IngestError` when the factory cannot be pickled, or the
        child fails to build its pipeline (with the child's traceback).
        """
        if self._process is not None:
            msg = "this ProcessWriter was already started"
            raise IngestError(msg)
        parent_conn, child_conn = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_child_main,
            args=(child_conn, self._factory, logging.getLogger().getEffectiveLevel()),
            name="coldchain-ingest",
        )
        try:
            process.start()
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            parent_conn.close()
            msg = f"cannot start the ingest process: its pipeline factory cannot be pickled ({exc})"
            raise IngestError(msg) from exc
        finally:
            child_conn.close()  # the child holds it now; its death must end our reads
        self._process, self._conn = process, parent_conn
        try:
            self._await_ready(parent_conn, process)
        except BaseException:
            parent_conn.close()
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()
            raise
        self._sender = threading.Thread(
            target=self._send_loop, name="coldchain-ingest-sender", daemon=True
        )
        self._receiver = threading.Thread(
            target=self._receive_loop, name="coldchain-ingest-receiver", daemon=True
        )
        self._receiver.start()
        self._sender.start()
        # Should the interpreter exit without stop(): close the pipe, so the child
        # finishes what it has and exits, and multiprocessing's exit join returns.
        atexit.register(self._abandon)
        return self

    def stop(self) -> None:
        """Send what is buffered, wait until the child has handled it all, and join it.

        Raises :class:`IngestError` if the child died at any point (the
        unconfirmed messages are in the fallback store's dead letters).
        """
        if self._closed or self._process is None:
            return
        if self._sender is None or self._receiver is None:  # pragma: no cover - start failed
            return
        self._closed = True
        with self._lock:
            self._stopping = True
        self._wake.set()
        self._full.set()
        deadline = time.monotonic() + self._stop_timeout_s
        self._sender.join(self._stop_timeout_s)
        self._receiver.join(max(deadline - time.monotonic(), 0.0))
        if self._sender.is_alive() or self._receiver.is_alive():
            log.error(
                "the ingest process did not finish within %.0f s of stop; killing it",
                self._stop_timeout_s,
            )
            self._process.kill()  # the receiver then dead-letters what it did not confirm
            self._receiver.join()
            self._sender.join()
        self._process.join(self._stop_timeout_s)
        if self._process.is_alive():  # pragma: no cover - it said "stopped" or the pipe broke
            self._process.kill()
            self._process.join()
        atexit.unregister(self._abandon)
        if self._conn is not None:
            self._conn.close()
        failure = self.failure
        if failure is not None:
            raise IngestError(str(failure)) from failure

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Wait until the child has acknowledged every message submitted so far."""
        with self._lock:
            target = self._submitted
        self._full.set()  # send now, without waiting out batch_wait_ms
        with self._state:
            self._state.wait_for(
                lambda: self._handled >= target or self._failure is not None, timeout_s
            )
            return self._handled >= target and self._failure is None

    def handle(self, messages: Sequence[Message]) -> list[Alert]:
        value: list[Alert] = self._call("handle", list(messages))
        return value

    def tick(self) -> list[Alert]:
        value: list[Alert] = self._call("tick")
        return value

    def check_silence(self) -> list[Alert]:
        value: list[Alert] = self._call("check_silence")
        return value

    def reload_shipments(self) -> list[Alert]:
        value: list[Alert] = self._call("reload_shipments")
        return value

    def deliver(self, shipment_id: str, *, end_ms: int) -> Shipment:
        value: Shipment = self._call("deliver", shipment_id, end_ms=end_ms)
        return value

    # -- parent side -------------------------------------------------------------------

    def _await_ready(self, conn: Connection, process: multiprocessing.process.BaseProcess) -> None:
        deadline = time.monotonic() + self._start_timeout_s
        while True:
            if not conn.poll(max(deadline - time.monotonic(), 0.0)):
                msg = f"the ingest process did not start within {self._start_timeout_s:.0f} s"
                raise IngestError(msg)
            try:
                message = _loads(conn.recv_bytes())
            except (EOFError, OSError) as exc:
                process.join(5)
                msg = (
                    f"the ingest process exited while starting (exit code {process.exitcode}); "
                    "its output is above"
                )
                raise IngestError(msg) from exc
            if message[0] == "log":
                _relog(message[1])
            elif message[0] == "failed":
                msg = f"the ingest process could not build its pipeline:\n{message[1]}"
                raise IngestError(msg)
            elif message[0] == "ready":
                return

    def _send(self, message: tuple[Any, ...]) -> None:
        assert self._conn is not None
        data = pickle.dumps(message, protocol=_PICKLE)
        with self._send_lock:
            self._conn.send_bytes(data)

    def _send_loop(self) -> None:
        while True:
            self._wake.wait()
            self._full.wait(self.batch_wait_s)  # let the batch fill
            with self._state:  # at most MAX_BATCHES_IN_FLIGHT unacknowledged
                self._state.wait_for(
                    lambda: (
                        len(self._in_flight) < MAX_BATCHES_IN_FLIGHT or self._failure is not None
                    )
                )
            with self._lock:
                batch = self._buffer[: self.batch_max]
                del self._buffer[: self.batch_max]
                left = len(self._buffer)
                stopping = self._stopping
                if left < self.batch_max and not stopping:
                    self._full.clear()
                if not left and not stopping:
                    self._wake.clear()
                self._room.notify_all()
            if batch:
                self._send_batch(batch)
            if stopping and not left:
                break
        with self._state:
            dead = self._dead
        if not dead:
            with contextlib.suppress(OSError):  # the child is gone; the receiver reports it
                self._send(("stop",))

    def _send_batch(self, batch: list[Message]) -> None:
        with self._state:
            dead = self._dead
            if not dead:
                batch_id = self._next_id
                self._next_id += 1
                self._in_flight[batch_id] = batch
        if dead:
            self._rescue(batch)
            return
        with contextlib.suppress(OSError):  # the child is gone: the receiver rescues it
            self._send(("batch", batch_id, batch))

    def _receive_loop(self) -> None:
        assert self._conn is not None
        while True:
            try:
                message = _loads(self._conn.recv_bytes())
            except (EOFError, OSError):
                self._child_gone()
                return
            kind = message[0]
            if kind == "ack":
                _, batch_id, size, counters, alerts = message
                with self._state:
                    self._in_flight.pop(batch_id, None)
                    self._handled += size
                    self._counters = counters
                    self._state.notify_all()
                self._emit(alerts)
                if self.on_batch is not None:
                    try:
                        self.on_batch(size)
                    except Exception:  # the receiver must go on, or drain() would hang
                        log.exception("on_batch of the ingest writer failed")
            elif kind == "reply":
                _, call_id, ok, value, counters, alerts = message
                self._emit(alerts)
                with self._state:
                    self._replies[call_id] = (ok, value)
                    self._counters = counters
                    self._state.notify_all()
            elif kind == "log":
                _relog(message[1])
            elif kind == "stopped":
                with self._state:
                    self._counters = message[1]
                    self._stopped = True
                    self._state.notify_all()
                return

    def _emit(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            for sink in self.alert_sinks:
                try:
                    sink(alert)
                except Exception:  # one failing channel must not stop the others
                    log.exception("alert sink %r failed for %s", sink, alert.id)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with self._state:
            if self._dead:
                raise IngestError(str(self._failure or "the ingest process died"))
            if self._conn is None:
                msg = f"cannot call {method}: the ingest process is not started"
                raise IngestError(msg)
            call_id = self._next_id
            self._next_id += 1
        try:
            self._send(("call", call_id, method, args, kwargs))
        except OSError as exc:
            msg = f"cannot call {method}: the ingest process is gone ({exc})"
            raise IngestError(msg) from exc
        with self._state:
            self._state.wait_for(
                lambda: call_id in self._replies or self._failure is not None, CALL_TIMEOUT_S
            )
            reply = self._replies.pop(call_id, None)
            failure = self._failure
        if reply is None:
            msg = str(failure) if failure else f"no reply to {method} within {CALL_TIMEOUT_S} s"
            raise IngestError(msg)
        ok, value = reply
        if not ok:
            raise value
        return value

    def _child_gone(self) -> None:
        """The pipe broke: a clean stop, or the child died."""
        with self._state:
            if self._stopped:
                return
        assert self._process is not None
        with self._state:
            # From here the sender dead-letters its batches itself, so none is
            # left in flight with nobody to rescue it.
            self._dead = True
            unconfirmed = [m for batch in self._in_flight.values() for m in batch]
            self._in_flight.clear()
        self._process.join(5)
        code = self._process.exitcode
        with self._lock:
            unconfirmed += self._buffer
            self._buffer = []
        where = self._rescue(unconfirmed) if unconfirmed else "none were pending"
        failure = IngestError(
            f"the ingest process (pid {self._process.pid}) died with exit code {code}; "
            f"{len(unconfirmed)} messages were not confirmed as stored: {where}"
        )
        log.critical("%s", failure)
        with self._state:
            self._failure = failure
            self._state.notify_all()
        self._wake.set()  # the sender dead-letters whatever is submitted from now on
        self._full.set()
        if self._on_failure is not None:
            try:
                self._on_failure(failure)
            except Exception:
                log.exception("on_failure of the ingest writer failed")

    def _rescue(self, messages: Sequence[Message]) -> str:
        """Unconfirmed messages to the fallback store's dead letters; says where they went."""
        if self._fallback_store is None:
            log.critical("%d messages are lost: no store to dead-letter them", len(messages))
            return "no fallback store: they are lost"
        try:
            self._fallback_store.add_dead_letters(dead_letters_for(messages, UNCONFIRMED))
        except Exception:
            log.critical("%d messages are lost: dead-lettering them failed", len(messages))
            log.exception("dead-lettering unconfirmed messages failed")
            return "dead-lettering them failed too: they are lost"
        log.warning("%d unconfirmed messages written to dead letters", len(messages))
        return f"they are in dead letters ({UNCONFIRMED!r})"

    def _abandon(self) -> None:
        if self._conn is not None:
            self._conn.close()


# -- the child -------------------------------------------------------------------------


class _PipeLogHandler(logging.Handler):
    """Ships the child's log records to the parent, formatted (the QueueHandler recipe)."""

    def __init__(self, send: Callable[[tuple[Any, ...]], None]) -> None:
        super().__init__()
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record.msg = self.format(record)  # message plus traceback, as text
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
            self._send(("log", record))
        except Exception:
            self.handleError(record)


def _relog(record: logging.LogRecord) -> None:
    logger = logging.getLogger(record.name)
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)


def _loads(data: bytes) -> Any:
    # Both ends are ours: a private pipe between this process and its child.
    return pickle.loads(data)  # noqa: S301


def _portable(exc: Exception) -> Exception:
    """``exc`` if it survives pickling, else an IngestError saying what it was."""
    try:
        pickle.loads(pickle.dumps(exc, protocol=_PICKLE))  # noqa: S301 - our own bytes
    except Exception:
        portable: Exception = IngestError(f"{type(exc).__name__}: {exc}")
    else:
        portable = exc
    portable.add_note("raised in the ingest process:\n" + "".join(traceback.format_exception(exc)))
    return portable


def _child_main(conn: Connection, factory: Callable[[], Pipeline], log_level: int) -> None:
    """The ingest process: build the pipeline, then handle what the parent sends."""
    # The parent decides when to stop: Ctrl-C and a service manager's SIGTERM reach
    # the whole process group, and the parent's shutdown drains us in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def send(message: tuple[Any, ...]) -> None:
        conn.send_bytes(pickle.dumps(message, protocol=_PICKLE))

    root = logging.getLogger()
    root.handlers[:] = [_PipeLogHandler(send)]
    root.setLevel(log_level)
    try:
        pipeline = factory()
    except BaseException:
        send(("failed", traceback.format_exc()))
        return
    raised: list[Alert] = []
    pipeline.alert_sinks.append(raised.append)

    def taken() -> list[Alert]:
        alerts = raised[:]
        raised.clear()
        return alerts

    send(("ready",))
    try:
        while True:
            try:
                message = _loads(conn.recv_bytes())
            except EOFError:  # the parent is gone (or exiting without stop): finish here
                break
            kind = message[0]
            if kind == "batch":
                _, batch_id, batch = message
                handle_batch(pipeline, batch)
                send(("ack", batch_id, len(batch), pipeline.counters, taken()))
            elif kind == "call":
                _, call_id, method, args, kwargs = message
                try:
                    if method not in _CALLS:
                        raise IngestError(f"the ingest process has no call {method!r}")
                    reply = (True, getattr(pipeline, method)(*args, **kwargs))
                except Exception as exc:
                    reply = (False, _portable(exc))
                send(("reply", call_id, *reply, pipeline.counters, taken()))
            elif kind == "stop":
                break
    finally:
        pipeline.store.close()
    with contextlib.suppress(OSError):  # the parent is gone
        send(("stopped", pipeline.counters))
