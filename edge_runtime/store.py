"""The template store: an embedded SQLite database of enrolled users and failed attempts.

- One row per (user, model fingerprint): the normalised mean embedding; the
  individual embeddings in a child table. A template made by another model is
  never compared: :meth:`TemplateStore.template` raises ``ModelMismatchError``.
- Every write is one transaction (``BEGIN IMMEDIATE``): a process killed
  mid-enrollment leaves the previous state, never half a user.
- WAL journal (readers do not block the writer), ``synchronous=FULL``, a busy
  timeout for concurrent processes, and file mode 0600 (templates are biometric data).
- A file that is not a valid store is an error, never silently recreated.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .errors import FaceLiveError

SCHEMA_VERSION = 1
APPLICATION_ID = 0x464C4E54  # "FLNT": marks the file as a facelivenet store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS templates (
    user_id TEXT NOT NULL,
    model_fingerprint TEXT NOT NULL,
    dim INTEGER NOT NULL,
    template BLOB NOT NULL,
    images INTEGER NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (user_id, model_fingerprint)
);
CREATE TABLE IF NOT EXISTS embeddings (
    user_id TEXT NOT NULL,
    model_fingerprint TEXT NOT NULL,
    idx INTEGER NOT NULL,
    embedding BLOB NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (user_id, model_fingerprint, idx),
    FOREIGN KEY (user_id, model_fingerprint) REFERENCES templates (user_id, model_fingerprint) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS attempts (
    user_id TEXT NOT NULL,
    ts REAL NOT NULL,
    success INTEGER NOT NULL,
    reasons TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_user_ts ON attempts (user_id, ts);
"""


class StoreError(FaceLiveError):
    """The template database cannot be opened, is corrupt, or an operation on it failed."""


class UnknownUserError(StoreError):
    """No template for this user."""


class ModelMismatchError(StoreError):
    """The user's template was made by a different model: never compared."""


@dataclass(frozen=True)
class Template:
    user_id: str
    model_fingerprint: str
    template: np.ndarray  # (D,) unit length
    embeddings: np.ndarray  # (K, D) the individual enrollment embeddings
    created: float


@dataclass(frozen=True)
class UserInfo:
    user_id: str
    model_fingerprint: str
    images: int
    created: float


def validate_user_id(user_id: str) -> str:
    """User ids are 1-128 printable characters without surrounding space."""
    if not isinstance(user_id, str) or not user_id or len(user_id) > 128 or user_id != user_id.strip() \
            or not user_id.isprintable():
        raise StoreError(f"invalid user id {user_id!r}: use 1-128 printable characters, no surrounding spaces")
    return user_id


def f32_bytes(vec: np.ndarray) -> bytes:
    """An embedding (or several) as the stores keep them: little-endian float32 bytes."""
    return np.ascontiguousarray(vec, dtype="<f4").tobytes()


def f32_rows(blob: bytes, dim: int) -> np.ndarray:
    """Stored float32 bytes back as (rows, dim); StoreError when the length does not fit ``dim``."""
    v = np.frombuffer(blob, dtype="<f4")
    if v.size % dim:
        raise StoreError("a stored embedding has the wrong length: the database is damaged")
    return v.reshape(-1, dim).astype(np.float32)


def prepare_template(embeddings: np.ndarray, sources: Sequence[str] | None = None
                     ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(unit embeddings, their unit-length mean: the template, one source name each), as every store keeps
    them; StoreError on no, non-finite or mismatched input."""
    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] < 1 or not np.all(np.isfinite(emb)):
        raise StoreError(f"need at least one finite embedding, got shape {emb.shape}")
    sources = [str(s) for s in sources] if sources is not None else [""] * len(emb)
    if len(sources) != len(emb):
        raise StoreError("one source name per embedding")
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    mean = emb.mean(axis=0)
    return emb, (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32), sources


class TemplateStore:
    """Open (or create) the store at ``path``. Use as a context manager or call :meth:`close`.
    ``check_same_thread=False``: the store may be handed between threads (never used by two at once)."""

    def __init__(self, path: str | Path, create: bool = True, timeout_s: float = 10.0,
                 check_same_thread: bool = True) -> None:
        self.path = Path(path)
        exists = self.path.exists()
        if not exists and not create:
            raise StoreError(f"no template database at {self.path}")
        if exists and self.path.is_dir():
            raise StoreError(f"{self.path} is a folder, not a template database file")
        if not exists:
            if not self.path.parent.is_dir():
                raise StoreError(f"cannot create {self.path}: folder {self.path.parent} does not exist")
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.close(fd)
        old_umask = os.umask(0o077)  # the -wal and -shm files must not be world-readable either
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=timeout_s, isolation_level=None,
                                         check_same_thread=check_same_thread)
            self._init(fresh=not exists)
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise StoreError(f"{self.path} is not a usable template database ({exc}); it was left untouched — "
                             "restore it from a backup or pass another --db") from exc
        finally:
            os.umask(old_umask)

    def _close_quietly(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()

    def _init(self, fresh: bool) -> None:
        c = self._conn
        c.execute("PRAGMA foreign_keys = ON")
        app_id = c.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not fresh and (tables or app_id) and app_id != APPLICATION_ID:
            raise sqlite3.DatabaseError("it is an SQLite file of another application")
        check = c.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")
        c.execute("PRAGMA journal_mode = WAL")
        c.execute("PRAGMA synchronous = FULL")
        if app_id != APPLICATION_ID or not tables:
            # one transaction: a crash here leaves an empty file, which the next open initialises again
            c.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA application_id = {APPLICATION_ID}; "
                            f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        version = c.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"store schema version {version}; this runtime reads {SCHEMA_VERSION}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        else:
            c.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """Several SELECTs that must see one snapshot (a concurrent writer commits before or after, never between)."""
        c = self._conn
        c.execute("BEGIN")
        try:
            yield c
        finally:
            c.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "TemplateStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ templates

    def put(self, user_id: str, model_fingerprint: str, embeddings: np.ndarray,
            sources: Sequence[str] | None = None) -> Template:
        """Store (or replace) the user's template for this model, in one transaction."""
        validate_user_id(user_id)
        emb, template, sources = prepare_template(embeddings, sources)
        now = time.time()
        with self._write() as c:
            c.execute("DELETE FROM embeddings WHERE user_id = ? AND model_fingerprint = ?", (user_id, model_fingerprint))
            c.execute("INSERT OR REPLACE INTO templates VALUES (?, ?, ?, ?, ?, ?)",
                      (user_id, model_fingerprint, emb.shape[1], f32_bytes(template), len(emb), now))
            c.executemany("INSERT INTO embeddings VALUES (?, ?, ?, ?, ?)",
                          [(user_id, model_fingerprint, i, f32_bytes(e), str(s)) for i, (e, s) in enumerate(zip(emb, sources))])
        return Template(user_id, model_fingerprint, template, emb, now)

    def template(self, user_id: str, model_fingerprint: str) -> Template:
        """The user's template for this model; UnknownUserError / ModelMismatchError otherwise."""
        with self._read() as c:
            rows = c.execute("SELECT model_fingerprint, dim, template, created FROM templates WHERE user_id = ?",
                             (user_id,)).fetchall()
            embs = [r[0] for r in c.execute(
                "SELECT embedding FROM embeddings WHERE user_id = ? AND model_fingerprint = ? ORDER BY idx",
                (user_id, model_fingerprint))]
        if not rows:
            raise UnknownUserError(f"user {user_id!r} is not enrolled in {self.path}")
        for fp, dim, blob, created in rows:
            if fp == model_fingerprint:
                return Template(user_id, fp, f32_rows(blob, dim)[0], f32_rows(b"".join(embs), dim), created)
        others = ", ".join(sorted(r[0][:40] for r in rows))
        raise ModelMismatchError(
            f"user {user_id!r} was enrolled with another model ({others}), not {model_fingerprint[:40]}: "
            "templates of different models are never compared; enroll the user again with this bundle")

    def users(self) -> list[UserInfo]:
        """Every (user, model) template, sorted by user."""
        return [UserInfo(*r) for r in self._conn.execute(
            "SELECT user_id, model_fingerprint, images, created FROM templates ORDER BY user_id, created")]

    def delete(self, user_id: str) -> int:
        """Remove the user's templates (every model) and attempts; returns the number of templates removed."""
        with self._write() as c:
            n = c.execute("DELETE FROM templates WHERE user_id = ?", (user_id,)).rowcount
            c.execute("DELETE FROM attempts WHERE user_id = ?", (user_id,))
        if n == 0:
            raise UnknownUserError(f"user {user_id!r} is not enrolled in {self.path}")
        return n

    # ------------------------------------------------------------- lock-out

    def record_attempt(self, user_id: str, success: bool, reason_codes: Sequence[str] = (),
                       now: float | None = None) -> None:
        """Log one authentication attempt (the lock-out counts the failures)."""
        with self._write() as c:
            c.execute("INSERT INTO attempts VALUES (?, ?, ?, ?)",
                      (user_id, time.time() if now is None else now, int(success), ",".join(reason_codes)))

    def locked_until(self, user_id: str, max_failures: int, window_s: float, now: float | None = None) -> float | None:
        """When ``max_failures`` failures (since the last success) fall within ``window_s``: the time the
        lock ends; else None."""
        now = time.time() if now is None else now
        last_ok = self._conn.execute("SELECT MAX(ts) FROM attempts WHERE user_id = ? AND success = 1",
                                     (user_id,)).fetchone()[0] or float("-inf")
        fails = [r[0] for r in self._conn.execute(
            "SELECT ts FROM attempts WHERE user_id = ? AND success = 0 AND ts > ? AND ts > ? ORDER BY ts DESC LIMIT ?",
            (user_id, last_ok, now - window_s, max_failures))]
        if len(fails) < max_failures:
            return None
        return min(fails) + window_s
