"""The attack suite's session model, calibration and identity diagnostic without the model (tiny inputs)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from facelivenet.benchmarks.attacks.actors import NOD_PX, TRANSITION_FRAMES, Performer
from facelivenet.benchmarks.attacks.calibration import CalibrationRates, Stills, loso_rules, session_rule
from facelivenet.benchmarks.attacks.identity import DlibIdentityPipeline, identity_pipeline
from facelivenet.benchmarks.attacks.render import BASE, FrameSpec, Layer, Renderer
from facelivenet.benchmarks.attacks.scenarios import build_actor, plan_sessions
from facelivenet.benchmarks.attacks.simulate import OPEN_THRESHOLD, SessionThresholds
from facelivenet.edge_runtime.labels import EXPRESSION_LABELS

from .test_attacks_units import CCFG, subjects  # noqa: F401 - the fixture


def _prompts():
    return ["neutral"] * 6 + ["happy"] * 12


def test_a_smooth_performer_cross_fades_with_a_nod(subjects):  # noqa: F811
    s = subjects[0]
    p = Performer(s.images, np.random.default_rng(0), variants=3, transition_frames=TRANSITION_FRAMES)
    specs = [p.spec(i, e) for i, e in enumerate(_prompts())]
    fades = [sp.layers[0] for sp in specs if sp.layers[0].blend is not None]
    assert len(fades) == TRANSITION_FRAMES
    assert [f.mix for f in fades] == pytest.approx([(k + 1) / (TRANSITION_FRAMES + 1) for k in range(4)], abs=1e-4)
    assert all(f.image in s.neutral and f.blend in s.images("happy") for f in fades)
    assert max(abs(f.cy - BASE.cy) for f in fades) == NOD_PX  # the head nods and comes back
    after = specs[-1].layers[0]
    assert after.blend is None and after.image == fades[0].blend and after.cy == BASE.cy


def test_the_cut_model_has_no_transitions(subjects):  # noqa: F811
    plan = plan_sessions("bona_fide", 1, subjects, CCFG, seed=0)[0]
    actor, _ = build_actor(plan, {x.name: x for x in subjects}, CCFG, variants=2, session_model="cuts")
    assert all(actor.spec(i, e).layers[0].blend is None for i, e in enumerate(_prompts()))
    with pytest.raises(ValueError, match="session model"):
        build_actor(plan, {x.name: x for x in subjects}, CCFG, variants=2, session_model="morph")


def test_a_swap_at_the_same_place_is_a_cut_between_people(subjects):  # noqa: F811
    plan = plan_sessions("swap", 1, subjects, CCFG, seed=0)[0]
    by_name = {x.name: x for x in subjects}
    s, t = by_name[plan.subject], by_name[plan.attacker]
    actor, _ = build_actor(plan, by_name, CCFG, variants=2)
    layers = [actor.spec(i, e).layers[0] for i, e in enumerate(_prompts())]
    assert all(l.cx == BASE.cx for l in layers)  # the same place in the frame
    assert not any(l.blend is not None and (l.image in s.all_images) != (l.blend in s.all_images) for l in layers)
    first_t = next(i for i, l in enumerate(layers) if l.image in t.all_images)
    assert layers[first_t - 1].image in s.neutral and layers[first_t - 1].blend is None  # one frame: S, next: T


def test_blend_layers_render_between_their_two_stills(subjects):  # noqa: F811
    a, b = subjects[0].neutral[0], subjects[1].neutral[0]
    r = Renderer()
    plain_a, plain_b = (r.render(FrameSpec((BASE.layer(x),))).astype(int) for x in (a, b))
    half = r.render(FrameSpec((Layer(a, BASE.cx, BASE.cy, blend=b, mix=0.5),))).astype(int)
    assert np.array_equal(r.render(FrameSpec((Layer(a, BASE.cx, BASE.cy, blend=b, mix=1.0),))), plain_b)
    assert np.abs(half - (plain_a + plain_b) / 2).max() <= 1.0
    with pytest.raises(ValueError, match="mix"):
        Layer(a, 0, 0, blend=b, mix=1.5)


def _stills(subjects, rng, override: dict[str, np.ndarray] | None = None) -> Stills:
    emb, prob = {}, {}
    for k, s in enumerate(subjects):
        centre = np.eye(8)[k]
        for p in s.all_images:
            e = centre + 0.3 * rng.standard_normal(8)
            emb[p] = (e / np.linalg.norm(e)).astype(np.float32)
            q = rng.dirichlet(np.ones(7))
            if "HA" in p:
                q[EXPRESSION_LABELS.index("happy")] += 3
            prob[p] = (q / q.sum()).astype(np.float32)
    for p, e in (override or {}).items():
        emb[p] = e
    return Stills(emb, prob, [])


def _templates(subjects, stills):
    out = {}
    for s in subjects:
        t = np.sum([stills.embeddings[p] for p in s.enroll], axis=0)
        out[s.name] = t / np.linalg.norm(t)
    return out


def test_each_subjects_thresholds_never_see_that_subject(subjects):  # noqa: F811
    rng = np.random.default_rng(0)
    base = _stills(subjects, rng)
    s = subjects[0]
    changed = Stills({**base.embeddings, **{p: np.ones(8, np.float32) / 8 ** 0.5 for p in s.all_images}},
                     base.probabilities, [])
    templates = _templates(subjects, base)
    rates = CalibrationRates(far=0.1, floor_far=0.5, continuity_far=0.1, rest_rate=0.2)
    before = loso_rules(subjects, templates, base, CCFG.expressions, rates)
    after = loso_rules(subjects, templates, changed, CCFG.expressions, rates)
    assert before[s.name] == after[s.name]  # S's own images changed: S's thresholds did not
    assert before[subjects[1].name] != after[subjects[1].name]  # they are data for the others
    rule, margin = session_rule(before[s.name], window=2)
    assert rule.aggregate == before[s.name]["aggregate"]["threshold"] and rule.window == 2 and margin > 0
    assert before[s.name]["aggregate"]["target_far"] == 0.1


def test_calibration_rates_validate():
    with pytest.raises(ValueError, match="continuity_far"):
        CalibrationRates(continuity_far=0.0)


def test_session_thresholds_from_one_number_and_opened():
    th = SessionThresholds.of(0.9)
    assert th.identity.aggregate == 0.9 and th.identity.continuity == 0.9 and th.identity.floor == pytest.approx(0.6)
    opened = th.opened()
    assert (opened.identity.aggregate, opened.identity.floor, opened.identity.continuity) == (OPEN_THRESHOLD,) * 3
    assert opened.margin == th.margin and SessionThresholds.of(th) is th


class _Teacher:
    def __init__(self):
        self.calls = 0

    def describe(self, image, box):
        self.calls += 1
        return np.full(128, float(image.mean()) + 1.0, np.float32)


class _Pipeline:
    model = SimpleNamespace(fingerprint="fake:1")

    def analyze(self, frame, track=True, gate_quality=True):
        face = SimpleNamespace(box=np.array([1, 2, 3, 4], np.float32))
        return SimpleNamespace(analysed=True, embedding=np.zeros(128, np.float32), face=face)


def test_the_dlib_diagnostic_replaces_only_the_embedding():
    teacher = _Teacher()
    p = DlibIdentityPipeline(_Pipeline(), teacher)
    frame = np.full((4, 4, 3), 7, np.uint8)
    a, b = p.analyze(frame), p.analyze(frame.copy())
    assert np.linalg.norm(a.embedding) == pytest.approx(1.0) and np.array_equal(a.embedding, b.embedding)
    assert teacher.calls == 1 and p.computed == 1 and p.calls == 2  # memoised by the frame's bytes and box
    assert p.model.fingerprint == "fake:1"  # everything else is the wrapped pipeline's
    plain = _Pipeline()
    assert identity_pipeline(plain, "model") is plain
    with pytest.raises(ValueError, match="identity"):
        identity_pipeline(plain, "arcface")
