"""The dossier's ``epcis.jsonld``: an EPCIS 2.0 document, pure (docs/DOSSIER.md).

* one ``ObjectEvent`` per custody event, with the CBV 2.0 ``bizStep`` and
  ``disposition`` of :data:`coldchain.custody.EPCIS_STEPS`;
* one ``sensor_reporting`` ``ObjectEvent`` per leg of the journey
  (:func:`coldchain.custody.segments`), whose ``sensorElementList`` holds the
  leg's ``gs1:Temperature`` minimum, maximum and time-weighted mean in ``CEL``,
  and one element with ``exception: ALARM_CONDITION`` per excursion episode
  in that leg (its peak, start and end);
* QA's signed disposition, when there is one (``inspecting``:
  ``conformant`` / ``non_conformant``; quarantine is ``holding``: ``unavailable``).

Identifiers: with GS1 keys on the shipment (``sscc``, ``gtin``) the objects
are GS1 Digital Link URIs; without them, ``urn:coldchain:`` names stand in
(EPCIS accepts any URI). Extension fields use the ``cc:`` prefix declared in
the ``@context``. Custody notes are not published here: they are free text.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from coldchain.custody import EPCIS_STEPS, CustodyEvent, Segment
from coldchain.details import Details
from coldchain.disposition import Disposition
from coldchain.models import Shipment, iso

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
CC_NAMESPACE = "urn:coldchain:epcis:"
URN = "urn:coldchain:"
_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:coldchain:epcis")

DISPOSITION_STEPS: Mapping[str, tuple[str, str]] = {
    "released": ("inspecting", "conformant"),
    "rejected": ("inspecting", "non_conformant"),
    "quarantined": ("holding", "unavailable"),
}


@dataclass(frozen=True, slots=True)
class LegStats:
    """One leg's temperature summary; ``mean_c`` time-weighted like docs/DOSSIER.md's ``mean_c``."""

    segment: Segment
    readings: int
    min_c: float | None
    max_c: float | None
    mean_c: float | None


@dataclass(frozen=True, slots=True)
class Excursion:
    """An episode (docs/EVALUATION.md) for the EPCIS alarm report."""

    direction: str
    limit_c: float
    start_ms: int
    end_ms: int
    peak_c: float
    peak_ms: int


def _urn(kind: str, ident: str) -> str:
    return f"{URN}{kind}:{quote(ident, safe='')}"


def shipment_epc(shipment: Shipment) -> str:
    sscc = Details.of(shipment.extra).get("sscc")
    return f"https://id.gs1.org/00/{sscc}" if sscc else _urn("shipment", shipment.id)


def logger_uri(logger_id: str) -> str:
    return _urn("logger", logger_id)


def _event_id(*parts: object) -> str:
    return f"urn:uuid:{uuid.uuid5(_UUID_NAMESPACE, '|'.join(str(p) for p in parts))}"


def _base(shipment: Shipment, at_ms: int, step: str, disposition: str | None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventTime": iso(at_ms),
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
        "bizStep": step,
    }
    if disposition:
        event["disposition"] = disposition
    event["epcList"] = [shipment_epc(shipment)]
    details = Details.of(shipment.extra)
    gtin = details.get("gtin")
    if gtin and shipment.lot:
        event["quantityList"] = [
            {"epcClass": f"https://id.gs1.org/01/{gtin}/10/{quote(shipment.lot, safe='')}"}
        ]
    transactions = []
    if details.get("awb"):
        transactions.append(
            {"type": "bol", "bizTransaction": _urn("awb", details.get("awb") or "")}
        )
    if transactions:
        event["bizTransactionList"] = transactions
    event["cc:shipmentId"] = shipment.id
    return event


def custody_events(shipment: Shipment, events: Sequence[CustodyEvent]) -> list[dict[str, Any]]:
    out = []
    for e in events:
        step, disposition = EPCIS_STEPS[e.type]
        event = _base(shipment, e.ts_ms, step, disposition)
        event["eventID"] = _event_id(shipment.id, e.type, e.ts_ms, e.actor, e.location)
        event["readPoint"] = {"id": _urn("location", e.location)}
        event["cc:custodyType"] = e.type
        event["cc:actor"] = e.actor
        event["cc:location"] = e.location
        out.append(event)
    return out


def _limit_rule(profile_id: str, x: Excursion) -> str:
    return _urn("profile", profile_id) + f":{x.direction}:{x.limit_c:g}"


def sensor_events(
    shipment: Shipment,
    profile_id: str,
    legs: Sequence[LegStats],
    excursions: Sequence[Excursion],
) -> list[dict[str, Any]]:
    """One ``sensor_reporting`` event per leg, with its alarms (docs/DOSSIER.md)."""
    primary = shipment.loggers[0] if shipment.loggers else "unknown"
    out = []
    for i, leg in enumerate(legs):
        seg = leg.segment
        report: dict[str, Any] = {"type": "gs1:Temperature", "uom": "CEL"}
        if leg.readings:
            report |= {"minValue": leg.min_c, "maxValue": leg.max_c, "meanValue": leg.mean_c}
        elements: list[dict[str, Any]] = [
            {
                "sensorMetadata": {
                    "startTime": iso(seg.start_ms),
                    "endTime": iso(seg.end_ms),
                    "deviceID": logger_uri(primary),
                },
                "sensorReport": [report],
            }
        ]
        for x in excursions:
            if (x.start_ms < seg.end_ms and x.end_ms > seg.start_ms) or (
                x.start_ms == x.end_ms and seg.start_ms <= x.start_ms < seg.end_ms
            ):
                peak = "maxValue" if x.direction == "above" else "minValue"
                elements.append(
                    {
                        "sensorMetadata": {
                            "startTime": iso(max(x.start_ms, seg.start_ms)),
                            "endTime": iso(min(x.end_ms, seg.end_ms)),
                            "deviceID": logger_uri(primary),
                            "bizRules": _limit_rule(profile_id, x),
                        },
                        "sensorReport": [
                            {
                                "type": "gs1:Temperature",
                                "exception": "ALARM_CONDITION",
                                peak: x.peak_c,
                                "time": iso(x.peak_ms),
                                "uom": "CEL",
                            }
                        ],
                    }
                )
        event = _base(shipment, seg.end_ms, "sensor_reporting", None)
        event["eventID"] = _event_id(shipment.id, "leg", i, seg.start_ms, seg.end_ms)
        event["sensorElementList"] = elements
        event["cc:leg"] = seg.label
        event["cc:readings"] = leg.readings
        out.append(event)
    return out


def disposition_event(shipment: Shipment, d: Disposition) -> dict[str, Any]:
    step, disposition = DISPOSITION_STEPS[d.decision]
    event = _base(shipment, d.signature.signed_ms, step, disposition)
    event["eventID"] = _event_id(shipment.id, "disposition", d.signature.record_sha256)
    event["cc:qaDecision"] = d.decision
    event["cc:signatureRecordSha256"] = d.signature.record_sha256
    return event


def epcis_document(
    shipment: Shipment,
    *,
    profile_id: str,
    custody: Sequence[CustodyEvent],
    legs: Sequence[LegStats],
    excursions: Sequence[Excursion],
    disposition: Disposition | None,
    created_ms: int,
) -> dict[str, Any]:
    """The EPCIS 2.0 document, events in time order."""
    timed = [
        (e.ts_ms, ev) for e, ev in zip(custody, custody_events(shipment, custody), strict=True)
    ]
    timed += [
        (leg.segment.end_ms, ev)
        for leg, ev in zip(legs, sensor_events(shipment, profile_id, legs, excursions), strict=True)
    ]
    if disposition is not None:
        timed.append((disposition.signature.signed_ms, disposition_event(shipment, disposition)))
    timed.sort(key=lambda pair: pair[0])
    events = [ev for _, ev in timed]
    return {
        "@context": [EPCIS_CONTEXT, {"cc": CC_NAMESPACE}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": iso(created_ms),
        "id": _event_id(shipment.id, "document", created_ms),
        "epcisBody": {"eventList": events},
    }
