"""Alerting: routes, lifecycle and escalation of alerts, written to the store (docs/ALERTS.md).

The one place where the pure rules (:mod:`coldchain.routing`,
:mod:`coldchain.notify`, :mod:`coldchain.lifecycle`, :mod:`coldchain.outbox`)
meet the :class:`~coldchain.store.Store`. Every method does its writes in one
store transaction — joining the caller's when there is one, as the pipeline's
batch is — so a change of state, its audit entry and the notifications it owes
are committed together or not at all (the transactional outbox). Sending is
the dispatcher's job (:mod:`coldchain.dispatcher`).

Who hears of what: ``raised`` goes to the channels of the routes that match
the alert; ``escalated``, ``acknowledged`` and ``resolved`` go to the channels
of every route the alert has reached so far (matched, and escalated to), each
channel once and only if it takes that event (by default MQTT takes all,
the others ``raised``, ``escalated`` and ``digest``).

Without a routing (``routing=None``: tests, tools) the lifecycle and audit
work the same and no notification is queued.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

from coldchain.alerts import Alert
from coldchain.errors import NotFoundError
from coldchain.lifecycle import PIPELINE_ACTOR, AlertStatus, acknowledge, clear, escalate, resolve
from coldchain.models import MS_PER_MIN, Shipment, iso
from coldchain.notify import Event, build_notice
from coldchain.outbox import (
    Delivery,
    delivery_id,
    digest_delivery,
    digest_items,
    due_digests,
    is_rate_limited,
    window_ms,
)
from coldchain.profiles import Profile, ProfileSet
from coldchain.routing import (
    AlertRouting,
    EscalationStep,
    Route,
    action_for,
    due_escalations,
    routes_for,
    targets,
)
from coldchain.store import Store

log = logging.getLogger("coldchain.alerting")

SCHEDULER_ACTOR = "scheduler"


@dataclass(frozen=True, slots=True)
class EscalationDone:
    """An escalation just recorded, and how many notifications it queued."""

    alert_id: str
    route: str
    level: int
    deliveries: int


class Alerting:
    """Queue notifications for alerts and move them through their lifecycle."""

    def __init__(
        self,
        store: Store,
        profiles: ProfileSet,
        *,
        routing: AlertRouting | None = None,
        api_base_url: str | None = None,
    ) -> None:
        self.store = store
        self.profiles = profiles
        self.routing = routing
        self.api_base_url = api_base_url

    # -- raising -------------------------------------------------------------------

    def raised(
        self, alert: Alert, *, now_ms: int, shipment: Shipment | None = None
    ) -> list[Delivery]:
        """A new alert was stored: audit it and queue its notifications, in one transaction.

        Call it where the alert was upserted, inside the same transaction: the
        finding and its pending deliveries then commit together.
        """
        with self.store.transaction():
            shipment = shipment or self._shipment(alert.shipment_id)
            routes = self._routes(alert, shipment)
            queued = self._queue(
                alert, AlertStatus(alert.state), "raised", routes, now_ms, shipment=shipment
            )
            self.store.audit(
                actor=PIPELINE_ACTOR,
                action="alert_raised",
                entity="alert",
                entity_id=alert.id,
                ts_ms=now_ms,
                detail={
                    "shipment": alert.shipment_id,
                    "type": alert.type,
                    "severity": alert.severity,
                    "rule": alert.rule,
                    "routes": [r.id for r in routes],
                    "deliveries": {d.channel: d.status for d in queued},
                },
            )
        return queued

    # -- lifecycle -------------------------------------------------------------------

    def acknowledge(self, alert_id: str, *, by: str, comment: str, now_ms: int) -> AlertStatus:
        """An operator takes the alert (docs/ALERTS.md): who, when, comment; stops escalation."""
        with self.store.transaction():
            alert, before = self._current(alert_id)
            after = acknowledge(before, alert_id=alert_id, by=by, comment=comment, now_ms=now_ms)
            self._change(alert, before, after, actor=by, now_ms=now_ms)
        return after

    def resolve(self, alert_id: str, *, by: str, comment: str, now_ms: int) -> AlertStatus:
        """An operator closes the alert, with a comment saying why."""
        with self.store.transaction():
            alert, before = self._current(alert_id)
            after = resolve(before, alert_id=alert_id, by=by, comment=comment, now_ms=now_ms)
            self._change(alert, before, after, actor=by, now_ms=now_ms)
        return after

    def cleared(self, alert_id: str, *, now_ms: int, why: str) -> AlertStatus | None:
        """The alert's condition is over (the pipeline saw it); None for an unknown alert.

        See :mod:`coldchain.lifecycle` for when that resolves it.
        """
        with self.store.transaction():
            try:
                alert, before = self._current(alert_id)
            except NotFoundError:
                return None
            after = clear(before, severity=alert.severity, now_ms=now_ms)
            if after != before:
                self._change(alert, before, after, actor=PIPELINE_ACTOR, now_ms=now_ms, why=why)
        return after

    def _current(self, alert_id: str) -> tuple[Alert, AlertStatus]:
        return self.store.get_alert(alert_id), self.store.get_alert_status(alert_id)

    def _change(
        self,
        alert: Alert,
        before: AlertStatus,
        after: AlertStatus,
        *,
        actor: str,
        now_ms: int,
        why: str | None = None,
    ) -> None:
        self.store.set_alert_status(alert.id, after, ts_ms=now_ms)
        events: list[Event] = []
        if after.acknowledgement is not None and before.acknowledgement is None:
            events.append("acknowledged")
            self._audit(alert, "alert_acknowledged", actor, now_ms, after.acknowledgement.to_json())
        if after.cleared_ms is not None and before.cleared_ms is None:
            detail: dict[str, Any] = {"cleared_at": iso(after.cleared_ms), "why": why}
            self._audit(alert, "alert_cleared", PIPELINE_ACTOR, now_ms, detail)
        if after.resolution is not None and before.resolution is None:
            events.append("resolved")
            res = after.resolution.to_json()
            self._audit(alert, "alert_resolved", after.resolution.by, now_ms, res)
        if self.routing is None:
            return
        shipment = self._shipment(alert.shipment_id)
        routes = self._reached(alert, shipment, after)
        items = {"acknowledged": after.acknowledgement, "resolved": after.resolution}
        for event in events:
            item = items[event]
            detail_doc = item.to_json() if item is not None else None
            self._queue(alert, after, event, routes, now_ms, shipment=shipment, detail=detail_doc)

    def _audit(
        self, alert: Alert, action: str, actor: str, now_ms: int, detail: dict[str, Any]
    ) -> None:
        self.store.audit(
            actor=actor,
            action=action,
            entity="alert",
            entity_id=alert.id,
            ts_ms=now_ms,
            detail={"shipment": alert.shipment_id, **detail},
        )

    # -- escalation and digests (scheduled) ------------------------------------------------

    def escalate_due(self, *, now_ms: int) -> list[EscalationDone]:
        """Escalate every open alert whose ``escalate_after_min`` has passed (docs/ALERTS.md)."""
        if self.routing is None:
            return []
        candidates = [
            a
            for a in self.store.list_alerts(state="open")
            if a.severity in self.routing.escalate_severities
        ]
        statuses = self.store.alert_statuses([a.id for a in candidates])
        shipments: dict[str, Shipment | None] = {}
        done: list[EscalationDone] = []
        for alert in candidates:
            if alert.shipment_id not in shipments:
                shipments[alert.shipment_id] = self._shipment(alert.shipment_id)
            shipment = shipments[alert.shipment_id]
            # decide without a write lock: most checks find nothing due
            if self._steps(alert, shipment, statuses[alert.id], now_ms):
                done += self._escalate(alert, shipment, now_ms)
        return done

    def _steps(
        self, alert: Alert, shipment: Shipment | None, status: AlertStatus, now_ms: int
    ) -> list[EscalationStep]:
        assert self.routing is not None
        return due_escalations(
            self.routing,
            alert,
            shipment,
            state=status.state,
            escalated={e.route: e.at_ms for e in status.escalations},
            now_ms=now_ms,
        )

    def _escalate(
        self, alert: Alert, shipment: Shipment | None, now_ms: int
    ) -> list[EscalationDone]:
        done: list[EscalationDone] = []
        with self.store.transaction():  # re-read inside: an ack may just have landed
            status = self.store.get_alert_status(alert.id)
            for step in self._steps(alert, shipment, status, now_ms):
                status = escalate(
                    status, alert_id=alert.id, route=step.route.id, level=step.level, now_ms=now_ms
                )
                self.store.set_alert_status(alert.id, status, ts_ms=now_ms)
                detail = {
                    "route": step.route.id,
                    "level": step.level,
                    "unacknowledged_min": round((now_ms - alert.detected_ms) / MS_PER_MIN, 1),
                }
                self._audit(alert, "alert_escalated", SCHEDULER_ACTOR, now_ms, detail)
                # the new route, and whoever already had it (a reminder that it moved on)
                queued = self._queue(
                    alert,
                    status,
                    "escalated",
                    [step.route, *self._reached(alert, shipment, status)],
                    now_ms,
                    shipment=shipment,
                    detail=detail,
                    key=f"escalated:{step.route.id}",
                )
                done.append(EscalationDone(alert.id, step.route.id, step.level, len(queued)))
                log.warning(
                    "alert %s unacknowledged for %.0f min: escalated to %s (level %d)",
                    alert.id,
                    detail["unacknowledged_min"],
                    step.route.id,
                    step.level,
                )
        return done

    def release_digests(self, *, now_ms: int) -> int:
        """Send what rate limits held, one digest per shipment and channel; returns how many."""
        if self.routing is None:
            return 0
        routing = self.routing
        windows = {
            name: window_ms(ch.rate_limit)
            for name, ch in routing.channels.items()
            if ch.rate_limit is not None
        }
        held = self.store.list_deliveries(status="held")
        plans = due_digests(held, windows_ms=windows, now_ms=now_ms)
        for plan in plans:
            last = plan.held[-1]
            alert = self.store.get_alert(last.alert_id)
            shipment = self._shipment(alert.shipment_id)
            notice = build_notice(
                alert,
                event="digest",
                shipment=shipment,
                profile=self._profile(shipment),
                api_base_url=self.api_base_url,
                detail=digest_items(plan),
            )
            with self.store.transaction():
                digest = digest_delivery(plan, notice, now_ms=now_ms)
                self.store.replace_with_digest(digest, [d.id for d in plan.held])
        return len(plans)

    # -- queueing ------------------------------------------------------------------------

    def _queue(
        self,
        alert: Alert,
        status: AlertStatus,
        event: Event,
        routes: Sequence[Route],
        now_ms: int,
        *,
        shipment: Shipment | None,
        detail: Any = None,
        key: str | None = None,
    ) -> list[Delivery]:
        if self.routing is None or not routes:
            return []
        routing = self.routing
        notice = build_notice(
            alert.with_state(status.state),
            event=event,
            shipment=shipment,
            profile=self._profile(shipment),
            api_base_url=self.api_base_url,
            action=action_for(routes),
            detail=detail,
        )
        queued: list[Delivery] = []
        for target in targets(routing, routes, event):
            delivery = Delivery(
                id=delivery_id(alert.id, key or event, target.channel),
                alert_id=alert.id,
                shipment_id=alert.shipment_id,
                channel=target.channel,
                route=target.route,
                event=event,
                notice=notice,
                created_ms=now_ms,
                next_attempt_ms=now_ms,
            )
            limit = routing.channels[target.channel].rate_limit
            if limit is not None:
                sent = self.store.count_deliveries_since(
                    alert.shipment_id, target.channel, since_ms=now_ms - window_ms(limit)
                )
                if is_rate_limited(
                    limit, event=event, severity=alert.severity, sent_in_window=sent
                ):
                    delivery = replace(delivery, status="held")
            # one at a time: the next rate-limit count must see this one
            if self.store.add_deliveries([delivery]):
                queued.append(delivery)
        return queued

    def _routes(self, alert: Alert, shipment: Shipment | None) -> list[Route]:
        return [] if self.routing is None else routes_for(self.routing, alert, shipment)

    def _reached(self, alert: Alert, shipment: Shipment | None, status: AlertStatus) -> list[Route]:
        """The routes an alert went to: those it matches, and those it escalated to
        (skipping any removed from the routing file since)."""
        if self.routing is None:
            return []
        known = {r.id: r for r in self.routing.routes}
        escalated = [known[e.route] for e in status.escalations if e.route in known]
        return [*self._routes(alert, shipment), *escalated]

    def _shipment(self, shipment_id: str) -> Shipment | None:
        try:
            return self.store.get_shipment(shipment_id)
        except NotFoundError:
            return None

    def _profile(self, shipment: Shipment | None) -> Profile | None:
        return None if shipment is None else self.profiles.profiles.get(shipment.product)

    # -- reading -------------------------------------------------------------------------

    def records(
        self,
        *,
        shipment_id: str | None = None,
        state: str | None = None,
        alert_ids: Collection[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Alerts as ``coldchain alerts list --json`` shows them (docs/ALERTS.md fields, plus
        acknowledgement, resolution, escalations and each channel's delivery history)."""
        alerts = self.store.list_alerts(shipment_id=shipment_id, state=state)
        if alert_ids is not None:
            alerts = [a for a in alerts if a.id in alert_ids]
        statuses = self.store.alert_statuses([a.id for a in alerts])
        by_alert: dict[str, list[Delivery]] = {}
        for d in self.store.list_deliveries(shipment_id=shipment_id, history=True):
            by_alert.setdefault(d.alert_id, []).append(d)
        return [
            alert_record(a, statuses.get(a.id, AlertStatus(a.state)), by_alert.get(a.id, []))
            for a in alerts
        ]


def alert_record(
    alert: Alert, status: AlertStatus, deliveries: Sequence[Delivery]
) -> dict[str, Any]:
    """One alert's JSON: the alert fields (docs/ALERTS.md), its lifecycle and its deliveries."""
    doc = alert.with_state(status.state).to_json()
    doc.update(status.to_json())
    doc["deliveries"] = [d.to_json() for d in deliveries]
    return doc
