"""Signed manifests: a deployer's Ed25519 key vouches for a bundle's manifest, and through its hashes for every file.

The sha256 hashes in ``manifest.json`` catch corrupted or swapped model files,
but not an edited manifest: whoever can write it can lower the verification
threshold. A signature closes that. The deployer keeps the private key off the
devices (``facelive keygen``, ``facelive sign BUNDLE --key deployer.key``); a
device holds only the public key and, given one (``--public-key`` or
``$FACELIVE_BUNDLE_PUBLIC_KEY``), refuses any bundle whose manifest bytes that
key did not sign, before anything runs. ``manifest.sig`` is a small JSON file:
the algorithm, the public key's fingerprint and the base64 signature of the
exact bytes of ``manifest.json``.

Needs the ``cryptography`` package (``pip install "facelivenet[sign]"``), imported
only when a key is used: an unsigned deployment needs nothing more.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .constants import PUBLIC_KEY_ENV
from .errors import ManifestError

SIGNATURE_NAME = "manifest.sig"
ALGORITHM = "ed25519"


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:
        raise ManifestError('signed manifests need the cryptography package: pip install "facelivenet[sign]"') from exc
    return serialization, ed25519


def _raw_public(public_key: Any) -> bytes:
    serialization, _ = _crypto()
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public_key: Any) -> str:
    """sha256 (hex, first 16 digits) of the raw 32-byte public key."""
    return hashlib.sha256(_raw_public(public_key)).hexdigest()[:16]


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise ManifestError(f"{what} {path} does not exist") from exc
    except OSError as exc:
        raise ManifestError(f"cannot read {what} {path}: {exc}") from exc


def load_private_key(path: str | Path) -> Any:
    """An Ed25519 private key from a PEM file (as :func:`generate_keypair` writes it)."""
    serialization, ed25519 = _crypto()
    try:
        key = serialization.load_pem_private_key(_read(Path(path), "private key"), password=None)
    except (ValueError, TypeError) as exc:
        raise ManifestError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ManifestError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: str | Path) -> Any:
    """An Ed25519 public key from a PEM file."""
    serialization, ed25519 = _crypto()
    try:
        key = serialization.load_pem_public_key(_read(Path(path), "public key"))
    except (ValueError, TypeError) as exc:
        raise ManifestError(f"{path} is not a PEM public key: {exc}") from exc
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ManifestError(f"{path} is not an Ed25519 public key")
    return key


def generate_keypair(out_dir: str | Path, name: str = "deployer") -> dict[str, str]:
    """Write ``NAME.key`` (private, mode 0600) and ``NAME.pub`` in ``out_dir``; refuses to overwrite either."""
    from .manifest import MANIFEST_NAME

    serialization, ed25519 = _crypto()
    out = Path(out_dir)
    if not name or Path(name).name != name or name.startswith("."):
        raise ManifestError(f"--name {name!r} must be a plain file name stem")
    if out.exists() and not out.is_dir():
        raise ManifestError(f"--out {out} exists and is not a folder")
    if (out / MANIFEST_NAME).exists():  # a bundle is copied to devices: a private key must never travel with it
        raise ManifestError(f"--out {out} is a bundle folder: keep the private key out of bundles")
    private_path, public_path = out / f"{name}.key", out / f"{name}.pub"
    for p in (private_path, public_path):
        if p.exists():
            raise ManifestError(f"{p} already exists: refusing to overwrite a key")
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    except OSError as exc:
        raise ManifestError(f"cannot write the key pair to {out}: {exc}") from exc
    return {"private_key": str(private_path), "public_key": str(public_path),
            "fingerprint": fingerprint(key.public_key())}


def sign_bundle(bundle_dir: str | Path, private_key_path: str | Path) -> dict[str, str]:
    """Sign the bytes of ``bundle_dir/manifest.json`` and write ``manifest.sig`` atomically; returns its record.

    The manifest must already be valid with every file matching its hash: nobody should sign a broken bundle.
    """
    from .manifest import MANIFEST_NAME, load_manifest

    bundle = Path(bundle_dir)
    key = load_private_key(private_key_path)
    load_manifest(bundle, verify_files=True, public_key="")
    data = _read(bundle / MANIFEST_NAME, "manifest")
    record = {"algorithm": ALGORITHM, "key_fingerprint": fingerprint(key.public_key()),
              "manifest_sha256": hashlib.sha256(data).hexdigest(),
              "signature": base64.b64encode(key.sign(data)).decode("ascii")}
    tmp = bundle / f".{SIGNATURE_NAME}.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, bundle / SIGNATURE_NAME)
    return {**record, "path": str(bundle / SIGNATURE_NAME)}


def resolve_public_key(explicit: str | Path | None) -> Path | None:
    """The public key to enforce: ``explicit``, else ``$FACELIVE_BUNDLE_PUBLIC_KEY``; ``""`` means none."""
    if explicit is not None:
        return Path(explicit) if str(explicit) else None
    env = os.environ.get(PUBLIC_KEY_ENV, "")
    return Path(env) if env else None


def verify_signature(bundle_dir: str | Path, manifest_bytes: bytes, public_key_path: str | Path) -> dict[str, str]:
    """Check ``manifest.sig`` against ``manifest_bytes`` (the exact bytes about to be parsed); ManifestError if not."""
    key = load_public_key(public_key_path)  # first: a missing cryptography package is named there
    from cryptography.exceptions import InvalidSignature

    sig_path = Path(bundle_dir) / SIGNATURE_NAME
    if not sig_path.is_file():
        raise ManifestError(f"bundle {bundle_dir} is not signed (no {SIGNATURE_NAME}) but a public key is set "
                            f"({public_key_path}): refusing it")
    try:
        record = json.loads(sig_path.read_text(encoding="utf-8"))
        algorithm, signature = record["algorithm"], base64.b64decode(record["signature"], validate=True)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"{sig_path} is not a valid signature file: {type(exc).__name__}: {exc}") from exc
    if algorithm != ALGORITHM:
        raise ManifestError(f"{sig_path}: unsupported signature algorithm {algorithm!r} (expected {ALGORITHM})")
    expected = fingerprint(key)
    if record.get("key_fingerprint") != expected:
        raise ManifestError(f"{sig_path} was made with key {record.get('key_fingerprint')}, not the configured "
                            f"public key {expected}: refusing the bundle")
    try:
        key.verify(signature, manifest_bytes)
    except InvalidSignature as exc:
        raise ManifestError(f"the signature in {sig_path} does not match manifest.json: the manifest was edited "
                            "after signing; refusing the bundle") from exc
    return {"algorithm": ALGORITHM, "key_fingerprint": expected}
