"""MQTT topic names (docs/PROTOCOL.md, topics): pure parsing and building, no networking."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from coldchain.errors import DecodeError
from coldchain.models import valid_id

DEFAULT_PREFIX = "coldchain/v1"

TopicKind = Literal["telemetry", "status", "events", "alerts"]
_LOGGER_KINDS = ("telemetry", "status")
_SHIPMENT_KINDS = ("events", "alerts")


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed coldchain topic: ``{prefix}/loggers/{id}/telemetry`` and friends."""

    kind: TopicKind
    ident: str


def parse_topic(topic: str, *, prefix: str = DEFAULT_PREFIX) -> Topic:
    """Split a topic into its kind and logger or shipment id; invalid ids are refused."""
    head = prefix.rstrip("/") + "/"
    if not topic.startswith(head):
        raise DecodeError(f"topic {topic!r} is not under {head!r}")
    parts = topic[len(head) :].split("/")
    if len(parts) != 3:
        raise DecodeError(f"topic {topic!r} has no form {head}<loggers|shipments>/<id>/<kind>")
    group, ident, kind = parts
    if (group, kind) not in {("loggers", k) for k in _LOGGER_KINDS} | {
        ("shipments", k) for k in _SHIPMENT_KINDS
    }:
        raise DecodeError(f"topic {topic!r}: unknown topic kind {group}/{kind}")
    if not valid_id(ident):
        raise DecodeError(f"topic {topic!r}: id {ident!r} does not match ^[A-Za-z0-9._-]{{1,64}}$")
    return Topic(kind=kind, ident=ident)  # type: ignore[arg-type]  # checked against the sets above


def telemetry_topic(logger_id: str, *, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}/loggers/{logger_id}/telemetry"


def status_topic(logger_id: str, *, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}/loggers/{logger_id}/status"


def alerts_topic(shipment_id: str, *, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}/shipments/{shipment_id}/alerts"


def events_topic(shipment_id: str, *, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}/shipments/{shipment_id}/events"


def subscriptions(*, prefix: str = DEFAULT_PREFIX) -> tuple[str, ...]:
    """Topic filters the pipeline subscribes to."""
    return (
        f"{prefix}/loggers/+/telemetry",
        f"{prefix}/loggers/+/status",
        f"{prefix}/shipments/+/events",
    )
