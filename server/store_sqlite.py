"""The SQLite server store: the same file as ``facelive enroll --db`` (edge_runtime.store.TemplateStore).

- Templates, embeddings and attempts are TemplateStore's tables and go through a TemplateStore (its schema,
  its ``user_version``); the server adds ``api_keys`` and ``sessions`` through its own versioned migrations,
  recorded in ``server_migrations`` (version, name, applied). A file made by ``facelive enroll`` gains the
  server's tables on its first ``facelive serve``, and ``facelive enroll`` keeps opening it.
- WAL; ``synchronous=FULL`` for template, attempt, key and decision writes; NORMAL for pending-frame state
  updates (a committed update survives kill -9 of the process either way; NORMAL may lose the last ones on power loss).
- Every write is one ``BEGIN IMMEDIATE`` transaction: writers of several processes are serialised, so the
  version check, ``claim_result`` and the expiry sweep are exactly-once across processes.
- The shared rate limits' take is one ``BEGIN IMMEDIATE`` transaction (read the buckets, decide, write them):
  two processes cannot both take the last token. Bucket writes commit with NORMAL (a power cut may hand back
  the last few tokens, nothing worse).
- A locked or unreachable file (busy past the timeout, I/O error) raises StoreUnavailableError.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from facelivenet.edge_runtime.store import Template, TemplateStore, UserInfo

from .buckets import Bucket, bucket_names, check_rate, take_all
from .store import (EXPIRED_WHERE, FULL_BUCKET_WHERE, KEY_COLUMNS, SESSION_COLUMNS, SESSION_EXPIRED, Attempt,
                    KeyRecord, SessionRow, StoreError, StoreUnavailableError, attempt_dict, attempt_row, check_key,
                    check_schema_version, dumps, full_bucket_params, key_from_values, migrations, session_from_values,
                    session_values, update_columns)

log = logging.getLogger(__name__)

_INSERT_ATTEMPT = "INSERT INTO attempts (user_id, ts, success, reasons) VALUES (?, ?, ?, ?)"
_PUT_BUCKET = ("INSERT INTO rate_buckets (budget, who, tokens, updated_at) VALUES (?, ?, ?, ?) "
               "ON CONFLICT (budget, who) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at")


def _sqlite_errors(method):
    """sqlite3 errors as the store's: busy / I/O / cannot open -> StoreUnavailableError, the rest StoreError."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailableError(f"the database {self.path} is unavailable: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"database {self.path}: {exc}") from exc
    return wrapper


def split_statements(script: str) -> list[str]:
    """The SQL statements of ``script`` (so a migration can run inside the caller's transaction)."""
    statements, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                lines = [ln for ln in pending.splitlines() if not ln.strip().startswith("--")]
                if "".join(lines).strip(" \t\r\n;"):
                    statements.append(pending.strip())
            pending = ""
    return statements


class SQLiteServerStore:
    """The server store on an SQLite file (created if absent, with mode 0600)."""

    kind = "sqlite"

    def __init__(self, path: str | Path, timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self._timeout_s = timeout_s
        self._durable = True
        # the TemplateStore creates or validates the file first (its schema, its checks)
        # handed between threads by the app's pool (one at a time), as this object's own connection is
        self._template_store = TemplateStore(self.path, timeout_s=timeout_s, check_same_thread=False)
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=timeout_s, isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute("PRAGMA synchronous = FULL")
            self._migrate()
        except sqlite3.OperationalError as exc:
            self.close()
            raise StoreUnavailableError(f"cannot prepare the server tables in {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(f"{self.path} is not a usable server database ({exc}); it was left untouched") from exc

    @property
    def _templates(self) -> TemplateStore:
        """The templates, embeddings and attempts: TemplateStore's tables on the same file."""
        return self._template_store

    def _migrate(self) -> None:
        with self._write() as c:
            c.execute("CREATE TABLE IF NOT EXISTS server_migrations "
                      "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied REAL NOT NULL)")
            applied = c.execute("SELECT COALESCE(MAX(version), 0) FROM server_migrations").fetchone()[0]
            check_schema_version(applied, "sqlite", str(self.path))
            for mig in migrations("sqlite")[applied:]:
                for statement in split_statements(mig.sql):
                    c.execute(statement)
                c.execute("INSERT INTO server_migrations VALUES (?, ?, ?)", (mig.version, mig.name, time.time()))
                log.info("applied server migration %04d_%s to %s", mig.version, mig.name, self.path)

    @contextmanager
    def _write(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction; ``durable=False`` commits with synchronous=NORMAL (pending-frame state only)."""
        c = self._conn
        if durable != self._durable:
            c.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            self._durable = durable
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close both connections (idempotent)."""
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()
        store = getattr(self, "_template_store", None)
        if store is not None:
            store.close()

    def __enter__(self) -> "SQLiteServerStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @_sqlite_errors
    def ping(self) -> None:
        """Raise StoreUnavailableError when the file cannot be read."""
        self._conn.execute("SELECT 1 FROM server_migrations LIMIT 1").fetchall()

    # ------------------------------------------------------------ templates (TemplateStore's)

    @_sqlite_errors
    def put_template(self, user_id: str, model_fingerprint: str, embeddings: np.ndarray,
                     sources: Sequence[str] | None = None) -> Template:
        """Store (or replace) the user's template for this model, in one transaction."""
        return self._templates.put(user_id, model_fingerprint, embeddings, sources)

    @_sqlite_errors
    def template(self, user_id: str, model_fingerprint: str) -> Template:
        """The user's template for this model; UnknownUserError / ModelMismatchError otherwise."""
        return self._templates.template(user_id, model_fingerprint)

    @_sqlite_errors
    def users(self) -> list[UserInfo]:
        """Every (user, model) template, sorted by user."""
        return self._templates.users()

    @_sqlite_errors
    def delete_user(self, user_id: str) -> int:
        """Remove the user's templates and attempts; the number of templates removed (UnknownUserError if none)."""
        return self._templates.delete(user_id)

    # ------------------------------------------------------------ attempts / lock-out

    @_sqlite_errors
    def locked_until(self, user_id: str, max_failures: int, window_s: float, now: float | None = None) -> float | None:
        """The lock-out's end when the user has ``max_failures`` recent failures, else None (TemplateStore's rule)."""
        return self._templates.locked_until(user_id, max_failures, window_s, now)

    @_sqlite_errors
    def attempts(self, user_id: str | None = None, limit: int = 100) -> list[dict]:
        """The newest ``limit`` attempts (of one user, or all), newest first."""
        where, params = ("WHERE user_id = ?", (user_id,)) if user_id is not None else ("", ())
        rows = self._conn.execute(f"SELECT user_id, ts, success, reasons FROM attempts {where} "
                                  "ORDER BY ts DESC, rowid DESC LIMIT ?", (*params, int(limit))).fetchall()
        return [attempt_dict(*r) for r in rows]

    # ------------------------------------------------------------ keys

    @_sqlite_errors
    def add_key(self, rec: KeyRecord) -> None:
        """Store a new key; StoreError if its id exists."""
        check_key(rec)
        try:
            with self._write() as c:
                c.execute(f"INSERT INTO api_keys ({', '.join(KEY_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)",
                          (rec.key_id, rec.name, rec.scope, rec.secret_sha256, rec.created, int(rec.revoked)))
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"an API key with id {rec.key_id!r} exists already") from exc

    @_sqlite_errors
    def key(self, key_id: str) -> KeyRecord | None:
        """The key with this id (revoked or not), or None."""
        r = self._conn.execute(f"SELECT {', '.join(KEY_COLUMNS)} FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        return key_from_values(r) if r else None

    @_sqlite_errors
    def keys(self) -> list[KeyRecord]:
        """Every key, oldest first."""
        return [key_from_values(r) for r in self._conn.execute(
            f"SELECT {', '.join(KEY_COLUMNS)} FROM api_keys ORDER BY created, key_id")]

    @_sqlite_errors
    def revoke_key(self, key_id: str) -> bool:
        """Revoke the key; False when there is no such key or it was revoked already."""
        with self._write() as c:
            n = c.execute("UPDATE api_keys SET revoked = 1 WHERE key_id = ? AND revoked = 0", (key_id,)).rowcount
        return n == 1

    # ------------------------------------------------------------ sessions

    @_sqlite_errors
    def create_session(self, row: SessionRow) -> None:
        """Insert a new session (StoreError if its id exists)."""
        values = session_values(row)
        try:
            with self._write() as c:
                c.execute(f"INSERT INTO sessions ({', '.join(SESSION_COLUMNS)}) "
                          f"VALUES ({', '.join('?' * len(values))})", values)
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"session {row.session_id!r} exists already") from exc

    @_sqlite_errors
    def session(self, session_id: str) -> SessionRow | None:
        """The session, or None."""
        r = self._conn.execute(f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions WHERE session_id = ?",
                               (session_id,)).fetchone()
        return session_from_values(r) if r else None

    @_sqlite_errors
    def update_session(self, row: SessionRow, expected_version: int, attempt: Attempt | None = None) -> bool:
        """Write ``row`` (version = expected_version + 1) if the stored version is ``expected_version``, with
        ``attempt`` (success, reasons, ts) in the same transaction. True when written (``row.version`` is then
        updated); False when another writer came first (nothing written)."""
        columns = update_columns(row, attempt)
        values = session_values(row, columns)
        sets = ", ".join(f"{name} = ?" for name in columns)
        with self._write(durable=row.status != "pending" or attempt is not None) as c:
            n = c.execute(f"UPDATE sessions SET {sets}, version = ? WHERE session_id = ? AND version = ?",
                          (*values, expected_version + 1, row.session_id, expected_version)).rowcount
            if n == 1 and attempt is not None:
                c.execute(_INSERT_ATTEMPT, attempt_row(row.user_id, attempt))
        if n == 1:
            row.version = expected_version + 1
        return n == 1

    @_sqlite_errors
    def claim_result(self, session_id: str) -> bool:
        """Mark the session's result delivered; True only for the first caller (bumps the version)."""
        with self._write() as c:
            return c.execute("UPDATE sessions SET result_delivered = 1, version = version + 1 "
                             "WHERE session_id = ? AND result_delivered = 0", (session_id,)).rowcount == 1

    @_sqlite_errors
    def expire_sessions(self, now: float, max_gap_s: float) -> list[str]:
        """Reject (SESSION_EXPIRED, one failed attempt each) the pending sessions past ``expires_at`` or idle for
        more than ``max_gap_s``; the ids this call expired (each session is expired by exactly one caller)."""
        where = EXPIRED_WHERE.format(p="?")
        params = (now, now - max_gap_s)
        if self._conn.execute(f"SELECT 1 FROM sessions WHERE {where} LIMIT 1", params).fetchone() is None:
            return []  # the common case takes no write lock
        expired = []
        with self._write() as c:
            for session_id, user_id in c.execute(f"SELECT session_id, user_id FROM sessions WHERE {where}",
                                                 params).fetchall():
                c.execute("UPDATE sessions SET status = 'reject', reasons = ?, version = version + 1 "
                          "WHERE session_id = ?", (dumps([SESSION_EXPIRED]), session_id))
                c.execute(_INSERT_ATTEMPT, attempt_row(user_id, (False, [SESSION_EXPIRED], now)))
                expired.append(session_id)
        return expired

    # ------------------------------------------------------------ shared rate limits

    @_sqlite_errors
    def take_tokens(self, budget: str, whos: Sequence[str], per_s: float, burst: float, now: float) -> float:
        """One token from each of ``whos``' buckets of ``budget``, or none: 0.0 when taken, else the seconds until
        every one has a token (nothing written). One BEGIN IMMEDIATE transaction: read, decide, write."""
        check_rate(per_s, burst)
        names = bucket_names(whos)
        with self._write(durable=False) as c:
            held = {who: Bucket(tokens, at) for who, tokens, at in c.execute(
                f"SELECT who, tokens, updated_at FROM rate_buckets WHERE budget = ? AND who IN "
                f"({', '.join('?' * len(names))})", (budget, *names))}
            wait, taken = take_all({who: held.get(who) for who in names}, now, per_s, burst)
            c.executemany(_PUT_BUCKET, [(budget, who, b.tokens, b.updated_at) for who, b in taken.items()])
        return wait

    @_sqlite_errors
    def forget_full_buckets(self, budget: str, per_s: float, burst: float, now: float) -> int:
        """Delete the buckets of ``budget`` refilled by ``now`` (a missing bucket is full); how many."""
        where, params = FULL_BUCKET_WHERE.format(p="?"), full_bucket_params(budget, per_s, burst, now)
        if self._conn.execute(f"SELECT 1 FROM rate_buckets WHERE {where} LIMIT 1", params).fetchone() is None:
            return 0  # the common case takes no write lock
        with self._write(durable=False) as c:
            return c.execute(f"DELETE FROM rate_buckets WHERE {where}", params).rowcount
