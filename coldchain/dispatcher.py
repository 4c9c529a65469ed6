"""The dispatcher: sends what the outbox owes, at least once (docs/ALERTS.md). A thin shell.

One thread per channel, so a webhook that is down (or slow to time out)
delays only its own notifications, never the MQTT topic's. Each thread
claims the deliveries of its channel that are due (a lease: another
dispatcher on the same store leaves them alone, and a crash mid-send is
retried when the lease ends), sends them, and records each attempt with the
outcome the pure rules give (:func:`coldchain.outbox.after_attempt`):
delivered, retried after an exponential back-off with jitter, or — only
after repeated refusals by the receiver — failed.

It wakes when the pipeline commits new alerts (:meth:`Dispatcher.wake`),
when a retry falls due, and at least every ``poll_s`` (for deliveries queued
by another process, e.g. ``coldchain alerts ack``). Tests drive it without
threads: :meth:`Dispatcher.deliver_due` sends whatever is due at the clock's
``now``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from coldchain.channels import Channel
from coldchain.clock import Clock
from coldchain.errors import DeliveryError
from coldchain.models import iso
from coldchain.outbox import Attempt, Delivery, after_attempt
from coldchain.routing import AlertRouting, RetryPolicy
from coldchain.store import Store

log = logging.getLogger("coldchain.dispatcher")

DEFAULT_LEASE_MS = 60_000
"""How long a claimed delivery is left alone by other dispatchers (longer than any send)."""
DEFAULT_POLL_S = 1.0
DEFAULT_CLAIM_BATCH = 20
DEFAULT_STOP_TIMEOUT_S = 10.0


@dataclass
class DispatchCounters:
    """Attempts since start, by outcome (exported as metrics)."""

    delivered: int = 0
    retried: int = 0
    failed: int = 0


class Dispatcher:
    """Delivers pending notifications through ``channels``; see the module docstring."""

    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel],
        routing: AlertRouting | None,
        *,
        clock: Clock,
        lease_ms: int = DEFAULT_LEASE_MS,
        poll_s: float = DEFAULT_POLL_S,
        claim_batch: int = DEFAULT_CLAIM_BATCH,
    ) -> None:
        self.store = store
        self.channels = dict(channels)
        self.clock = clock
        self.lease_ms = lease_ms
        self.poll_s = poll_s
        self.claim_batch = claim_batch
        configured = routing.channels if routing is not None else {}
        self._policies = {
            name: configured[name].retry if name in configured else RetryPolicy()
            for name in self.channels
        }
        self.counters = DispatchCounters()
        self._wake = {name: threading.Event() for name in self.channels}
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._busy_lock = threading.Condition()

    # -- synchronous core ------------------------------------------------------------

    def deliver_due(self, channel: str | None = None) -> list[Delivery]:
        """Send every delivery due now on ``channel`` (default: all); returns them, updated."""
        done: list[Delivery] = []
        for name in [channel] if channel is not None else list(self.channels):
            while True:
                with self._busy_lock:
                    self._busy += 1
                try:
                    claimed = self.store.claim_deliveries(
                        name,
                        now_ms=self.clock.now_ms(),
                        lease_ms=self.lease_ms,
                        limit=self.claim_batch,
                    )
                    done += [self._attempt(d) for d in claimed]
                finally:
                    with self._busy_lock:
                        self._busy -= 1
                        self._busy_lock.notify_all()
                if len(claimed) < self.claim_batch:
                    break
        return done

    def _attempt(self, delivery: Delivery) -> Delivery:
        channel = self.channels[delivery.channel]
        now = self.clock.now_ms()
        started = time.monotonic()
        ok, permanent, error = True, False, None
        try:
            channel.send(delivery)
        except DeliveryError as exc:
            ok, permanent, error = False, exc.permanent, str(exc)
        except Exception as exc:  # a bug in one channel must not stop the dispatcher
            log.exception("channel %s raised on delivery %s", delivery.channel, delivery.id)
            ok, error = False, f"{type(exc).__name__}: {exc}"
        elapsed = round((time.monotonic() - started) * 1000)
        policy = self._policies[delivery.channel]
        outcome = after_attempt(delivery, policy, ok=ok, permanent=permanent, now_ms=now)
        attempt = Attempt(delivery.attempts + 1, now, ok, error, elapsed)
        self.store.finish_attempt(
            delivery.id,
            attempt,
            status=outcome.status,
            next_attempt_ms=outcome.next_attempt_ms,
            refused=outcome.refused,
        )
        if outcome.status == "delivered":
            self.counters.delivered += 1
        elif outcome.status == "failed":
            self.counters.failed += 1
            log.error(
                "%s notification of alert %s to %s FAILED after %d refusals: %s; "
                "see `coldchain alerts list --json`",
                delivery.event,
                delivery.alert_id,
                delivery.channel,
                delivery.refusals + 1,
                error,
            )
            self.store.audit(
                actor="dispatcher",
                action="alert_delivery_failed",
                entity="alert",
                entity_id=delivery.alert_id,
                ts_ms=now,
                detail={"delivery": delivery.id, "channel": delivery.channel, "error": error},
            )
        else:
            self.counters.retried += 1
            log.warning(
                "%s notification of alert %s to %s failed (attempt %d): %s; retry at %s",
                delivery.event,
                delivery.alert_id,
                delivery.channel,
                attempt.number,
                error,
                iso(outcome.next_attempt_ms),
            )
        return replace(
            delivery,
            status=outcome.status,
            attempts=attempt.number,
            refusals=delivery.refusals + int(outcome.refused),
            next_attempt_ms=outcome.next_attempt_ms,
            delivered_ms=now if ok else delivery.delivered_ms,
            last_error=error,
            history=(*delivery.history, attempt),
        )

    # -- threads ---------------------------------------------------------------------

    def start(self) -> Dispatcher:
        for name in self.channels:
            thread = threading.Thread(
                target=self._run, args=(name,), name=f"coldchain-alerts-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def wake(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        for event in self._wake.values():
            event.set()

    def _run(self, name: str) -> None:
        event = self._wake[name]
        while not self._stopping.is_set():
            event.clear()
            wait = self.poll_s
            try:
                self.deliver_due(name)
                due = self.store.next_due_ms(name)
                if due is not None:
                    wait = min(wait, max(0.0, (due - self.clock.now_ms()) / 1000))
            except Exception:  # the store may be busy or closing; try again at the next poll
                log.exception("dispatcher for channel %s failed; retrying", name)
            event.wait(wait)

    def drain(self, timeout_s: float) -> bool:
        """Wait until nothing is due or being sent; True when drained within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._busy_lock:
                self._busy_lock.wait_for(lambda: self._busy == 0, deadline - time.monotonic())
            now = self.clock.now_ms()
            due = [self.store.next_due_ms(name) for name in self.channels]
            if all(d is None or d > now for d in due):
                with self._busy_lock:
                    if self._busy == 0:
                        return True
            self.wake()
            time.sleep(0.01)
        return False

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        self._stopping.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()
        for channel in self.channels.values():
            channel.close()
