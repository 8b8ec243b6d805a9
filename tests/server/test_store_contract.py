"""The ServerStore contract, run against both stores (``any_store``: SQLite and a real PostgreSQL)."""

from __future__ import annotations


import numpy as np
import pytest

from facelivenet.server.store import (SESSION_EXPIRED, KeyRecord, ModelMismatchError, SessionRow, StoreError,
                                      UnknownUserError, open_store)

from .racing import race

FP = "model-a" * 6
NOW = 1_800_000_000.0


def _emb(n: int, seed: int, dim: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _session(session_id: str, user: str = "alice", created: float = NOW, ttl: float = 90.0, **kw) -> SessionRow:
    return SessionRow(session_id=session_id, user_id=user, key_id="key1", model_fingerprint=FP, status="pending",
                      reasons=[], created=created, expires_at=created + ttl, nonce_sha256="n0", **kw)


def _decide(store, session_id: str, success: bool, ts: float, user: str = "alice") -> None:
    """A session decided with its attempt, as the app records every verification."""
    row = _session(session_id, user, created=ts - 5)
    store.create_session(row)
    row.status, row.reasons = ("accept", []) if success else ("reject", ["IDENTITY_MISMATCH"])
    assert store.update_session(row, row.version, attempt=(success, row.reasons, ts))


def _same_database(store, url: str):
    """A second store object on the same database (another worker or server instance)."""
    other = open_store(url)
    assert other.kind == store.kind
    return other


# ---------------------------------------------------------------- templates

def test_template_round_trip_and_replace(any_store):
    emb = _emb(3, 0)
    put = any_store.put_template("alice", FP, emb, ["a.jpg", "b.jpg", "c.jpg"])
    got = any_store.template("alice", FP)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    np.testing.assert_allclose(got.embeddings, unit, rtol=1e-6)
    np.testing.assert_allclose(got.template, put.template, rtol=1e-6)
    assert abs(float(np.linalg.norm(got.template)) - 1.0) < 1e-5
    assert got.embeddings.dtype == np.float32 and got.template.shape == (16,)

    any_store.put_template("alice", FP, _emb(2, 1))  # replaces, never appends
    assert any_store.template("alice", FP).embeddings.shape == (2, 16)
    assert [(u.user_id, u.model_fingerprint, u.images) for u in any_store.users()] == [("alice", FP, 2)]


def test_template_of_another_model_or_user_is_refused(any_store):
    any_store.put_template("alice", FP, _emb(2, 0))
    with pytest.raises(ModelMismatchError, match="another model"):
        any_store.template("alice", "model-b")
    with pytest.raises(UnknownUserError):
        any_store.template("bob", FP)
    with pytest.raises(StoreError, match="invalid user id"):
        any_store.put_template(" padded ", FP, _emb(1, 0))
    with pytest.raises(StoreError, match="finite"):
        any_store.put_template("carol", FP, np.full((1, 16), np.nan))
    assert [u.user_id for u in any_store.users()] == ["alice"]


def test_delete_user_removes_templates_and_attempts(any_store):
    any_store.put_template("alice", FP, _emb(2, 0))
    any_store.put_template("alice", "model-b", _emb(2, 1))
    any_store.put_template("bob", FP, _emb(2, 2))
    _decide(any_store, "s1", False, NOW)
    assert any_store.delete_user("alice") == 2
    assert [u.user_id for u in any_store.users()] == ["bob"]
    assert any_store.attempts("alice") == []
    with pytest.raises(UnknownUserError):
        any_store.delete_user("alice")


def test_failed_write_leaves_the_previous_template(any_store):
    any_store.put_template("alice", FP, _emb(2, 0), ["old1", "old2"])
    before = any_store.template("alice", FP)

    class Crash(Exception):
        pass

    class BadSource:  # fails while the replacing transaction is already under way
        def __str__(self):
            raise Crash("killed mid-write")

    with pytest.raises(Crash):
        any_store.put_template("alice", FP, _emb(3, 1), ["new1", BadSource(), "new3"])
    after = any_store.template("alice", FP)
    np.testing.assert_array_equal(after.embeddings, before.embeddings)
    np.testing.assert_array_equal(after.template, before.template)
    assert any_store.users()[0].images == 2
    any_store.put_template("bob", FP, _emb(1, 2))  # the store still writes
    assert len(any_store.users()) == 2


def test_data_survive_reopen(any_store_url):
    with open_store(any_store_url) as store:
        store.put_template("alice", FP, _emb(2, 0))
        store.add_key(KeyRecord("k1", "phone app", "app", "ab" * 32, NOW))
        store.create_session(_session("s1"))
        _decide(store, "s2", False, NOW)
    with open_store(any_store_url) as store:
        assert store.template("alice", FP).embeddings.shape == (2, 16)
        assert store.key("k1").name == "phone app"
        assert store.session("s1").status == "pending"
        assert store.session("s2").status == "reject"
        assert len(store.attempts("alice")) == 1


# ---------------------------------------------------------------- attempts / lock-out

def test_lockout_counts_failures_since_the_last_success_within_the_window(any_store):
    assert any_store.locked_until("alice", 3, 300.0, NOW) is None
    for i in range(2):
        _decide(any_store, f"f{i}", False, NOW + i)
    assert any_store.locked_until("alice", 3, 300.0, NOW + 10) is None
    _decide(any_store, "f2", False, NOW + 2)
    assert any_store.locked_until("alice", 3, 300.0, NOW + 10) == pytest.approx(NOW + 300.0)
    assert any_store.locked_until("alice", 3, 300.0, NOW + 301) is None  # the oldest failure left the window
    assert any_store.locked_until("bob", 3, 300.0, NOW + 10) is None  # per user

    _decide(any_store, "ok", True, NOW + 20)  # a success resets the count
    assert any_store.locked_until("alice", 3, 300.0, NOW + 21) is None
    assert [a["success"] for a in any_store.attempts("alice")] == [True, False, False, False]
    newest = any_store.attempts("alice", limit=1)
    assert newest == [{"user_id": "alice", "ts": NOW + 20, "success": True, "reasons": []}]
    assert any_store.attempts(limit=10)[1]["reasons"] == ["IDENTITY_MISMATCH"]


# ---------------------------------------------------------------- keys

def test_keys_add_get_list_revoke(any_store):
    assert any_store.keys() == [] and any_store.key("k1") is None
    admin = KeyRecord("k1", "ops", "admin", "a" * 64, NOW)
    app = KeyRecord("k2", "phone app", "app", "b" * 64, NOW + 1)
    any_store.add_key(admin)
    any_store.add_key(app)
    assert any_store.key("k1") == admin
    assert any_store.keys() == [admin, app]
    with pytest.raises(StoreError, match="exists"):
        any_store.add_key(KeyRecord("k1", "again", "app", "c" * 64, NOW))
    with pytest.raises(StoreError, match="scope"):
        any_store.add_key(KeyRecord("k3", "bad", "root", "c" * 64, NOW))
    assert any_store.revoke_key("k2") is True
    assert any_store.revoke_key("k2") is False  # already revoked
    assert any_store.revoke_key("nope") is False
    assert any_store.key("k2").revoked and not any_store.key("k1").revoked


# ---------------------------------------------------------------- sessions

def test_session_round_trip(any_store):
    row = _session("s1", client_t0=12.5, server_t0=NOW + 0.25, last_client_t=13.0, last_server_t=NOW + 0.75,
                   seq=3, state=bytes(range(256)) * 80, detail={"challenge": ["happy", "neutral"], "plan": {"n": 2}})
    any_store.create_session(row)
    assert any_store.session("s1") == row
    assert any_store.session("nope") is None
    with pytest.raises(StoreError, match="exists"):
        any_store.create_session(_session("s1"))
    with pytest.raises(StoreError, match="status"):
        any_store.create_session(SessionRow("s2", "alice", "k", FP, "maybe", [], NOW, NOW + 1, "n"))


def test_update_session_stale_version_loses(any_store, any_store_url):
    any_store.create_session(_session("s1"))
    with _same_database(any_store, any_store_url) as other:
        mine, theirs = any_store.session("s1"), other.session("s1")
        mine.seq, mine.nonce_sha256, mine.state = 1, "n1", b"frame-1"
        theirs.seq, theirs.nonce_sha256, theirs.state = 1, "n1-replayed", b"replayed"
        assert any_store.update_session(mine, 0) is True
        assert mine.version == 1
        assert other.update_session(theirs, 0) is False  # read version 0, stored is 1
        assert theirs.version == 0
        stored = other.session("s1")
        assert (stored.nonce_sha256, stored.state, stored.version) == ("n1", b"frame-1", 1)


def test_decision_writes_its_attempt_exactly_once(any_store, any_store_url):
    any_store.create_session(_session("s1"))
    row = any_store.session("s1")
    with _same_database(any_store, any_store_url) as other:
        racer = other.session("s1")
        row.status, row.reasons, row.detail = "reject", ["WRONG_EXPRESSION"], {"result": {"decision": "reject"}}
        racer.status, racer.reasons = "accept", []
        assert any_store.update_session(row, 0, attempt=(False, row.reasons, NOW)) is True
        assert other.update_session(racer, 0, attempt=(True, [], NOW)) is False
        assert any_store.update_session(row, 0, attempt=(False, row.reasons, NOW)) is False  # a retry
    assert any_store.attempts("alice") == [{"user_id": "alice", "ts": NOW, "success": False,
                                            "reasons": ["WRONG_EXPRESSION"]}]
    stored = any_store.session("s1")
    assert (stored.status, stored.reasons, stored.detail) == ("reject", ["WRONG_EXPRESSION"],
                                                              {"result": {"decision": "reject"}})


def test_pending_update_writes_no_attempt(any_store):
    any_store.create_session(_session("s1"))
    row = any_store.session("s1")
    for seq in range(1, 4):
        row.seq, row.last_server_t = seq, NOW + seq
        assert any_store.update_session(row, row.version)
    assert any_store.session("s1").seq == 3 and any_store.session("s1").version == 3
    assert any_store.attempts() == []


def test_claim_result_first_caller_only(any_store, any_store_url):
    any_store.create_session(_session("s1"))
    with _same_database(any_store, any_store_url) as other:
        assert any_store.claim_result("s1") is True
        assert other.claim_result("s1") is False
        assert any_store.claim_result("s1") is False
    assert any_store.session("s1").result_delivered is True
    assert any_store.claim_result("nope") is False


def test_expire_sessions_rules(any_store):
    gap = 1.5
    any_store.create_session(_session("past-ttl", created=NOW - 100, ttl=90, last_server_t=NOW - 0.5))
    any_store.create_session(_session("idle", created=NOW - 10, last_server_t=NOW - 2.0))
    any_store.create_session(_session("no-frame-yet", created=NOW - 2.0))
    any_store.create_session(_session("active", created=NOW - 10, last_server_t=NOW - 1.0))
    any_store.create_session(_session("just-opened", created=NOW - 1.0))
    decided = _session("decided", created=NOW - 100, ttl=10)
    any_store.create_session(decided)
    decided.status, decided.reasons = "accept", []
    assert any_store.update_session(decided, 0, attempt=(True, [], NOW - 95))

    assert sorted(any_store.expire_sessions(NOW, gap)) == ["idle", "no-frame-yet", "past-ttl"]
    assert any_store.expire_sessions(NOW, gap) == []
    for sid in ("idle", "no-frame-yet", "past-ttl"):
        row = any_store.session(sid)
        assert (row.status, row.reasons, row.version) == ("reject", [SESSION_EXPIRED], 1)
    assert any_store.session("active").status == "pending"
    assert any_store.session("just-opened").status == "pending"
    assert any_store.session("decided").status == "accept"
    failed = [a for a in any_store.attempts() if not a["success"]]
    assert len(failed) == 3 and all(a["reasons"] == [SESSION_EXPIRED] and a["ts"] == NOW for a in failed)


def test_expire_sessions_exactly_once_with_two_instances_racing(any_store, any_store_url):
    n = 40
    for i in range(n):
        any_store.create_session(_session(f"s{i:02d}", user=f"user{i % 4}", created=NOW - 100))
    stores = [open_store(any_store_url) for _ in range(2)]
    results: list[list[str]] = [[] for _ in stores]

    def sweep(k: int) -> None:
        for _ in range(3):
            results[k] += stores[k].expire_sessions(NOW, 1.5)

    race(stores, sweep, timeout_s=30)
    everything = results[0] + results[1]
    assert sorted(everything) == [f"s{i:02d}" for i in range(n)]  # each once, none lost
    assert len(any_store.attempts(limit=1000)) == n


def test_a_session_update_after_expiry_loses(any_store):
    any_store.create_session(_session("s1", created=NOW - 100))
    row = any_store.session("s1")
    assert any_store.expire_sessions(NOW, 1.5) == ["s1"]
    row.status, row.reasons = "accept", []
    assert any_store.update_session(row, 0, attempt=(True, [], NOW)) is False  # the frame lost to the sweep
    assert [a["success"] for a in any_store.attempts()] == [False]
