"""Conflicting readings of a shipment, pure: audit entries in, one row per refused value out.

A second reading with the reading identity of a stored one (same logger and
``seq``, or same logger and device time) but another value is refused: the
first stays, and the pipeline records the refused copy in the audit log as a
``reading_conflict`` entry of the logger. The evaluation counts them
(``conflicts``) and the dossier lists them, so a refused excursion value is
never seen only by someone reading the audit table.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from coldchain.models import Shipment, dt_to_ms, iso
from coldchain.store import AuditEntry

ACTION = "reading_conflict"
"""The audit action of a refused conflicting reading (coldchain.pipeline)."""


def reading_conflicts(entries: Iterable[AuditEntry], shipment: Shipment) -> list[dict[str, Any]]:
    """The distinct conflicts on the shipment's loggers within its window, oldest device time
    first.

    The same refused value imported twice is one conflict (its first record is kept).
    """
    loggers = set(shipment.loggers)
    found: dict[tuple[str, int, Any, Any], tuple[int, dict[str, Any]]] = {}
    for e in entries:
        if e.action != ACTION or e.entity != "logger" or e.entity_id not in loggers:
            continue
        kept, refused = e.detail.get("kept"), e.detail.get("refused")
        if not isinstance(kept, dict) or not isinstance(refused, dict):
            continue
        try:
            ts_ms = dt_to_ms(datetime.fromisoformat(str(refused["ts"])))
        except (KeyError, ValueError):
            continue
        if shipment.start_ms is not None and ts_ms < shipment.start_ms:
            continue
        if shipment.end_ms is not None and ts_ms > shipment.end_ms:
            continue
        key = (e.entity_id, ts_ms, refused.get("seq"), refused.get("temp_c"))
        found.setdefault(
            key,
            (
                ts_ms,
                {
                    "logger_id": e.entity_id,
                    "ts": iso(ts_ms),
                    "seq": refused.get("seq"),
                    "kept_c": kept.get("temp_c"),  # raw, as the logger sent them
                    "refused_c": refused.get("temp_c"),
                    "recorded_at": iso(e.ts_ms),
                    "audit_id": e.id,
                },
            ),
        )
    rows = sorted(found.values(), key=lambda c: (c[0], c[1]["logger_id"], c[1]["audit_id"]))
    return [row for _, row in rows]
