"""Custody events (docs/DOSSIER.md, custody and shipment details), pure: a courier's payload in, a
validated event out.

A courier's handheld publishes on ``{prefix}/shipments/{shipment_id}/events``
(QoS 1)::

    {"type": "handover", "ts": "2026-11-26T03:00:00Z", "actor": "SkyCold SIN",
     "location": "SIN Changi Airfreight Centre", "note": "seal 004512 intact"}

``type``, ``ts`` (RFC 3339 with a zone, or epoch seconds), ``actor`` and
``location`` are required, ``note`` is optional; ``shipment_id``, when
present, must equal the topic's (a courier speaks for the shipment it
publishes on). Anything else is refused with a reason that goes to the dead
letter. The same event sent twice (QoS 1 redelivery) is one event: identity is
(shipment, type, time, actor, location).

Each type maps to an EPCIS 2.0 business step and disposition (CBV 2.0) for
the dossier's ``epcis.jsonld``: :data:`EPCIS_STEPS`.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import orjson

from coldchain.decoding import parse_ts_ms
from coldchain.errors import DecodeError, NotFoundError
from coldchain.models import Shipment, ShipmentStatus, iso

if TYPE_CHECKING:  # the store imports this module for CustodyEvent
    from coldchain.store import Store

CustodyType = Literal[
    "dispatched",
    "handover",
    "departed",
    "arrived",
    "customs_hold",
    "customs_cleared",
    "delivered",
    "received",
]
CUSTODY_TYPES: tuple[CustodyType, ...] = get_args(CustodyType)

ACTOR_MAX = 120
LOCATION_MAX = 200
NOTE_MAX = 500

EPCIS_STEPS: Mapping[CustodyType, tuple[str, str]] = {
    "dispatched": ("shipping", "in_transit"),
    "handover": ("accepting", "in_transit"),
    "departed": ("departing", "in_transit"),
    "arrived": ("arriving", "in_transit"),
    "customs_hold": ("holding", "unavailable"),
    "customs_cleared": ("inspecting", "in_transit"),
    "delivered": ("unloading", "in_progress"),
    "received": ("receiving", "in_progress"),
}
"""Custody type → (CBV 2.0 bizStep, disposition). ``received`` leaves the product
``in_progress``: it becomes usable only with QA's signed release."""

_FIELDS = frozenset({"type", "ts", "actor", "location", "note", "shipment_id"})


@dataclass(frozen=True, slots=True)
class CustodyEvent:
    """One change or confirmation of custody. Times are epoch ms UTC."""

    shipment_id: str
    type: CustodyType
    ts_ms: int
    actor: str
    location: str
    note: str | None = None
    received_ms: int = 0
    source: str = "mqtt"

    def to_json(self) -> dict[str, Any]:
        step, disposition = EPCIS_STEPS[self.type]
        return {
            "shipment_id": self.shipment_id,
            "type": self.type,
            "at": iso(self.ts_ms),
            "actor": self.actor,
            "location": self.location,
            "note": self.note,
            "received_at": iso(self.received_ms),
            "source": self.source,
            "epcis_biz_step": step,
            "epcis_disposition": disposition,
        }


def _text(doc: Mapping[str, Any], key: str, limit: int, *, required: bool) -> str | None:
    value = doc.get(key)
    if value is None:
        if required:
            raise DecodeError(f"custody event: '{key}' is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise DecodeError(f"custody event: '{key}' must be non-empty text (got {value!r})")
    value = value.strip()
    if len(value) > limit:
        raise DecodeError(f"custody event: '{key}' is longer than {limit} characters")
    if any(ord(c) < 32 and c not in "\t" for c in value):
        raise DecodeError(f"custody event: '{key}' contains control characters")
    return value


def custody_event(
    *,
    shipment_id: str,
    kind: str,
    ts: object,
    actor: object,
    location: object,
    note: object = None,
    received_ms: int,
    source: str = "mqtt",
) -> CustodyEvent:
    """Validate one event's fields (the CLI and the MQTT decoder both come here)."""
    if kind not in CUSTODY_TYPES:
        raise DecodeError(f"custody event: type {kind!r} is not one of {', '.join(CUSTODY_TYPES)}")
    doc = {"actor": actor, "location": location, "note": note}
    ts_ms = parse_ts_ms(ts, field="custody event: ts")
    return CustodyEvent(
        shipment_id=shipment_id,
        type=kind,
        ts_ms=ts_ms,
        actor=_text(doc, "actor", ACTOR_MAX, required=True) or "",
        location=_text(doc, "location", LOCATION_MAX, required=True) or "",
        note=_text(doc, "note", NOTE_MAX, required=False),
        received_ms=received_ms,
        source=source,
    )


def decode_custody_event(payload: bytes, *, shipment_id: str, received_ms: int) -> CustodyEvent:
    """An MQTT custody event (docs/DOSSIER.md, custody and shipment details); raises
    :class:`DecodeError` with the reason."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"custody event: payload is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DecodeError(f"custody event: expected a JSON object, got {type(doc).__name__}")
    unknown = sorted(set(doc) - _FIELDS)
    if unknown:
        raise DecodeError(
            f"custody event: unknown field(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(_FIELDS))}"
        )
    claimed = doc.get("shipment_id")
    if claimed is not None and claimed != shipment_id:
        raise DecodeError(
            f"custody event: shipment_id {claimed!r} differs from the topic's {shipment_id!r}"
        )
    if "type" not in doc:
        raise DecodeError("custody event: 'type' is required")
    if "ts" not in doc:
        raise DecodeError("custody event: 'ts' is required")
    return custody_event(
        shipment_id=shipment_id,
        kind=str(doc["type"]),
        ts=doc["ts"],
        actor=doc.get("actor"),
        location=doc.get("location"),
        note=doc.get("note"),
        received_ms=received_ms,
    )


def record_custody_event(store: Store, event: CustodyEvent, *, now_ms: int) -> bool:
    """Keep a custody event and its audit entry; False when it was already kept.

    The shell shared by the MQTT pipeline and ``coldchain custody add``. An
    event for a shipment that is not registered is refused (dead letter on
    MQTT), so a mistyped id cannot start a phantom custody trail; so is one for
    a closed shipment (:func:`refuse_after_close`).
    """
    try:
        shipment = store.get_shipment(event.shipment_id)
    except NotFoundError:
        raise DecodeError(
            f"custody event: shipment {event.shipment_id!r} is not registered"
        ) from None
    refuse_after_close(shipment, event)
    with store.transaction():
        new = store.add_custody_event(event)
        if new:
            store.audit(
                actor=event.actor,
                action="custody_event",
                entity="shipment",
                entity_id=event.shipment_id,
                ts_ms=now_ms,
                detail=event.to_json(),
            )
    return new


def refuse_after_close(shipment: Shipment, event: CustodyEvent) -> None:
    """Refuse a custody event for a closed shipment (docs/DOSSIER.md, custody after close).

    Closing is the statement that custody ended with the receiving site; the
    dossier and QA's disposition rest on the trail as it stood then. A late
    event is not lost: over MQTT it stays in the dead letters with its payload
    and this reason, for QA to see.
    """
    if shipment.status != ShipmentStatus.CLOSED:
        return
    closed = f" at {iso(shipment.end_ms)}" if shipment.end_ms is not None else ""
    raise DecodeError(
        f"custody event: shipment {shipment.id!r} is closed{closed}; a custody event "
        f"({event.type} at {iso(event.ts_ms)}) cannot be added after close"
    )


def timeline(events: Sequence[CustodyEvent]) -> list[CustodyEvent]:
    """Events in device-time order (ties: docs/DOSSIER.md, custody and shipment details order of
    types, then arrival)."""
    order = {t: i for i, t in enumerate(CUSTODY_TYPES)}
    return sorted(events, key=lambda e: (e.ts_ms, order[e.type], e.received_ms))


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of the journey: ``[start_ms, end_ms)``, in the air/on the road or at a place.

    ``moving`` is True between a ``departed`` and the next ``arrived``.
    """

    start_ms: int
    end_ms: int
    origin: str
    destination: str
    moving: bool

    @property
    def label(self) -> str:
        if self.moving or self.origin != self.destination:
            return f"{self.origin} → {self.destination}"
        return f"at {self.origin}"


def segments(
    events: Sequence[CustodyEvent],
    *,
    start_ms: int,
    end_ms: int,
    origin: str,
    destination: str,
) -> list[Segment]:
    """Split ``[start_ms, end_ms)`` into legs at ``departed`` and ``arrived`` events.

    Each ``departed`` opens a moving leg from its location, the next ``arrived``
    closes it at its location; the time between is spent at a place. An
    ``arrived`` with no departure before it closes a leg from where the
    shipment was. Without such events the whole shipment is one leg,
    ``origin → destination``.
    """
    marks = [e for e in timeline(events) if e.type in {"departed", "arrived"}]
    marks = [e for e in marks if start_ms < e.ts_ms < end_ms]
    if not marks:
        return [Segment(start_ms, end_ms, origin, destination, moving=False)]
    out: list[Segment] = []
    at, since, moving = origin, start_ms, False
    for e in marks:
        if e.type == "departed" and not moving:
            if e.ts_ms > since:
                out.append(Segment(since, e.ts_ms, at, at, moving=False))
            at, since, moving = e.location, e.ts_ms, True
        elif e.type == "arrived":  # without a departure: in transit since the start
            out.append(Segment(since, e.ts_ms, at, e.location, moving=True))
            at, since, moving = e.location, e.ts_ms, False
    last_to = destination if moving else at
    if end_ms > since:
        out.append(Segment(since, end_ms, at, last_to, moving=moving))
    return out


def segment_of(segs: Sequence[Segment], ts_ms: int) -> int:
    """Index of the segment holding ``ts_ms`` (clamped to the first/last)."""
    starts = [s.start_ms for s in segs]
    return max(0, min(len(segs) - 1, bisect.bisect_right(starts, ts_ms) - 1))
