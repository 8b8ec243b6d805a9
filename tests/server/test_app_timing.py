"""Per-frame time through the server (in-process TestClient, one worker, SQLite) against the offline pipeline
(decode + Authenticator.feed) on the very same JPEG frames. Prints the table; run it with

    .venv/bin/python -m pytest tests/server/test_app_timing.py -m slow -s -q

The server's time per frame: the whole request as the client sees it (HTTP in-process, key check, rate
limit, then the worker's part), and the worker's part alone (session read, checks, JPEG decode, restore, the
pipeline, pickling, the versioned write). Sessions alternate with their offline replay (the CPU is shared).
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from .app_fixtures import FPS, Performer, jaffe, jpeg, perform, pipeline, serve  # noqa: F401

SEEDS = (0, 1, 2, 3)


def percentiles(ms: list[float]) -> str:
    a = np.asarray(ms)
    return f"p50 {np.percentile(a, 50):6.2f} ms  p95 {np.percentile(a, 95):6.2f} ms  mean {a.mean():6.2f} ms  n {a.size}"


@pytest.mark.slow
def test_per_frame_time_server_vs_offline(tmp_path, pipeline, jaffe, monkeypatch):  # noqa: F811
    from facelivenet.edge_runtime.api import Authenticator
    from facelivenet.edge_runtime.options import RuntimeOptions
    from facelivenet.edge_runtime.step_plan import StepPlan
    from facelivenet.server.config import session_from_dict

    import facelivenet.server.app as app_module

    served_ms, worker_ms, offline_ms, decisions = [], [], [], []
    feed = app_module.feed_served_frame

    def timed_feed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return feed(*args, **kwargs)
        finally:
            worker_ms.append((time.perf_counter() - t0) * 1e3)

    monkeypatch.setattr(app_module, "feed_served_frame", timed_feed)
    enroll_images = Performer(jaffe, "KL").enroll_images
    decoded = [cv2.imdecode(np.frombuffer(jpeg(im, 95), np.uint8), cv2.IMREAD_COLOR) for im in enroll_images]
    with serve(str(tmp_path / "timing.db"), pipeline) as s:
        s.enroll("KL", enroll_images)
        original = s.send

        def timed_send(*args, **kwargs):
            t0 = time.perf_counter()
            r = original(*args, **kwargs)
            served_ms.append((time.perf_counter() - t0) * 1e3)
            return r

        s.send = timed_send
        for seed in SEEDS:  # each session through the server, then at once offline (the CPU is shared: interleave)
            session = s.start("KL")
            frames = perform(s, Performer(jaffe, "KL", seed=seed), session)
            read = s.admin_read(session)
            s.result(session)
            s.clock.advance(10.0)
            options = RuntimeOptions(db=str(tmp_path / "offline.db"), session=session_from_dict(read["settings"]))
            with Authenticator(options, pipeline=pipeline) as offline:
                offline.enroll("KL", decoded)
                live = offline.start_session("KL", challenge=read["challenge"], plan=StepPlan.from_dict(read["plan"]))
                for body, t in frames:
                    t0 = time.perf_counter()
                    live.feed(cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR), t)
                    offline_ms.append((time.perf_counter() - t0) * 1e3)
                assert live.finish().decision == read["status"]
            decisions.append(read["status"])
    print(f"\nserver, as the client sees it (TestClient, 1 worker, SQLite): {percentiles(served_ms)}")
    print(f"server, in the worker (checks, decode, state, pipeline, write): {percentiles(worker_ms)}")
    print(f"offline (decode + Authenticator.feed):                         {percentiles(offline_ms)}")
    print(f"sessions {len(decisions)} ({', '.join(decisions)}), frames at {FPS:g} fps of client time")
    assert len(served_ms) == len(offline_ms)
    assert np.percentile(served_ms, 50) < np.percentile(offline_ms, 50) + 25.0  # the server's own work stays small
