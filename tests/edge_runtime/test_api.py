"""The Python API (edge_runtime/api.py, options.py): options are validated on creation, a live session is
fed frame by frame and records its attempt, verify compares two faces, decisions are StrEnums."""

from __future__ import annotations

import json

import pytest

from facelivenet.edge_runtime import (Authenticator, Decision, OptionsError, Reason, RuntimeOptions, SessionSettings,
                                      VerifyResult)
from facelivenet.edge_runtime.store import TemplateStore, UnknownUserError

from .frames import scripted

GENUINE = ["KL.NE2.156"] * 4 + ["KL.HA2.159"] * 4 + ["KL.NE2.156"] * 4 + ["KL.SU3.166"] * 4


@pytest.mark.parametrize("kwargs, words", [
    ({"format": "pt"}, "format must be one of"),
    ({"precision": "int4"}, "precision must be one of"),
    ({"threads": 0}, "threads must be >= 1"),
    ({"db": ""}, "template database path"),
])
def test_runtime_options_name_the_bad_value(kwargs, words):
    with pytest.raises(OptionsError, match=words):
        RuntimeOptions(**kwargs)


@pytest.mark.parametrize("kwargs, words", [
    ({"challenge": ("happy", "smirk")}, "unknown expression 'smirk'"),
    ({"hold_frames": 0}, "hold frames must be >= 1"),
    ({"threshold": 2.0}, "cosine in"),
])
def test_session_settings_name_the_bad_value(kwargs, words):
    with pytest.raises(OptionsError, match=words):
        SessionSettings(**kwargs)


def test_settings_are_frozen_and_canonical():
    s = SessionSettings(challenge="Surprise,happy")
    assert s.challenge == ("surprise", "happy")
    with pytest.raises(AttributeError):
        s.hold_frames = 5  # type: ignore[misc]


def test_decisions_and_reasons_are_their_strings():
    assert Decision.ACCEPT == "accept" and Reason.NO_FACE == "NO_FACE"
    assert json.dumps({"d": Decision.REJECT, "r": [Reason.LOCKED_OUT]}) == '{"d": "reject", "r": ["LOCKED_OUT"]}'
    assert f"{Decision.ACCEPT}" == "accept" and str(Reason.POSE) == "POSE"


def test_live_session_fed_frame_by_frame(jaffe, tmp_path):
    # recorded frames: the order fixed, no live ovals or rests (SessionSettings' positions / timing None)
    options = RuntimeOptions(db=tmp_path / "users.db",
                             session=SessionSettings(fixed_order=True, positions=None, timing=None))
    with Authenticator.create_from_options(options) as auth:
        assert auth.enroll("KL", [jaffe / "KL.NE1.155.tiff"]).images_used == 1
        with pytest.raises(UnknownUserError):
            auth.start_session("nobody")
        session = auth.start_session("KL")
        assert session.challenge == ("happy", "surprise") and session.expected == "neutral"
        for frame in scripted([jaffe / f"{n}.tiff" for n in GENUINE]):
            if auth.feed(frame.image, frame.t) != Decision.PENDING:
                break
        result = session.finish()
        assert result.decision is Decision.ACCEPT and result.reasons == []
        # arrays enroll too; a photo held still times out at the first expression step
        auth.enroll("KL", [frame.image for frame in scripted([jaffe / "KL.NE1.155.tiff"])])
        photo = auth.start_session("KL")
        for frame in scripted([jaffe / "KL.NE2.156.tiff"] * 60):
            photo.feed(frame.image, frame.t)
        assert photo.finish().reasons == [Reason.CHALLENGE_TIMEOUT]
    with TemplateStore(tmp_path / "users.db", create=False) as store:  # the failure after the success was recorded
        assert store.locked_until("KL", 1, 300.0) is not None and store.locked_until("KL", 2, 300.0) is None


def test_verify_two_faces(jaffe, tmp_path):
    with Authenticator(RuntimeOptions(db=tmp_path / "u.db")) as auth:
        same = auth.verify(jaffe / "KL.NE1.155.tiff", jaffe / "KL.NE2.156.tiff")
        assert isinstance(same, VerifyResult) and same.threshold == auth.manifest.thresholds.verification_cosine
        assert same.to_dict() == {"score": round(same.score, 6), "match": same.match, "threshold": same.threshold}
        assert auth.verify(jaffe / "KL.NE1.155.tiff", jaffe / "KL.NE2.156.tiff", threshold=1.01).match is False


def test_a_result_carries_the_thresholds_it_was_judged_with(jaffe, tmp_path):
    options = RuntimeOptions(db=tmp_path / "users.db", session=SessionSettings(fixed_order=True, threshold=0.9,
                                                                              continuity=0.8))
    with Authenticator(options) as auth:
        assert auth.users() == []
        with pytest.raises(UnknownUserError, match="no template database"):
            auth.start_session("KL")
        auth.enroll("KL", [jaffe / "KL.NE1.155.tiff"])
        assert [u.user_id for u in auth.users()] == ["KL"] and auth.matches_model(auth.users()[0])
        result = auth.authenticate("KL", iter(scripted([jaffe / "KL.NE2.156.tiff"] * 3)))
        assert result.config is auth.session_config
        assert result.thresholds()["verification_cosine"] == 0.9 and result.thresholds()["continuity"] == 0.8
        # the same model with other session settings keeps its pipeline
        again = Authenticator(RuntimeOptions(db=tmp_path / "users.db"), pipeline=auth.pipeline)
        assert again.pipeline is auth.pipeline
        assert again.session_config.verification_threshold == auth.manifest.thresholds.verification_cosine
        assert auth.delete_user("KL") == 1 and auth.users() == []
