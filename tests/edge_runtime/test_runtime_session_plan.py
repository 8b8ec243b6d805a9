"""Positions and timing of a session (step_plan.py) on synthetic frame analyses: the face must sit in each
step's target oval, neutral steps hold for their random rest, an expression faster than a reaction rejects."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from facelivenet.edge_runtime import reasons
from facelivenet.edge_runtime.challenge import with_neutral_steps
from facelivenet.edge_runtime.detection import Face
from facelivenet.edge_runtime.face_pipeline import FrameAnalysis
from facelivenet.edge_runtime.labels import EXPRESSION_LABELS
from facelivenet.edge_runtime.options import OptionsError, SessionSettings
from facelivenet.edge_runtime.session import AuthSession, SessionConfig
from facelivenet.edge_runtime.step_plan import (PlanError, PositionRule, StepPlan, Target, TimingRule,
                                                distinct_challenges, draw_plan)

HW = (480, 640)
TEMPLATE = np.eye(8, dtype=np.float32)[0]
POS, TIMING = PositionRule(), TimingRule(hold_min_s=0.6, hold_max_s=0.6)
CFG = SessionConfig(verification_threshold=0.8, expression_threshold=0.5, hold_frames=2, step_timeout_s=3.0,
                    positions=POS, timing=TIMING)
CHALLENGE = ("happy",)
LEFT, RIGHT = POS.target(3), POS.target(5)  # (0.3, 0.5) and (0.7, 0.5)
PLAN = StepPlan((LEFT, LEFT), (0.6, 0.0))  # the expression step keeps its neutral step's place


def at(label: str, target: Target, dx: float = 0.0, width: float = 130.0) -> FrameAnalysis:
    """A face of ``width`` px centred on ``target`` (moved by dx frame widths) showing ``label``."""
    cx, cy = (target.cx + dx) * HW[1], target.cy * HW[0]
    face = Face(box=np.array([cx - width / 2, cy - width * 0.65, width, width * 1.3], np.float32),
                landmarks=np.zeros((5, 2), np.float32), score=0.9)
    probs = np.full(7, 0.2 / 6, np.float32)
    probs[EXPRESSION_LABELS.index(label)] = 0.8
    emb = np.zeros(8, np.float32)
    emb[0], emb[1] = 0.95, (1 - 0.95**2) ** 0.5
    return FrameAnalysis(faces=[face], reasons=[], face=face, embedding=emb, probabilities=probs, frame_hw=HW)


def run(frames: list[FrameAnalysis], plan: StepPlan = PLAN, cfg: SessionConfig = CFG) -> AuthSession:
    s = AuthSession(TEMPLATE, CHALLENGE, cfg, plan)
    for i, a in enumerate(frames):
        s.feed(a, i * 0.1)
    return s


def test_a_face_in_each_target_for_the_hold_and_the_rest_is_accepted():
    frames = [at("neutral", RIGHT)] * 3 + [at("neutral", LEFT)] * 7 + [at("neutral", LEFT)] * 2 \
        + [at("happy", LEFT)] * 2  # moves into LEFT, rests 0.6 s, then smiles
    s = run(frames)
    r = s.result()
    assert r.decision == "accept", r.detail
    assert r.steps[0].target == LEFT.to_dict() and r.steps[0].hold_s == 0.6
    assert r.steps[1].response_s == pytest.approx(0.3)


def test_the_neutral_step_waits_for_its_random_rest_before_the_prompt():
    s = run([at("neutral", LEFT)] * 6)
    assert s.status == "pending" and s.current_expected == "neutral"  # 0.5 s at rest < 0.6 s
    s.feed(at("neutral", LEFT), 0.6)
    assert s.current_expected == "happy" and s.prompt_s == pytest.approx(0.6) and s.target == LEFT


def test_a_face_outside_the_target_never_holds():
    frames = [at("neutral", LEFT, dx=0.08)] * 40  # 51 px off: 0.6 radii
    s = run(frames)
    r = s.result()
    assert r.decision == "reject" and r.reasons == [reasons.CHALLENGE_TIMEOUT]
    assert "target oval" in r.detail


def test_a_face_too_small_for_the_oval_never_holds():
    s = run([at("neutral", LEFT, width=60.0)] * 40)
    assert s.result().reasons == [reasons.CHALLENGE_TIMEOUT] and "closer" in s.result().detail


def test_a_replayed_step_at_the_recorded_place_fails_at_the_live_target():
    # the recording holds its neutral at LEFT, the live session asks for the centre
    s = run([at("neutral", LEFT)] * 40, plan=StepPlan((POS.target(4), POS.target(4)), (0.6, 0.0)))
    assert s.result().reasons == [reasons.CHALLENGE_TIMEOUT]


def test_an_expression_faster_than_a_reaction_is_early_response():
    frames = [at("neutral", LEFT)] * 7 + [at("happy", LEFT)] * 2  # shown 0.1 s after the prompt
    r = run(frames).result()
    assert r.reasons == [reasons.EARLY_RESPONSE] and "0.10 s" in r.detail


def test_a_one_frame_flicker_right_after_the_prompt_is_no_response():
    frames = [at("neutral", LEFT)] * 7 + [at("happy", LEFT)] + [at("neutral", LEFT)] + [at("happy", LEFT)] * 2
    s = run(frames)
    assert s.status == "accept" and s.result().steps[1].response_s == pytest.approx(0.3)


def test_without_timing_the_same_fast_expression_counts():
    cfg = dataclasses.replace(CFG, timing=None)
    frames = [at("neutral", LEFT)] * 2 + [at("happy", LEFT)] * 2
    assert run(frames, StepPlan((LEFT, LEFT), (None, None)), cfg).status == "accept"


def test_positions_off_is_the_old_rule():
    cfg = dataclasses.replace(CFG, positions=None, timing=None)
    frames = [at("neutral", LEFT, dx=0.2)] * 2 + [at("happy", LEFT, dx=-0.1)] * 2
    assert run(frames, StepPlan(), cfg).status == "accept"


def test_a_missing_face_while_moving_counts_as_missing_not_a_crash():
    gone = FrameAnalysis(faces=[], reasons=[reasons.NO_FACE], frame_hw=HW)
    frames = [at("neutral", RIGHT)] * 2 + [gone] + [at("neutral", LEFT)] * 8 + [at("happy", LEFT)] * 3
    assert run(frames).status == "accept"


def test_the_drawn_plan_moves_before_every_prompt_and_draws_holds_on_the_grid():
    labels = with_neutral_steps(("happy", "surprise"))
    for seed in range(50):
        plan = draw_plan(labels, POS, TimingRule(), seed)
        cells = [(t.cx, t.cy) for t in plan.targets]
        assert cells[0] == cells[1] and cells[2] == cells[3] and cells[1] != cells[2]
        assert all(0.6 <= h <= 2.0 for h, label in zip(plan.holds, labels) if label == "neutral")
    unseeded = {draw_plan(labels, POS, TimingRule()) for _ in range(20)}
    assert len(unseeded) > 1  # secrets, not a fixed sequence


def test_the_distinct_challenge_count():
    # 2 orders x 9 places x 8 moves x 15^2 rests
    assert distinct_challenges(2, POS, TimingRule(), 2) == 2 * 9 * 8 * 15**2 == 32_400
    assert distinct_challenges(2, None, None, 2) == 2


@pytest.mark.parametrize("make, field", [
    (lambda: PositionRule(cells_x=(0.05, 0.5)), "positions.cells_x"),
    (lambda: PositionRule(cells_y=(0.5, 0.9)), "positions.cells_y"),
    (lambda: PositionRule(radius_x=0.0), "positions.radius_x"),
    (lambda: PositionRule(min_size=1.5, max_size=1.0), "positions.min_size"),
    (lambda: PositionRule(tolerance=0), "positions.tolerance"),
    (lambda: TimingRule(hold_min_s=2.0, hold_max_s=1.0), "timing.hold_min_s"),
    (lambda: TimingRule(min_reaction_s=-1), "timing.min_reaction_s"),
    (lambda: SessionSettings(timing=TimingRule(hold_min_s=1, hold_max_s=6.0)), "timing.hold_max_s"),
])
def test_bad_positions_or_timing_name_the_field(make, field):
    with pytest.raises((PlanError, OptionsError), match=field.replace(".", r"\.")):
        make()


def test_a_flicker_during_the_rest_breaks_the_streak_not_the_rest():
    frames = [at("neutral", LEFT)] * 3 + [at("happy", LEFT)] + [at("neutral", LEFT)] * 3
    s = run(frames)
    assert s.current_expected == "happy" and s.prompt_s == pytest.approx(0.6)


def test_an_expression_is_judged_against_the_rest_at_its_own_place():
    # the rest at the second place already reads 0.5 happy (its light): 0.55 there is no rise, though it
    # is one over the first place's rest
    two = StepPlan((LEFT, LEFT, RIGHT, RIGHT), (0.6, 0.0, 0.6, 0.0))
    s = AuthSession(TEMPLATE, ("surprise", "happy"), CFG, two)
    frames = [at("neutral", LEFT)] * 8 + [at("surprise", LEFT)] * 2 + [lit(RIGHT, 0.5)] * 8 + [lit(RIGHT, 0.55)] * 5
    for i, a in enumerate(frames):
        s.feed(a, i * 0.1)
    assert s.status == "pending" and s.current_expected == "happy"


def lit(target: Target, happy: float) -> FrameAnalysis:
    a = at("neutral", target)
    probs = np.full(7, (1 - happy) / 6, np.float32)
    probs[EXPRESSION_LABELS.index("happy")] = happy
    a.probabilities = probs
    return a
