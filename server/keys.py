"""API keys: ``flk_<key id>_<secret>``, stored as the secret's sha256 only, checked in constant time.

The key id (8 hex digits) names the key in logs, sessions and ``facelive keys list``; the secret (32 random
bytes, 43 URL-safe characters) is shown once, when the key is made. Scopes: ``app`` (sessions) and
``admin`` (users, admin reads, and the app calls too).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

from .errors import ApiError
from .store import KEY_SCOPES, KeyRecord, ServerStore

KEY_PREFIX = "flk"
_KEY_RE = re.compile(r"flk_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")
# compared against when the key id is unknown, so an unknown id costs the same as a wrong secret
_DUMMY_SHA256 = hashlib.sha256(b"no such key").hexdigest()


def secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def new_key(name: str, scope: str, now: float | None = None) -> tuple[str, KeyRecord]:
    """A new key: (the full key, shown once; the record to store)."""
    if scope not in KEY_SCOPES:
        raise ValueError(f"scope must be one of {', '.join(KEY_SCOPES)}, got {scope!r}")
    if not name or len(name) > 128 or not name.isprintable():
        raise ValueError(f"key name must be 1-128 printable characters, got {name!r}")
    key_id, secret = secrets.token_hex(4), secrets.token_urlsafe(32)
    record = KeyRecord(key_id=key_id, name=name, scope=scope, secret_sha256=secret_sha256(secret),
                       created=time.time() if now is None else now, revoked=False)
    return f"{KEY_PREFIX}_{key_id}_{secret}", record


def parse_key(text: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    m = _KEY_RE.fullmatch(text.strip())
    return (m.group(1), m.group(2)) if m else None


def bearer_key(authorization: str | None) -> str:
    """The key of an ``Authorization: Bearer <key>`` header; ApiError missing_key without one."""
    if not authorization:
        raise ApiError("missing_key", "an API key is needed: Authorization: Bearer flk_<id>_<secret>")
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise ApiError("missing_key", "the Authorization header must be 'Bearer flk_<id>_<secret>'")
    return value.strip()


def check_key(store: ServerStore, presented: str, scope: str) -> KeyRecord:
    """The stored record of ``presented`` when it is a valid, unrevoked key allowed ``scope`` (admin may do
    app calls); ApiError bad_key / forbidden otherwise."""
    parsed = parse_key(presented)
    record = store.key(parsed[0]) if parsed is not None else None
    expected = record.secret_sha256 if record is not None else _DUMMY_SHA256
    given = secret_sha256(parsed[1]) if parsed is not None else secret_sha256("")
    if not hmac.compare_digest(expected, given) or record is None or record.revoked:
        raise ApiError("bad_key", "the API key is not valid (unknown, revoked or mistyped)")
    if scope == "admin" and record.scope != "admin":
        raise ApiError("forbidden", f"this call needs an admin key; key {record.key_id} is an {record.scope} key")
    return record
