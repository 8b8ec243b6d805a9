"""The server's store: one protocol (:class:`ServerStore`), two backends (SQLite, PostgreSQL).

- :func:`open_store` picks the backend: a ``postgresql://`` (or ``postgres://``) URL opens
  :class:`~facelivenet.server.store_postgres.PostgresServerStore`, anything else is an SQLite file path
  (the same file as ``facelive enroll --db``) opened by :class:`~facelivenet.server.store_sqlite.SQLiteServerStore`.
- Templates keep :class:`~facelivenet.edge_runtime.store.TemplateStore`'s semantics in both backends
  (``UnknownUserError`` / ``ModelMismatchError``, ``validate_user_id``, atomic replace).
- Sessions use optimistic concurrency: every write bumps ``version`` and only succeeds when the stored
  version is the one the caller read; a decision's attempt is written in the same transaction.
- A database that is down raises :class:`StoreUnavailableError` (the app answers 503); the next call
  reconnects. A store object is used by one thread at a time.
- The shared rate limits' token buckets (:mod:`.shared_ratelimit`) are rows of ``rate_buckets``: a take is
  one atomic call over every bucket it names (all-or-nothing, :mod:`.buckets`' arithmetic, the caller's clock).
- The schema is versioned per dialect in ``server/migrations/<dialect>/NNNN_name.sql`` and applied at open.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from facelivenet.edge_runtime import reasons
from facelivenet.edge_runtime.store import (ModelMismatchError, StoreError, Template,  # noqa: F401 (re-exported)
                                            UnknownUserError, UserInfo)
# the embeddings' storage format (little-endian float32 bytes), shared with the SQLite template store
from facelivenet.edge_runtime.store import f32_bytes, f32_rows, prepare_template  # noqa: F401 (the stores' one format)

from .buckets import EPSILON, check_rate


# The reason code of a pending session closed by the expiry sweep (or found expired by a frame).
SESSION_EXPIRED = str(reasons.SESSION_EXPIRED)

SESSION_STATUSES = ("pending", "accept", "reject")
KEY_SCOPES = ("app", "admin")


class StoreUnavailableError(StoreError):
    """The database cannot be reached (down, refused, timed out); retry later. The app answers 503."""


@dataclass(frozen=True)
class KeyRecord:
    """An API key as stored: only the sha256 of its secret, never the secret."""
    key_id: str
    name: str
    scope: str  # "app" | "admin"
    secret_sha256: str
    created: float
    revoked: bool = False


@dataclass
class SessionRow:
    """One verification session. ``version`` is bumped by every write (optimistic concurrency)."""
    session_id: str
    user_id: str
    key_id: str
    model_fingerprint: str
    status: str  # "pending" | "accept" | "reject"
    reasons: list[str]  # the runtime's reason codes (full, server-side)
    created: float  # server wall clock (time.time())
    expires_at: float  # server wall clock
    nonce_sha256: str  # the current one-time nonce's hash
    seq: int = 0  # frames accepted so far
    client_t0: float | None = None  # first frame: the client's t ...
    server_t0: float | None = None  # ... and the server's time.time()
    last_client_t: float | None = None
    last_server_t: float | None = None  # time.time() of the last accepted frame (the expiry sweep's idle clock)
    state: bytes = field(default=b"", repr=False)  # the session_state blob
    version: int = 0
    result_delivered: bool = False
    detail: dict = field(default_factory=dict)  # JSON: challenge, plan, settings, result once decided (admin read)


# An attempt written with a session update: (success, reason codes, ts).
Attempt = tuple[bool, Sequence[str], float]


class ServerStore(Protocol):
    """What the server needs from a database; :mod:`store_sqlite` and :mod:`store_postgres` implement it."""

    kind: str  # "sqlite" | "postgresql"

    # templates (same semantics as edge_runtime.store.TemplateStore; every write atomic)
    def put_template(self, user_id: str, model_fingerprint: str, embeddings: np.ndarray,
                     sources: Sequence[str] | None = None) -> Template: ...
    def template(self, user_id: str, model_fingerprint: str) -> Template: ...
    def users(self) -> list[UserInfo]: ...
    def delete_user(self, user_id: str) -> int: ...

    # attempts / lock-out
    def locked_until(self, user_id: str, max_failures: int, window_s: float,
                     now: float | None = None) -> float | None: ...
    def attempts(self, user_id: str | None = None, limit: int = 100) -> list[dict]: ...

    # keys
    def add_key(self, rec: KeyRecord) -> None: ...
    def key(self, key_id: str) -> KeyRecord | None: ...
    def keys(self) -> list[KeyRecord]: ...
    def revoke_key(self, key_id: str) -> bool: ...

    # sessions
    def create_session(self, row: SessionRow) -> None: ...
    def session(self, session_id: str) -> SessionRow | None: ...
    def update_session(self, row: SessionRow, expected_version: int, attempt: Attempt | None = None) -> bool: ...
    def claim_result(self, session_id: str) -> bool: ...
    def expire_sessions(self, now: float, max_gap_s: float) -> list[str]: ...

    # rate limits shared by every worker and instance (one transaction each; ``now``: the caller's wall clock)
    def take_tokens(self, budget: str, whos: Sequence[str], per_s: float, burst: float, now: float) -> float: ...
    def forget_full_buckets(self, budget: str, per_s: float, burst: float, now: float) -> int: ...

    def ping(self) -> None: ...
    def close(self) -> None: ...


DEFAULT_DB_TIMEOUT_S = 10.0  # PostgreSQL's statement timeout unless the server's config says otherwise


def open_store(url_or_path: str | Path, timeout_s: float = DEFAULT_DB_TIMEOUT_S) -> ServerStore:
    """Open the store named by ``url_or_path``: a ``postgresql://`` URL or an SQLite file path (created if absent).
    ``timeout_s``: PostgreSQL's statement timeout (a statement running or waiting longer is cancelled and the call
    raises StoreUnavailableError); SQLite waits up to its busy timeout either way."""
    text = str(url_or_path)
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if scheme and scheme.group(1).lower() in ("postgresql", "postgres"):
        from .store_postgres import PostgresServerStore
        return PostgresServerStore(text, statement_timeout_s=timeout_s)
    if scheme:
        raise StoreError(f"unsupported database URL scheme {scheme.group(1)!r} in {redact_url(text)}: "
                         "use postgresql://... or an SQLite file path")
    from .store_sqlite import SQLiteServerStore
    return SQLiteServerStore(text)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (drivers' messages span several)."""
    return " ".join(str(exc).split())


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for messages and logs)."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


# ---------------------------------------------------------------- helpers shared by both backends

@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(dialect: str) -> list[Migration]:
    """The versioned schema scripts of ``dialect`` ("sqlite" | "postgresql"), in version order."""
    folder = resources.files("facelivenet.server").joinpath("migrations", dialect)
    found = []
    for item in folder.iterdir():
        m = re.fullmatch(r"(\d{4})_(\w+)\.sql", item.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), item.read_text(encoding="utf-8")))
    found.sort(key=lambda mig: mig.version)
    if not found or [mig.version for mig in found] != list(range(1, len(found) + 1)):
        raise StoreError(f"the {dialect} migrations are not numbered 0001, 0002, ...: the installation is damaged")
    return found


def check_schema_version(applied: int, dialect: str, where: str) -> None:
    """A database migrated by a newer server is never written by this one."""
    known = len(migrations(dialect))
    if applied > known:
        raise StoreError(f"{where} has server schema version {applied}; this server knows up to {known}: "
                         "upgrade facelivenet")


def check_session(row: SessionRow) -> None:
    if row.status not in SESSION_STATUSES:
        raise StoreError(f"session status {row.status!r} is not one of {', '.join(SESSION_STATUSES)}")


def check_key(rec: KeyRecord) -> None:
    if rec.scope not in KEY_SCOPES:
        raise StoreError(f"key scope {rec.scope!r} is not one of {', '.join(KEY_SCOPES)}")
    if not rec.key_id or not rec.key_id.isprintable():
        raise StoreError(f"invalid key id {rec.key_id!r}")


def attempt_row(user_id: str, attempt: Attempt) -> tuple[str, float, bool, str]:
    """(user_id, ts, success, reasons) as the attempts table holds them (reasons comma-joined, as TemplateStore)."""
    success, reasons, ts = attempt
    return user_id, float(ts), bool(success), ",".join(str(r) for r in reasons)


def attempt_dict(user_id: str, ts: float, success, reasons: str) -> dict:
    """One attempts row as :meth:`ServerStore.attempts` returns it."""
    return {"user_id": user_id, "ts": float(ts), "success": bool(success),
            "reasons": [r for r in reasons.split(",") if r]}


# The sessions table's columns, in SessionRow's field order; the ones update_session writes.
SESSION_COLUMNS = tuple(SessionRow.__dataclass_fields__)
SESSION_UPDATE_COLUMNS = ("status", "reasons", "expires_at", "nonce_sha256", "seq", "client_t0", "server_t0",
                          "last_client_t", "last_server_t", "state", "detail")
# what a frame that leaves the session pending changes (its expiry and its admin detail stay as they are)
SESSION_FRAME_COLUMNS = tuple(c for c in SESSION_UPDATE_COLUMNS if c not in ("expires_at", "detail"))


def update_columns(row: SessionRow, attempt: Attempt | None) -> tuple[str, ...]:
    """The columns :meth:`ServerStore.update_session` writes: all of them for a decision, a pending frame's
    own otherwise (the JSON detail is then neither encoded nor written again)."""
    return SESSION_FRAME_COLUMNS if row.status == "pending" and attempt is None else SESSION_UPDATE_COLUMNS


def session_values(row: SessionRow, columns: Sequence[str] = SESSION_COLUMNS) -> list:
    """The row's values for ``columns`` as the database stores them (reasons / detail as JSON text)."""
    check_session(row)
    out = []
    for name in columns:
        value = getattr(row, name)
        if name in ("reasons", "detail"):
            value = dumps(list(value) if name == "reasons" else value)
        elif name == "state":
            value = bytes(value)
        out.append(value)
    return out


def session_from_values(values: Sequence) -> SessionRow:
    """A SessionRow from a SELECT of SESSION_COLUMNS (JSON given as text or already decoded)."""
    row = dict(zip(SESSION_COLUMNS, values))
    for name in ("reasons", "detail"):
        if isinstance(row[name], (str, bytes)):
            row[name] = json.loads(row[name])
    row["state"] = bytes(row["state"])
    row["result_delivered"] = bool(row["result_delivered"])
    return SessionRow(**row)


def key_from_values(values: Sequence) -> KeyRecord:
    """A KeyRecord from a SELECT of its fields in order."""
    key_id, name, scope, secret_sha256, created, revoked = values
    return KeyRecord(key_id, name, scope, secret_sha256, float(created), bool(revoked))


KEY_COLUMNS = tuple(KeyRecord.__dataclass_fields__)

# the expiry sweep's condition (both dialects; parameters: now, now - max_gap_s)
EXPIRED_WHERE = "status = 'pending' AND (expires_at <= {p} OR COALESCE(last_server_t, created) < {p})"

# a refilled rate bucket (both dialects; parameters: full_bucket_params)
FULL_BUCKET_WHERE = "budget = {p} AND tokens + ({p} - updated_at) * {p} >= {p}"


def full_bucket_params(budget: str, per_s: float, burst: float, now: float) -> tuple:
    """FULL_BUCKET_WHERE's parameters: the buckets of ``budget`` refilled by ``now`` (:func:`.buckets.is_full`;
    a bucket written by a clock ahead of ``now`` is kept until ``now`` catches up)."""
    check_rate(per_s, burst)
    return budget, float(now), float(per_s), float(burst) - EPSILON


def dumps(value) -> str:
    """Compact JSON for the reasons / detail columns."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
