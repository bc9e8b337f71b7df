"""The Ed25519 key that signs checkpoints and prune anchors.

``YAKUBA_AUDIT_SIGNING_KEY`` (or ``…_FILE``) holds a PEM private key or 64 hex
characters of raw seed.  When it is unset, a key is generated once and kept in
``VAR_DIR/audit_signing_key.pem`` (system check yakuba.W101 says so).  Public keys travel
as 64 hex characters of the raw key; a fingerprint is the SHA-256 of those 32 bytes.

Signing and signature checks need no database, so offline verification uses them too.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from yakuba.audit.chain import canonical_json

SIGNATURE_CONTEXT = "yakuba-audit-v1\n"
GENERATED_KEY_NAME = "audit_signing_key.pem"


class SigningKeyError(ValueError):
    """A key could not be read; the message says what was expected."""


def parse_private_key(text: str) -> Ed25519PrivateKey:
    text = text.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(text))
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(
            "not an Ed25519 private key: give a PEM 'PRIVATE KEY' block or 64 hex characters"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError("the PEM key is not an Ed25519 key")
    return key


def parse_public_key(text: str) -> str:
    """A public key given as PEM (public or private) or 64 hex characters, as hex."""
    text = text.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return text.lower()
    if "PRIVATE KEY" in text:
        return public_hex(parse_private_key(text))
    try:
        key = serialization.load_pem_public_key(text.encode())
    except (ValueError, TypeError) as exc:
        raise SigningKeyError("not an Ed25519 public key (PEM or 64 hex characters)") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError("the PEM key is not an Ed25519 key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def public_hex(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def public_pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def fingerprint(public_key_hex: str) -> str:
    return hashlib.sha256(bytes.fromhex(public_key_hex)).hexdigest()


def generated_key_path() -> Path:
    from django.conf import settings

    return Path(settings.VAR_DIR) / GENERATED_KEY_NAME


def signing_key() -> Ed25519PrivateKey:
    """The configured key, or the generated one (created on first use)."""
    from django.conf import settings

    if settings.AUDIT_SIGNING_KEY:
        return parse_private_key(settings.AUDIT_SIGNING_KEY)
    path = generated_key_path()
    if not path.exists():
        _generate(path)
    return parse_private_key(path.read_text(encoding="utf-8"))


def _generate(path: Path) -> None:
    """Write a new key to ``path`` unless another process just did: the key is written
    to a private temporary file and linked into place, so nobody reads half a key."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        # If another process won the race, its key stays and is used.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def signed_message(fields: dict[str, Any]) -> bytes:
    """What is signed: a fixed context line, then the canonical JSON of ``fields``."""
    return (SIGNATURE_CONTEXT + canonical_json(fields)).encode()


def sign(key: Ed25519PrivateKey, fields: dict[str, Any]) -> str:
    return key.sign(signed_message(fields)).hex()


def signature_valid(public_key_hex: str, fields: dict[str, Any], signature_hex: str) -> bool:
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        public.verify(bytes.fromhex(signature_hex), signed_message(fields))
    except (InvalidSignature, ValueError):
        return False
    return True


def checkpoint_fields(seq: int, chain_hash: str, time: str, key_fingerprint: str) -> dict[str, Any]:
    """What a checkpoint's signature covers."""
    return {
        "kind": "checkpoint",
        "seq": seq,
        "hash": chain_hash,
        "time": time,
        "key_fingerprint": key_fingerprint,
    }


def anchor_fields(
    seq: int, chain_hash: str, time: str, key_fingerprint: str, *, before: str, max_entry_id: int
) -> dict[str, Any]:
    """What a prune anchor's signature covers."""
    return {
        "kind": "prune_anchor",
        "seq": seq,
        "hash": chain_hash,
        "time": time,
        "key_fingerprint": key_fingerprint,
        "before": before,
        "max_entry_id": max_entry_id,
    }
