"""Helpers that ship for tests, ours and users': a clock you set, a store in memory,
an alert channel that keeps what it is sent.

The store fake is SQLite on ``:memory:``: the real implementation, without a file.
"""

from __future__ import annotations

import threading

from coldchain.errors import DeliveryError
from coldchain.outbox import Delivery
from coldchain.store import Store, open_store


class FakeClock:
    """A :class:`~coldchain.clock.Clock` that moves only when told to."""

    def __init__(self, now_ms: int) -> None:
        self._now = now_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._now

    def advance(self, ms: int) -> None:
        with self._lock:
            self._now += ms

    def set(self, now_ms: int) -> None:
        with self._lock:
            self._now = now_ms

    # Picklable, so a Runtime in the default process mode can hand it to the
    # ingest process. That copy keeps the time it had then: advance() here does
    # not reach it; tests that move time under a running pipeline use
    # [ingest] mode = "thread".
    def __getstate__(self) -> int:
        return self.now_ms()

    def __setstate__(self, now_ms: int) -> None:
        self._now = now_ms
        self._lock = threading.Lock()


def memory_store() -> Store:
    """A fresh, empty store in memory."""
    return open_store("sqlite:///:memory:")


class MemoryChannel:
    """A :class:`~coldchain.channels.Channel` that keeps every delivery in ``sent``.

    ``down = True`` makes it fail like an unreachable receiver (transient);
    ``refuse = True`` like a receiver that rejects the message (permanent).
    """

    def __init__(self, name: str = "memory") -> None:
        self._name = name
        self.sent: list[Delivery] = []
        self.down = False
        self.refuse = False
        self.attempts = 0
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    def send(self, delivery: Delivery) -> None:
        with self._lock:
            self.attempts += 1
            if self.down:
                raise DeliveryError("receiver unreachable (simulated)", channel=self._name)
            if self.refuse:
                msg = "receiver refused the message (simulated)"
                raise DeliveryError(msg, channel=self._name, permanent=True)
            self.sent.append(delivery)

    def close(self) -> None:
        """Nothing to release."""
