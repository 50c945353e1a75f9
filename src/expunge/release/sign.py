"""Ed25519 signatures in minisign's formats, so ``minisign -Vm MANIFEST.json -p key.pub`` checks them.

The secret key is kept as an unencrypted PKCS#8 PEM (mode 0600) beside a minisign public key file; the
signature is minisign's prehashed ("ED", BLAKE2b-512) form with a trusted comment. Ed25519 comes from the
``cryptography`` package, not from code of our own.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from expunge import atomic
from expunge.errors import ExpungeError


def keygen(prefix: Path) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` (secret, PEM) and ``PREFIX.pub`` (minisign public key)."""
    # The prefix kept whole: ``with_suffix`` would turn ``release.v2`` into ``release.key``.
    secret_path, public_path = prefix.parent / f"{prefix.name}.key", prefix.parent / f"{prefix.name}.pub"
    for p in (secret_path, public_path):
        if p.exists():
            raise ExpungeError("refusing to overwrite an existing key file", p)
    key = Ed25519PrivateKey.generate()
    key_id = secrets.token_bytes(8)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    comment = f"expunge key id {key_id[::-1].hex().upper()}".encode()
    atomic.write_bytes(secret_path, b"# " + comment + b"\n" + key_id.hex().encode() + b"\n" + pem)
    os.chmod(secret_path, 0o600)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    public = b"untrusted comment: minisign public key " + key_id[::-1].hex().upper().encode() + b"\n"
    public += base64.b64encode(b"Ed" + key_id + raw) + b"\n"
    atomic.write_bytes(public_path, public)
    return secret_path, public_path


def _load_secret(path: Path) -> tuple[Ed25519PrivateKey, bytes]:
    try:
        lines = path.read_bytes().split(b"\n", 2)
        key_id = bytes.fromhex(lines[1].decode())
        key = serialization.load_pem_private_key(lines[2], password=None)
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        raise ExpungeError("not an expunge secret key (make one with 'expunge keygen')", path) from None
    if not isinstance(key, Ed25519PrivateKey) or len(key_id) != 8:
        raise ExpungeError("not an Ed25519 expunge secret key", path)
    return key, key_id


def sign(data: bytes, secret: Path, trusted_comment: str) -> bytes:
    """A minisign signature file for ``data``."""
    key, key_id = _load_secret(secret)
    sig = key.sign(hashlib.blake2b(data, digest_size=64).digest())
    trusted = trusted_comment.encode()
    global_sig = key.sign(sig + trusted)
    return (
        b"untrusted comment: signature from expunge secret key\n"
        + base64.b64encode(b"ED" + key_id + sig)
        + b"\ntrusted comment: "
        + trusted
        + b"\n"
        + base64.b64encode(global_sig)
        + b"\n"
    )


def verify(data: bytes, signature: Path, public: Path) -> str:
    """Check a minisign signature (prehashed or legacy); returns the trusted comment."""
    try:
        pub_lines = [ln for ln in public.read_bytes().splitlines() if ln and not ln.startswith(b"untrusted")]
        pub = base64.b64decode(pub_lines[0], validate=True)
        sig_lines = signature.read_bytes().splitlines()
        sig_blob = base64.b64decode(sig_lines[1], validate=True)
        trusted = sig_lines[2].removeprefix(b"trusted comment: ")
        global_sig = base64.b64decode(sig_lines[3], validate=True)
    except (OSError, ValueError, IndexError):
        raise ExpungeError("unreadable signature or public key", signature) from None
    if len(pub) != 42 or pub[:2] != b"Ed" or len(sig_blob) != 74:
        raise ExpungeError("not a minisign Ed25519 signature or public key", signature)
    if sig_blob[2:10] != pub[2:10]:
        raise ExpungeError("signed with a different key than the public key given", signature)
    key = Ed25519PublicKey.from_public_bytes(pub[10:])
    message = hashlib.blake2b(data, digest_size=64).digest() if sig_blob[:2] == b"ED" else data
    try:
        key.verify(sig_blob[10:], message)
        key.verify(global_sig, sig_blob[10:] + trusted)
    except InvalidSignature:
        raise ExpungeError("signature does not match the manifest", signature) from None
    return trusted.decode("utf-8", "replace")
