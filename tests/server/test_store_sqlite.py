"""The SQLite store beyond the shared contract: it shares the file of ``facelive enroll --db`` (TemplateStore)."""

from __future__ import annotations

import sqlite3
import threading

import numpy as np
import pytest

from facelivenet.edge_runtime.store import SCHEMA_VERSION, TemplateStore
from facelivenet.server.store import SessionRow, StoreError, StoreUnavailableError, migrations, open_store
from facelivenet.server.store_sqlite import SQLiteServerStore, split_statements


def test_serves_the_users_enrolled_by_the_template_store(tmp_path):
    db = tmp_path / "users.db"
    with TemplateStore(db) as enrolled:
        enrolled.put("alice", "fp", np.eye(2, 8, dtype=np.float32))
    with open_store(db) as store:
        assert store.kind == "sqlite" and isinstance(store, SQLiteServerStore)
        assert store.template("alice", "fp").embeddings.shape == (2, 8)
        store.put_template("bob", "fp", np.eye(1, 8, dtype=np.float32))
    with TemplateStore(db) as enrolled:  # facelive enroll keeps opening the file the server migrated
        assert [u.user_id for u in enrolled.users()] == ["alice", "bob"]
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = [r[0] for r in conn.execute("SELECT version FROM server_migrations")]
    finally:
        conn.close()
    assert versions == [m.version for m in migrations("sqlite")]  # applied once across two opens


def test_a_newer_server_schema_is_refused(tmp_path):
    db = tmp_path / "users.db"
    open_store(db).close()
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO server_migrations VALUES (999, 'future', 0)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema version 999"):
        open_store(db)


def test_another_applications_file_is_left_untouched(tmp_path):
    db = tmp_path / "other.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE foreign_data (x)")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    with pytest.raises(StoreError, match="another application"):
        open_store(db)
    assert db.read_bytes() == before


def test_a_store_may_move_between_threads(tmp_path):
    """The app's pool hands a store to one thread at a time, not always the one that opened it."""
    store = open_store(tmp_path / "users.db")
    seen = []
    worker = threading.Thread(target=lambda: (store.put_template("alice", "fp", np.eye(1, 4, dtype=np.float32)),
                                              seen.append(store.users())))
    worker.start()
    worker.join(timeout=10)
    assert [u.user_id for u in seen[0]] == ["alice"]
    assert store.template("alice", "fp").embeddings.shape == (1, 4)
    store.close()


def test_url_schemes(tmp_path):
    with pytest.raises(StoreError, match="unsupported database URL scheme 'mysql'"):
        open_store("mysql://u:secret@host/db")


def test_split_statements_keeps_semicolons_in_comments_and_triggers():
    script = ("-- a comment; with a semicolon\nCREATE TABLE a (x);\n"
              "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; SELECT 2; END;\n-- trailing\n")
    assert split_statements(script) == ["-- a comment; with a semicolon\nCREATE TABLE a (x);",
                                        "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; SELECT 2; END;"]


def test_a_file_locked_past_the_timeout_is_unavailable_and_nothing_is_half_written(tmp_path):
    db = tmp_path / "users.db"
    store = SQLiteServerStore(db, timeout_s=0.2)
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        row = SessionRow("s1", "alice", "k", "fp", "pending", [], 1.0, 91.0, "n")
        with pytest.raises(StoreUnavailableError, match="locked"):
            store.create_session(row)
        other.execute("ROLLBACK")
        assert store.session("s1") is None
        store.create_session(row)  # served again once the lock is gone
        assert store.session("s1") == row
    finally:
        other.close()
        store.close()
