"""The ``Store`` protocol: everything the pipeline keeps (docs/PROTOCOL.md, docs/DOSSIER.md,
docs/ALERTS.md).

The core never sees SQL; it speaks to a :class:`Store`. SQLite is the default
implementation (:mod:`coldchain.store.sqlite`); PostgreSQL will implement the
same protocol. :func:`open_store` picks one from a URL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from coldchain.alerts import Alert
from coldchain.custody import CustodyEvent
from coldchain.errors import ConfigError, StoreError
from coldchain.lifecycle import AlertStatus
from coldchain.models import Reading, Reject, Shipment, ShipmentStatus
from coldchain.outbox import Attempt, Delivery, DeliveryStatus


@dataclass(frozen=True, slots=True)
class Conflict:
    """A second copy of a reading with a different value: the first stays (docs/PROTOCOL.md,
    identity and rejects)."""

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
class Signer:
    """A person who may sign electronically: user id, printed name, scrypt password hash.

    ``password_hash`` is :func:`coldchain.disposition.hash_password`'s output;
    the password itself is never stored.
    """

    name: str
    full_name: str
    password_hash: str
    created_ms: int
    active: bool = True


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit-trail entry; ``prev_hash``/``hash`` chain it (see :mod:`coldchain.audit`)."""

    id: int
    ts_ms: int
    actor: str
    action: str
    entity: str
    entity_id: str
    detail: dict[str, Any]
    prev_hash: str = ""
    hash: str = ""


@dataclass(frozen=True, slots=True)
class BudgetAddBack:
    """Stability budget restored to a lot by a QA decision (docs/EVALUATION.md): who, why, when."""

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
    def list_audit(
        self,
        *,
        entity_id: str | None = None,
        entity_ids: Sequence[str] | None = None,
        entity: str | None = None,
        action: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> list[AuditEntry]:
        """Audit entries, oldest first; each filter given narrows (times inclusive, epoch ms)."""
        ...

    # budget ledger, device files, calibration (issue 3)
    def add_budget_add_back(self, entry: BudgetAddBack) -> None: ...
    def budget_add_backs(self, lot: str) -> list[BudgetAddBack]: ...
    def add_device_file(
        self, shipment_id: str, logger_id: str, *, source: str, text: str, imported_ms: int
    ) -> bool: ...
    def device_files(self, shipment_id: str) -> list[DeviceFileRecord]: ...
    def set_logger_calibration(self, logger_id: str, offset_c: float) -> None: ...
    def logger_calibrations(self) -> dict[str, float]: ...

    # -- custody and audit chain (issue 5) ----------------------------------------
    # ``audit`` chains each entry to the one before it (coldchain.audit);
    # ``list_audit`` returns ``prev_hash`` and ``hash`` with every entry.

    def add_custody_event(self, event: CustodyEvent) -> bool:
        """Store a custody event (docs/DOSSIER.md, custody and shipment details); False when the
        same event is already stored."""
        ...

    def list_custody_events(self, shipment_id: str) -> list[CustodyEvent]:
        """A shipment's custody events, oldest device time first."""
        ...

    def add_signer(self, signer: Signer) -> None:
        """Register an electronic signer (21 CFR Part 11 §11.100); the name must be new."""
        ...

    def get_signer(self, name: str) -> Signer:
        """A registered signer; :class:`~coldchain.errors.NotFoundError` when unknown."""
        ...

    def list_signers(self) -> list[Signer]: ...

    # -- outbox and alert lifecycle (issue 4) ---------------------------------------
    # Deliveries are written in the caller's transaction, beside the alert or the
    # state change that caused them (coldchain.outbox, coldchain.alerting).

    def add_deliveries(self, deliveries: Sequence[Delivery]) -> int:
        """Queue deliveries; ids already queued are ignored. Returns how many were new."""
        ...

    def claim_deliveries(
        self, channel: str, *, now_ms: int, lease_ms: int, limit: int
    ) -> list[Delivery]:
        """Pending deliveries of ``channel`` due by ``now_ms``, oldest first, leased.

        Leasing moves their ``next_attempt_ms`` to ``now_ms + lease_ms``: no other
        dispatcher takes them meanwhile, and one that crashed mid-send is retried
        once the lease ends.
        """
        ...

    def finish_attempt(
        self,
        delivery_id: str,
        attempt: Attempt,
        *,
        status: DeliveryStatus,
        next_attempt_ms: int,
        refused: bool,
    ) -> None:
        """Record one attempt in the delivery's history and its new status."""
        ...

    def list_deliveries(
        self,
        *,
        alert_id: str | None = None,
        shipment_id: str | None = None,
        status: DeliveryStatus | None = None,
        history: bool = False,
    ) -> list[Delivery]:
        """Deliveries, oldest first; with ``history``, each with its attempts."""
        ...

    def count_deliveries_since(self, shipment_id: str, channel: str, *, since_ms: int) -> int:
        """Raised/escalated notifications sent or queued (not held) since ``since_ms``."""
        ...

    def replace_with_digest(self, digest: Delivery, held_ids: Sequence[str]) -> None:
        """Queue ``digest`` and mark the held deliveries it stands for ``digested``."""
        ...

    def next_due_ms(self, channel: str) -> int | None:
        """When the earliest pending delivery of ``channel`` is due; None when none is."""
        ...

    def get_alert_status(self, alert_id: str) -> AlertStatus:
        """Where an alert stands; :class:`~coldchain.errors.NotFoundError` when unknown."""
        ...

    def alert_statuses(self, alert_ids: Sequence[str]) -> dict[str, AlertStatus]: ...

    def set_alert_status(self, alert_id: str, status: AlertStatus, *, ts_ms: int) -> None:
        """Store a new status (and the alert's ``state``); the caller audits the change."""
        ...

    def close(self) -> None: ...


DEFAULT_STORE_FOLDER = Path("var")
"""The default store's folder (``sqlite:///var/coldchain.db``): coldchain may create it."""


def store_path(url: str) -> str:
    """The SQLite path of a store URL (``:memory:`` included); ConfigError for any other form.

    Only the URL's form is checked here (at start, when settings load); whether
    the file and its folder exist is :func:`open_store`'s business.
    """
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not path:
            msg = f"store URL {url!r} names no file; expected sqlite:///path/to.db"
            raise ConfigError(msg)
        return path
    if url.startswith(("postgresql://", "postgres://")):
        msg = "the PostgreSQL store is not implemented yet; use sqlite:///path/to.db"
        raise ConfigError(msg)
    msg = f"unsupported store URL {url!r}; expected sqlite:///path/to.db"
    raise ConfigError(msg)


def open_store(url: str, *, create: bool = True, setting: str = "the store URL") -> Store:
    """Open a store from a URL: ``sqlite:///path/to.db``, ``sqlite:///:memory:``.

    The file's folder must exist (only the default ``var/`` is created). With
    ``create`` False (the read-only commands) the file must exist too: a
    mistyped path is an error, not a new empty store. ``setting`` says where
    the URL came from (``COLDCHAIN_STORE``, ``[store] url in coldchain.toml``),
    for the messages.
    """
    try:
        path = store_path(url)
    except ConfigError as exc:
        raise ConfigError(str(exc), field=setting) from None
    from coldchain.store.sqlite import SqliteStore  # noqa: PLC0415 - keep sqlite at the edge

    if path != ":memory:":
        file = Path(path)
        folder = file.parent
        if file.is_dir():
            msg = f"cannot open SQLite database {path!r}: it is a folder; fix {setting}"
            raise ConfigError(msg)
        if not folder.is_dir():
            if folder.exists():
                msg = f"store folder {folder} is not a folder; fix {setting}"
                raise ConfigError(msg)
            if folder != DEFAULT_STORE_FOLDER:
                msg = f"store folder {folder} does not exist; create it or fix {setting}"
                raise ConfigError(msg)
            if create:
                folder.mkdir(parents=True, exist_ok=True)
        if not create and not file.exists():
            msg = (
                f"store file {file} does not exist: nothing is stored there yet; fix {setting}, "
                "or create data first (coldchain shipment create, coldchain serve)"
            )
            raise ConfigError(msg)
        if not os.access(folder, os.W_OK | os.X_OK):
            msg = (
                f"store folder {folder} is not writable (SQLite keeps its journal beside "
                f"the file); fix its permissions or {setting}"
            )
            raise StoreError(msg)
        if file.exists() and not os.access(file, os.R_OK | os.W_OK):
            msg = (
                f"store file {file} is not readable and writable; fix its permissions or {setting}"
            )
            raise StoreError(msg)
    return SqliteStore(path)


__all__ = [
    "AuditEntry",
    "BudgetAddBack",
    "Conflict",
    "DeadLetter",
    "DeviceFileRecord",
    "InsertResult",
    "Signer",
    "Store",
    "open_store",
    "store_path",
]
