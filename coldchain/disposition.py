"""QA disposition and budget add-backs, signed electronically (docs/EVALUATION.md; 21 CFR Part 11).

QA's decision on a shipment — ``released``, ``rejected`` or ``quarantined`` —
and any restoration of stability budget are *signed records*:

* **Re-authentication** (§11.200(a)): each signature needs the signer's id
  and password, checked against a scrypt hash in the local signer registry
  (``coldchain signer add``). Five failed attempts in a row lock the signer
  until an administrator unlocks them; every failure is in the audit trail
  (§11.300(d)). Production should authenticate against the organisation's
  identity provider instead; the registry is the minimal stand-in.
* **Manifestation** (§11.50): the printed name, the date and time with its
  zone, and the meaning of the signature appear with the record, in the
  dossier PDF and in the audit log.
* **Linking** (§11.70): the signed record includes the SHA-256 of the
  evaluation the signer saw (``evaluated_at`` left out), and the audit entry
  that holds the signature is hash-chained (:mod:`coldchain.audit`), so a
  signature cannot be moved to another record unnoticed.

The pure parts (hashing, manifestation, reading dispositions back from the
audit trail) take no clock and no store; :func:`sign_disposition` and
:func:`sign_add_back` are thin shells over a :class:`~coldchain.store.Store`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, get_args
from zoneinfo import ZoneInfo

import orjson

from coldchain.errors import NotFoundError, SigningError
from coldchain.models import iso, ms_to_dt

if TYPE_CHECKING:  # the store imports nothing from here; keep it that way
    from coldchain.store import AuditEntry, Store

Decision = Literal["released", "rejected", "quarantined"]
DECISIONS: tuple[Decision, ...] = get_args(Decision)

SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_MAXMEM = 64 * 1024 * 1024
SALT_BYTES = 16
MIN_PASSWORD_CHARS = 10
MAX_FAILURES = 5
"""Consecutive failed signature attempts that lock a signer (§11.300(d))."""
MEANING_MIN_CHARS = 5
MEANING_MAX_CHARS = 500
OVERRIDE_VERDICTS = frozenset({"FAIL", "REVIEW"})
"""System verdicts that a release must override explicitly, with a signed reason."""

ACTION_DISPOSITION = "disposition_signed"
ACTION_ADD_BACK = "budget_add_back_signed"
ACTION_REFUSED = "signature_refused"
ACTION_SIGNER_ADDED = "signer_added"
ACTION_SIGNER_UNLOCKED = "signer_unlocked"

_SIGNER_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


# -- passwords -------------------------------------------------------------------------


def hash_password(password: str, *, salt: bytes) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64); the caller supplies a random ``salt``."""
    digest = hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=SCRYPT_MAXMEM,
        dklen=32,
    )
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against :func:`hash_password`'s output."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=SCRYPT_MAXMEM,
            dklen=32,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, base64.b64decode(digest))


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        msg = f"the password must have at least {MIN_PASSWORD_CHARS} characters"
        raise SigningError(msg)


def check_signer_name(name: str) -> str:
    if not _SIGNER_NAME.match(name):
        msg = (
            f"signer id {name!r}: 2-64 characters of a-z, 0-9, '.', '_' and '-' "
            "(e.g. a.tan); the printed name goes in --full-name"
        )
        raise SigningError(msg)
    return name


def check_meaning(meaning: str) -> str:
    text = " ".join(meaning.split())
    if not MEANING_MIN_CHARS <= len(text) <= MEANING_MAX_CHARS:
        msg = (
            f"--meaning must say what the signature means in {MEANING_MIN_CHARS}-"
            f"{MEANING_MAX_CHARS} characters (e.g. 'Released for infusion after review of "
            "the temperature record')"
        )
        raise SigningError(msg)
    return text


def check_override(decision: str, verdict: str, override: str | None) -> str | None:
    """The reason for releasing against the system verdict, normalised; refuse what is unsaid.

    Releasing a shipment whose verdict is FAIL or REVIEW needs ``--override-verdict
    REASON``; the reason is part of the signed record. An override where nothing is
    overridden (any other decision or verdict) is refused too, so a signed record
    never claims one.
    """
    needed = decision == "released" and verdict in OVERRIDE_VERDICTS
    if override is None:
        if needed:
            msg = (
                f"the system verdict is {verdict}: releasing it overrides the verdict; "
                'say why with --override-verdict "REASON" (e.g. \'Stability study STB-114 '
                "covers the excursion'), which is signed with the disposition and shown in "
                "the dossier"
            )
            raise SigningError(msg)
        return None
    if not needed:
        msg = (
            f"--override-verdict is only for releasing a shipment whose verdict is FAIL or "
            f"REVIEW (this one: verdict {verdict}, decision {decision})"
        )
        raise SigningError(msg)
    text = " ".join(override.split())
    if not MEANING_MIN_CHARS <= len(text) <= MEANING_MAX_CHARS:
        msg = (
            f"--override-verdict must give the reason in {MEANING_MIN_CHARS}-"
            f"{MEANING_MAX_CHARS} characters"
        )
        raise SigningError(msg)
    return text


# -- records and manifestation -----------------------------------------------------------


def evaluation_digest(evaluation_json: Mapping[str, Any]) -> str:
    """SHA-256 of an evaluation, ``evaluated_at`` left out: equal when the findings are."""
    doc = {k: v for k, v in evaluation_json.items() if k != "evaluated_at"}
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


def record_digest(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()


def local_time(ms: int, zone: str) -> str:
    """``2026-11-28 14:03:12 +08:00 (Asia/Singapore)``: date and time with its zone."""
    dt: datetime = ms_to_dt(ms).astimezone(ZoneInfo(zone))
    offset = dt.strftime("%z")
    return f"{dt:%Y-%m-%d %H:%M:%S} {offset[:3]}:{offset[3:]} ({zone})"


@dataclass(frozen=True, slots=True)
class Manifestation:
    """§11.50: printed name, date and time with zone, meaning; plus what was signed."""

    signer: str  # user id
    printed_name: str
    signed_ms: int
    zone: str
    meaning: str
    record_sha256: str

    @property
    def when(self) -> str:
        return local_time(self.signed_ms, self.zone)

    def text(self) -> str:
        return (
            f"Electronically signed by {self.printed_name} ({self.signer}) on {self.when}. "
            f"Meaning: {self.meaning}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "signer": self.signer,
            "printed_name": self.printed_name,
            "signed_at": iso(self.signed_ms),
            "signed_at_local": self.when,
            "time_zone": self.zone,
            "meaning": self.meaning,
            "record_sha256": self.record_sha256,
            "manifestation": self.text(),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Manifestation:
        return cls(
            signer=doc["signer"],
            printed_name=doc["printed_name"],
            signed_ms=_ms(doc["signed_at"]),
            zone=doc["time_zone"],
            meaning=doc["meaning"],
            record_sha256=doc["record_sha256"],
        )


def _ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Disposition:
    """QA's signed decision on a shipment (docs/EVALUATION.md, verdict)."""

    shipment_id: str
    decision: Decision
    verdict_at_signing: str
    evaluation_sha256: str
    signature: Manifestation
    audit_id: int | None = None
    verdict_override: str | None = None
    """Why QA released against a FAIL or REVIEW verdict (signed); None otherwise."""

    def record(self) -> dict[str, Any]:
        """What is signed (its SHA-256 is ``signature.record_sha256``)."""
        return disposition_record(
            shipment_id=self.shipment_id,
            decision=self.decision,
            verdict=self.verdict_at_signing,
            evaluation_sha256=self.evaluation_sha256,
            meaning=self.signature.meaning,
            signer=self.signature.signer,
            signed_ms=self.signature.signed_ms,
            verdict_override=self.verdict_override,
        )

    def override_text(self) -> str:
        """``Overrides the system verdict FAIL: <reason>``, or "" when nothing is overridden."""
        if self.verdict_override is None:
            return ""
        return f"Overrides the system verdict {self.verdict_at_signing}: {self.verdict_override}"

    def to_json(self) -> dict[str, Any]:
        return {
            "shipment_id": self.shipment_id,
            "decision": self.decision,
            "verdict_at_signing": self.verdict_at_signing,
            "verdict_override": self.verdict_override,
            "evaluation_sha256": self.evaluation_sha256,
            "signature": self.signature.to_json(),
            "audit_id": self.audit_id,
        }


def disposition_record(
    *,
    shipment_id: str,
    decision: str,
    verdict: str,
    evaluation_sha256: str,
    meaning: str,
    signer: str,
    signed_ms: int,
    verdict_override: str | None = None,
) -> dict[str, Any]:
    record = {
        "kind": "coldchain.disposition/1",
        "shipment_id": shipment_id,
        "decision": decision,
        "verdict_at_signing": verdict,
        "evaluation_sha256": evaluation_sha256,
        "meaning": meaning,
        "signer": signer,
        "signed_at": iso(signed_ms),
    }
    if verdict_override is not None:  # absent otherwise: older records keep their hash
        record["verdict_override"] = verdict_override
    return record


def add_back_record(
    *,
    lot: str,
    budget_id: str,
    minutes: float,
    shipment_id: str,
    meaning: str,
    signer: str,
    ms: int,
) -> dict[str, Any]:
    return {
        "kind": "coldchain.budget-add-back/1",
        "lot": lot,
        "budget_id": budget_id,
        "minutes": minutes,
        "shipment_id": shipment_id,
        "meaning": meaning,
        "signer": signer,
        "signed_at": iso(ms),
    }


def dispositions_from_audit(entries: Sequence[AuditEntry], shipment_id: str) -> list[Disposition]:
    """The signed dispositions of a shipment, oldest first; the last one stands."""
    found: list[Disposition] = []
    for e in entries:
        if e.action != ACTION_DISPOSITION or e.entity_id != shipment_id:
            continue
        d = e.detail
        found.append(
            Disposition(
                shipment_id=shipment_id,
                decision=d["decision"],
                verdict_at_signing=d["verdict_at_signing"],
                evaluation_sha256=d["evaluation_sha256"],
                signature=Manifestation.from_json(d["signature"]),
                audit_id=e.id,
                verdict_override=d.get("verdict_override"),
            )
        )
    return found


def failures_in_a_row(entries: Sequence[AuditEntry], signer: str) -> int:
    """Failed attempts since the signer's last success or unlock."""
    count = 0
    for e in entries:
        if e.entity != "signer" or e.entity_id != signer:
            continue
        if e.action == ACTION_REFUSED:
            count += 1
        elif e.action in {ACTION_SIGNER_UNLOCKED, ACTION_SIGNER_ADDED, "signature_made"}:
            count = 0
    return count


# -- shells over the store -----------------------------------------------------------------


def authenticate(store: Store, name: str, password: str, *, now_ms: int, purpose: str) -> str:
    """The signer's printed name when ``password`` is theirs (§11.200); audited either way."""
    entries = store.list_audit(entity_id=name)
    try:
        signer = store.get_signer(name)
    except NotFoundError:
        _refused(store, name, "unknown signer", purpose, now_ms)
        msg = f"no signer {name!r} is registered (an administrator adds one: coldchain signer add)"
        raise SigningError(msg) from None
    if not signer.active:
        _refused(store, name, "signer disabled", purpose, now_ms)
        msg = f"signer {name!r} is disabled"
        raise SigningError(msg)
    if failures_in_a_row(entries, name) >= MAX_FAILURES:
        _refused(store, name, "locked", purpose, now_ms)
        msg = (
            f"signer {name!r} is locked after {MAX_FAILURES} failed attempts; "
            f"an administrator unlocks it with `coldchain signer unlock {name}`"
        )
        raise SigningError(msg)
    if not check_password(password, signer.password_hash):
        _refused(store, name, "wrong password", purpose, now_ms)
        msg = f"signature refused: wrong password for {name!r}; the attempt is in the audit log"
        raise SigningError(msg)
    store.audit(
        actor=name,
        action="signature_made",
        entity="signer",
        entity_id=name,
        ts_ms=now_ms,
        detail={"purpose": purpose},
    )
    return signer.full_name


def _refused(store: Store, name: str, reason: str, purpose: str, now_ms: int) -> None:
    store.audit(
        actor=name,
        action=ACTION_REFUSED,
        entity="signer",
        entity_id=name,
        ts_ms=now_ms,
        detail={"reason": reason, "purpose": purpose},
    )


def sign_disposition(
    store: Store,
    *,
    shipment_id: str,
    decision: str,
    meaning: str,
    signer: str,
    password: str,
    evaluation_json: Mapping[str, Any],
    now_ms: int,
    zone: str,
    verdict_override: str | None = None,
) -> Disposition:
    """Re-authenticate, then record QA's decision with its manifestation in the audit log.

    Releasing against a FAIL or REVIEW verdict needs ``verdict_override`` (the reason),
    checked before the password: :func:`check_override`.
    """
    if decision not in DECISIONS:
        msg = f"--decision {decision!r} is not one of {', '.join(DECISIONS)}"
        raise SigningError(msg)
    text = check_meaning(meaning)
    verdict = str(evaluation_json.get("verdict"))
    override = check_override(decision, verdict, verdict_override)
    printed = authenticate(
        store, signer, password, now_ms=now_ms, purpose=f"disposition {decision}"
    )
    ev_sha = evaluation_digest(evaluation_json)
    record = disposition_record(
        shipment_id=shipment_id,
        decision=decision,
        verdict=verdict,
        evaluation_sha256=ev_sha,
        meaning=text,
        signer=signer,
        signed_ms=now_ms,
        verdict_override=override,
    )
    sig = Manifestation(signer, printed, now_ms, zone, text, record_digest(record))
    disposition = Disposition(
        shipment_id, decision, verdict, ev_sha, sig, verdict_override=override
    )
    store.audit(
        actor=signer,
        action=ACTION_DISPOSITION,
        entity="shipment",
        entity_id=shipment_id,
        ts_ms=now_ms,
        detail=disposition.to_json() | {"record": record},
    )
    return disposition


def sign_add_back(
    store: Store,
    *,
    lot: str,
    shipment_id: str,
    budget_id: str,
    minutes: float,
    consumed_min: float,
    meaning: str,
    signer: str,
    password: str,
    now_ms: int,
    zone: str,
) -> Manifestation:
    """Restore ``minutes`` of a lot's budget (docs/EVALUATION.md) by a signed, audited QA decision.

    ``consumed_min`` is what the lot has used so far: more cannot be restored.
    """
    from coldchain.store import BudgetAddBack  # noqa: PLC0415 - the store imports nothing from here

    text = check_meaning(meaning)
    if not 0 < minutes <= consumed_min:
        msg = (
            f"--minutes {minutes:g}: an add-back must be more than 0 and at most what lot "
            f"{lot} has consumed of {budget_id} ({consumed_min:g} min)"
        )
        raise SigningError(msg)
    printed = authenticate(store, signer, password, now_ms=now_ms, purpose=f"add-back {budget_id}")
    record = add_back_record(
        lot=lot,
        budget_id=budget_id,
        minutes=minutes,
        shipment_id=shipment_id,
        meaning=text,
        signer=signer,
        ms=now_ms,
    )
    sig = Manifestation(signer, printed, now_ms, zone, text, record_digest(record))
    with store.transaction():
        store.audit(
            actor=signer,
            action=ACTION_ADD_BACK,
            entity="lot",
            entity_id=lot,
            ts_ms=now_ms,
            detail={"record": record, "signature": sig.to_json()},
        )
        store.add_budget_add_back(
            BudgetAddBack(lot, budget_id, minutes, signer, text, now_ms, signature=sig.text())
        )
    return sig
