"""The attack suite's parts without the model: data split, rendering, caches, actors, plans, rates, CLI errors."""

from __future__ import annotations

from pathlib import Path

import json
import cv2
import numpy as np
import pytest

from facelivenet.benchmarks.attacks import cli
from facelivenet.benchmarks.attacks.actors import Clip, Performer, Still, WithBystander, WithJump, aim, record
from facelivenet.benchmarks.attacks.data import load_subjects, resolve_jaffe_dir, split_description
from facelivenet.benchmarks.attacks.memo import MemoDetector, MemoModel
from facelivenet.benchmarks.attacks.render import BASE, BYSTANDER, FrameSpec, Renderer, jitter_params
from facelivenet.benchmarks.attacks.report import (
    det_curve,
    error_rates,
    meets_targets,
    replay_detail,
    wilson_interval,
)
from facelivenet.benchmarks.attacks.scenarios import ATTACK_TYPES, SESSION_TYPES, build_actor, plan_sessions
from facelivenet.benchmarks.attacks.simulate import SessionRecord, derived_decision
from facelivenet.edge_runtime.challenge import ChallengeConfig
from facelivenet.edge_runtime.errors import DatasetLayoutError
from facelivenet.edge_runtime.face_model import ModelOutputs
from facelivenet.edge_runtime.identity_evidence import IdentityRule
from facelivenet.edge_runtime.step_plan import PositionRule, TimingRule

CCFG = ChallengeConfig()


def _jaffe_like(folder: Path, subjects: dict[str, dict[str, int]]) -> Path:
    """A JAFFE-shaped folder of small synthetic faces: {subject: {EXPR code: count}}."""
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for subject, codes in subjects.items():
        for code, count in codes.items():
            for k in range(1, count + 1):
                n += 1
                image = np.full((64, 64), 40 + (n * 37) % 180, np.uint8)
                cv2.circle(image, (32, 32), 20, 255 - int(image[0, 0]), -1)
                cv2.imwrite(str(folder / f"{subject}.{code}{k}.{n}.tiff"), image)
    return folder


FULL = {"NE": 3, "HA": 2, "SU": 2, "AN": 1}


@pytest.fixture
def subjects(tmp_path):
    return load_subjects(_jaffe_like(tmp_path / "jaffe", {"AA": FULL, "BB": FULL, "CC": FULL}), CCFG.expressions)


# ------------------------------------------------------------------------------------------------ data


def test_split_keeps_the_session_neutral_out_of_enrollment(subjects):
    for s in subjects:
        assert len(s.enroll) == 2 and len(s.neutral) == 1 and not set(s.enroll) & set(s.neutral)
        assert s.neutral[0] == max(s.neutral_all)  # the last NE by name
        assert len(s.images("happy")) == 2 and s.images("neutral") == s.neutral
    d = split_description(subjects)
    assert d["enrollment_images"] == 6 and d["session_neutral_images"] == 3 and d["shared_neutral_subjects"] == []


def test_single_neutral_is_shared_and_incomplete_subjects_are_left_out(tmp_path):
    folder = _jaffe_like(tmp_path / "j", {"AA": {"NE": 1, "HA": 1, "SU": 1}, "BB": FULL, "CC": {"NE": 2, "HA": 1}})
    subjects = load_subjects(folder, CCFG.expressions)
    assert [s.name for s in subjects] == ["AA", "BB"]
    assert subjects[0].shared_neutral and subjects[0].enroll == subjects[0].neutral


def test_too_few_subjects_is_a_layout_error(tmp_path):
    with pytest.raises(DatasetLayoutError, match="at least 2 people"):
        load_subjects(_jaffe_like(tmp_path / "j", {"AA": FULL}), CCFG.expressions)


def test_data_root_or_jaffe_folder(tmp_path):
    folder = _jaffe_like(tmp_path / "root" / "jaffe", {"AA": FULL})
    assert resolve_jaffe_dir(tmp_path / "root") == folder
    assert resolve_jaffe_dir(folder) == folder
    with pytest.raises(DatasetLayoutError):
        resolve_jaffe_dir(tmp_path / "missing")


# --------------------------------------------------------------------------------------------- render


def test_rendering_is_deterministic_and_cached(subjects):
    image = subjects[0].neutral[0]
    spec = FrameSpec((BASE.layer(image),), "live", 3)
    a, b = Renderer(), Renderer()
    frame = a.render(spec)
    assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8
    assert np.array_equal(frame, b.render(spec))
    assert a.render(spec) is frame and a.rendered == 1  # cached: the same object
    assert not np.array_equal(frame, a.render(FrameSpec((BASE.layer(image),), "live", 4)))


def test_renderer_cache_is_bounded(subjects):
    r = Renderer(cache_frames=2)
    specs = [FrameSpec((BASE.layer(subjects[0].neutral[0]),), "live", v) for v in range(3)]
    first = r.render(specs[0])
    r.render(specs[1])
    r.render(specs[2])
    assert r.render(specs[0]) is not first and r.rendered == 4


def test_jitter_kinds():
    assert jitter_params("none", 5) == jitter_params("none", 0)
    live, photo = jitter_params("live", 1), jitter_params("photo", 1)
    assert abs(live.dx) <= 1.5 and abs(live.scale - 1) <= 0.02 and live.blur == 0
    assert photo.blur >= 0.4 and photo.gain <= 0.95
    assert jitter_params("live", 1) == live and jitter_params("live", 1, layer=1) != live
    with pytest.raises(ValueError):
        jitter_params("cartoon", 0)


def test_second_face_and_jump_land_where_said(subjects):
    r = Renderer()
    a, b = subjects[0].neutral[0], subjects[1].neutral[0]
    one = r.render(FrameSpec((BASE.layer(a),)))
    two = r.render(FrameSpec((BASE.layer(a), BYSTANDER.layer(b))))
    diff = np.abs(one.astype(int) - two.astype(int)).sum(axis=(0, 2))
    assert diff[: int(BASE.cx)].sum() == 0 and diff[int(BYSTANDER.cx)] > 0


# ---------------------------------------------------------------------------------------------- memo


class _CountingDetector:
    model_path = "fake.onnx"

    def __init__(self):
        self.calls = 0

    def detect(self, image):
        self.calls += 1
        return [float(image.mean())]


def test_memo_detector_detects_each_distinct_frame_once():
    inner = _CountingDetector()
    memo = MemoDetector(inner, id_slots=2)
    a, b = np.zeros((4, 4, 3), np.uint8), np.ones((4, 4, 3), np.uint8)
    assert memo.detect(a) == memo.detect(a) == memo.detect(a.copy()) == [0.0]
    assert memo.detect(b) == [1.0]
    assert inner.calls == memo.computed == 2 and memo.calls == 4 and memo.model_path == "fake.onnx"
    result = memo.detect(a)
    result.append("mutated by a caller")
    assert memo.detect(a) == [0.0]


class _FakeModel:
    fingerprint = "fake:0"

    def __init__(self):
        self.rows = 0

    def infer(self, crops):
        self.rows += len(crops)
        means = crops.reshape(len(crops), -1).mean(axis=1, keepdims=True).astype(np.float32)
        return ModelOutputs(np.repeat(means, 4, axis=1), np.repeat(means, 7, axis=1))


def test_memo_model_runs_each_distinct_crop_once():
    inner = _FakeModel()
    memo = MemoModel(inner)
    crops = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (1, 2, 1)])
    out = memo.infer(crops)
    assert out.embeddings.shape == (3, 4) and np.array_equal(out.embeddings[0], out.embeddings[2])
    single = memo.infer(crops[1])
    assert np.array_equal(single.embeddings[0], out.embeddings[1])
    assert inner.rows == 3 and memo.computed == 3 and memo.calls == 4  # the duplicate in one batch runs too
    assert memo.fingerprint == "fake:0"


# -------------------------------------------------------------------------------------------- actors


def _labels(subject, spec):
    return next(lab for lab in ("neutral", "happy", "surprise", "anger") if spec.layers[0].image in subject.images(lab))


def test_performer_reacts_after_a_delay_and_follows_the_prompt(subjects):
    s = subjects[0]
    p = Performer(s.images, np.random.default_rng(0), variants=3)
    shown = [_labels(s, p.spec(i, "neutral")) for i in range(5)]
    shown += [_labels(s, p.spec(i, "happy")) for i in range(5, 15)]
    assert shown[:5] == ["neutral"] * 5
    switch = shown.index("happy")
    assert 7 <= switch <= 10 and set(shown[switch:]) == {"happy"}  # 2-5 frames of reaction (0.2-0.5 s)


def test_performer_tries_another_take(subjects):
    s = subjects[0]
    p = Performer(s.images, np.random.default_rng(1), variants=2, take_frames=(3, 4))
    takes = {p.spec(i, "happy").layers[0].image for i in range(40)} - set(s.neutral)  # minus the reaction frames
    assert takes == set(s.images("happy"))


def test_still_clip_bystander_jump(subjects):
    s, t = subjects[0], subjects[1]
    still = Still(s.neutral[0], np.random.default_rng(0), variants=4)
    assert {still.spec(i, "happy").layers for i in range(5)} == {(BASE.layer(s.neutral[0]),)}
    assert still.spec(0, None).jitter == "photo"
    clip = Clip(record(Performer(s.images, np.random.default_rng(0), 2), ["neutral", "happy"], [3, 4]))
    assert len(clip.frames) == 7 and clip.spec(6, "surprise") is not None and clip.spec(7, "neutral") is None
    two = WithBystander(Performer(s.images, np.random.default_rng(0), 2), t.neutral[0], start=2)
    assert [len(two.spec(i, "neutral").layers) for i in range(4)] == [1, 1, 2, 2]
    jump = WithJump(Performer(s.images, np.random.default_rng(0), 2), (200.0, 10.0), start=1)
    assert jump.spec(0, "neutral").layers[0].cx == BASE.cx and jump.spec(1, "neutral").layers[0].cx == BASE.cx + 200


def test_a_live_face_and_a_held_photo_move_to_each_target_smoothly(subjects):
    s = subjects[0]
    rule = PositionRule()
    targets = [rule.target(0)] * 20 + [rule.target(8)] * 25  # top left, then bottom right (~290 px)
    for actor in (Performer(s.images, np.random.default_rng(2), 3), Still(s.neutral[0], np.random.default_rng(2), 3)):
        centres = [(layer.cx, layer.cy) for layer in (actor.spec(i, "neutral", t).layers[0]
                                                      for i, t in enumerate(targets))]
        steps = [np.hypot(b[0] - a[0], b[1] - a[1]) for a, b in zip(centres, centres[1:])]
        assert max(steps) < 45  # a glide the tracker follows (a jump is 190+ px)
        assert np.allclose(centres[19], aim(rule.target(0)), atol=0.5)  # whole pixels
        assert np.allclose(centres[-1], aim(rule.target(8)), atol=0.5)
        assert centres[20] == centres[19]  # a reaction before the move


def test_the_replay_is_recorded_at_its_own_places(subjects):
    by_name = {s.name: s for s in subjects}
    plans = plan_sessions("replay", 12, subjects, CCFG, seed=0)
    details = [build_actor(p, by_name, CCFG, 2, positions=PositionRule(), timing=TimingRule())[1] for p in plans]
    assert sum(d["order_matches"] for d in details) > 0 and not any(d["places_match"] for d in details)
    actor, _ = build_actor(plans[0], by_name, CCFG, 2, positions=PositionRule(), timing=TimingRule())
    live = plans[0].step_plan(PositionRule(), TimingRule()).targets[0]
    first = actor.spec(30, "neutral", live).layers[0]  # played blind: the live target changes nothing
    assert actor.spec(30, "neutral", None) == actor.spec(30, "neutral", live) and (first.cx, first.cy) != aim(live)


# --------------------------------------------------------------------------------------------- plans


def test_plans_are_seeded_balanced_and_attackers_differ(subjects):
    plans = plan_sessions("impostor", 9, subjects, CCFG, seed=3)
    assert plans == plan_sessions("impostor", 9, subjects, CCFG, seed=3)
    assert plans != plan_sessions("impostor", 9, subjects, CCFG, seed=4)
    assert [p.subject for p in plans] == ["AA", "BB", "CC"] * 3
    assert all(p.attacker and p.attacker != p.subject for p in plans)
    assert all(p.attacker is None for p in plan_sessions("photo", 3, subjects, CCFG, seed=3))
    assert {p.challenge for p in plan_sessions("bona_fide", 40, subjects, CCFG, 0)} == {("happy", "surprise"),
                                                                                          ("surprise", "happy")}


@pytest.mark.parametrize("kind", SESSION_TYPES)
def test_rebuilding_an_actor_gives_the_same_frames(subjects, kind):
    plan = plan_sessions(kind, 2, subjects, CCFG, seed=5)[1]
    by_name = {s.name: s for s in subjects}
    runs = []
    for _ in range(2):
        actor, detail = build_actor(plan, by_name, CCFG, variants=3)
        prompts = ["neutral"] * 6 + ["happy"] * 6 + ["neutral"] * 6 + ["surprise"] * 6
        runs.append(([actor.spec(i, e) for i, e in enumerate(prompts)], detail))
    assert runs[0] == runs[1]


def test_swap_shows_the_enrolled_neutral_and_the_other_persons_expressions(subjects):
    plan = plan_sessions("swap", 1, subjects, CCFG, seed=0)[0]
    s, t = {x.name: x for x in subjects}[plan.subject], {x.name: x for x in subjects}[plan.attacker]
    actor, _ = build_actor(plan, {x.name: x for x in subjects}, CCFG, variants=2)
    frames = [actor.spec(i, e).layers[0].image for i, e in enumerate(["neutral"] * 5 + ["happy"] * 10)]
    assert frames[0] in s.neutral and frames[-1] in t.images("happy")


# --------------------------------------------------------------------------------------------- rates


def _record(kind, accepted, open_accepted=None, open_min=0.9, **detail) -> SessionRecord:
    open_accepted = accepted if open_accepted is None else open_accepted
    return SessionRecord(kind, 0, "AA", None, ["happy", "surprise"], 0.5, "accept" if accepted else "reject",
                         [] if accepted else ["CHALLENGE_TIMEOUT"], 10, 10, open_min,
                         "accept" if open_accepted else "reject", [], open_min, detail,
                         rule={"aggregate": 0.5, "floor": -1.0, "continuity": -1.0, "window": 1},
                         open_identity={"aggregate": open_min, "min_score": open_min, "min_continuity": None})


def test_wilson_interval():
    lo, hi = wilson_interval(0, 100)
    assert lo == 0.0 and hi == pytest.approx(0.037, abs=5e-4)
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)


def test_error_rates_targets_and_det():
    records = ([_record("bona_fide", True, open_min=0.95)] * 3 + [_record("bona_fide", False)]
               + [_record("photo", False)] * 4 + [_record("impostor", True, open_min=0.6)]
               + [_record("impostor", False, open_accepted=False)] * 3
               + [_record("replay", True, order_matches=True), _record("replay", False, order_matches=False)])
    rates = error_rates(records)
    assert rates["bpcer"] == 0.25 and rates["apcer"] == {"photo": 0.0, "replay": 0.5, "impostor": 0.25}
    assert list(rates["apcer"]) == [k for k in ATTACK_TYPES if k in rates["apcer"]]
    assert rates["reasons"]["photo"] == {"CHALLENGE_TIMEOUT": 4}
    assert meets_targets(rates, orders=2) == {"photo": True, "replay": True, "impostor": False, "bpcer": False}
    assert meets_targets(rates, orders=2, challenges=9216)["replay"] is False  # positions on: <= 0.01
    assert replay_detail(records) == {"order_matched": 1, "accepted_when_matched": 1, "order_differed": 1,
                                      "accepted_when_differed": 0, "places_matched": 0,
                                      "accepted_when_places_matched": 0}
    det = det_curve(records)
    t = det["thresholds"]
    assert t[0] == -1.0 and len(det["bpcer"]) == len(t) == len(det["apcer"]["impostor"])
    assert det["apcer"]["impostor"][0] == 0.25 and det["apcer"]["impostor"][-1] == 0.0 and det["bpcer"][-1] == 1.0
    at_07 = t.index(next(x for x in t if x > 0.6))
    assert det["apcer"]["impostor"][at_07] == 0.0 and det["bpcer"][at_07] == 0.25


# (was: one min-identity score against one threshold; now the three pieces of identity evidence)
@pytest.mark.parametrize("decision, evidence, rule, expected", [
    ("accept", (0.8, 0.6, 0.9), (0.7, 0.5, 0.9), "accept"), ("accept", (0.8, 0.6, 0.9), (0.8, 0.6, 0.9), "accept"),
    ("accept", (0.8, 0.6, 0.9), (0.81, 0.5, 0.9), "reject"), ("accept", (0.8, 0.6, 0.9), (0.7, 0.61, 0.9), "reject"),
    ("accept", (0.8, 0.6, 0.9), (0.7, 0.5, 0.91), "reject"), ("accept", (0.8, 0.6, None), (0.7, 0.5, 0.99), "accept"),
    ("reject", (0.99, 0.99, 0.99), (0.1, 0.1, 0.1), "reject"), ("accept", (None, 0.9, 0.9), (-1.0, -1.0, -1.0), "reject")])
def test_derived_decision(decision, evidence, rule, expected):
    agg, low, cont = evidence
    ev = {"aggregate": agg, "min_score": low, "min_continuity": cont}
    assert derived_decision(decision, ev, IdentityRule(*rule)) == expected


# ----------------------------------------------------------------------------------------------- cli


def test_cli_usage_error_exits_2(capsys):
    assert cli.main(["--sessions", "many"]) == 2
    assert "usage:" in capsys.readouterr().err


def test_cli_without_data_fails_with_one_line(monkeypatch, capsys):
    monkeypatch.delenv("FACELIVE_DATA", raising=False)
    assert cli.main(["--json"]) == 1
    out, err = capsys.readouterr()
    assert "--data" in out and err.count("facelive-bench attacks: error:") == 1


def test_cli_rejects_unknown_types_and_bad_values(tmp_path, capsys):
    folder = _jaffe_like(tmp_path / "jaffe", {"AA": FULL, "BB": FULL})
    for argv in (["--types", "photo,deepfake"], ["--far", "2"], ["--expression-threshold", "0"], ["--sessions", "0"]):
        assert cli.main(["--data", str(folder), *argv]) == 1, argv
        assert capsys.readouterr().err.count("error:") == 1


def test_cli_rate_lists_are_checked_before_any_session(tmp_path, capsys):
    folder = _jaffe_like(tmp_path / "jaffe", {"AA": FULL, "BB": FULL})
    assert cli.main(["--data", str(folder), "--far", "0.005,abc"]) == 2  # not a number: a usage error
    assert "comma list" in capsys.readouterr().err
    assert cli.main(["--data", str(folder), "--far", "0.005", "--continuity-far", "0.02,1.5", "--json"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["error_type"] == "SuiteError" and err.count("error:") == 1


# ----------------------------------------------------------------------------------- expression rates


def test_expression_rates_count_shown_against_the_rest_reference():
    from facelivenet.benchmarks.attacks.expression_rates import Judged, candidates, rates

    def probs(label: str, p: float) -> np.ndarray:
        out = np.full(7, (1 - p) / 6)
        out[["neutral", "anger", "disgust", "fear", "happy", "sadness", "surprise"].index(label)] = p
        return out

    rest = np.log(probs("neutral", 0.4) / (1 - probs("neutral", 0.4)))
    judged = [Judged("happy", probs("happy", 0.9), rest), Judged("happy", probs("neutral", 0.4), rest),
              Judged("neutral", probs("neutral", 0.4), rest), Judged("surprise", probs("surprise", 0.9), rest)]
    r = rates(judged, ("happy", "surprise"))
    assert r["happy"] == {"true": 0.5, "false": 0.0, "images": 2, "others": 2}
    assert r["surprise"]["true"] == 1.0 and r["surprise"]["false"] == 0.0
    table = {"d": {"happy,surprise": r, "anger,happy": {"anger": {"true": 0.4, "false": 0.3}, "happy": r["happy"]}}}
    assert candidates(table, "happy,surprise") == []


def test_the_replay_target_follows_the_challenge_space():
    from facelivenet.benchmarks.attacks.report import REPLAY_TARGET, replay_target

    assert replay_target(2) == 0.5 and replay_target(2, 2) == 0.5  # orders only: the blind bound
    assert replay_target(2, 2_073_600) == REPLAY_TARGET == 0.01
