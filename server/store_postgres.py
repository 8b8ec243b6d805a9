"""The PostgreSQL server store (psycopg 3): templates, attempts, keys and sessions shared by every server instance.

- The whole schema is versioned SQL in ``server/migrations/postgresql``; at open, the missing versions are
  applied in one transaction under an advisory lock (two servers starting at once do not race) and recorded
  in ``server_migrations`` (version, name, applied).
- One connection per store object (the app keeps one store per worker thread). A database that is down raises
  StoreUnavailableError; the next call connects again. A call whose connection turns out dead before its
  COMMIT was sent is retried once on a new connection (nothing was written), so a database restart costs no request.
- Templates: the semantics of edge_runtime.store.TemplateStore (embeddings as little-endian float32 bytea).
- Sessions: optimistic concurrency through the version in the UPDATE's WHERE (no ``SELECT ... FOR UPDATE``);
  the expiry sweep is one UPDATE whose row locks make each session expire exactly once across instances.
- Every statement has a timeout (``statement_timeout``, default 10 s): one that runs or waits on a lock
  longer is cancelled and the call raises StoreUnavailableError (the app answers 503); a database process that
  stops answering altogether is not covered (no client-side timer).
- Single-statement reads run in autocommit mode, each its own transaction (no BEGIN / COMMIT round trips).
- Pending-frame state updates are one autocommit UPDATE each under the connection's ``synchronous_commit =
  off`` (the PostgreSQL counterpart of SQLite's NORMAL: a database crash may lose the last few; the session
  then fails closed); every other write is a transaction that sets the database's own setting back, except the
  shared rate buckets' (a crash may hand back the last few tokens, nothing worse).
- The shared rate limits' take is one transaction: an upsert that creates the missing buckets full and locks
  every named bucket row, in name order (``ON CONFLICT DO UPDATE`` locks a row and returns its newest committed
  version, even one committed after the statement began), the all-or-nothing decision in Python
  (:mod:`.buckets`, the same arithmetic as SQLite's), then one UPDATE and COMMIT; a refusal rolls back (nothing
  written, not even the new rows). A second worker taking the same bucket waits on the row lock and decides on
  the first one's result, so two workers never both take the last token; the lock order rules out deadlocks,
  and the sweep of refilled buckets skips rows a take holds (``FOR UPDATE SKIP LOCKED``) instead of waiting.
  The refill arithmetic is not in SQL so that both dialects share one copy of it.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Sequence, TypeVar

import numpy as np

from facelivenet.edge_runtime.store import APPLICATION_ID, Template, UserInfo, validate_user_id

from .buckets import Bucket, bucket_names, check_rate, take_all
from .store import (DEFAULT_DB_TIMEOUT_S, EXPIRED_WHERE, FULL_BUCKET_WHERE, KEY_COLUMNS, SESSION_COLUMNS,
                    SESSION_EXPIRED, SESSION_FRAME_COLUMNS, Attempt, KeyRecord, ModelMismatchError, SessionRow,
                    StoreError, StoreUnavailableError, UnknownUserError, attempt_dict, attempt_row, check_key,
                    check_schema_version, dumps, f32_bytes, f32_rows, full_bucket_params, key_from_values, migrations,
                    one_line, prepare_template, redact_url, session_from_values, session_values, update_columns)

try:
    import psycopg
except ImportError:  # pragma: no cover - the server extra installs it
    psycopg = None

log = logging.getLogger(__name__)
T = TypeVar("T")

# PostgreSQL's values of synchronous_commit (the durable transactions set the database's own back)
SYNCHRONOUS_COMMIT = ("on", "off", "local", "remote_write", "remote_apply")
_INSERT_ATTEMPT = "INSERT INTO attempts (user_id, ts, success, reasons) VALUES (%s, %s, %s, %s)"
_JSON_COLUMNS = ("reasons", "detail")


# every named bucket: created full when missing, locked in name order, returned as last committed
_LOCK_BUCKETS = ("INSERT INTO rate_buckets (budget, who, tokens, updated_at) "
                 "SELECT %s, w.who, %s, %s FROM unnest(%s::text[]) AS w(who) ORDER BY w.who "
                 "ON CONFLICT (budget, who) DO UPDATE SET tokens = rate_buckets.tokens "
                 "RETURNING who, tokens, updated_at")
_PUT_BUCKETS = ("UPDATE rate_buckets AS b SET tokens = v.tokens, updated_at = v.updated_at "
                "FROM unnest(%s::text[], %s::float8[], %s::float8[]) AS v(who, tokens, updated_at) "
                "WHERE b.budget = %s AND b.who = v.who")


class _Refused(Exception):
    """A take refused inside its transaction: raised to roll it back; ``wait_s`` until a token is back."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"refused for {wait_s:g} s")
        self.wait_s = wait_s


def _placeholder(name: str) -> str:
    return "%s::jsonb" if name in _JSON_COLUMNS else "%s"


class PostgresServerStore:
    """The server store on the PostgreSQL database at ``url`` (``postgresql://user:pw@host:port/db``)."""

    kind = "postgresql"

    def __init__(self, url: str, connect_timeout_s: int = 5, statement_timeout_s: float = DEFAULT_DB_TIMEOUT_S) -> None:
        if psycopg is None:
            raise StoreError("a postgresql:// store needs psycopg 3: pip install 'facelivenet[server]'")
        self.url = url
        self._where = redact_url(url)
        self._connect_timeout_s = connect_timeout_s
        if not statement_timeout_s > 0:
            raise StoreError(f"the statement timeout must be > 0 seconds, got {statement_timeout_s!r}")
        self._statement_timeout_ms = max(1, round(statement_timeout_s * 1000))
        self._conn = None
        self._durable_setting = "on"  # read from the database at each connection
        self._run(self._migrate)

    # ------------------------------------------------------------ connection and transactions

    def _connection(self):
        if self._conn is None or self._conn.closed:
            try:
                conn = psycopg.connect(self.url, autocommit=True, connect_timeout=self._connect_timeout_s,
                                       application_name="facelive-serve")
                # durable writes keep the database's own setting; the connection's default becomes the
                # pending frames' (each such update is one autocommit statement: one round trip)
                setting = conn.execute("SHOW synchronous_commit").fetchone()[0]
                if setting not in SYNCHRONOUS_COMMIT:
                    conn.close()
                    raise StoreError(f"{self._where}: unexpected synchronous_commit {setting!r}")
                conn.execute(f"SET synchronous_commit = off; SET statement_timeout = {self._statement_timeout_ms}")
                self._durable_setting, self._conn = setting, conn
            except psycopg.Error as exc:
                self._conn = None
                raise StoreUnavailableError(f"cannot connect to {self._where}: {one_line(exc)}") from exc
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def _run(self, work: Callable[["psycopg.Cursor"], T], one_statement: str | None = None,
             durable: bool = True) -> T:
        """``work(cursor)`` in one transaction (``durable``: committed with the database's own synchronous_commit,
        else with the connection's ``off``); psycopg's errors as the store's (module docstring).
        ``one_statement``: ``work`` runs a single statement, a transaction of its own in autocommit mode (no
        BEGIN / COMMIT round trips): ``"read"`` (retried once on a new connection, as a transaction is), or
        ``"pending_write"`` (a pending frame's update: committed with ``synchronous_commit = off``, never
        retried, since once sent its outcome is unknown)."""
        for first_try in (True, False):
            reused = self._conn is not None and not self._conn.closed
            conn = self._connection()
            committing = one_statement == "pending_write"
            try:
                with conn.cursor() as cur:
                    if one_statement is not None:
                        return work(cur)
                    cur.execute(f"BEGIN; SET LOCAL synchronous_commit = {self._durable_setting}" if durable
                                else "BEGIN")
                    result = work(cur)
                    committing = True
                    cur.execute("COMMIT")
                return result
            except psycopg.errors.QueryCanceled as exc:  # the statement timeout: the database hangs or a lock does
                self._rollback_or_drop()
                raise StoreUnavailableError(f"the database {self._where} did not answer within "
                                            f"{self._statement_timeout_ms / 1000:g} s: {one_line(exc)}") from exc
            except psycopg.OperationalError as exc:
                self._rollback_or_drop()
                if first_try and not committing and (reused or not conn.broken):
                    log.info("retrying on a new connection to %s after: %s", self._where, one_line(exc))
                    continue
                unknown = " (the outcome of the last write is unknown)" if committing else ""
                raise StoreUnavailableError(f"the database {self._where} is unavailable{unknown}: "
                                            f"{one_line(exc)}") from exc
            except psycopg.IntegrityError:
                self._rollback_or_drop()
                raise
            except psycopg.Error as exc:
                self._rollback_or_drop()
                raise StoreError(f"database {self._where}: {one_line(exc)}") from exc
            except BaseException:
                self._rollback_or_drop()
                raise
        raise AssertionError("unreachable")

    def _rollback_or_drop(self) -> None:
        """End a failed transaction; a connection that cannot even roll back is dropped (the next call reconnects)."""
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            self._drop()
            return
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:
            self._drop()

    def _migrate(self, cur) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (APPLICATION_ID,))
        cur.execute("CREATE TABLE IF NOT EXISTS server_migrations "
                    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied DOUBLE PRECISION NOT NULL)")
        applied = cur.execute("SELECT COALESCE(MAX(version), 0) FROM server_migrations").fetchone()[0]
        check_schema_version(applied, "postgresql", self._where)
        for mig in migrations("postgresql")[applied:]:
            cur.execute(mig.sql)
            cur.execute("INSERT INTO server_migrations VALUES (%s, %s, %s)", (mig.version, mig.name, time.time()))
            log.info("applied server migration %04d_%s to %s", mig.version, mig.name, self._where)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._drop()

    def __enter__(self) -> "PostgresServerStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def ping(self) -> None:
        """Raise StoreUnavailableError when the database cannot be reached."""
        self._run(lambda cur: cur.execute("SELECT 1").fetchone(), one_statement="read")

    # ------------------------------------------------------------ templates

    def put_template(self, user_id: str, model_fingerprint: str, embeddings: np.ndarray,
                     sources: Sequence[str] | None = None) -> Template:
        """Store (or replace) the user's template for this model, in one transaction."""
        validate_user_id(user_id)
        emb, template, sources = prepare_template(embeddings, sources)
        now = time.time()

        def work(cur) -> None:
            cur.execute("DELETE FROM embeddings WHERE user_id = %s AND model_fingerprint = %s",
                        (user_id, model_fingerprint))
            cur.execute("INSERT INTO templates VALUES (%s, %s, %s, %s, %s, %s) "
                        "ON CONFLICT (user_id, model_fingerprint) DO UPDATE SET dim = EXCLUDED.dim, "
                        "template = EXCLUDED.template, images = EXCLUDED.images, created = EXCLUDED.created",
                        (user_id, model_fingerprint, emb.shape[1], f32_bytes(template), len(emb), now))
            cur.executemany("INSERT INTO embeddings VALUES (%s, %s, %s, %s, %s)",
                            ((user_id, model_fingerprint, i, f32_bytes(e), str(s))
                             for i, (e, s) in enumerate(zip(emb, sources))))
        self._run(work)
        return Template(user_id, model_fingerprint, template, emb, now)

    def template(self, user_id: str, model_fingerprint: str) -> Template:
        """The user's template for this model; UnknownUserError / ModelMismatchError otherwise."""
        # one statement: one snapshot, even while another instance replaces the template
        rows = self._run(lambda cur: cur.execute(
            "SELECT t.model_fingerprint, t.dim, t.template, t.created, "
            "CASE WHEN t.model_fingerprint = %s THEN (SELECT array_agg(e.embedding ORDER BY e.idx) FROM embeddings e "
            "WHERE e.user_id = t.user_id AND e.model_fingerprint = t.model_fingerprint) END "
            "FROM templates t WHERE t.user_id = %s", (model_fingerprint, user_id)).fetchall(), one_statement="read")
        if not rows:
            raise UnknownUserError(f"user {user_id!r} is not enrolled in {self._where}")
        for fp, dim, blob, created, embs in rows:
            if fp == model_fingerprint:
                return Template(user_id, fp, f32_rows(blob, dim)[0], f32_rows(b"".join(embs or []), dim), created)
        others = ", ".join(sorted(r[0][:40] for r in rows))
        raise ModelMismatchError(
            f"user {user_id!r} was enrolled with another model ({others}), not {model_fingerprint[:40]}: "
            "templates of different models are never compared; enroll the user again with this bundle")

    def users(self) -> list[UserInfo]:
        """Every (user, model) template, sorted by user."""
        rows = self._run(lambda cur: cur.execute(
            "SELECT user_id, model_fingerprint, images, created FROM templates ORDER BY user_id, created").fetchall(),
            one_statement="read")
        return [UserInfo(*r) for r in rows]

    def delete_user(self, user_id: str) -> int:
        """Remove the user's templates (every model) and attempts; the number of templates removed."""
        def work(cur) -> int:
            n = cur.execute("DELETE FROM templates WHERE user_id = %s", (user_id,)).rowcount
            cur.execute("DELETE FROM attempts WHERE user_id = %s", (user_id,))
            return n
        n = self._run(work)
        if n == 0:
            raise UnknownUserError(f"user {user_id!r} is not enrolled in {self._where}")
        return n

    # ------------------------------------------------------------ attempts / lock-out

    def locked_until(self, user_id: str, max_failures: int, window_s: float, now: float | None = None) -> float | None:
        """When ``max_failures`` failures (since the last success) fall within ``window_s``: the time the lock
        ends; else None (TemplateStore's rule)."""
        now = time.time() if now is None else now
        fails = self._run(lambda cur: [r[0] for r in cur.execute(
            "SELECT ts FROM attempts WHERE user_id = %s AND NOT success AND ts > %s AND ts > COALESCE("
            "(SELECT MAX(ts) FROM attempts WHERE user_id = %s AND success), '-Infinity') ORDER BY ts DESC LIMIT %s",
            (user_id, now - window_s, user_id, max_failures))], one_statement="read")
        if len(fails) < max_failures:
            return None
        return min(fails) + window_s

    def attempts(self, user_id: str | None = None, limit: int = 100) -> list[dict]:
        """The newest ``limit`` attempts (of one user, or all), newest first."""
        where, params = ("WHERE user_id = %s", (user_id,)) if user_id is not None else ("", ())
        rows = self._run(lambda cur: cur.execute(
            f"SELECT user_id, ts, success, reasons FROM attempts {where} ORDER BY ts DESC, id DESC LIMIT %s",
            (*params, int(limit))).fetchall(), one_statement="read")
        return [attempt_dict(*r) for r in rows]

    # ------------------------------------------------------------ keys

    def add_key(self, rec: KeyRecord) -> None:
        """Store a new key; StoreError if its id exists."""
        check_key(rec)
        try:
            self._run(lambda cur: cur.execute(
                f"INSERT INTO api_keys ({', '.join(KEY_COLUMNS)}) VALUES (%s, %s, %s, %s, %s, %s)",
                (rec.key_id, rec.name, rec.scope, rec.secret_sha256, rec.created, rec.revoked)))
        except psycopg.IntegrityError as exc:
            raise StoreError(f"an API key with id {rec.key_id!r} exists already") from exc

    def key(self, key_id: str) -> KeyRecord | None:
        """The key with this id (revoked or not), or None."""
        r = self._run(lambda cur: cur.execute(
            f"SELECT {', '.join(KEY_COLUMNS)} FROM api_keys WHERE key_id = %s", (key_id,)).fetchone(),
            one_statement="read")
        return key_from_values(r) if r else None

    def keys(self) -> list[KeyRecord]:
        """Every key, oldest first."""
        rows = self._run(lambda cur: cur.execute(
            f"SELECT {', '.join(KEY_COLUMNS)} FROM api_keys ORDER BY created, key_id").fetchall(), one_statement="read")
        return [key_from_values(r) for r in rows]

    def revoke_key(self, key_id: str) -> bool:
        """Revoke the key; False when there is no such key or it was revoked already."""
        return self._run(lambda cur: cur.execute(
            "UPDATE api_keys SET revoked = TRUE WHERE key_id = %s AND NOT revoked", (key_id,)).rowcount == 1)

    # ------------------------------------------------------------ sessions

    def create_session(self, row: SessionRow) -> None:
        """Insert a new session (StoreError if its id exists)."""
        values = session_values(row)
        marks = ", ".join(_placeholder(name) for name in SESSION_COLUMNS)
        try:
            self._run(lambda cur: cur.execute(
                f"INSERT INTO sessions ({', '.join(SESSION_COLUMNS)}) VALUES ({marks})", values))
        except psycopg.IntegrityError as exc:
            raise StoreError(f"session {row.session_id!r} exists already") from exc

    def session(self, session_id: str) -> SessionRow | None:
        """The session, or None."""
        r = self._run(lambda cur: cur.execute(
            f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions WHERE session_id = %s", (session_id,)).fetchone(),
            one_statement="read")
        return session_from_values(r) if r else None

    def update_session(self, row: SessionRow, expected_version: int, attempt: Attempt | None = None) -> bool:
        """Write ``row`` (version = expected_version + 1) if the stored version is ``expected_version``, with
        ``attempt`` (success, reasons, ts) in the same transaction. True when written (``row.version`` is then
        updated); False when another writer came first (nothing written)."""
        columns = update_columns(row, attempt)
        values = session_values(row, columns)
        sets = ", ".join(f"{name} = {_placeholder(name)}" for name in columns)

        def work(cur) -> bool:
            n = cur.execute(f"UPDATE sessions SET {sets}, version = %s WHERE session_id = %s AND version = %s",
                            (*values, expected_version + 1, row.session_id, expected_version)).rowcount
            if n == 1 and attempt is not None:
                cur.execute(_INSERT_ATTEMPT, attempt_row(row.user_id, attempt))
            return n == 1
        written = self._run(work, one_statement="pending_write" if columns == SESSION_FRAME_COLUMNS else None)
        if written:
            row.version = expected_version + 1
        return written

    def claim_result(self, session_id: str) -> bool:
        """Mark the session's result delivered; True only for the first caller (bumps the version)."""
        return self._run(lambda cur: cur.execute(
            "UPDATE sessions SET result_delivered = TRUE, version = version + 1 "
            "WHERE session_id = %s AND NOT result_delivered", (session_id,)).rowcount == 1)

    def expire_sessions(self, now: float, max_gap_s: float) -> list[str]:
        """Reject (SESSION_EXPIRED, one failed attempt each) the pending sessions past ``expires_at`` or idle for
        more than ``max_gap_s``; the ids this call expired (each session is expired by exactly one caller)."""
        # a concurrent sweep waits on the row locks, then re-checks the WHERE and skips the rows already rejected
        _, ts, success, reasons = attempt_row("", (False, [SESSION_EXPIRED], now))
        rows = self._run(lambda cur: cur.execute(
            "WITH expired AS (UPDATE sessions SET status = 'reject', reasons = %s::jsonb, version = version + 1 "
            f"WHERE {EXPIRED_WHERE.format(p='%s')} RETURNING session_id, user_id), "
            "logged AS (INSERT INTO attempts (user_id, ts, success, reasons) "
            "SELECT user_id, %s, %s, %s FROM expired) SELECT session_id FROM expired",
            (dumps([SESSION_EXPIRED]), now, now - max_gap_s, ts, success, reasons)).fetchall())
        return [r[0] for r in rows]

    # ------------------------------------------------------------ shared rate limits

    def take_tokens(self, budget: str, whos: Sequence[str], per_s: float, burst: float, now: float) -> float:
        """One token from each of ``whos``' buckets of ``budget``, or none: 0.0 when taken, else the seconds until
        every one has a token (nothing written). One transaction with the bucket rows locked (module docstring)."""
        check_rate(per_s, burst)
        names = bucket_names(whos)

        def work(cur) -> float:
            rows = cur.execute(_LOCK_BUCKETS, (budget, float(burst), float(now), names)).fetchall()
            wait, taken = take_all({who: Bucket(tokens, at) for who, tokens, at in rows}, now, per_s, burst)
            if wait > 0:
                raise _Refused(wait)
            cur.execute(_PUT_BUCKETS, (list(taken), [b.tokens for b in taken.values()],
                                       [b.updated_at for b in taken.values()], budget))
            return 0.0
        try:
            return self._run(work, durable=False)
        except _Refused as refused:
            return refused.wait_s

    def forget_full_buckets(self, budget: str, per_s: float, burst: float, now: float) -> int:
        """Delete the buckets of ``budget`` refilled by ``now`` (a missing bucket is full); how many. The sweep never
        waits: a bucket a take holds locked is skipped (it is in use), so a take and a sweep cannot deadlock."""
        where, params = FULL_BUCKET_WHERE.format(p="%s"), full_bucket_params(budget, per_s, burst, now)
        return self._run(lambda cur: cur.execute(
            "DELETE FROM rate_buckets WHERE (budget, who) IN "
            f"(SELECT budget, who FROM rate_buckets WHERE {where} FOR UPDATE SKIP LOCKED)", params).rowcount,
            durable=False)
