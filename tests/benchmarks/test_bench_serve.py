"""facelive-bench serve: the load test's parts, and a tiny run through the real server (a subprocess)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from facelivenet.benchmarks.attacks.render import BASE, FrameSpec
from facelivenet.benchmarks.errors import BenchError
from facelivenet.benchmarks.serve_load import JpegMemo, LoadSession, SentFrame
from facelivenet.benchmarks.serve_replay import ReplayJob, _split
from facelivenet.benchmarks.serve_report import percentiles, sizing, throughput
from facelivenet.benchmarks.attacks.scenarios import SessionPlan
from tests.server.conftest import pg_cluster, pg_url  # noqa: F401 (the PostgreSQL fixtures)

DATA = Path(os.environ.get("FACELIVE_DATA", "/work/shared/data"))
JAFFE = DATA / "jaffe"
needs_jaffe = pytest.mark.skipif(not JAFFE.is_dir(), reason=f"no JAFFE images at {JAFFE} (set FACELIVE_DATA)")


def _a_face() -> str:
    return str(sorted(JAFFE.glob("*.NE*.tiff"))[0])


@needs_jaffe
def test_jpeg_memo_encodes_each_spec_once_and_spools_its_bytes(tmp_path):
    memo = JpegMemo(tmp_path / "spool", budget=10 * 2**20)
    a, b = (FrameSpec((BASE.layer(_a_face()),), "live", v) for v in (0, 1))
    first, digest = memo.get(a)
    again, digest_again = memo.get(a)
    memo.get(b)
    assert first is again and digest == digest_again
    assert (memo.hits, memo.misses) == (1, 2)
    assert (tmp_path / "spool" / f"{digest}.jpg").read_bytes() == first
    assert first[:3] == b"\xff\xd8\xff"


@needs_jaffe
def test_jpeg_memo_keeps_to_its_budget(tmp_path):
    memo = JpegMemo(tmp_path / "spool", budget=1)
    specs = [FrameSpec((BASE.layer(_a_face()),), "live", v) for v in range(3)]
    for spec in specs:
        memo.get(spec)
    memo.get(specs[0])  # evicted (only the newest entry is kept): rendered again, the same bytes
    assert memo.misses == 3 and memo.from_disk == 1 and len(list((tmp_path / "spool").iterdir())) == 3


@needs_jaffe
def test_a_saved_memo_serves_the_next_run_from_its_folder(tmp_path):
    spec = FrameSpec((BASE.layer(_a_face()),), "photo", 2)
    first = JpegMemo(tmp_path / "cache")
    jpeg, digest = first.get(spec)
    first.save()
    again = JpegMemo(tmp_path / "cache")
    assert again.get(spec) == (jpeg, digest) and (again.misses, again.from_disk) == (0, 1)
    other_seed = JpegMemo(tmp_path / "cache", seed=1)  # frames of another renderer: the index is not used
    assert other_seed.get(spec)[1] != digest and other_seed.misses == 1


def _session(frames: list[tuple[float, float]]) -> LoadSession:
    rec = LoadSession(SessionPlan("bona_fide", 0, "KA", None, ("happy",), (0,)))
    rec.frames = [SentFrame(i, i, i / 10, "d", lat, done, 0.0) for i, (lat, done) in enumerate(frames)]
    return rec


def test_throughput_counts_the_middle_of_the_run():
    # 100 frames over 10 s, all answered in the first half: the middle 80 % (1..9 s) holds the ones from 1 to 5 s
    s = _session([(5.0, 0.05 * k) for k in range(100)])
    out = throughput([s], 0.0, 10.0)
    assert out["frames"] == 100 and out["fps_overall"] == 10.0
    assert out["fps_sustained"] == pytest.approx(sum(1 <= 0.05 * k <= 9 for k in range(100)) / 8.0, abs=0.1)


def test_percentiles_and_empty():
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None, "max": None}
    p = percentiles(list(range(1, 101)))
    assert p["p50"] == pytest.approx(50.5) and p["p95"] == pytest.approx(95.05) and p["max"] == 100


def test_sizing_scales_with_logins():
    s = sizing(100.0, 60.0, "test")
    small, big = s["rows"]
    assert small["frames_per_s"] == pytest.approx(1000 * 60 / 3600, abs=0.05)
    assert big["cores_mean"] == pytest.approx(100_000 * 60 / 3600 / 100, abs=0.01)
    assert big["db_writes_per_s_mean"] == pytest.approx(100_000 * 62 / 3600, abs=0.05)
    assert sizing(None, 60.0, "none")["rows"][0]["cores_mean"] is None


def test_replay_shares_balance_frames():
    jobs = [ReplayJob(str(k), "x", np.zeros(2), (), {}, tuple((0.0, "d") for _ in range(n)), "reject", ())
            for k, n in enumerate([10, 9, 5, 4, 1])]
    shares = _split(jobs, 2)
    assert sorted(sum(len(j.frames) for j in s) for s in shares) == [14, 15]
    assert len(_split(jobs[:1], 4)) == 1


def test_bad_options_name_the_problem(tmp_path):
    from facelivenet.benchmarks.serve import ServeBenchConfig

    with pytest.raises(BenchError, match="--concurrency"):
        ServeBenchConfig(data=tmp_path, concurrency=0)
    with pytest.raises(BenchError, match="unknown session type"):
        ServeBenchConfig(data=tmp_path, types=("selfie",))
    with pytest.raises(BenchError, match="--connections must be one of kept, per-session"):
        ServeBenchConfig(data=tmp_path, connections="pooled")


def test_cpu_split_names_the_busiest_worker_and_leaves_the_supervisor_out():
    from facelivenet.benchmarks.serve_report import cpu_split

    before = {10: 5.0, 11: 20.0, 12: 21.0}
    after = {10: 5.1, 11: 80.0, 12: 41.0, 13: 3.0}  # 13 started during the load
    split = cpu_split(before, after)
    assert split["by_process_s"] == [[11, 60.0], [12, 20.0], [13, 3.0], [10, 0.1]]
    assert split["busy_processes"] == 3  # 10 (0.1 of 83.1 s) is under 2 %
    assert split["busiest_share"] == round(60.0 / 83.0, 3)
    assert cpu_split({}, {})["busiest_share"] is None


@pytest.mark.parametrize("per_session, expected_clients", [(False, 2), (True, 5)])
def test_run_load_keeps_one_connection_per_thread_or_opens_one_per_session(monkeypatch, per_session,
                                                                            expected_clients):
    from facelivenet.benchmarks import serve_load
    from facelivenet.server import client as client_module

    opened, closed, used = [], [], []

    class FakeClient:
        def __init__(self, url, key, timeout_s):
            opened.append(self)

        def close(self):
            closed.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.close()

    monkeypatch.setattr(client_module, "Client", FakeClient)
    monkeypatch.setattr(serve_load, "run_load_session", lambda setup, client, plan: used.append(client) or plan)
    setup = SimpleNamespace(url="http://127.0.0.1:1", app_key="k", timeout_s=1.0)
    records, _ = serve_load.run_load(setup, list(range(5)), 2, connection_per_session=per_session)
    assert records == list(range(5))
    assert len(set(map(id, used))) == len(opened) and len(opened) <= expected_clients
    if per_session:
        assert len(opened) == 5
    assert sorted(map(id, closed)) == sorted(map(id, opened))  # every connection closed, once


def _server_extra() -> bool:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        return False
    return True


needs_server = pytest.mark.skipif(not _server_extra(), reason="the server extra (fastapi, uvicorn) is not installed")


def _tiny_run(out: Path, capsys, *extra: str) -> dict:
    from facelivenet.benchmarks.cli import main

    code = main(["serve", "--data", str(DATA), "--types", "two_faces,track_jump", "--sessions-per-type", "1",
                 "--concurrency", "2", "--workers", "1", "--no-per-frame-row", "--out", str(out), "--json", *extra])
    assert code == 0
    return json.loads(capsys.readouterr().out)


@needs_jaffe
@needs_server
def test_tiny_run_through_the_real_server(tmp_path, capsys):
    """Two short sessions (a second face, a track jump: each decided within a second), one worker: the report's
    structure, and every decision equal to the offline runtime's on the same frames."""
    out = tmp_path / "out"
    result = _tiny_run(out, capsys)
    assert result["sessions"] == 2 and result["errors"] == 0
    assert set(result["types"]) == {"two_faces", "track_jump"}
    assert result["load"]["frames"] > 0 and result["latency_ms"]["p95"] > 0
    eq = result["equality"]
    assert eq["total"] == 2 and eq["agree_total"] == 2, eq["sessions"]
    assert eq["offline"]["fps"] > 0 and eq["same_model"]
    assert result["targets"]["decisions_identical"] is True
    assert result["cpu"]["family"] and result["sizing"]["rows"][0]["logins_per_hour"] == 1000
    for name in ("result.json", "report.md", "sessions.jsonl", "frames.csv.gz", "command.txt", "server.log.gz"):
        assert (out / name).is_file(), name
    assert len((out / "sessions.jsonl").read_text().splitlines()) == 2
    import gzip

    rows = gzip.open(out / "frames.csv.gz", "rt").read().splitlines()
    assert len(rows) == 1 + result["load"]["frames"] and rows[0].startswith("session_id,kind,seq,camera_index,t,latency_ms")
    assert eq["thresholds_equal"] == "2/2"


@needs_jaffe
@needs_server
def test_fault_trial_kill9_fails_open_sessions_closed_and_loses_nothing(tmp_path, capsys):
    """kill -9 mid-session and a restart: every check of the trial passes and its log is written."""
    from facelivenet.benchmarks.cli import main

    out = tmp_path / "fault"
    code = main(["serve", "--data", str(DATA), "--fault-trial", "--out", str(out), "--json"])
    assert code == 0
    trial = json.loads(capsys.readouterr().out)
    assert trial["passed"], trial["checks"]
    assert set(trial["checks"]) >= {"templates_intact", "one_attempt_per_session", "open_sessions_fail_closed",
                                    "lockout_still_counts"}
    events = [e["event"] for e in trial["log"]]
    assert events.index("kill -9 the server's process group") < events.index("server restarted")
    assert "kill -9" in (out / "fault_trial.log").read_text()


@needs_jaffe
@needs_server
def test_tiny_run_on_postgresql(pg_url, tmp_path, capsys):
    """The same run with the server on PostgreSQL: the store says so and the decisions agree."""
    result = _tiny_run(tmp_path / "out", capsys, "--db", pg_url)
    assert result["server"]["store"] == "postgresql" and result["config"]["db"].startswith("postgresql://")
    assert result["equality"]["agree_total"] == result["equality"]["total"] == 2


@needs_jaffe
def test_the_per_frame_row_on_all_cores_times_each_process_over_the_same_seconds():
    """facelive-bench serve's second offline figure: the per-frame row in one process per server worker, at once."""
    from facelivenet.benchmarks.pipeline import row_on_all_cores

    got = row_on_all_cores(None, DATA, 2, seconds=0.5, start_s=6.0)
    assert got["processes"] == 2 and len(got["fps_per_process"]) == 2
    assert all(f > 0 for f in got["fps_per_process"]) and got["fps"] == round(sum(got["fps_per_process"]), 1)
    assert got["fps_per_cpu_s"] > 0
