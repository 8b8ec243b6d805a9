"""Per-frame time through the server (in-process TestClient, one worker, SQLite) against the offline pipeline
(decode + Authenticator.feed) on the very same JPEG frames. Prints the table; run it with

    .venv/bin/python -m pytest tests/server/test_app_timing.py -m slow -s -q

The server's time per frame: the whole request as the client sees it (in-process through TestClient, and
over loopback HTTP to uvicorn with a kept-alive httpx connection), and the worker's part alone (session
read, checks, JPEG decode, restore, the pipeline, pickling, the versioned write). Each session is replayed
offline right after it ran (the CPU is shared with other work: interleaved, not one block after the other).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Iterator

import cv2
import numpy as np
import pytest
from fastapi import Body, Request  # module level: the routes below are annotated with them

from .app_fixtures import FPS, Performer, jpeg, perform, pipeline, serve  # noqa: F401

SEEDS = (0, 1, 2, 3)


def percentiles(ms: list[float]) -> str:
    a = np.asarray(ms)
    return f"p50 {np.percentile(a, 50):6.2f} ms  p95 {np.percentile(a, 95):6.2f} ms  mean {a.mean():6.2f} ms  n {a.size}"


@contextlib.contextmanager
def on_uvicorn(app) -> Iterator[str]:
    """``app`` served by uvicorn on a loopback port in a thread; its base URL."""
    import socket
    import threading

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY on accepted sockets
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield "http://127.0.0.1:%d" % sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def timed(method, into: list[float]):
    def call(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            into.append((time.perf_counter() - t0) * 1e3)
    return call


@pytest.mark.slow
def test_per_frame_time_server_vs_offline(tmp_path, pipeline, jaffe, monkeypatch):  # noqa: F811
    import httpx

    import facelivenet.server.app as app_module
    from facelivenet.edge_runtime.api import Authenticator
    from facelivenet.edge_runtime.options import RuntimeOptions
    from facelivenet.edge_runtime.step_plan import StepPlan
    from facelivenet.server.config import session_from_dict

    ms: dict[str, list[float]] = {k: [] for k in ("testclient", "uvicorn", "worker", "offline")}
    decisions = []
    enroll_images = Performer(jaffe, "KL").enroll_images
    decoded = [cv2.imdecode(np.frombuffer(jpeg(im, 95), np.uint8), cv2.IMREAD_COLOR) for im in enroll_images]
    monkeypatch.setattr(app_module, "feed_served_frame", timed(app_module.feed_served_frame, ms["worker"]))
    with serve(str(tmp_path / "timing.db"), pipeline) as s, on_uvicorn(s.client.app) as url, \
            httpx.Client(base_url=url) as http:
        s.enroll("KL", enroll_images)
        transports = {"testclient": dataclasses.replace(s), "uvicorn": dataclasses.replace(s, client=http)}
        for seed in SEEDS:  # each session through both, then at once offline (the CPU is shared: interleave)
            for name, served in transports.items():
                served.send = timed(dataclasses.replace(served).send, ms[name])
                session = served.start("KL")
                frames = perform(served, Performer(jaffe, "KL", seed=seed), session)
                read = served.admin_read(session)
                served.result(session)
                s.clock.advance(10.0)
                options = RuntimeOptions(db=str(tmp_path / "offline.db"), session=session_from_dict(read["settings"]))
                with Authenticator(options, pipeline=pipeline) as offline:
                    offline.enroll("KL", decoded)
                    live = offline.start_session("KL", challenge=read["challenge"],
                                                 plan=StepPlan.from_dict(read["plan"]))
                    for body, t in frames:
                        t0 = time.perf_counter()
                        live.feed(cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR), t)
                        ms["offline"].append((time.perf_counter() - t0) * 1e3)
                    assert live.finish().decision == read["status"]
                decisions.append(read["status"])
    print(f"\nserver, as the client sees it, in-process TestClient:       {percentiles(ms['testclient'])}")
    print(f"server, as the client sees it, uvicorn + httpx on loopback:  {percentiles(ms['uvicorn'])}")
    print(f"server, in the worker (checks, decode, state, pipeline, write): {percentiles(ms['worker'])}")
    print(f"offline on the same frames (decode + Authenticator.feed):   {percentiles(ms['offline'])}")
    print(f"sessions {len(decisions)} ({', '.join(decisions)}), 1 worker, SQLite, frames at {FPS:g} fps of client time")
    assert len(ms["testclient"]) + len(ms["uvicorn"]) == len(ms["worker"]) == len(ms["offline"])
    assert np.percentile(ms["worker"], 50) < np.percentile(ms["offline"], 50) + 10.0  # the server's own work is small


@pytest.mark.slow
def test_sync_route_vs_async_route_with_run_in_threadpool():
    """The two ways to run a route's blocking work in the thread pool, on uvicorn over loopback (keep-alive,
    a 30 KB body): ``def`` (FastAPI reads the body, then calls it in the pool) and ``async def`` reading the
    body itself and calling ``run_in_threadpool`` (what the frames route does, to see the raw body). Both are
    one hop to the pool; the measured difference is within the noise."""
    import hashlib
    import http.client
    import socket
    import threading

    import uvicorn
    from fastapi import FastAPI
    from fastapi.concurrency import run_in_threadpool

    app = FastAPI()

    def work(body: bytes) -> dict:
        return {"sha": hashlib.sha256(body).hexdigest()[:8]}

    @app.post("/async")
    async def in_pool(request: Request):
        return await run_in_threadpool(work, await request.body())

    @app.post("/sync")
    def sync(body: bytes = Body(media_type="image/jpeg")):
        return work(body)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY on accepted sockets
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    conn = http.client.HTTPConnection(*sock.getsockname())
    body, results = bytes(30_000), {"/async": [], "/sync": []}
    try:
        for _ in range(4):
            for path, ms in results.items():
                for _ in range(500):
                    t0 = time.perf_counter()
                    conn.request("POST", path, body=body, headers={"Content-Type": "image/jpeg"})
                    r = conn.getresponse()
                    r.read()
                    assert r.status == 200
                    ms.append((time.perf_counter() - t0) * 1e3)
    finally:
        conn.close()
        server.should_exit = True
        thread.join(10)
        sock.close()
    for path, ms in results.items():
        print(f"\n{path:7s} {percentiles(ms)}", end="")
    print()
    assert all(np.percentile(ms, 50) < 20 for ms in results.values())  # no Nagle / delayed-ACK stall
