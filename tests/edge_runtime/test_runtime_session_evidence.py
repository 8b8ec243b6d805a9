"""The session's evidence rules on tiny synthetic frame analyses (no model): identity as accumulated evidence
(aggregate, continuity, floor) and expressions against the person's own face at rest."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facelivenet.edge_runtime import reasons
from facelivenet.edge_runtime.detection import Face
from facelivenet.edge_runtime.expression_baseline import ExpressionBaseline, log_odds
from facelivenet.edge_runtime.face_pipeline import FrameAnalysis
from facelivenet.edge_runtime.identity_evidence import IdentityEvidence, IdentityRule, default_rule
from facelivenet.edge_runtime.labels import EXPRESSION_LABELS
from facelivenet.edge_runtime.session import AuthSession, SessionConfig

DIM = 8
TEMPLATE = np.eye(DIM, dtype=np.float32)[0]
CFG = SessionConfig(verification_threshold=0.9, expression_threshold=0.3, hold_frames=2, step_timeout_s=1.0,
                    identity_floor=0.6, continuity_threshold=0.9, continuity_window=2, expression_margin=1.5)
FACE = Face(box=np.array([100, 100, 120, 120], np.float32), landmarks=np.zeros((5, 2), np.float32), score=0.9)


def embedding(cos_template: float, axis: int = 1) -> np.ndarray:
    """A unit vector at cosine ``cos_template`` from the template, leaning toward ``axis``."""
    e = np.zeros(DIM, np.float32)
    e[0], e[axis] = cos_template, (1 - cos_template ** 2) ** 0.5
    return e


def probs(**p: float) -> np.ndarray:
    """Probabilities with the given labels set and the rest sharing what is left equally."""
    out = np.zeros(7, np.float32)
    for label, v in p.items():
        out[EXPRESSION_LABELS.index(label)] = v
    rest = [i for i, label in enumerate(EXPRESSION_LABELS) if label not in p]
    out[rest] = (1 - sum(p.values())) / len(rest)
    return out


def frame(expr: dict | str = "neutral", emb: np.ndarray | None = None) -> FrameAnalysis:
    pr = probs(**{expr: 0.8}) if isinstance(expr, str) else probs(**expr)
    return FrameAnalysis(faces=[FACE], reasons=[], face=FACE, embedding=embedding(0.97) if emb is None else emb,
                         probabilities=pr)


def run(frames: list[FrameAnalysis], challenge=("happy", "surprise"), cfg: SessionConfig = CFG) -> AuthSession:
    s = AuthSession(TEMPLATE, challenge, cfg)
    for i, a in enumerate(frames):
        s.feed(a, i * 0.1)
    return s


def genuine(order=("happy", "surprise"), emb_expr: np.ndarray | None = None,
            emb_neutral: np.ndarray | None = None) -> list[FrameAnalysis]:
    out = []
    for e in order:
        out += [frame("neutral", emb_neutral)] * 2 + [frame(e, emb_expr)] * 2
    return out


# ------------------------------------------------------------------ identity


def test_one_noisy_expression_frame_below_the_verification_threshold_no_longer_rejects():
    frames = genuine()
    frames[2] = frame("happy", embedding(0.85))  # under 0.9, over the floor, close to the recent frames
    s = run(frames)
    assert s.status == "accept", s.detail
    ev = s.result().identity
    assert ev["min_score"] == pytest.approx(0.85, abs=1e-3) and ev["aggregate"] >= 0.9


def test_a_swap_at_the_same_place_in_the_frame_still_fails_on_continuity():
    other = embedding(0.75, axis=2)  # another person: over the floor, but far from the session's own frames
    s = run(genuine(emb_expr=other))  # same face box every frame: the tracker cannot tell
    r = s.result()
    assert r.decision == "reject" and r.reasons == [reasons.IDENTITY_MISMATCH]
    assert "continuity" in r.detail and r.identity["min_continuity"] < CFG.continuity_threshold
    assert [st.expected for st in r.steps] == ["neutral", "happy"]  # at the first frame of the other face


def test_a_slow_drift_to_another_face_is_caught_by_the_floor():
    path = [embedding(c, axis=3) for c in np.linspace(0.97, 0.3, 40)]  # each step small: continuity holds
    frames = [frame("neutral", e) for e in path]
    s = run(frames, challenge=("happy",), cfg=SessionConfig(**{**CFG.__dict__, "step_timeout_s": 10.0}))
    r = s.result()
    assert r.reasons == [reasons.IDENTITY_MISMATCH] and "floor" in r.detail
    assert r.identity["min_continuity"] >= CFG.continuity_threshold


def test_the_aggregate_decides_at_the_end_from_the_neutral_frames():
    lookalike = embedding(0.85)  # every frame over the floor and continuous, but not the enrolled person
    s = run(genuine(emb_expr=lookalike, emb_neutral=lookalike))
    r = s.result()
    assert r.decision == "reject" and r.reasons == [reasons.IDENTITY_MISMATCH]
    assert all(st.passed for st in r.steps)  # every step passed; identity failed only at the end
    assert r.identity["aggregate"] == pytest.approx(0.85, abs=1e-3) and r.identity["neutral_frames"] == 4


def test_a_template_from_another_model_is_a_clear_reject_never_a_crash():
    s = AuthSession(np.ones(16, np.float32) / 4, ("happy",), CFG)
    s.feed(frame("neutral"), 0.0)
    r = s.result()
    assert r.decision == "reject" and r.reasons == [reasons.MODEL_MISMATCH] and "another model" in r.detail


def test_no_neutral_frame_gives_no_aggregate_and_no_accept():
    ev = IdentityEvidence(TEMPLATE, IdentityRule(0.9, 0.6, 0.9))
    ev.frame(embedding(0.97))
    assert ev.aggregate is None and "no neutral frame" in ev.final()


def test_all_frames_failing_quality_time_out_with_the_quality_named():
    blurry = FrameAnalysis(faces=[FACE], reasons=[reasons.BLURRY], face=FACE)
    s = run([blurry] * 12)
    r = s.result()
    assert r.decision == "reject" and r.reasons == [reasons.CHALLENGE_TIMEOUT] and "BLURRY" in r.detail


def test_identity_rule_defaults_and_validation():
    rule = default_rule(0.9)
    assert (rule.aggregate, rule.continuity) == (0.9, 0.9) and rule.floor == pytest.approx(0.6)
    with pytest.raises(ValueError, match="floor"):
        IdentityRule(0.9, 1.5, 0.9)
    with pytest.raises(ValueError, match="window"):
        IdentityRule(0.9, 0.5, 0.9, window=0)
    with pytest.raises(ValueError, match="margin"):
        SessionConfig(verification_threshold=0.9, expression_threshold=0.3, expression_margin=0.0)
    with pytest.raises(ValueError, match="continuity"):
        SessionConfig(verification_threshold=0.9, expression_threshold=0.3, continuity_threshold=-2.0)


# --------------------------------------------------------------- expressions


def test_a_person_whose_face_at_rest_looks_happy_can_still_pass():
    rest = {"happy": 0.94, "neutral": 0.03}  # the classifier reads this face at rest as happy
    frames = ([frame(rest)] * 2 + [frame({"happy": 0.995})] * 2
              + [frame(rest)] * 2 + [frame({"surprise": 0.7, "happy": 0.2})] * 2)
    s = run(frames)
    r = s.result()
    assert s.status == "accept", s.detail
    assert r.expression["rest_profile"]["happy"] == pytest.approx(0.94, abs=1e-3)
    assert all(m >= CFG.expression_margin for m in r.expression["margins"])


def test_an_expression_photo_still_fails_and_never_rises():
    for label in ("happy", "surprise"):
        s = run([frame(label)] * 30)  # a photo frozen on a challenge expression, from the first frame
        r = s.result()
        assert r.decision == "reject" and r.reasons == [reasons.CHALLENGE_TIMEOUT]
        assert [st.passed for st in r.steps] == [True, False]  # its own expression became its rest profile
        assert r.expression["margins"][0] < CFG.expression_margin and "rise" in r.detail


def test_an_expression_at_a_later_neutral_step_breaks_the_hold_and_the_next_must_still_rise():
    frames = [frame("neutral")] * 2 + [frame("happy")] * 2 + [frame("surprise")] * 12
    r = run(frames).result()
    assert r.reasons == [reasons.CHALLENGE_TIMEOUT] and r.steps[2].expected == "neutral" and not r.steps[2].passed
    relaxed = [frame("neutral")] * 2 + [frame("happy")] * 2 + [frame("happy")] * 3 + [frame("neutral")] * 2
    assert run(relaxed + [frame("surprise")] * 2).status == "accept"


def test_a_photo_at_rest_never_rises():
    r = run([frame("neutral")] * 30).result()
    assert r.reasons == [reasons.CHALLENGE_TIMEOUT] and r.expression["margins"] == [pytest.approx(0.0, abs=1e-6)]


def test_an_expression_must_rise_more_than_the_other_challenge_expressions():
    both = {"happy": 0.45, "surprise": 0.5}  # both rose from 0.03; surprise rose more: surprise is what is shown
    r = run([frame("neutral")] * 2 + [frame(both)] * 8, challenge=("happy", "surprise")).result()
    assert r.reasons == [reasons.WRONG_EXPRESSION] and r.steps[1].expected == "happy" and not r.steps[1].passed
    # beaten relative to the same face at rest: this face reads 0.3 surprise at rest, so a smile that the
    # classifier reads 0.3 happy / 0.4 surprise is happy (happy rose +3.0 log-odds, surprise +0.4)
    rest = {"surprise": 0.3, "happy": 0.02}
    s = run([frame(rest)] * 2 + [frame({"happy": 0.3, "surprise": 0.4})] * 2, challenge=("happy", "surprise"))
    assert s.steps[1].expected == "happy" and s.steps[1].passed
    # only the challenge's expressions compete: fear above happy does not stop happy from counting
    s = run([frame("neutral")] * 2 + [frame({"happy": 0.45, "fear": 0.5})] * 2, challenge=("happy",))
    assert s.status == "accept"


def test_the_first_neutral_step_needs_a_steady_face():
    changing = [frame("neutral"), frame("happy"), frame("neutral"), frame("neutral")]
    s = run(changing + [frame("happy")] * 2, challenge=("happy",))
    assert s.status == "accept"
    assert s.steps[0].ended_s == pytest.approx(0.3)  # the happy frame broke the hold: passed at frame 3, not 1


def test_rises_are_in_log_odds():
    b = ExpressionBaseline(("happy", "surprise"), margin=1.5)
    b.add_rest(probs(happy=0.5))
    assert b.rises(probs(happy=0.9))["happy"] == pytest.approx(float(log_odds(0.9) - log_odds(0.5)))
    assert b.shown(probs(happy=0.9)) == "happy" and b.shown(probs(happy=0.6)) is None
    with pytest.raises(ValueError):
        ExpressionBaseline(("happy",), margin=-1)


# ---------------------------------------------------------------------- JSON


def test_result_json_keeps_its_keys_and_adds_the_evidence():
    d = run(genuine()).result().to_dict()
    assert {"decision", "reasons", "challenge", "steps", "frames", "analysed_frames", "min_identity",
            "detail"} <= set(d)
    assert {"aggregate", "min_continuity", "min_score", "floor_threshold"} <= set(d["identity"])
    assert len(d["expression"]["margins"]) == 2 and "margin" in d["steps"][1]
    json.dumps(d)
