"""Helpers that ship for tests, ours and users': a clock you set, a store in memory.

The store fake is SQLite on ``:memory:``: the real implementation, without a file.
"""

from __future__ import annotations

import threading

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


def memory_store() -> Store:
    """A fresh, empty store in memory."""
    return open_store("sqlite:///:memory:")
