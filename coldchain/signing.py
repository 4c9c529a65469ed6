"""Ed25519 keys and signatures for dossier manifests (docs/DOSSIER.md); the only user of
cryptography.

The private key is a PKCS#8 PEM file (``[dossier] signing_key``), created on
first use with mode 0600 and its public key beside it (``*.pub.pem``).
Signatures and public keys travel as base64 of their raw bytes (64 and 32).

Why a trusted key matters: a manifest carries the public key that verifies
its signature, so anyone who edits a dossier can re-sign it with a key of
their own and embed that key. The embedded key proves the files are
unchanged since *someone* signed them; only a public key obtained separately
(``trusted_keys``, or this machine's own key) proves *who* signed them.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from coldchain.errors import SigningError

ALGORITHM = "Ed25519"
PRIVATE_MODE = 0o600
KEY_DIR_MODE = 0o700


@dataclass(frozen=True)
class SigningKey:
    """A loaded private key; ``created`` when this call made it (tell the user)."""

    private: Ed25519PrivateKey
    path: Path
    public_path: Path
    created: bool

    @property
    def public_raw(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_raw)

    def sign(self, data: bytes) -> str:
        """Base64 of the Ed25519 signature of ``data``."""
        return base64.b64encode(self.private.sign(data)).decode()


def fingerprint(public_raw: bytes) -> str:
    """A short, readable key id: SHA-256 of the raw public key, first 16 hex digits."""
    digest = hashlib.sha256(public_raw).hexdigest()[:16]
    return ":".join(digest[i : i + 4] for i in range(0, 16, 4))


def public_path_for(path: Path) -> Path:
    """``var/keys/dossier-ed25519.pem`` → ``var/keys/dossier-ed25519.pub.pem``."""
    return path.with_name(path.stem + ".pub.pem")


def load_or_create_key(path: Path) -> SigningKey:
    """The private key at ``path``; created (0600, with its ``.pub.pem``) when absent."""
    public_path = public_path_for(path)
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            msg = f"{path}: cannot read the dossier signing key: {exc}"
            raise SigningError(msg) from exc
        if not isinstance(key, Ed25519PrivateKey):
            msg = f"{path}: not an Ed25519 private key (dossiers are signed with Ed25519)"
            raise SigningError(msg)
        if not public_path.exists():
            _write_public(key, public_path)
        return SigningKey(key, path, public_path, created=False)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=KEY_DIR_MODE)
        # O_EXCL: two processes creating the key at once cannot overwrite each other's.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except FileExistsError:
        return load_or_create_key(path)
    except OSError as exc:
        msg = f"{path}: cannot create the dossier signing key: {exc}"
        raise SigningError(msg) from exc
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    _write_public(key, public_path)
    return SigningKey(key, path, public_path, created=True)


def _write_public(key: Ed25519PrivateKey, public_path: Path) -> None:
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def created_message(key: SigningKey) -> str:
    """What to tell a user the first time a key is made: where, and how to keep it."""
    return (
        f"Created a new Ed25519 dossier signing key: {key.path.resolve()} "
        f"(fingerprint {key.fingerprint}; public key {key.public_path.resolve()}).\n"
        "Back it up now: copy the private key to offline, access-controlled storage "
        "(e.g. an encrypted vault); whoever holds it can sign dossiers as you, and if it is "
        "lost, new dossiers carry a different key. Give the .pub.pem file to whoever must "
        "verify your dossiers (their `[dossier] trusted_keys`)."
    )


def load_public_key(path: Path) -> bytes:
    """Raw 32-byte public key from a PEM file (a trusted key, or a private key's public half)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        msg = f"{path}: cannot read the public key: {exc}"
        raise SigningError(msg) from exc
    try:
        key: object = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError) as exc:
            msg = f"{path}: not a PEM public (or private) key"
            raise SigningError(msg) from exc
    if not isinstance(key, Ed25519PublicKey):
        msg = f"{path}: not an Ed25519 key"
        raise SigningError(msg)
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def verify_signature(public_b64: str, signature_b64: str, data: bytes) -> bool:
    """True when ``signature_b64`` is ``public_b64``'s Ed25519 signature of ``data``."""
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64, validate=True))
        public.verify(base64.b64decode(signature_b64, validate=True), data)
    except (InvalidSignature, ValueError):
        return False
    return True
