"""The tamper-evident audit trail, pure: hashing and checking the chain.

Every audit entry carries the SHA-256 of the entry before it (``prev_hash``)
and its own hash over its sequence number, time, actor, action, entity, the
canonical JSON of its detail and ``prev_hash``::

    hash(n) = SHA-256("coldchain-audit/1" ␟ n ␟ ts_ms ␟ actor ␟ action ␟ entity
                      ␟ entity_id ␟ canonical(detail) ␟ hash(n-1))

Editing any field of an entry changes its hash; removing an entry breaks the
next entry's ``prev_hash`` (and leaves a hole in the numbering); re-hashing
everything after an edit is possible only for someone who can write the
database, and is caught by an *anchor*: a (sequence, hash) pair kept
somewhere else, such as ``audit_head`` in a signed dossier's manifest.
Removing the newest entries leaves a valid shorter chain: only an anchor
newer than the cut shows it. :func:`verify_chain` checks all of this.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from coldchain.models import iso
from coldchain.store import AuditEntry

GENESIS = "0" * 64
"""``prev_hash`` of the first entry."""

_SEP = "\x1f"  # unit separator: cannot occur in canonical JSON, ids or names we store
_DOMAIN = "coldchain-audit/1"


def canonical_detail(detail: Mapping[str, Any]) -> str:
    """The detail as stored and hashed: JSON with sorted keys, no whitespace."""
    return orjson.dumps(detail, option=orjson.OPT_SORT_KEYS).decode()


def entry_hash(
    *,
    seq: int,
    ts_ms: int,
    actor: str,
    action: str,
    entity: str,
    entity_id: str,
    detail_json: str,
    prev_hash: str,
) -> str:
    """SHA-256 (hex) of one entry, chained to ``prev_hash``."""
    text = _SEP.join(
        (_DOMAIN, str(seq), str(ts_ms), actor, action, entity, entity_id, detail_json, prev_hash)
    )
    return hashlib.sha256(text.encode()).hexdigest()


def hash_of(entry: AuditEntry) -> str:
    """Recompute ``entry``'s hash from its fields."""
    return entry_hash(
        seq=entry.id,
        ts_ms=entry.ts_ms,
        actor=entry.actor,
        action=entry.action,
        entity=entry.entity,
        entity_id=entry.entity_id,
        detail_json=canonical_detail(entry.detail),
        prev_hash=entry.prev_hash,
    )


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """One thing wrong with the chain, at entry ``entry_id`` (None: the chain as a whole)."""

    entry_id: int | None
    reason: str

    def __str__(self) -> str:
        where = f"audit entry #{self.entry_id}" if self.entry_id is not None else "audit trail"
        return f"{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What :func:`verify_chain` found; ``ok`` when no problem."""

    entries: int
    head_id: int | None
    head_hash: str
    problems: tuple[ChainProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(
    entries: Sequence[AuditEntry], *, anchors: Sequence[tuple[int, str]] = ()
) -> ChainReport:
    """Check a whole audit trail, oldest first (docs/DOSSIER.md ``audit.json``; issue: tamper
    evidence).

    Finds edited entries (hash differs from the fields), removed or reordered
    entries (``prev_hash`` or numbering broken) and, with ``anchors`` —
    (entry id, hash) pairs recorded elsewhere — entries removed from the end
    or a chain rebuilt after an edit.
    """
    problems: list[ChainProblem] = []
    prev = GENESIS
    expected_id = 1
    by_id: dict[int, str] = {}
    for entry in entries:
        if entry.id != expected_id:
            missing = (
                f"entry #{expected_id} is missing (removed)"
                if entry.id == expected_id + 1
                else f"entries #{expected_id}..#{entry.id - 1} are missing (removed)"
            )
            if entry.id > expected_id:
                problems.append(ChainProblem(entry.id, missing))
            else:
                problems.append(ChainProblem(entry.id, "out of order or duplicated"))
        if entry.prev_hash != prev:
            problems.append(
                ChainProblem(
                    entry.id,
                    "prev_hash does not match the entry before it "
                    "(an entry before it was removed, inserted or edited)",
                )
            )
        actual = hash_of(entry)
        if not entry.hash:
            problems.append(ChainProblem(entry.id, "has no hash (its hash was removed)"))
        elif actual != entry.hash:
            problems.append(
                ChainProblem(
                    entry.id,
                    f"content does not match its hash ({entry.action} on {entry.entity} "
                    f"{entry.entity_id!r} was edited after it was written)",
                )
            )
        prev = entry.hash
        by_id[entry.id] = entry.hash
        expected_id = entry.id + 1
    for anchor_id, anchor_hash in anchors:
        found = by_id.get(anchor_id)
        if found is None:
            problems.append(
                ChainProblem(
                    anchor_id,
                    "recorded in a signed anchor but no longer in the trail (removed)",
                )
            )
        elif found != anchor_hash:
            problems.append(
                ChainProblem(anchor_id, "differs from its signed anchor (the chain was rebuilt)")
            )
    head = entries[-1] if entries else None
    return ChainReport(
        entries=len(entries),
        head_id=head.id if head else None,
        head_hash=head.hash if head else GENESIS,
        problems=tuple(problems),
    )


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    """One entry as ``audit.json`` shows it (times RFC 3339 UTC)."""
    return {
        "id": entry.id,
        "at": iso(entry.ts_ms),
        "actor": entry.actor,
        "action": entry.action,
        "entity": entry.entity,
        "entity_id": entry.entity_id,
        "detail": entry.detail,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }
