"""The dossier's ``manifest.json``, the ZIP around it, and ``coldchain verify`` (docs/DOSSIER.md).
Pure.

``manifest.json`` lists every other member with its SHA-256 and size, the
generator and its version, the creation time, the audit trail's head at that
time (an anchor for ``coldchain audit verify``) and ``content_sha256``, then
an Ed25519 signature over the canonical JSON of everything else in it
(sorted keys, no whitespace)::

    {"format": "coldchain-dossier/1", "shipment_id": "S-1",
     "generator": {"name": "coldchain", "version": "0.1.0"},
     "created_at": "…", "content_sha256": "…", "audit_head": {"id": 42, "hash": "…"},
     "files": [{"path": "alerts.json", "sha256": "…", "bytes": 1234}, …],
     "signature": {"algorithm": "Ed25519", "public_key": "<base64>",
                   "key_fingerprint": "…", "value": "<base64>"}}

``content_sha256`` is the hash printed on every PDF page: the PDFs cannot
contain their own hash, so they carry the hash of the *data* they were
rendered from — every member except the PDFs and the manifest — computed as
SHA-256 over the lines ``"<sha256>  <path>\\n"`` in path order.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from coldchain.errors import DossierError
from coldchain.models import iso, ms_to_dt
from coldchain.signing import ALGORITHM, fingerprint, verify_signature

MANIFEST = "manifest.json"
FORMAT = "coldchain-dossier/1"
_STORED = (".parquet", ".png", ".zip")  # already compressed


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_data(path: str) -> bool:
    """A member whose hash goes into ``content_sha256`` (everything but PDFs and the manifest)."""
    return path != MANIFEST and not path.endswith(".pdf")


def content_digest(hashes: Mapping[str, str]) -> str:
    """SHA-256 over ``"<sha256>  <path>\\n"`` of the data members, in path order."""
    lines = "".join(f"{h}  {p}\n" for p, h in sorted(hashes.items()) if is_data(p))
    return sha256(lines.encode())


def manifest_doc(
    files: Mapping[str, bytes],
    *,
    shipment_id: str,
    created_ms: int,
    generator_version: str,
    content_sha256: str,
    audit_head: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The manifest before it is signed."""
    return {
        "format": FORMAT,
        "shipment_id": shipment_id,
        "generator": {"name": "coldchain", "version": generator_version},
        "created_at": iso(created_ms),
        "content_sha256": content_sha256,
        "audit_head": dict(audit_head) if audit_head else None,
        "files": [
            {"path": path, "sha256": sha256(data), "bytes": len(data)}
            for path, data in sorted(files.items())
        ],
    }


def signed_bytes(doc: Mapping[str, Any]) -> bytes:
    """What the signature covers: the manifest without ``signature``, canonical JSON."""
    body = {k: v for k, v in doc.items() if k != "signature"}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def with_signature(
    doc: Mapping[str, Any], *, public_b64: str, signature_b64: str
) -> dict[str, Any]:
    return dict(doc) | {
        "signature": {
            "algorithm": ALGORITHM,
            "public_key": public_b64,
            "key_fingerprint": fingerprint(base64.b64decode(public_b64)),
            "value": signature_b64,
        }
    }


def zip_bytes(files: Mapping[str, bytes], manifest: Mapping[str, Any], *, created_ms: int) -> bytes:
    """The dossier ZIP: members in path order, the manifest last, times set to ``created_ms``."""
    stamp = ms_to_dt(created_ms).timetuple()[:6]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        members = [*sorted(files.items()), (MANIFEST, manifest_json(manifest))]
        for path, data in members:
            info = zipfile.ZipInfo(path, date_time=stamp)
            info.compress_type = (
                zipfile.ZIP_STORED if path.endswith(_STORED) else zipfile.ZIP_DEFLATED
            )
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def manifest_json(manifest: Mapping[str, Any]) -> bytes:
    return orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n"


# -- verification ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason a dossier fails verification, naming the member it concerns."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify_dossier` found. ``trusted`` is None when no trusted key was given."""

    findings: tuple[Finding, ...]
    files: int = 0
    shipment_id: str | None = None
    created_at: str | None = None
    key_fingerprint: str | None = None
    trusted: bool | None = None
    content_sha256: str | None = None
    manifest: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "files": self.files,
            "shipment_id": self.shipment_id,
            "created_at": self.created_at,
            "content_sha256": self.content_sha256,
            "key_fingerprint": self.key_fingerprint,
            "trusted_key": self.trusted,
            "findings": [{"path": f.path, "reason": f.reason} for f in self.findings],
        }


def _members(data: bytes) -> tuple[dict[str, bytes], list[Finding]]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        msg = f"not a ZIP file ({exc}); a dossier is the ZIP written by `coldchain dossier`"
        raise DossierError(msg) from exc
    members: dict[str, bytes] = {}
    findings: list[Finding] = []
    with zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            if info.filename in members:
                findings.append(
                    Finding(info.filename, "appears twice in the ZIP (a second copy was added)")
                )
                continue
            try:
                members[info.filename] = zf.read(info)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as exc:
                # zipfile checks each member's CRC-32 while reading it
                findings.append(Finding(info.filename, f"cannot be read from the ZIP: {exc}"))
                members[info.filename] = b""
    return members, findings


def verify_dossier(data: bytes, *, trusted_keys: Sequence[bytes] = ()) -> VerifyReport:
    """Check every hash and the signature of a dossier ZIP (docs/DOSSIER.md ``coldchain verify``).

    ``trusted_keys`` are raw Ed25519 public keys obtained separately; with
    none, the embedded key is checked but origin is not (``trusted`` None).
    """
    members, findings = _members(data)
    raw = members.pop(MANIFEST, None)
    if raw is None:
        return VerifyReport((*findings, Finding(MANIFEST, "missing: this is not a signed dossier")))
    try:
        doc = orjson.loads(raw)
        if not isinstance(doc, dict):
            raise TypeError("not an object")
        listed = {f["path"]: f for f in doc["files"]}
        sig = doc["signature"]
        public_b64, signature_b64 = str(sig["public_key"]), str(sig["value"])
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        return VerifyReport((*findings, Finding(MANIFEST, f"unreadable or incomplete: {exc}")))
    try:
        public_raw = base64.b64decode(public_b64, validate=True)
        key_id: str | None = fingerprint(public_raw)
    except ValueError:
        public_raw, key_id = b"", None
    if not verify_signature(public_b64, signature_b64, signed_bytes(doc)):
        findings.append(
            Finding(
                MANIFEST,
                "signature does not verify: the manifest was changed after signing, "
                "or its signature or key was swapped",
            )
        )
    trusted: bool | None = None
    if trusted_keys:
        trusted = public_raw in trusted_keys
        if not trusted:
            findings.append(
                Finding(
                    MANIFEST,
                    f"signed with key {key_id}, which is not one of the trusted keys: "
                    "the files are consistent with that key, but not from a signer you trust",
                )
            )
    hashes: dict[str, str] = {}
    for path, entry in sorted(listed.items()):
        if path not in members:
            findings.append(Finding(path, "listed in the manifest but missing from the ZIP"))
            continue
        actual = sha256(members[path])
        hashes[path] = str(entry.get("sha256"))
        if actual != entry.get("sha256"):
            findings.append(
                Finding(
                    path,
                    f"SHA-256 {actual[:16]}… differs from the manifest's "
                    f"{str(entry.get('sha256'))[:16]}…: the file was changed",
                )
            )
        elif len(members[path]) != entry.get("bytes"):
            findings.append(Finding(path, "size differs from the manifest"))
    findings.extend(
        Finding(path, "is in the ZIP but not in the manifest (added after signing)")
        for path in sorted(set(members) - set(listed))
    )
    if content_digest(hashes) != doc.get("content_sha256"):
        findings.append(
            Finding(MANIFEST, "content_sha256 does not match the hashes of the data files")
        )
    return VerifyReport(
        findings=tuple(findings),
        files=len(listed),
        shipment_id=doc.get("shipment_id"),
        created_at=doc.get("created_at"),
        key_fingerprint=key_id,
        trusted=trusted,
        content_sha256=doc.get("content_sha256"),
        manifest=doc,
    )
