"""The per-frame pieces (server/frames.py, session_state.py): JPEG checks, and a session that moves between
pipelines (workers) through its stored state judging exactly as one that never left its pipeline."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facelivenet.edge_runtime.authenticate import feed_frame
from facelivenet.edge_runtime.challenge import with_neutral_steps
from facelivenet.edge_runtime.options import RuntimeOptions, SessionSettings
from facelivenet.edge_runtime.session import AuthSession
from facelivenet.edge_runtime.sources import Frame
from facelivenet.edge_runtime.step_plan import PlanError, PositionRule, StepPlan, TimingRule, draw_plan
from facelivenet.server import session_state
from facelivenet.server.errors import ApiError
from facelivenet.server.frames import decode_jpeg
from facelivenet.server.session_state import TrackerState

from .app_fixtures import Performer, jpeg, pipeline  # noqa: F401


def test_decode_jpeg_refuses_what_is_not_one_and_what_is_too_large():
    image = np.full((60, 80, 3), 100, np.uint8)
    assert decode_jpeg(jpeg(image), 10_000).shape == (60, 80, 3)
    for body, code in ((b"\x89PNG\r\n\x1a\n" + bytes(50), "not_a_jpeg"), (jpeg(image)[:20], "not_a_jpeg"),
                       (jpeg(image), "bad_frame")):
        with pytest.raises(ApiError) as e:
            decode_jpeg(body, 4_000 if code == "bad_frame" else 10_000)
        assert e.value.code == code


def test_a_step_plan_survives_json():
    labels = with_neutral_steps(("happy", "surprise"))
    for plan in (draw_plan(labels, PositionRule(), TimingRule(), seed=3), draw_plan(labels, None, None)):
        assert StepPlan.from_dict(plan.to_dict()) == plan
    with pytest.raises(PlanError):
        StepPlan.from_dict({"targets": [{"cx": 0.5}], "holds": []})


def test_a_session_moved_between_pipelines_judges_as_one_that_stayed(pipeline, jaffe):  # noqa: F811
    from facelivenet.edge_runtime.api import open_pipeline

    other = open_pipeline(RuntimeOptions())
    settings = SessionSettings()
    cfg = settings.session_config(pipeline.model.manifest)
    challenge = ("happy", "surprise")
    plan = draw_plan(with_neutral_steps(challenge), cfg.positions, cfg.timing, seed=5)
    template = pipeline.analyze(Performer(jaffe, "KL").enroll_images[0], track=False).embedding

    def run(moving: bool):
        person = Performer(jaffe, "KL", seed=2)
        session = AuthSession(template, challenge, cfg, plan)
        pipeline.reset()
        blob = session_state.dumps(session, TrackerState())
        for i in range(120):
            step = {"expected": session.current_expected,
                    "target": None if session.target is None else session.target.to_dict()}
            image = cv2.imdecode(np.frombuffer(person.frame(i, step), np.uint8), cv2.IMREAD_COLOR)
            if moving:  # every frame on the other pipeline of the two, from the stored state
                session, tracker = session_state.loads(blob)
                worker = (pipeline, other)[i % 2]
                tracker.restore(worker)
                feed_frame(worker, session, Frame(i, i / 10, image, f"frame {i}"))
                blob = session_state.dumps(session, TrackerState.of(worker))
            else:
                feed_frame(pipeline, session, Frame(i, i / 10, image, f"frame {i}"))
            if session.status != "pending":
                break
        return session.result().to_dict()

    stayed, moved = run(False), run(True)
    assert moved == stayed
    assert stayed["frames"] > 10
