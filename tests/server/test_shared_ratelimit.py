"""The rate limits kept in the store (server/shared_ratelimit.py, ``take_tokens`` / ``forget_full_buckets`` of both
stores, migration 0002): one budget across workers, all-or-nothing, refill on a driven clock, Retry-After, the
sweep bounding the table, a database that is down, and the migration on a database of the previous version.
Real databases (``any_store_url``: SQLite and the test run's PostgreSQL), never mocks."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest

from facelivenet.server.errors import ApiError, answer_for
from facelivenet.server.ratelimit import Rate
from facelivenet.server.shared_ratelimit import StoreRateLimiter
from facelivenet.server.store import KeyRecord, StoreError, StoreUnavailableError, migrations, open_store

from .app_fixtures import Clock, add_key, auth, pipeline  # noqa: F401 (pipeline: a fixture)
from .racing import race

NOW = 1_800_000_000.0
PER_MIN_2 = Rate.per_minute(2)  # a token every 30 s, 2 saved up


def _limiter(store, clock: Clock, **rates: Rate) -> StoreRateLimiter:
    """A worker's shared limiter on ``store`` (the app lends the thread's pooled connection the same way)."""
    return StoreRateLimiter(rates or {"sessions": PER_MIN_2}, lambda: contextlib.nullcontext(store), clock)


def _refused(limiter: StoreRateLimiter, budget: str, *whos: str) -> str:
    """Assert the take is refused with 429 rate_limited; its Retry-After."""
    with pytest.raises(ApiError) as e:
        limiter.take(budget, *whos)
    assert (e.value.code, e.value.status) == ("rate_limited", 429)
    return e.value.headers["Retry-After"]


def _bucket_rows(url: str) -> list[tuple]:
    """The rate_buckets table as the database holds it, read on a connection of its own."""
    query = "SELECT budget, who, tokens FROM rate_buckets ORDER BY budget, who"
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url) as conn:
            return conn.execute(query).fetchall()
    conn = sqlite3.connect(url)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def test_one_budget_across_two_store_connections(any_store, any_store_url):
    """Two workers (two connections) share the budget: 2 a minute in all, not 2 each."""
    clock = Clock(NOW)
    with open_store(any_store_url) as other:
        first, second = _limiter(any_store, clock), _limiter(other, clock)
        first.take("sessions", "key:a", "addr:1")
        second.take("sessions", "key:a", "addr:1")
        assert _refused(first, "sessions", "key:a", "addr:1") == "30"
        assert _refused(second, "sessions", "key:a", "addr:1") == "30"
        clock.advance(30.0)
        second.take("sessions", "key:a", "addr:1")  # the refill is seen by both
        assert _refused(first, "sessions", "key:a", "addr:1") == "30"


def test_workers_racing_never_both_take_the_last_token(any_store_url):
    """Four connections race 40 takes for a key bucket of 10 (the clock stands still): exactly 10 are granted."""
    stores = [open_store(any_store_url) for _ in range(4)]
    granted: list[int] = []

    def worker(k: int) -> None:
        for _ in range(10):
            if stores[k].take_tokens("sessions", ["key:a", f"addr:{k % 2}"], 10 / 60, 10.0, NOW) == 0.0:
                granted.append(k)

    race(stores, worker)
    assert len(granted) == 10
    rows = {who: tokens for _, who, tokens in _bucket_rows(any_store_url)}
    assert rows["key:a"] == pytest.approx(0.0)
    by_address = [sum(1 for k in granted if k % 2 == a) for a in (0, 1)]
    # an address that never got a grant has no row (a refusal writes nothing): it is full
    assert [rows.get(f"addr:{a}", 10.0) for a in (0, 1)] == pytest.approx([10.0 - n for n in by_address])


def test_key_and_address_are_charged_together_or_not_at_all(any_store, any_store_url):
    clock = Clock(NOW)
    limiter = _limiter(any_store, clock, frames=Rate.per_minute(2), admin=Rate.per_minute(1))
    limiter.take("frames", "key:a", "addr:1")
    limiter.take("frames", "key:b", "addr:1")
    _refused(limiter, "frames", "key:c", "addr:1")  # the address is spent, whichever key
    limiter.take("frames", "key:a", "addr:2")
    _refused(limiter, "frames", "key:a", "addr:3")  # key a is spent, whichever address
    assert ("frames", "addr:3") not in {(b, w) for b, w, _ in _bucket_rows(any_store_url)}  # a refusal writes nothing
    limiter.take("frames", "key:c", "addr:3")  # the refused request took nothing from addr:3 ...
    limiter.take("frames", "key:c", "addr:3")  # ... its whole burst is still there
    limiter.take("admin", "key:a", "addr:1")  # budgets are separate
    tokens = {(b, w): t for b, w, t in _bucket_rows(any_store_url)}
    assert tokens[("frames", "key:c")] == pytest.approx(0.0) and tokens[("frames", "addr:2")] == pytest.approx(1.0)
    assert tokens[("admin", "key:a")] == pytest.approx(0.0)


def test_refill_on_the_clock_and_retry_after(any_store):
    clock = Clock(NOW)
    limiter = _limiter(any_store, clock)
    limiter.take("sessions", "key:a")
    limiter.take("sessions", "key:a")
    assert _refused(limiter, "sessions", "key:a") == "30"
    assert any_store.take_tokens("sessions", ["key:a"], PER_MIN_2.per_s, PER_MIN_2.burst, NOW) == pytest.approx(30.0)
    clock.advance(10.5)
    assert _refused(limiter, "sessions", "key:a") == "20"  # 19.5 s left, rounded up
    clock.now = NOW + 29.0
    assert _refused(limiter, "sessions", "key:a") == "1"
    clock.now = NOW + 30.0
    limiter.take("sessions", "key:a")
    clock.now = NOW + 90.0  # 60 s: two tokens back, never more than the burst
    limiter.take("sessions", "key:a")
    limiter.take("sessions", "key:a")
    assert _refused(limiter, "sessions", "key:a") == "30"


def test_a_clock_behind_the_last_writer_refills_nothing(any_store):
    """Another instance's clock ahead wrote the bucket: this one's earlier ``now`` adds no tokens."""
    per_s, burst = 1 / 60, 1.0
    assert any_store.take_tokens("sessions", ["key:a"], per_s, burst, NOW + 5) == 0.0
    assert any_store.take_tokens("sessions", ["key:a"], per_s, burst, NOW) == pytest.approx(60.0)
    assert any_store.take_tokens("sessions", ["key:a"], per_s, burst, NOW + 64) == pytest.approx(1.0)
    assert any_store.take_tokens("sessions", ["key:a"], per_s, burst, NOW + 65) == 0.0


def test_the_sweep_forgets_refilled_buckets_and_bounds_the_table(any_store, any_store_url):
    rate = Rate.per_minute(6)  # a token back every 10 s
    clock = Clock(NOW)
    limiter = _limiter(any_store, clock, sessions=rate)
    limiter.take("sessions", "key:spent")
    for _ in range(5):
        limiter.take("sessions", "key:spent")
    assert limiter.forget_full() == 0  # a spent bucket is kept: forgetting it would hand back its tokens
    _refused(limiter, "sessions", "key:spent")

    sizes = []
    for i in range(300):  # an address scan, one new address a second, the sweep every 5 s
        limiter.take("sessions", f"addr:{i}")
        clock.advance(1.0)
        if i % 5 == 4:
            limiter.forget_full()
            sizes.append(len(_bucket_rows(any_store_url)))
    assert max(sizes) <= 10 + 1  # the addresses of the last 10 s (one token's refill), and key:spent until full
    clock.advance(10.0)
    assert limiter.forget_full() > 0
    assert _bucket_rows(any_store_url) == []
    limiter.take("sessions", "addr:0")  # a forgotten bucket is a full one


def test_the_postgresql_sweep_skips_a_bucket_a_take_holds_and_never_waits(pg_url):
    """A take in flight holds its bucket rows locked: the sweep leaves them (no wait, so no deadlock between a
    take locking in name order and a sweep deleting in scan order) and deletes the other full buckets."""
    import time

    import psycopg

    from facelivenet.server.config import ServerConfig

    store = ServerConfig(db=pg_url, db_timeout_s=2.0).open_store()
    holder = psycopg.connect(pg_url)
    try:
        for who in ("addr:1", "addr:2"):
            assert store.take_tokens("sessions", [who], 1.0, 1.0, NOW) == 0.0
        holder.execute("SELECT * FROM rate_buckets WHERE who = 'addr:1' FOR UPDATE")  # a take mid-transaction
        start = time.monotonic()
        assert store.forget_full_buckets("sessions", 1.0, 1.0, NOW + 5) == 1
        assert time.monotonic() - start < 1.0
        holder.rollback()
        assert [w for _, w, _ in _bucket_rows(pg_url)] == ["addr:1"]
        assert store.forget_full_buckets("sessions", 1.0, 1.0, NOW + 5) == 1
    finally:
        holder.close()
        store.close()


def test_a_locked_sqlite_file_is_store_unavailable(tmp_path):
    from facelivenet.server.store_sqlite import SQLiteServerStore

    db = tmp_path / "users.db"
    store = SQLiteServerStore(db, timeout_s=0.2)
    other = sqlite3.connect(db, isolation_level=None)
    try:
        limiter = _limiter(store, Clock(NOW))
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(StoreUnavailableError, match="locked") as e:
            limiter.take("sessions", "key:a", "addr:1")
        assert answer_for(e.value)[:3] == ("store_unavailable", "the database is unavailable; retry later", 503)
        other.execute("ROLLBACK")
        limiter.take("sessions", "key:a", "addr:1")
    finally:
        other.close()
        store.close()


def test_a_postgresql_that_is_down_is_store_unavailable(pg_cluster, pg_url):
    with open_store(pg_url) as store:
        limiter = _limiter(store, Clock(NOW))
        limiter.take("sessions", "key:a")
        pg_cluster.stop()
        try:
            with pytest.raises(StoreUnavailableError) as e:
                limiter.take("sessions", "key:a")
            assert answer_for(e.value)[2] == 503
            with pytest.raises(StoreUnavailableError):
                limiter.forget_full()
        finally:
            pg_cluster.start()
        limiter.take("sessions", "key:a")  # reconnects; the budget was not touched by the failed call
        _refused(limiter, "sessions", "key:a")


def test_the_migration_applies_to_a_database_of_the_previous_version(any_store_url, monkeypatch):
    import facelivenet.server.store_postgres as store_postgres
    import facelivenet.server.store_sqlite as store_sqlite

    dialect = "postgresql" if any_store_url.startswith("postgresql://") else "sqlite"
    backend = store_postgres if dialect == "postgresql" else store_sqlite
    with monkeypatch.context() as m:  # the server before rate_buckets: migration 0001 only
        m.setattr(backend, "migrations", lambda d: migrations(d)[:1])
        with open_store(any_store_url) as old:
            old.add_key(KeyRecord("k1", "kiosk", "app", "ab" * 32, NOW))
            with pytest.raises(StoreError, match="rate_buckets"):
                old.take_tokens("sessions", ["key:k1"], 1.0, 1.0, NOW)
    with open_store(any_store_url) as store:  # this server: applies 0002 and keeps the data
        assert store.key("k1").name == "kiosk"
        assert store.take_tokens("sessions", ["key:k1"], 1.0, 1.0, NOW) == 0.0
    with open_store(any_store_url) as again:  # applied once
        assert again.take_tokens("sessions", ["key:k1"], 1.0, 1.0, NOW) == pytest.approx(1.0)
    if dialect == "postgresql":
        import psycopg

        with psycopg.connect(any_store_url) as conn:
            applied = conn.execute("SELECT version, name FROM server_migrations ORDER BY version").fetchall()
    else:
        conn = sqlite3.connect(any_store_url)
        applied = conn.execute("SELECT version, name FROM server_migrations ORDER BY version").fetchall()
        conn.close()
    assert applied == [(1, migrations(dialect)[0].name), (2, "rate_buckets")]


def test_bad_rates_and_empty_takes_are_refused(any_store):
    with pytest.raises(ValueError, match="> 0 tokens a second"):
        any_store.take_tokens("sessions", ["key:a"], 0.0, 1.0, NOW)
    with pytest.raises(ValueError, match="at least 1 token"):
        any_store.forget_full_buckets("sessions", 1.0, 0.5, NOW)
    with pytest.raises(ValueError, match="at least one bucket"):
        any_store.take_tokens("sessions", [], 1.0, 1.0, NOW)


def test_two_app_workers_share_session_and_admin_budgets_and_not_frames(any_store_url, pipeline):  # noqa: F811
    """Two apps on one database (two worker processes, or two machines): the session starts and admin calls of a
    key are counted once across both; the frames' budget stays per app. The sweep thread forgets full buckets."""
    import time
    from functools import partial

    from fastapi.testclient import TestClient

    from facelivenet.server.app import create_app
    from facelivenet.server.config import ServerConfig

    clock = Clock(NOW)
    config = ServerConfig(db=any_store_url, rate_sessions_per_min=2, rate_admin_per_min=3, rate_frames_per_s=1,
                          sweep_interval_s=0.05)
    admin, app_key = add_key(any_store_url, "ops", "admin"), add_key(any_store_url, "kiosk", "app")
    apps = [create_app(config, store_factory=partial(open_store, any_store_url), pipeline=pipeline, clock=clock)
            for _ in range(2)]
    with TestClient(apps[0], raise_server_exceptions=False) as one, \
            TestClient(apps[1], raise_server_exceptions=False) as two:
        start = {"json": {"user": "nobody"}, "headers": auth(app_key)}
        assert [c.post("/v1/sessions", **start).status_code for c in (one, two)] == [404, 404]  # tokens taken
        for c in (one, two):
            r = c.post("/v1/sessions", **start)
            assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
            assert r.headers["Retry-After"] == "30"
        assert [c.get("/v1/users", headers=auth(admin)).status_code for c in (one, two, one, two)] == [200] * 3 + [429]
        result = {"headers": auth(app_key)}  # the frames' budget (1 a second) is each app's own
        assert [c.post("/v1/sessions/none/result", **result).status_code for c in (one, two)] == [404, 404]
        assert one.post("/v1/sessions/none/result", **result).status_code == 429
        clock.advance(60.0)  # every bucket refills: the sweep threads forget them
        deadline = time.monotonic() + 10
        while _bucket_rows(any_store_url) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _bucket_rows(any_store_url) == []
        assert two.post("/v1/sessions", **start).status_code == 404
