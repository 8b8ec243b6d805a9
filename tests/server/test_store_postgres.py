"""The PostgreSQL store beyond the shared contract: a database that goes down and comes back, migrations at open."""

from __future__ import annotations

import threading

import numpy as np
import psycopg
import pytest

from facelivenet.server.store import StoreError, StoreUnavailableError, migrations, open_store
from facelivenet.server.store_postgres import PostgresServerStore

from .conftest import _free_port


def test_database_down_raises_unavailable_and_the_store_recovers(pg_cluster, pg_url):
    store = open_store(pg_url)
    try:
        store.put_template("alice", "fp", np.eye(2, 8, dtype=np.float32))
        pg_cluster.stop()
        try:
            with pytest.raises(StoreUnavailableError, match="unavailable|cannot connect"):
                store.users()
            with pytest.raises(StoreUnavailableError):
                store.ping()
        finally:
            pg_cluster.start()
        store.ping()  # reconnects on the next call
        assert [u.user_id for u in store.users()] == ["alice"]
    finally:
        store.close()


def test_a_restarted_database_costs_no_call(pg_cluster, pg_url):
    """A connection that died while idle is replaced before the call's transaction starts: no 503 after a restart."""
    with open_store(pg_url) as store:
        store.ping()
        pg_cluster.stop()
        pg_cluster.start()
        assert store.users() == []


def test_closed_port_is_unavailable_at_open():
    with pytest.raises(StoreUnavailableError, match="cannot connect") as err:
        open_store(f"postgresql://someone:hunter2@127.0.0.1:{_free_port()}/nowhere")
    assert "hunter2" not in str(err.value)  # the password never reaches a message


def test_migrations_applied_once_when_servers_start_together(pg_url):
    stores, errors = [], []

    def start() -> None:
        try:
            stores.append(PostgresServerStore(pg_url))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for s in stores:
        s.close()
    assert not errors and len(stores) == 4
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT version, name FROM server_migrations ORDER BY version").fetchall()
    assert rows == [(m.version, m.name) for m in migrations("postgresql")]


def test_a_newer_schema_is_refused(pg_url):
    open_store(pg_url).close()
    with psycopg.connect(pg_url) as conn:
        conn.execute("INSERT INTO server_migrations VALUES (999, 'future', 0)")
    with pytest.raises(StoreError, match="schema version 999"):
        open_store(pg_url)


def test_embeddings_are_little_endian_float32_bytea(pg_url):
    emb = np.array([[3.0, 4.0]], dtype=np.float32)
    with open_store(pg_url) as store:
        store.put_template("alice", "fp", emb)
    with psycopg.connect(pg_url) as conn:
        blob = conn.execute("SELECT embedding FROM embeddings").fetchone()[0]
    assert bytes(blob) == np.array([0.6, 0.8], dtype="<f4").tobytes()


def test_pending_frames_commit_asynchronously_and_every_other_write_as_the_database_says(pg_url):
    """The connection's default is synchronous_commit = off (a pending frame's update is one autocommit
    statement); a transaction (decisions, attempts, templates, keys) sets the database's own setting back."""
    from facelivenet.server.store import SessionRow

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {pg_url.rsplit('/', 1)[1]} SET synchronous_commit = 'remote_write'")
    with PostgresServerStore(pg_url) as store:
        show = "SHOW synchronous_commit"
        assert store._run(lambda cur: cur.execute(show).fetchone()[0]) == "remote_write"
        assert store._run(lambda cur: cur.execute(show).fetchone()[0], one_statement="read") == "off"
        row = SessionRow("s1", "alice", "k1", "fp", "pending", [], 1.0, 100.0, "h", state=b"x")
        store.create_session(row)
        row.seq, row.state = 1, b"y"
        assert store.update_session(row, 0) and row.version == 1  # the pending write: one statement
        assert not store.update_session(row, 0)  # the version check still holds
        row.status, row.reasons = "reject", ["SESSION_EXPIRED"]
        assert store.update_session(row, 1, attempt=(False, row.reasons, 2.0))
        assert store.session("s1").status == "reject" and len(store.attempts("alice")) == 1


def test_a_statement_stuck_on_a_lock_is_cancelled_and_the_store_goes_on(pg_url):
    """statement_timeout: a call that waits past it raises StoreUnavailableError (the app's 503) after the timeout,
    not after the lock is gone; the same store works once the lock is released."""
    import time

    from facelivenet.server.config import ServerConfig

    store = ServerConfig(db=pg_url, db_timeout_s=0.3).open_store()
    holder = psycopg.connect(pg_url)
    try:
        store.ping()
        holder.execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")  # a transaction left open
        start = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="did not answer within 0.3 s"):
            store.session("nope")
        assert time.monotonic() - start < 3.0
        holder.rollback()
        assert store.session("nope") is None
    finally:
        holder.close()
        store.close()
    with pytest.raises(StoreError, match="statement timeout must be > 0"):
        PostgresServerStore(pg_url, statement_timeout_s=0)
