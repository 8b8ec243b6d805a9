"""The template store under faults: kill -9 mid-enrollment, concurrent processes, corrupt files.

- kill -9: a child process enrolls users in a loop through the real
  ``TemplateStore.put`` (and re-enrolls them with new versions); it is
  SIGKILLed after a random delay: half the trials mid-loop, half counted from
  the start (often while the store is being created).
  Then the database must open, every committed user must hold exactly what
  was written last, and the one write in flight must be absent or complete.
  5 trials by default, 60 in the slow test.
- concurrency: two processes each enroll their users, re-enroll a shared user
  over and over, read templates and record attempts, all at once. Nothing may
  be lost (every user, every attempt row). A read racing a re-enrollment must
  give one consistent write (a known bug: see the xfail test).
- corrupt files: garbage, a truncated store, a page overwritten, another
  application's SQLite file: a clear StoreError, the file's bytes unchanged,
  never silently recreated (also through ``facelive users / enroll``).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from facelivenet.edge_runtime.cli import main as facelive_main
from facelivenet.edge_runtime.store import StoreError, TemplateStore

FINGERPRINT = "facelivenet:fault-test"
DIM, PER_USER, USERS = 128, 3, 12
QUICK_KILL_TRIALS, SLOW_KILL_TRIALS = 5, 60
REPO_ROOT = Path(__file__).resolve().parents[2]


def expected_embeddings(seed: int, user: str, version: int) -> np.ndarray:
    """What enrollment ``version`` of ``user`` writes (the child and the checks compute the same)."""
    key = [seed, version] + [ord(c) for c in user]
    return np.random.default_rng(key).standard_normal((3, 128)).astype(np.float32)


def _unit_rows(embeddings: np.ndarray) -> np.ndarray:
    return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)


def _template_of(embeddings: np.ndarray) -> np.ndarray:
    mean = _unit_rows(embeddings).mean(axis=0)
    return (mean / np.linalg.norm(mean)).astype(np.float32)


def _same_write(stored: np.ndarray, written: np.ndarray) -> bool:
    """The stored (unit-length) embeddings are the written ones."""
    return stored.shape == written.shape and np.allclose(stored, _unit_rows(written), rtol=0, atol=1e-7)


_PRELUDE = f"""
import json, random, sys
import numpy as np
from facelivenet.edge_runtime.store import StoreError, TemplateStore, UnknownUserError
FINGERPRINT = {FINGERPRINT!r}
{inspect.getsource(expected_embeddings)}
{inspect.getsource(_unit_rows)}
{inspect.getsource(_template_of)}
"""

ENROLL_LOOP = _PRELUDE + """
db, seed, users, first = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
with TemplateStore(db) as store:
    print("ready", flush=True)
    for i in range(10**6):
        user, version = f"u{i % users:03d}", first + i // users
        print(f"writing {user} {version}", flush=True)
        store.put(user, FINGERPRINT, expected_embeddings(seed, user, version))
        print(f"committed {user} {version}", flush=True)
"""

WORKER = _PRELUDE + """
db, name, seed, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
enrolled, attempts, reads = [], 0, 0
with TemplateStore(db, timeout_s=60) as store:
    for i in range(rounds):
        user = f"{name}-u{i:03d}"
        store.put(user, FINGERPRINT, expected_embeddings(seed, user, 0))
        enrolled.append(user)
        store.put("shared", FINGERPRINT, expected_embeddings(0, "shared", (seed * 1000 + i) % 7))
        for target in (rng.choice(enrolled), "shared", f"{'b' if name == 'a' else 'a'}-u{i:03d}"):
            try:
                store.template(target, FINGERPRINT)
            except UnknownUserError:
                continue
            reads += 1
            store.record_attempt(target, rng.random() < 0.5, [f"{name}-{i}-{target}"])
            attempts += 1
            store.locked_until(target, 5, 300.0)
print(json.dumps({"enrolled": enrolled, "attempts": attempts, "reads": reads}), flush=True)
"""

REENROLL_LOOP = _PRELUDE + """
db, seconds = sys.argv[1], float(sys.argv[2])
import time
with TemplateStore(db, timeout_s=60) as store:
    end, i = time.time() + seconds, 0
    while time.time() < end:
        store.put("shared", FINGERPRINT, expected_embeddings(0, "shared", i % 2)[: 2 + i % 2])
        i += 1
print(i, flush=True)
"""


def _child(script: str, *args: object) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stored(db: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """user -> (template, embeddings) as the store gives them back."""
    with TemplateStore(db, create=False) as store:
        return {u.user_id: (t.template, t.embeddings) for u in store.users()
                for t in [store.template(u.user_id, FINGERPRINT)]}


def _version_of(seed: int, user: str, embeddings: np.ndarray, candidates: list[int]) -> int | None:
    for v in candidates:
        if v >= 0 and _same_write(embeddings, expected_embeddings(seed, user, v)):
            return v
    return None


def _integrity_ok(db: Path) -> bool:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def kill_trial(db: Path, seed: int, delay_s: float, before: dict[str, int] | None = None,
               first_version: int = 0, after_ready: bool = False) -> dict:
    """One enrollment loop killed with SIGKILL ``delay_s`` after it started (or, with ``after_ready``, after
    its store was open); checks the store afterwards.

    ``before``: user -> version already in ``db``; the child writes versions from ``first_version`` on.
    Returns the number of committed writes and the users' versions now stored.
    """
    before = dict(before or {})
    proc = _child(ENROLL_LOOP, db, seed, USERS, first_version)
    head = ""
    if after_ready:
        head = proc.stdout.readline()
        assert head == "ready\n", f"the child did not start: {head!r} {proc.stderr.read()[-2000:]}"
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"the child ended before the kill: {err[-2000:]}"
    lines = (head + out).splitlines()
    expected = dict(before)
    for line in lines:
        if line.startswith("committed "):
            _, user, version = line.split()
            expected[user] = int(version)
    in_flight = None
    if lines and lines[-1].startswith("writing "):
        _, user, version = lines[-1].split()
        in_flight = (user, int(version))
    stored = _stored(db) if db.exists() else {}  # the open itself must work (WAL recovery)
    assert not db.exists() or _integrity_ok(db)
    versions = {}
    for user, (template, embeddings) in stored.items():
        candidates = [expected.get(user, -1)] + ([in_flight[1]] if in_flight and in_flight[0] == user else [])
        versions[user] = _version_of(seed, user, embeddings, candidates)
        assert versions[user] is not None, f"{user}: stored embeddings are none of the versions {candidates}"
        assert np.allclose(template, _template_of(embeddings), atol=1e-6), f"{user}: template and embeddings differ"
    missing = set(expected) - set(stored)
    assert not missing, f"committed users missing after the kill: {sorted(missing)}"
    extra = set(stored) - set(expected)
    assert extra <= ({in_flight[0]} if in_flight else set()), f"users never committed are stored: {extra}"
    return {"committed_writes": sum(line.startswith("committed ") for line in lines), "versions": versions}


def _kill_trials(tmp_path: Path, trials: int, seed: int) -> list[dict]:
    """``trials`` kills: odd ones 0-0.5 s after the store is open (mid-loop), even ones 0.05-1.2 s after the
    start (often while the store is being created); every third one hits a store a previous kill left full."""
    rng = np.random.default_rng(seed)
    results = []
    for trial in range(trials):
        db = tmp_path / f"trial{trial:03d}.db"
        before: dict[str, int] = {}
        if trial % 3 == 2:
            before = kill_trial(db, trial, float(rng.uniform(0.2, 0.5)), after_ready=True)["versions"]
        after_ready = trial % 2 == 1
        delay = float(rng.uniform(0.0, 0.5) if after_ready else rng.uniform(0.05, 1.2))
        results.append(kill_trial(db, trial, delay, before, first_version=100, after_ready=after_ready))
    return results


def test_kill_9_during_enrollment_quick(tmp_path):
    results = _kill_trials(tmp_path, QUICK_KILL_TRIALS, seed=1)
    assert len(results) == QUICK_KILL_TRIALS
    assert sum(r["committed_writes"] for r in results) > 0, "no kill landed after a commit: delays too short"


@pytest.mark.slow
def test_kill_9_during_enrollment_many_trials(tmp_path):
    results = _kill_trials(tmp_path, SLOW_KILL_TRIALS, seed=2)
    assert len(results) == SLOW_KILL_TRIALS
    after_commits = sum(r["committed_writes"] > 0 for r in results)
    print(f"\n{len(results)} kill -9 trials (+{len(results) // 3} to pre-fill stores): {after_commits} after at "
          f"least one commit, {sum(r['committed_writes'] for r in results)} committed writes checked")
    assert after_commits >= SLOW_KILL_TRIALS // 3


def test_two_processes_enrolling_and_authenticating_lose_nothing(tmp_path):
    db = tmp_path / "shared.db"
    TemplateStore(db).close()
    rounds = 25
    procs = {name: _child(WORKER, db, name, seed, rounds) for name, seed in (("a", 11), ("b", 22))}
    reports = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        reports[name] = json.loads(out.splitlines()[-1])
    stored = _stored(db)
    for name, seed in (("a", 11), ("b", 22)):
        rep = reports[name]
        assert len(rep["enrolled"]) == rounds
        for user in rep["enrolled"]:
            assert _same_write(stored[user][1], expected_embeddings(seed, user, 0)), user
    conn = sqlite3.connect(db)
    try:
        for name in reports:
            rows = conn.execute("SELECT COUNT(*) FROM attempts WHERE reasons LIKE ?", (f"{name}-%",)).fetchone()[0]
            assert rows == reports[name]["attempts"], f"{name}: {reports[name]['attempts']} attempts recorded, {rows} stored"
    finally:
        conn.close()
    assert _integrity_ok(db)


def test_template_reads_are_one_consistent_write(tmp_path):
    db = tmp_path / "race.db"
    with TemplateStore(db) as store:
        store.put("shared", FINGERPRINT, expected_embeddings(0, "shared", 0)[:2])
        writer = _child(REENROLL_LOOP, db, 4.0)
        torn = reads = 0
        while writer.poll() is None:
            t = store.template("shared", FINGERPRINT)
            reads += 1
            torn += not np.allclose(_template_of(t.embeddings), t.template, atol=1e-6)
    assert writer.returncode == 0, writer.stderr.read()[-2000:]
    assert torn == 0, f"{torn} of {reads} reads mixed two writes"


# ------------------------------------------------------------------------------- corrupt files


def _valid_store(path: Path) -> Path:
    with TemplateStore(path) as store:
        for i in range(40):
            store.put(f"user{i:02d}", FINGERPRINT, expected_embeddings(0, f"user{i:02d}", 0))
        store.record_attempt("user00", False, ["IDENTITY_MISMATCH"])
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode = DELETE")  # everything in the main file, no -wal beside it
    conn.close()
    return path


def _corrupt(kind: str, path: Path) -> Path:
    if kind == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 8192, dtype=np.uint8).tobytes())
    elif kind == "text":
        path.write_text("user,template\nalice,0.1 0.2\n")
    elif kind == "truncated":
        data = _valid_store(path).read_bytes()
        path.write_bytes(data[: len(data) // 2 + 100])
    elif kind == "page_overwritten":
        data = bytearray(_valid_store(path).read_bytes())
        page = int.from_bytes(data[16:18], "big") or 65536
        data[page: 2 * page] = np.random.default_rng(1).integers(0, 256, page, dtype=np.uint8).tobytes()
        path.write_bytes(bytes(data))
    elif kind == "header_garbled":
        data = bytearray(_valid_store(path).read_bytes())
        data[:16] = b"NOT AN SQLITE DB"
        path.write_bytes(bytes(data))
    elif kind == "other_application":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO notes (body) VALUES ('keep me')")
        conn.commit()
        conn.close()
    else:
        raise ValueError(kind)
    return path


CORRUPTIONS = ["garbage", "text", "truncated", "page_overwritten", "header_garbled", "other_application"]


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("create", [True, False])
@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_corrupt_database_is_refused_and_left_untouched(tmp_path, kind, create):
    db = _corrupt(kind, tmp_path / "templates.db")
    before = _snapshot(tmp_path)
    with pytest.raises(StoreError) as info:
        TemplateStore(db, create=create)
    message = str(info.value)
    assert str(db) in message and "left untouched" in message and "\n" not in message
    assert _snapshot(tmp_path) == before, "the failed open changed or added files"


@pytest.mark.parametrize("kind", ["garbage", "page_overwritten", "other_application"])
def test_cli_refuses_a_corrupt_database_without_touching_it(tmp_path, monkeypatch, capsys, jaffe_samples, kind):
    monkeypatch.chdir(tmp_path)
    db = _corrupt(kind, tmp_path / "templates.db")
    before = _snapshot(tmp_path)
    for argv in (["users", "--db", str(db)], ["enroll", "--db", str(db), "--user", "x", str(jaffe_samples[0])]):
        code = facelive_main(argv)
        _, err = capsys.readouterr()
        assert code == 1, err
        lines = [line for line in err.splitlines() if line.startswith("facelive: error:")]
        assert len(lines) == 1 and "not a usable template database" in lines[0], err
        assert _snapshot(tmp_path) == before
