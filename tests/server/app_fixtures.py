"""Helpers of the app tests (test_app*.py): the app in-process (FastAPI's TestClient) on the shipped default
bundle, a clock the test drives, JPEG frames of a JAFFE subject performing what the server asks (the attack
suite's Renderer and Performer), and the offline replay of a served session.

The server's clock advances with the client's frame times (one frame every 1/fps s), so the clock-skew and
idle-gap rules run as with a real camera, without the test waiting in real time.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from facelivenet.edge_runtime.options import RuntimeOptions, SessionSettings
from facelivenet.edge_runtime.step_plan import StepPlan
from facelivenet.server.config import ServerConfig, session_from_dict
from facelivenet.server.keys import new_key
from facelivenet.server.store import open_store

FPS = 10.0
START = 1_800_000_000.0  # the test clock's start (unix seconds)
# The test servers draw their sessions' challenges and plans from this seed: a genuine session is rejected
# now and then under unseen draws (KL offline, 150 seeded draws: 149 accept, one EARLY_RESPONSE where the
# model read a neutral frame as an expression 0.1 s after a prompt), and a test must not fail by chance.
DRAW_SEED = 0


class Clock:
    """The server's wall clock in a test: it moves only when told."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def add_key(db: str, name: str, scope: str) -> str:
    key, record = new_key(name, scope)
    store = open_store(db)
    try:
        store.add_key(record)
    finally:
        store.close()
    return key


@dataclasses.dataclass
class Served:
    """A TestClient on an app, its clock, its database and keys."""

    client: Any
    clock: Clock
    db: str
    admin: str
    app: str
    frame_clients: tuple = ()  # other instances on the same database: frame k goes to frame_clients[k % n]

    def error(self, response, status: int, code: str) -> dict:
        """Assert ``response`` is the JSON error ``code`` with ``status`` and that the server still serves."""
        assert response.status_code == status, (response.status_code, response.text)
        body = response.json()
        assert body == {"error": {"code": code, "message": body["error"]["message"], "status": status}}, body
        assert "Traceback" not in response.text
        assert self.client.get("/v1/health").status_code == 200
        return body

    def start(self, user: str, key: str | None = None) -> dict:
        r = self.client.post("/v1/sessions", json={"user": user}, headers=auth(key or self.app))
        assert r.status_code == 201, r.text
        return r.json()

    def send(self, session: dict, seq: int, t: float, nonce: str, body: bytes, key: str | None = None,
             content_type: str = "image/jpeg"):
        client = self.frame_clients[seq % len(self.frame_clients)] if self.frame_clients else self.client
        return client.post(f"/v1/sessions/{session['session_id']}/frames", params={"seq": seq, "t": t,
                                "nonce": nonce}, content=body, headers={**auth(key or self.app),
                                                                         "Content-Type": content_type})

    def result(self, session: dict, key: str | None = None):
        return self.client.post(f"/v1/sessions/{session['session_id']}/result", headers=auth(key or self.app))

    def admin_read(self, session: dict) -> dict:
        r = self.client.get(f"/v1/admin/sessions/{session['session_id']}", headers=auth(self.admin))
        assert r.status_code == 200, r.text
        return r.json()

    def attempts(self, user: str) -> list[dict]:
        r = self.client.get("/v1/admin/attempts", params={"user": user}, headers=auth(self.admin))
        assert r.status_code == 200, r.text
        return r.json()["attempts"]

    def enroll(self, user: str, images: list[np.ndarray]) -> dict:
        files = [("images", (f"{i}.jpg", jpeg(im, 95), "image/jpeg")) for i, im in enumerate(images)]
        r = self.client.put(f"/v1/users/{user}", files=files, headers=auth(self.admin))
        assert r.status_code == 200, r.text
        return r.json()


def serve(db: str, pipeline, clock: Clock | None = None, draw_seed: int | None = DRAW_SEED, **settings):
    """A context manager: ``Served`` for ``create_app(ServerConfig(db=db, **settings))`` on ``pipeline``, its
    sessions' challenges and plans drawn from ``draw_seed`` (None: unseen, as served)."""
    import contextlib

    from fastapi.testclient import TestClient

    from facelivenet.server.app import create_app

    @contextlib.contextmanager
    def running():
        clk = clock or Clock()
        config = ServerConfig(db=db, **{"sweep_interval_s": 3600.0, **settings})
        admin, app_key = add_key(db, "test-admin", "admin"), add_key(db, "test-app", "app")
        app = create_app(config, store_factory=partial(open_store, db), pipeline=pipeline, clock=clk,
                         test_draw_seed=draw_seed)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield Served(client, clk, db, admin, app_key)

    return running()


@pytest.fixture(scope="session")
def pipeline():
    from facelivenet.edge_runtime.api import open_pipeline

    return open_pipeline(RuntimeOptions())


class Performer:
    """A JAFFE subject in front of a camera doing what the server asks (the attack suite's Performer, smooth
    transitions, live jitter), one rendered frame every 1/FPS s."""

    def __init__(self, jaffe: Path, subject: str, seed: int = 0) -> None:
        from facelivenet.benchmarks.attacks.actors import TRANSITION_FRAMES
        from facelivenet.benchmarks.attacks.actors import Performer as SuitePerformer
        from facelivenet.benchmarks.attacks.calibration import still_frame
        from facelivenet.benchmarks.attacks.data import load_subjects
        from facelivenet.benchmarks.attacks.render import Renderer

        people = {s.name: s for s in load_subjects(jaffe, SessionSettings().challenge)}
        self.subject = people[subject]
        self.renderer = Renderer()
        self.actor = SuitePerformer(self.subject.images, np.random.default_rng(seed), 8,
                                    transition_frames=TRANSITION_FRAMES)
        self.enroll_images = [still_frame(self.renderer, p) for p in self.subject.enroll]

    def frame(self, i: int, step: dict | None) -> bytes:
        expected = None if step is None else step["expected"]
        target = None
        if step is not None and step["target"] is not None:
            from facelivenet.edge_runtime.step_plan import Target

            target = Target(**step["target"])
        return jpeg(self.renderer.render(self.actor.spec(i, expected, target)))


def perform(served: Served, performer: Performer, session: dict, max_frames: int = 300) -> list[tuple[bytes, float]]:
    """Frames through the server until it decides; the (JPEG, t) sent. The clock moves 1/FPS per frame."""
    sent = []
    step, nonce, t0 = session["step"], session["nonce"], 12.5  # the client's clock has its own origin
    for i in range(max_frames):
        body, t = performer.frame(i, step), t0 + i / FPS
        if i:
            served.clock.advance(1 / FPS)
        r = served.send(session, i, t, nonce, body)
        assert r.status_code == 200, r.text
        sent.append((body, t))
        answer = r.json()
        assert answer["frames"] == i + 1
        if answer["status"] == "decided":
            assert answer["nonce"] is None and answer["step"] is None
            return sent
        step, nonce = answer["step"], answer["nonce"]
    raise AssertionError(f"no decision after {max_frames} frames")


def replay_offline(admin_read: dict, user: str, enroll_images: list[np.ndarray], frames: list[tuple[bytes, float]],
                   db: Path, pipeline):
    """The served session again through the offline Authenticator: same template images, same challenge and
    plan, the same decoded JPEG frames at the same times; its SessionResult."""
    from facelivenet.edge_runtime.api import Authenticator

    settings = session_from_dict(admin_read["settings"])
    options = RuntimeOptions(db=str(db), session=settings)
    with Authenticator(options, pipeline=pipeline) as offline:
        offline.enroll(user, [cv2.imdecode(np.frombuffer(jpeg(im, 95), np.uint8), cv2.IMREAD_COLOR)
                              for im in enroll_images])
        live = offline.start_session(user, challenge=admin_read["challenge"],
                                     plan=StepPlan.from_dict(admin_read["plan"]))
        for body, t in frames:
            live.feed(cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR), t)
        return live.finish(frames[-1][1])
