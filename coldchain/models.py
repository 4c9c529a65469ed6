"""The project's own data model, shared by every layer.

Times inside the core are integer milliseconds since the Unix epoch, UTC
(``*_ms``): exact to compare, cheap to store and identical in the Python and
polars evaluations. Conversion to aware ``datetime`` happens at the edges
(:func:`ms_to_dt`, :func:`dt_to_ms`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
"""docs/PROTOCOL.md, topics: logger and shipment ids."""

MS_PER_MIN = 60_000


def ms_to_dt(ms: int) -> datetime:
    """Epoch milliseconds (UTC) to an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def dt_to_ms(dt: datetime) -> int:
    """Aware datetime to epoch milliseconds; naive datetimes are refused."""
    if dt.tzinfo is None:
        msg = f"datetime {dt.isoformat()} has no time zone"
        raise ValueError(msg)
    return round(dt.timestamp() * 1000)


def iso(ms: int) -> str:
    """RFC 3339 UTC with a ``Z`` suffix, millisecond precision only when needed."""
    dt = ms_to_dt(ms)
    if ms % 1000:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def valid_id(value: str) -> bool:
    """True when ``value`` is a valid logger or shipment id (docs/PROTOCOL.md, topics)."""
    return bool(ID_PATTERN.match(value))


@dataclass(frozen=True, slots=True)
class Reading:
    """One temperature reading of one logger (docs/PROTOCOL.md).

    ``temp_c`` is the corrected value (raw + the logger's calibration offset);
    ``raw_temp_c`` is what the device sent.
    """

    logger_id: str
    ts_ms: int
    temp_c: float
    seq: int | None = None
    raw_temp_c: float | None = None
    rh_pct: float | None = None
    lat: float | None = None
    lon: float | None = None
    light: float | None = None
    shock_g: float | None = None
    received_ms: int = 0
    source: str = "mqtt"


@dataclass(frozen=True, slots=True)
class Reject:
    """A message or part of one that was not accepted: what goes to dead letters (docs/PROTOCOL.md,
    identity and rejects)."""

    reason: str
    topic: str
    payload: bytes
    received_ms: int
    logger_id: str | None = None


@dataclass(frozen=True, slots=True)
class Decoded:
    """What a telemetry message yielded: accepted readings and rejected parts."""

    logger_id: str
    readings: tuple[Reading, ...]
    rejects: tuple[Reject, ...] = ()
    battery_pct: float | None = None


class ShipmentStatus(StrEnum):
    PLANNED = "planned"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Shipment:
    """A shipment (docs/DOSSIER.md, custody and shipment details). ``loggers`` lists the primary
    logger first.

    Readings belong to loggers; a shipment owns the readings of its loggers
    whose device time lies in ``[start_ms, end_ms]`` (either bound open when
    ``None``). ``end_ms`` is set at delivery and caps the last reading's hold.
    """

    id: str
    product: str
    loggers: tuple[str, ...]
    lot: str | None = None
    origin: str | None = None
    destination: str | None = None
    status: ShipmentStatus = ShipmentStatus.PLANNED
    start_ms: int | None = None
    end_ms: int | None = None
    created_ms: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def lane(self) -> str:
        return f"{self.origin or '?'}→{self.destination or '?'}"
