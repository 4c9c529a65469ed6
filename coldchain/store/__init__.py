"""The ``Store`` protocol: everything the pipeline keeps (SPEC §3.4, §5, §6).

The core never sees SQL; it speaks to a :class:`Store`. SQLite is the default
implementation (:mod:`coldchain.store.sqlite`); PostgreSQL will implement the
same protocol. :func:`open_store` picks one from a URL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from coldchain.alerts import Alert
from coldchain.errors import ConfigError
from coldchain.models import Reading, Reject, Shipment, ShipmentStatus


@dataclass(frozen=True, slots=True)
class Conflict:
    """A second copy of a reading with a different value: the first stays (SPEC §3.4)."""

    kept: Reading
    refused: Reading


@dataclass(frozen=True, slots=True)
class InsertResult:
    """Which readings were new; duplicates were ignored and conflicts recorded."""

    new: tuple[Reading, ...]
    duplicates: int = 0
    conflicts: tuple[Conflict, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    received_ms: int
    topic: str
    logger_id: str | None
    reason: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    ts_ms: int
    actor: str
    action: str
    entity: str
    entity_id: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BudgetAddBack:
    """Stability budget restored to a lot by a QA decision (SPEC §4.3): who, why, when."""

    lot: str
    budget_id: str
    minutes: float
    actor: str
    reason: str
    ts_ms: int
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceFileRecord:
    """An imported logger file kept verbatim: the device's own configuration and summary."""

    shipment_id: str
    logger_id: str
    source: str
    sha256: str
    text: str
    imported_ms: int


class Store(Protocol):
    """Persistence for loggers, shipments, readings, dead letters, alerts and audit."""

    def transaction(self) -> AbstractContextManager[None]:
        """Group writes into one commit (the writer commits once per batch)."""
        ...

    def create_shipment(self, shipment: Shipment) -> None: ...
    def get_shipment(self, shipment_id: str) -> Shipment: ...
    def list_shipments(self, *, status: ShipmentStatus | None = None) -> list[Shipment]: ...
    def update_shipment(self, shipment: Shipment) -> None: ...
    def shipments_for_logger(self, logger_id: str) -> list[Shipment]: ...

    def insert_readings(self, readings: Sequence[Reading]) -> InsertResult: ...
    def readings_for_loggers(
        self, logger_ids: Sequence[str], *, start_ms: int | None = None, end_ms: int | None = None
    ) -> list[Reading]: ...
    def iter_readings(self) -> Iterator[Reading]: ...

    def add_dead_letters(self, rejects: Sequence[Reject]) -> None: ...
    def list_dead_letters(self, *, limit: int = 100) -> list[DeadLetter]: ...
    def count_dead_letters(self) -> int: ...

    def upsert_alert(self, alert: Alert) -> bool:
        """Store a new alert (True) or count a repeat of a known one (False)."""
        ...

    def get_alert(self, alert_id: str) -> Alert: ...
    def list_alerts(
        self, *, shipment_id: str | None = None, state: str | None = None
    ) -> list[Alert]: ...

    def record_logger_status(
        self, logger_id: str, *, ts_ms: int, online: bool | None, battery_pct: float | None
    ) -> None: ...

    def audit(
        self,
        *,
        actor: str,
        action: str,
        entity: str,
        entity_id: str,
        detail: dict[str, Any],
        ts_ms: int,
    ) -> None: ...
    def list_audit(self, *, entity_id: str | None = None) -> list[AuditEntry]: ...

    # budget ledger, device files, calibration (issue 3)
    def add_budget_add_back(self, entry: BudgetAddBack) -> None: ...
    def budget_add_backs(self, lot: str) -> list[BudgetAddBack]: ...
    def add_device_file(
        self, shipment_id: str, logger_id: str, *, source: str, text: str, imported_ms: int
    ) -> bool: ...
    def device_files(self, shipment_id: str) -> list[DeviceFileRecord]: ...
    def set_logger_calibration(self, logger_id: str, offset_c: float) -> None: ...
    def logger_calibrations(self) -> dict[str, float]: ...

    def close(self) -> None: ...


def open_store(url: str) -> Store:
    """Open a store from a URL: ``sqlite:///path/to.db``, ``sqlite:///:memory:``."""
    if url.startswith("sqlite:///"):
        from coldchain.store.sqlite import SqliteStore  # noqa: PLC0415 - keep sqlite at the edge

        path = url.removeprefix("sqlite:///")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return SqliteStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        msg = "the PostgreSQL store is not implemented yet; use sqlite:///path/to.db"
        raise ConfigError(msg, field="COLDCHAIN_STORE")
    msg = f"unsupported store URL {url!r}; expected sqlite:///path/to.db"
    raise ConfigError(msg, field="COLDCHAIN_STORE")


__all__ = [
    "AuditEntry",
    "BudgetAddBack",
    "DeviceFileRecord",
    "Conflict",
    "DeadLetter",
    "InsertResult",
    "Store",
    "open_store",
]
