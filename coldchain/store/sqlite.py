"""SQLite implementation of the :class:`~coldchain.store.Store` protocol.

WAL journal, one connection guarded by a lock, writes batched by the caller
inside :meth:`SqliteStore.transaction`. Readings are deduplicated by their
identity (docs/PROTOCOL.md, identity and rejects): ``(logger, seq)`` when the logger sends a
sequence
number, else ``(logger, device time)``. A batch is staged in a temporary
table and moved with one sorted ``INSERT OR IGNORE … RETURNING``: sorting by
key roughly triples the insert rate, and ``RETURNING`` tells which rows were
new without a look-up per row.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import orjson

from coldchain.alerts import Alert
from coldchain.audit import GENESIS, canonical_detail, entry_hash
from coldchain.custody import CustodyEvent
from coldchain.errors import NotFoundError, ShipmentError, StoreError
from coldchain.lifecycle import AlertStatus
from coldchain.models import Reading, Reject, Shipment, ShipmentStatus
from coldchain.notify import Notice
from coldchain.outbox import Attempt, Delivery, DeliveryStatus
from coldchain.store import (
    AuditEntry,
    BudgetAddBack,
    Conflict,
    DeadLetter,
    DeviceFileRecord,
    InsertResult,
    Signer,
)

DEAD_LETTER_MAX_BYTES = 64 * 1024
"""docs/PROTOCOL.md, identity and rejects: the raw payload is kept up to 64 KiB."""

BY_SEQ = 0
BY_TIME = 1

_READING_COLUMNS = (
    "logger_id, id_kind, id_key, ts_ms, temp_c, raw_temp_c, seq, rh_pct, lat, lon, light, "
    "shock_g, received_ms, source"
)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS loggers (
    id TEXT PRIMARY KEY,
    calibration_offset_c REAL NOT NULL DEFAULT 0,
    last_seen_ms INTEGER,
    online INTEGER,
    battery_pct REAL
);
CREATE TABLE IF NOT EXISTS shipments (
    id TEXT PRIMARY KEY,
    product TEXT NOT NULL,
    loggers TEXT NOT NULL,
    lot TEXT,
    origin TEXT,
    destination TEXT,
    status TEXT NOT NULL,
    start_ms INTEGER,
    end_ms INTEGER,
    created_ms INTEGER NOT NULL,
    extra TEXT NOT NULL DEFAULT '{{}}'
);
CREATE TABLE IF NOT EXISTS shipment_loggers (
    logger_id TEXT NOT NULL,
    shipment_id TEXT NOT NULL REFERENCES shipments(id),
    position INTEGER NOT NULL,
    PRIMARY KEY (logger_id, shipment_id)
);
CREATE TABLE IF NOT EXISTS readings (
    logger_id TEXT NOT NULL,
    id_kind INTEGER NOT NULL,      -- {BY_SEQ}: identified by seq, {BY_TIME}: by device time
    id_key INTEGER NOT NULL,       -- the seq or the device time (epoch ms)
    ts_ms INTEGER NOT NULL,
    temp_c REAL NOT NULL,
    raw_temp_c REAL,
    seq INTEGER,
    rh_pct REAL,
    lat REAL,
    lon REAL,
    light REAL,
    shock_g REAL,
    received_ms INTEGER NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (logger_id, id_kind, id_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS readings_by_time ON readings (logger_id, ts_ms);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    received_ms INTEGER NOT NULL,
    topic TEXT NOT NULL,
    logger_id TEXT,
    reason TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    shipment_id TEXT NOT NULL,
    state TEXT NOT NULL,
    triggered_ms INTEGER NOT NULL,
    doc TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 1,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_by_shipment ON alerts (shipment_id, triggered_ms);
CREATE TABLE IF NOT EXISTS custody_events (
    id INTEGER PRIMARY KEY,
    shipment_id TEXT NOT NULL,
    type TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    actor TEXT,
    location TEXT,
    note TEXT,
    received_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_entity ON audit_log (entity_id, id);
CREATE TABLE IF NOT EXISTS budget_add_backs (
    id INTEGER PRIMARY KEY,
    lot TEXT NOT NULL,
    budget_id TEXT NOT NULL,
    minutes REAL NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    signature TEXT
);
CREATE TABLE IF NOT EXISTS device_files (
    id INTEGER PRIMARY KEY,
    shipment_id TEXT NOT NULL,
    logger_id TEXT NOT NULL,
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    text TEXT NOT NULL,
    imported_ms INTEGER NOT NULL,
    UNIQUE (shipment_id, sha256)
);
-- outbox and alert lifecycle (issue 4)
CREATE TABLE IF NOT EXISTS alert_deliveries (
    id TEXT PRIMARY KEY,            -- from (alert, event, channel): queued once
    alert_id TEXT NOT NULL,
    shipment_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    route TEXT NOT NULL,
    event TEXT NOT NULL,            -- raised, escalated, acknowledged, resolved, digest
    status TEXT NOT NULL,           -- pending, delivered, failed, held, digested
    attempts INTEGER NOT NULL DEFAULT 0,
    refusals INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    delivered_ms INTEGER,
    last_error TEXT,
    digest_id TEXT,
    payload TEXT NOT NULL           -- the notice (coldchain.notify.Notice), JSON
);
CREATE INDEX IF NOT EXISTS deliveries_due ON alert_deliveries (channel, status, next_attempt_ms);
CREATE INDEX IF NOT EXISTS deliveries_by_alert ON alert_deliveries (alert_id);
CREATE INDEX IF NOT EXISTS deliveries_by_shipment
    ON alert_deliveries (shipment_id, channel, created_ms);
CREATE TABLE IF NOT EXISTS alert_delivery_attempts (
    delivery_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    error TEXT,
    elapsed_ms INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_lifecycle (
    alert_id TEXT PRIMARY KEY,
    doc TEXT NOT NULL,              -- coldchain.lifecycle.AlertStatus, JSON
    updated_ms INTEGER NOT NULL
);
"""


def _reading_row(r: Reading) -> tuple[Any, ...]:
    kind, key = (BY_SEQ, r.seq) if r.seq is not None else (BY_TIME, r.ts_ms)
    return (
        r.logger_id,
        kind,
        key,
        r.ts_ms,
        r.temp_c,
        r.raw_temp_c,
        r.seq,
        r.rh_pct,
        r.lat,
        r.lon,
        r.light,
        r.shock_g,
        r.received_ms,
        r.source,
    )


def _row_reading(row: Sequence[Any]) -> Reading:
    return Reading(
        logger_id=row[0],
        ts_ms=row[3],
        temp_c=row[4],
        raw_temp_c=row[5],
        seq=row[6],
        rh_pct=row[7],
        lat=row[8],
        lon=row[9],
        light=row[10],
        shock_g=row[11],
        received_ms=row[12],
        source=row[13],
    )


def _shipment_row(s: Shipment) -> tuple[Any, ...]:
    return (
        s.id,
        s.product,
        orjson.dumps(list(s.loggers)).decode(),
        s.lot,
        s.origin,
        s.destination,
        s.status.value,
        s.start_ms,
        s.end_ms,
        s.created_ms,
        orjson.dumps(s.extra).decode(),
    )


def _row_shipment(row: Sequence[Any]) -> Shipment:
    return Shipment(
        id=row[0],
        product=row[1],
        loggers=tuple(orjson.loads(row[2])),
        lot=row[3],
        origin=row[4],
        destination=row[5],
        status=ShipmentStatus(row[6]),
        start_ms=row[7],
        end_ms=row[8],
        created_ms=row[9],
        extra=orjson.loads(row[10]),
    )


def _row_alert(doc: str, state: str, count: int) -> Alert:
    data = orjson.loads(doc)
    data["state"] = state
    data["count"] = count
    return Alert(**data)


_ENVIRONMENTAL = ("readonly", "disk", "unable to open", "full", "locked", "not a database")


def _is_environmental(exc: sqlite3.Error) -> bool:
    """An error of the file or its surroundings (permissions, disk, lock), not of our SQL."""
    text = str(exc).lower()
    return any(word in text for word in _ENVIRONMENTAL)


def _open_error(path: str, exc: sqlite3.Error) -> str:
    reason = str(exc)
    hint = ""
    if "unable to open" in reason or "readonly" in reason:
        hint = "; are the file and its folder writable?"
    elif "not a database" in reason:
        hint = "; is it a coldchain store?"
    return f"cannot open SQLite database {path!r}: {reason}{hint}"


class SqliteStore:
    """The default store. ``path`` is a file, or ``:memory:`` for tests and tools."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(_open_error(path, exc)) from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit is durable once the WAL is synced at checkpoint;
            # a power cut can lose the last commits but never corrupt the database.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(SCHEMA)
            self._db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS stage "
                f"(ord INTEGER PRIMARY KEY, {_READING_COLUMNS})"
            )
            self._migrate_custody_and_audit_chain()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(_open_error(path, exc)) from exc

    # -- transactions ----------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            outer = self._depth == 0
            if outer:
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    if _is_environmental(exc):
                        raise StoreError(f"store {self.path}: {exc}") from exc
                    raise
            self._depth += 1
            try:
                yield
            except sqlite3.OperationalError as exc:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                if _is_environmental(exc):
                    raise StoreError(f"store {self.path}: {exc}") from exc
                raise
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    # -- shipments -------------------------------------------------------------

    def create_shipment(self, shipment: Shipment) -> None:
        with self.transaction():
            try:
                self._db.execute(
                    "INSERT INTO shipments VALUES (?,?,?,?,?,?,?,?,?,?,?)", _shipment_row(shipment)
                )
            except sqlite3.IntegrityError as exc:
                raise ShipmentError(f"shipment {shipment.id!r} already exists") from exc
            for position, logger in enumerate(shipment.loggers):
                self._db.execute("INSERT OR IGNORE INTO loggers (id) VALUES (?)", (logger,))
                self._db.execute(
                    "INSERT INTO shipment_loggers VALUES (?,?,?)", (logger, shipment.id, position)
                )

    def get_shipment(self, shipment_id: str) -> Shipment:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM shipments WHERE id = ?", (shipment_id,)
            ).fetchone()
        if row is None:
            raise NotFoundError("shipment", shipment_id)
        return _row_shipment(row)

    def list_shipments(self, *, status: ShipmentStatus | None = None) -> list[Shipment]:
        with self._lock:
            if status is None:
                rows = self._db.execute("SELECT * FROM shipments ORDER BY created_ms, id")
            else:
                rows = self._db.execute(
                    "SELECT * FROM shipments WHERE status = ? ORDER BY created_ms, id",
                    (status.value,),
                )
            return [_row_shipment(r) for r in rows.fetchall()]

    def update_shipment(self, shipment: Shipment) -> None:
        with self.transaction():
            cur = self._db.execute(
                "UPDATE shipments SET product=?, loggers=?, lot=?, origin=?, destination=?, "
                "status=?, start_ms=?, end_ms=?, created_ms=?, extra=? WHERE id=?",
                (*_shipment_row(shipment)[1:], shipment.id),
            )
            if cur.rowcount == 0:
                raise NotFoundError("shipment", shipment.id)
            # a logger added to the shipment (``import --logger``) joins the logger index
            for position, logger in enumerate(shipment.loggers):
                self._db.execute("INSERT OR IGNORE INTO loggers (id) VALUES (?)", (logger,))
                self._db.execute(
                    "INSERT INTO shipment_loggers VALUES (?,?,?) ON CONFLICT "
                    "(logger_id, shipment_id) DO UPDATE SET position = excluded.position",
                    (logger, shipment.id, position),
                )

    def shipments_for_logger(self, logger_id: str) -> list[Shipment]:
        with self._lock:
            rows = self._db.execute(
                "SELECT s.* FROM shipments s JOIN shipment_loggers l ON l.shipment_id = s.id "
                "WHERE l.logger_id = ? AND s.status != 'closed' ORDER BY s.created_ms",
                (logger_id,),
            ).fetchall()
        return [_row_shipment(r) for r in rows]

    # -- readings --------------------------------------------------------------

    def insert_readings(self, readings: Sequence[Reading]) -> InsertResult:
        if not readings:
            return InsertResult(())
        rows = [_reading_row(r) for r in readings]
        with self.transaction():
            self._db.executemany(
                f"INSERT INTO temp.stage ({_READING_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            # WHERE true: SQLite needs it to parse INSERT … SELECT … ON CONFLICT / OR IGNORE
            inserted = {
                (row[0], row[1], row[2])
                for row in self._db.execute(
                    f"INSERT OR IGNORE INTO readings ({_READING_COLUMNS}) "
                    f"SELECT {_READING_COLUMNS} FROM temp.stage WHERE true "
                    "ORDER BY logger_id, id_kind, id_key, ord "
                    "RETURNING logger_id, id_kind, id_key"
                ).fetchall()
            }
            self._db.execute("DELETE FROM temp.stage")
            new: list[Reading] = []
            first: dict[tuple[Any, ...], Reading] = {}
            refused: list[tuple[tuple[Any, ...], Reading]] = []
            for reading, row in zip(readings, rows, strict=True):
                ident = row[:3]
                if ident in first:
                    refused.append((ident, reading))
                elif ident in inserted:
                    first[ident] = reading
                    new.append(reading)
                else:
                    refused.append((ident, reading))
            conflicts: list[Conflict] = []
            for ident, reading in refused:
                kept = first.get(ident) or self._existing(ident)
                if kept is not None and (kept.ts_ms, kept.raw_temp_c) != (
                    reading.ts_ms,
                    reading.raw_temp_c,
                ):
                    conflicts.append(Conflict(kept=kept, refused=reading))
            return InsertResult(tuple(new), len(refused) - len(conflicts), tuple(conflicts))

    def _existing(self, ident: tuple[Any, ...]) -> Reading | None:
        row = self._db.execute(
            f"SELECT {_READING_COLUMNS} FROM readings "
            "WHERE logger_id = ? AND id_kind = ? AND id_key = ?",
            ident,
        ).fetchone()
        return None if row is None else _row_reading(row)

    def readings_for_loggers(
        self, logger_ids: Sequence[str], *, start_ms: int | None = None, end_ms: int | None = None
    ) -> list[Reading]:
        if not logger_ids:
            return []
        marks = ",".join("?" * len(logger_ids))
        sql = f"SELECT {_READING_COLUMNS} FROM readings WHERE logger_id IN ({marks})"
        args: list[Any] = list(logger_ids)
        if start_ms is not None:
            sql += " AND ts_ms >= ?"
            args.append(start_ms)
        if end_ms is not None:
            sql += " AND ts_ms <= ?"
            args.append(end_ms)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY ts_ms, logger_id", args).fetchall()
        return [_row_reading(r) for r in rows]

    def iter_readings(self) -> Iterator[Reading]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_READING_COLUMNS} FROM readings ORDER BY logger_id, ts_ms"
            ).fetchall()
        return (_row_reading(r) for r in rows)

    # -- dead letters ------------------------------------------------------------

    def add_dead_letters(self, rejects: Sequence[Reject]) -> None:
        if not rejects:
            return
        with self.transaction():
            self._db.executemany(
                "INSERT INTO dead_letters (received_ms, topic, logger_id, reason, payload) "
                "VALUES (?,?,?,?,?)",
                [
                    (
                        r.received_ms,
                        r.topic,
                        r.logger_id,
                        r.reason,
                        r.payload[:DEAD_LETTER_MAX_BYTES],
                    )
                    for r in rejects
                ],
            )

    def list_dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, received_ms, topic, logger_id, reason, payload FROM dead_letters "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [DeadLetter(*r) for r in rows]

    def count_dead_letters(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT count(*) FROM dead_letters").fetchone()
        return int(n)

    # -- alerts ----------------------------------------------------------------

    def upsert_alert(self, alert: Alert) -> bool:
        doc = orjson.dumps(_alert_fields(alert)).decode()
        with self.transaction():
            cur = self._db.execute(
                "INSERT INTO alerts (id, shipment_id, state, triggered_ms, doc, count, updated_ms) "
                "VALUES (?,?,?,?,?,1,?) ON CONFLICT (id) DO UPDATE SET count = count + 1, "
                "updated_ms = excluded.updated_ms RETURNING count",
                (
                    alert.id,
                    alert.shipment_id,
                    alert.state,
                    alert.triggered_ms,
                    doc,
                    alert.detected_ms,
                ),
            )
            (count,) = cur.fetchone()
        return bool(count == 1)

    def get_alert(self, alert_id: str) -> Alert:
        with self._lock:
            row = self._db.execute(
                "SELECT doc, state, count FROM alerts WHERE id = ?", (alert_id,)
            ).fetchone()
        if row is None:
            raise NotFoundError("alert", alert_id)
        return _row_alert(*row)

    def list_alerts(
        self, *, shipment_id: str | None = None, state: str | None = None
    ) -> list[Alert]:
        sql = "SELECT doc, state, count FROM alerts WHERE 1=1"
        args: list[Any] = []
        if shipment_id is not None:
            sql += " AND shipment_id = ?"
            args.append(shipment_id)
        if state is not None:
            sql += " AND state = ?"
            args.append(state)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY triggered_ms, id", args).fetchall()
        return [_row_alert(*r) for r in rows]

    # -- loggers and audit -------------------------------------------------------

    def record_logger_status(
        self, logger_id: str, *, ts_ms: int, online: bool | None, battery_pct: float | None
    ) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO loggers (id, last_seen_ms, online, battery_pct) VALUES (?,?,?,?) "
                "ON CONFLICT (id) DO UPDATE SET last_seen_ms = max(coalesce(last_seen_ms, 0), "
                "excluded.last_seen_ms), online = coalesce(excluded.online, online), "
                "battery_pct = coalesce(excluded.battery_pct, battery_pct)",
                (logger_id, ts_ms, online, battery_pct),
            )

    def audit(
        self,
        *,
        actor: str,
        action: str,
        entity: str,
        entity_id: str,
        detail: dict[str, Any],
        ts_ms: int,
    ) -> None:
        # Chained to the newest entry inside one write transaction (BEGIN IMMEDIATE),
        # so two writers cannot both chain to the same predecessor (coldchain.audit).
        text = canonical_detail(detail)
        with self.transaction():
            last = self._db.execute(
                "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1"
            ).fetchone()
            seq, prev = (1, GENESIS) if last is None else (last[0] + 1, last[1] or GENESIS)
            digest = entry_hash(
                seq=seq,
                ts_ms=ts_ms,
                actor=actor,
                action=action,
                entity=entity,
                entity_id=entity_id,
                detail_json=text,
                prev_hash=prev,
            )
            self._db.execute(
                "INSERT INTO audit_log (id, ts_ms, actor, action, entity, entity_id, detail, "
                "prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?)",
                (seq, ts_ms, actor, action, entity, entity_id, text, prev, digest),
            )

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
        sql = (
            "SELECT id, ts_ms, actor, action, entity, entity_id, detail, prev_hash, hash "
            "FROM audit_log WHERE true"
        )
        args: list[Any] = []
        for clause, value in (
            ("entity_id = ?", entity_id),
            ("entity = ?", entity),
            ("action = ?", action),
            ("ts_ms >= ?", since_ms),
            ("ts_ms <= ?", until_ms),
        ):
            if value is not None:
                sql += f" AND {clause}"
                args.append(value)
        if entity_ids is not None:
            sql += f" AND entity_id IN ({','.join('?' * len(entity_ids))})"
            args.extend(entity_ids)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        return [_row_audit(r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- budget ledger, device files, calibration (issue 3) ----------------------

    def add_budget_add_back(self, entry: BudgetAddBack) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO budget_add_backs (lot, budget_id, minutes, actor, reason, ts_ms, "
                "signature) VALUES (?,?,?,?,?,?,?)",
                (
                    entry.lot,
                    entry.budget_id,
                    entry.minutes,
                    entry.actor,
                    entry.reason,
                    entry.ts_ms,
                    entry.signature,
                ),
            )

    def budget_add_backs(self, lot: str) -> list[BudgetAddBack]:
        with self._lock:
            rows = self._db.execute(
                "SELECT lot, budget_id, minutes, actor, reason, ts_ms, signature "
                "FROM budget_add_backs WHERE lot = ? ORDER BY id",
                (lot,),
            ).fetchall()
        return [BudgetAddBack(*r) for r in rows]

    def add_device_file(
        self, shipment_id: str, logger_id: str, *, source: str, text: str, imported_ms: int
    ) -> bool:
        """Keep an imported logger file (its text is the device's own record); False if known."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        with self.transaction():
            cur = self._db.execute(
                "INSERT OR IGNORE INTO device_files (shipment_id, logger_id, source, sha256, "
                "text, imported_ms) VALUES (?,?,?,?,?,?)",
                (shipment_id, logger_id, source, digest, text, imported_ms),
            )
        return cur.rowcount == 1

    def device_files(self, shipment_id: str) -> list[DeviceFileRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT shipment_id, logger_id, source, sha256, text, imported_ms "
                "FROM device_files WHERE shipment_id = ? ORDER BY id",
                (shipment_id,),
            ).fetchall()
        return [DeviceFileRecord(*r) for r in rows]

    def set_logger_calibration(self, logger_id: str, offset_c: float) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO loggers (id, calibration_offset_c) VALUES (?, ?) ON CONFLICT (id) "
                "DO UPDATE SET calibration_offset_c = excluded.calibration_offset_c",
                (logger_id, offset_c),
            )

    def logger_calibrations(self) -> dict[str, float]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, calibration_offset_c FROM loggers WHERE calibration_offset_c != 0"
            ).fetchall()
        return {r[0]: float(r[1]) for r in rows}

    # -- custody and audit chain (issue 5) ------------------------------------------

    def _migrate_custody_and_audit_chain(self) -> None:
        """Additive: hash columns on audit_log (older entries chained once), custody
        identity and source, the signer registry."""
        with self.transaction():
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS signers (name TEXT PRIMARY KEY, "
                "full_name TEXT NOT NULL, password_hash TEXT NOT NULL, "
                "created_ms INTEGER NOT NULL, active INTEGER NOT NULL DEFAULT 1)"
            )
            custody_cols = {r[1] for r in self._db.execute("PRAGMA table_info(custody_events)")}
            if "source" not in custody_cols:
                self._db.execute(
                    "ALTER TABLE custody_events ADD COLUMN source TEXT NOT NULL DEFAULT 'mqtt'"
                )
            # One event, however often a courier's app re-sends it (QoS 1).
            self._db.execute(
                "CREATE UNIQUE INDEX IF NOT EXISTS custody_identity ON custody_events "
                "(shipment_id, type, ts_ms, actor, location)"
            )
            audit_cols = {r[1] for r in self._db.execute("PRAGMA table_info(audit_log)")}
            for column in ("prev_hash", "hash"):
                if column not in audit_cols:
                    self._db.execute(f"ALTER TABLE audit_log ADD COLUMN {column} TEXT")
            # Only entries newer than every chained one (written before this version)
            # are chained here: a hash blanked inside the chain is tampering, and
            # must stay visible to `coldchain audit verify`, not be healed.
            (chained_to,) = self._db.execute(
                "SELECT coalesce(max(id), 0) FROM audit_log WHERE hash IS NOT NULL"
            ).fetchone()
            unchained = self._db.execute(
                "SELECT id, ts_ms, actor, action, entity, entity_id, detail, prev_hash, hash "
                "FROM audit_log WHERE id > ? ORDER BY id",
                (chained_to,),
            ).fetchall()
            if unchained:
                before = self._db.execute(
                    "SELECT hash FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT 1",
                    (unchained[0][0],),
                ).fetchone()
                prev = before[0] if before and before[0] else GENESIS
                for row in unchained:
                    entry = _row_audit(row)
                    digest = entry_hash(
                        seq=entry.id,
                        ts_ms=entry.ts_ms,
                        actor=entry.actor,
                        action=entry.action,
                        entity=entry.entity,
                        entity_id=entry.entity_id,
                        detail_json=canonical_detail(entry.detail),
                        prev_hash=prev,
                    )
                    self._db.execute(
                        "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE id = ?",
                        (prev, digest, entry.id),
                    )
                    prev = digest

    def add_custody_event(self, event: CustodyEvent) -> bool:
        with self.transaction():
            cur = self._db.execute(
                "INSERT OR IGNORE INTO custody_events (shipment_id, type, ts_ms, actor, "
                "location, note, received_ms, source) VALUES (?,?,?,?,?,?,?,?)",
                (
                    event.shipment_id,
                    event.type,
                    event.ts_ms,
                    event.actor,
                    event.location,
                    event.note,
                    event.received_ms,
                    event.source,
                ),
            )
        return cur.rowcount == 1

    def list_custody_events(self, shipment_id: str) -> list[CustodyEvent]:
        with self._lock:
            rows = self._db.execute(
                "SELECT shipment_id, type, ts_ms, actor, location, note, received_ms, source "
                "FROM custody_events WHERE shipment_id = ? ORDER BY ts_ms, id",
                (shipment_id,),
            ).fetchall()
        return [CustodyEvent(*r) for r in rows]

    def add_signer(self, signer: Signer) -> None:
        with self.transaction():
            try:
                self._db.execute(
                    "INSERT INTO signers (name, full_name, password_hash, created_ms, active) "
                    "VALUES (?,?,?,?,?)",
                    (
                        signer.name,
                        signer.full_name,
                        signer.password_hash,
                        signer.created_ms,
                        signer.active,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise StoreError(f"signer {signer.name!r} is already registered") from exc

    def get_signer(self, name: str) -> Signer:
        with self._lock:
            row = self._db.execute(
                "SELECT name, full_name, password_hash, created_ms, active FROM signers "
                "WHERE name = ?",
                (name,),
            ).fetchone()
        if row is None:
            raise NotFoundError("signer", name)
        return Signer(row[0], row[1], row[2], row[3], bool(row[4]))

    def list_signers(self) -> list[Signer]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name, full_name, password_hash, created_ms, active FROM signers "
                "ORDER BY name"
            ).fetchall()
        return [Signer(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]

    # -- outbox and alert lifecycle (issue 4) ------------------------------------------

    def add_deliveries(self, deliveries: Sequence[Delivery]) -> int:
        if not deliveries:
            return 0
        marks = ",".join("?" * len(_DELIVERY_COLUMNS.split(",")))
        with self.transaction():
            before = self._db.total_changes
            self._db.executemany(
                f"INSERT OR IGNORE INTO alert_deliveries ({_DELIVERY_COLUMNS}) VALUES ({marks})",
                [_delivery_row(d) for d in deliveries],
            )
            return self._db.total_changes - before

    def claim_deliveries(
        self, channel: str, *, now_ms: int, lease_ms: int, limit: int
    ) -> list[Delivery]:
        with self.transaction():
            rows = self._db.execute(
                "UPDATE alert_deliveries SET next_attempt_ms = ? WHERE id IN ("
                "SELECT id FROM alert_deliveries WHERE channel = ? AND status = 'pending' "
                "AND next_attempt_ms <= ? ORDER BY next_attempt_ms, created_ms, id LIMIT ?) "
                f"RETURNING {_DELIVERY_COLUMNS}",
                (now_ms + lease_ms, channel, now_ms, limit),
            ).fetchall()
        return sorted((_row_delivery(r) for r in rows), key=lambda d: (d.created_ms, d.id))

    def finish_attempt(
        self,
        delivery_id: str,
        attempt: Attempt,
        *,
        status: DeliveryStatus,
        next_attempt_ms: int,
        refused: bool,
    ) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO alert_delivery_attempts VALUES (?,?,?,?,?,?)",
                (
                    delivery_id,
                    attempt.number,
                    attempt.at_ms,
                    attempt.ok,
                    attempt.error,
                    attempt.elapsed_ms,
                ),
            )
            self._db.execute(
                "UPDATE alert_deliveries SET status = ?, attempts = attempts + 1, "
                "refusals = refusals + ?, next_attempt_ms = ?, last_error = ?, "
                "delivered_ms = CASE WHEN ? THEN ? ELSE delivered_ms END WHERE id = ?",
                (
                    status,
                    int(refused),
                    next_attempt_ms,
                    attempt.error,
                    attempt.ok,
                    attempt.at_ms,
                    delivery_id,
                ),
            )

    def list_deliveries(
        self,
        *,
        alert_id: str | None = None,
        shipment_id: str | None = None,
        status: DeliveryStatus | None = None,
        history: bool = False,
    ) -> list[Delivery]:
        where, args = "WHERE 1=1", []
        for column, value in (("alert_id", alert_id), ("shipment_id", shipment_id)):
            if value is not None:
                where += f" AND {column} = ?"
                args.append(value)
        if status is not None:
            where += " AND status = ?"
            args.append(status)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM alert_deliveries {where} ORDER BY created_ms, id",
                args,
            ).fetchall()
            attempts: dict[str, list[Attempt]] = {}
            if history and rows:
                for r in self._db.execute(
                    "SELECT delivery_id, attempt, ts_ms, ok, error, elapsed_ms "
                    "FROM alert_delivery_attempts WHERE delivery_id IN "
                    f"(SELECT id FROM alert_deliveries {where}) ORDER BY delivery_id, attempt",
                    args,
                ):
                    attempt = Attempt(r[1], r[2], bool(r[3]), r[4], r[5])
                    attempts.setdefault(r[0], []).append(attempt)
        return [
            replace(d, history=tuple(attempts.get(d.id, ()))) if history else d
            for d in map(_row_delivery, rows)
        ]

    def count_deliveries_since(self, shipment_id: str, channel: str, *, since_ms: int) -> int:
        with self._lock:
            (n,) = self._db.execute(
                "SELECT count(*) FROM alert_deliveries WHERE shipment_id = ? AND channel = ? "
                "AND created_ms > ? AND event IN ('raised', 'escalated') "
                "AND status NOT IN ('held', 'digested')",
                (shipment_id, channel, since_ms),
            ).fetchone()
        return int(n)

    def replace_with_digest(self, digest: Delivery, held_ids: Sequence[str]) -> None:
        with self.transaction():
            self.add_deliveries([digest])
            self._db.executemany(
                "UPDATE alert_deliveries SET status = 'digested', digest_id = ? "
                "WHERE id = ? AND status = 'held'",
                [(digest.id, i) for i in held_ids],
            )

    def next_due_ms(self, channel: str) -> int | None:
        with self._lock:
            (due,) = self._db.execute(
                "SELECT min(next_attempt_ms) FROM alert_deliveries "
                "WHERE channel = ? AND status = 'pending'",
                (channel,),
            ).fetchone()
        return None if due is None else int(due)

    def get_alert_status(self, alert_id: str) -> AlertStatus:
        statuses = self.alert_statuses([alert_id])
        if alert_id not in statuses:
            raise NotFoundError("alert", alert_id)
        return statuses[alert_id]

    def alert_statuses(self, alert_ids: Sequence[str]) -> dict[str, AlertStatus]:
        found: dict[str, AlertStatus] = {}
        ids = list(dict.fromkeys(alert_ids))
        with self._lock:
            for i in range(0, len(ids), 500):  # below SQLite's limit on bound parameters
                chunk = ids[i : i + 500]
                rows = self._db.execute(
                    "SELECT a.id, a.state, l.doc FROM alerts a LEFT JOIN alert_lifecycle l "
                    f"ON l.alert_id = a.id WHERE a.id IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                for alert_id, state, doc in rows:
                    found[alert_id] = (
                        AlertStatus.from_doc(orjson.loads(doc)) if doc else AlertStatus(state)
                    )
        return found

    def set_alert_status(self, alert_id: str, status: AlertStatus, *, ts_ms: int) -> None:
        with self.transaction():
            cur = self._db.execute(
                "UPDATE alerts SET state = ?, updated_ms = ? WHERE id = ?",
                (status.state, ts_ms, alert_id),
            )
            if cur.rowcount == 0:
                raise NotFoundError("alert", alert_id)
            self._db.execute(
                "INSERT INTO alert_lifecycle (alert_id, doc, updated_ms) VALUES (?,?,?) "
                "ON CONFLICT (alert_id) DO UPDATE SET doc = excluded.doc, "
                "updated_ms = excluded.updated_ms",
                (alert_id, orjson.dumps(status.to_doc()).decode(), ts_ms),
            )


_DELIVERY_COLUMNS = (
    "id, alert_id, shipment_id, channel, route, event, status, attempts, refusals, "
    "created_ms, next_attempt_ms, delivered_ms, last_error, digest_id, payload"
)


def _delivery_row(d: Delivery) -> tuple[Any, ...]:
    return (
        d.id,
        d.alert_id,
        d.shipment_id,
        d.channel,
        d.route,
        d.event,
        d.status,
        d.attempts,
        d.refusals,
        d.created_ms,
        d.next_attempt_ms,
        d.delivered_ms,
        d.last_error,
        d.digest_id,
        orjson.dumps(d.notice.to_doc()).decode(),
    )


def _row_delivery(r: Sequence[Any]) -> Delivery:
    return Delivery(
        id=r[0],
        alert_id=r[1],
        shipment_id=r[2],
        channel=r[3],
        route=r[4],
        event=r[5],
        status=r[6],
        attempts=r[7],
        refusals=r[8],
        created_ms=r[9],
        next_attempt_ms=r[10],
        delivered_ms=r[11],
        last_error=r[12],
        digest_id=r[13],
        notice=Notice.from_doc(orjson.loads(r[14])),
    )


def _row_audit(r: Sequence[Any]) -> AuditEntry:
    try:
        detail = orjson.loads(r[6])
    except orjson.JSONDecodeError:  # edited by hand: keep it visible, and its hash wrong
        detail = {"unreadable_detail": r[6]}
    if not isinstance(detail, dict):
        detail = {"unreadable_detail": r[6]}
    return AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], detail, r[7] or "", r[8] or "")


def _alert_fields(alert: Alert) -> dict[str, Any]:
    fields = {name: getattr(alert, name) for name in Alert.__slots__}
    fields.pop("state")
    fields.pop("count")
    return fields
