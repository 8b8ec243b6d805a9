"""The app's enrollment and authentication flows (worker threads, no Kivy) on real JAFFE frames through
the real pipeline (YuNet, alignment, the shipped int8 ONNX model).

Thresholds as in test_demo_headless.py (and for the same reasons: the shipped
model is weak on JAFFE; these tests check the flows, not the model): the
challenge in a fixed order, expression threshold 0.3, verification threshold
0.80 (with the default model of 2026-12-07: KL's stills score 0.82-1.0 against her
template, one-frame cuts from her neutral to her smile and her surprise keep 0.91 and 0.88
continuity; MK's 0.20-0.60. The model before it needed 0.90: KL 0.91-1.0, MK 0.67-0.80).
"""

from __future__ import annotations

import pytest

from facelivenet.demo_kivy.engine import DemoEngine
from facelivenet.demo_kivy.settings import DemoSettings
from facelivenet.edge_runtime import reasons
from facelivenet.edge_runtime.store import TemplateStore

from .conftest import HOLD, jaffe_frames, write_frames


@pytest.fixture
def engine(frame_dirs, detector_path, tmp_path):
    settings = DemoSettings().replace(source=(str(frame_dirs["genuine"]),), enroll_source=(str(frame_dirs["enroll"]),),
                                      db=str(tmp_path / "users.db"), detector=str(detector_path), fixed_order=True,
                                      threshold=0.80, expression_threshold=0.3, step_timeout_s=2.0,
                                      positions=None, timing=None)  # recorded frames: no live ovals or rests
    e = DemoEngine(settings, lossless=True)
    e.load_model()
    yield e
    e.close()


def finish(flow, timeout=60.0):
    flow.join(timeout)
    view = flow.view()
    assert view.finished, "the flow did not finish"
    return view


def enroll(engine, user="KL"):
    flow, _ = engine.enroll(user)
    view = finish(flow)
    assert view.error is None, view.error
    return view.outcome


def test_enroll_then_authenticate(engine):
    outcome = enroll(engine)
    assert outcome["images_used"] == 5 and [u.user_id for u in engine.users()] == ["KL"]
    assert engine.matches_model(engine.users()[0])
    flow, _ = engine.authenticate("KL")
    view = finish(flow)
    out = view.outcome
    assert out["decision"] == "accept", out
    assert out["thresholds"] == {"verification_cosine": 0.80, "expression_probability": 0.3}
    assert view.step_index == 4 and view.step_count == 4 and view.identity >= 0.80
    assert view.image is not None and view.box is not None  # the preview's last frame and its face box


def test_another_person_is_rejected_for_identity(engine, jaffe, tmp_path):
    enroll(engine)
    # (adapted: identity is decided from the whole session, so MK performs the whole challenge as KL)
    names = ["MK.NE1.113"] * HOLD + ["MK.HA1.116"] * HOLD + ["MK.NE1.113"] * HOLD + ["MK.SU1.122"] * HOLD
    mk = write_frames(jaffe_frames(jaffe, names, seed=0), tmp_path / "mk")
    engine.apply(engine.settings.replace(source=(str(mk),)))
    out = finish(engine.authenticate("KL")[0]).outcome
    assert out["decision"] == "reject" and out["reasons"] == [reasons.IDENTITY_MISMATCH], out
    assert out["reason_text"] == ["the face does not match the enrolled person"]


def test_unknown_user_and_missing_database_are_rejects_before_any_frame(engine):
    out = finish(engine.authenticate("nobody")[0]).outcome
    assert out["reasons"] == [reasons.UNKNOWN_USER] and out["frames"] == 0 and "no template database" in out["detail"]
    enroll(engine)
    out = finish(engine.authenticate("nobody")[0]).outcome
    assert out["reasons"] == [reasons.UNKNOWN_USER] and "'nobody' is not enrolled" in out["detail"]


def test_a_cancelled_attempt_is_not_recorded(engine):
    enroll(engine)
    flow, _ = engine.authenticate("KL")
    flow.hold_when(lambda v: v.frame_index >= 0)  # hold on the first frame, then leave the screen
    engine.cancel()
    view = flow.view()
    assert view.finished and view.outcome is None and view.error is None
    with TemplateStore(engine.settings.db) as store:
        assert store.locked_until("KL", max_failures=1, window_s=3600) is None  # no failure on record


def test_a_new_bundle_choice_that_fails_keeps_the_working_model(engine):
    from facelivenet.demo_kivy.engine import ModelLoadError

    before, settings = engine.pipeline, engine.settings
    with pytest.raises(ModelLoadError, match="choose a format and precision"):
        engine.apply(engine.settings.replace(format="coreml", precision="fp16"))
    assert engine.pipeline is before and engine.settings == settings
