"""The session types of the suite and the actor each one puts in front of the camera.

Every session claims the identity of an enrolled subject S (the template the
session compares against) and answers a challenge drawn at random with the
session's own seed. ``T`` is another subject, drawn at random.

- ``bona_fide``: S performs the challenge (:class:`Performer`).
- ``photo``: a still of S (one of S's neutral images) held up, ``photo`` jitter.
- ``expression_photo``: a still of S showing a challenge expression.
- ``replay``: a recording of S performing a genuine session drawn at recording
  time (its own order, target ovals and rests: each neutral step 8-12 frames
  plus its rest, each expression 12-18 frames, reactions and moves included),
  played as it is, blind; it can only pass where its order, its places and
  its timing all happen to fit the live session's.
- ``swap``: S at the neutral steps, T performing the expressions, at the same
  place in the frame (the tracker cannot tell; identity must). Each person's
  own changes follow the session model; the change of person is a cut.
- ``impostor``: T performs S's challenge correctly.
- ``two_faces``: S performs while T's face is beside S's from frame 0-9 on
  (before any session could finish).
- ``track_jump``: S performs; from frame 2-9 on the face is elsewhere in the
  frame (a jump of 190-230 px, more than a face width): another device or print.

Every live performer, and the attacker holding a photo, moves the face to each
step's target oval (:class:`actors.Mover`) when the session has positions on.

Session models (:data:`SESSION_MODELS`): ``smooth`` (the default) gives every
live performer (bona fide, impostor, the recorded replay, the swap's two
people, the performer under two faces and track jump) cross-faded transitions
with a small nod (:data:`actors.SMOOTH`); ``cuts`` is the earlier model, one
still to the next in one frame. Photos stay stills; the swap's change of
person, the second face and the jump stay as they were in both.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from facelivenet.edge_runtime.challenge import NEUTRAL, ChallengeConfig, draw_challenge, with_neutral_steps
from facelivenet.edge_runtime.step_plan import PositionRule, StepPlan, TimingRule, draw_plan

from .actors import CUTS, SMOOTH, TRANSITION_FRAMES, Actor, Clip, Performer, Still, WithBystander, WithJump, record
from .data import Subject
from .render import JUMPS

BONA_FIDE = "bona_fide"
ATTACK_TYPES = ("photo", "expression_photo", "replay", "swap", "impostor", "two_faces", "track_jump")
SESSION_TYPES = (BONA_FIDE, *ATTACK_TYPES)
SESSION_MODELS = {"smooth": SMOOTH, "cuts": CUTS}


@dataclass(frozen=True)
class SessionPlan:
    """Everything that fixes one session: rerunning a plan gives the very same frames."""

    kind: str
    index: int
    subject: str
    attacker: str | None
    challenge: tuple[str, ...]
    seed: tuple[int, ...]

    def step_plan(self, positions: PositionRule | None, timing: TimingRule | None) -> StepPlan:
        """The live session's targets and rests (seeded by the plan: both runs of a plan see the same)."""
        return draw_plan(with_neutral_steps(self.challenge), positions, timing, self.seed)


def plan_sessions(kind: str, count: int, subjects: Sequence[Subject], ccfg: ChallengeConfig,
                  seed: int) -> list[SessionPlan]:
    """``count`` sessions of one type: enrolled subjects in turn, attacker and challenge drawn per session."""
    plans = []
    names = [s.name for s in subjects]
    for i in range(count):
        key = (int(seed), SESSION_TYPES.index(kind), i)
        rng = np.random.default_rng(key)
        subject = names[i % len(names)]
        challenge = draw_challenge(ccfg, rng)
        attacker = None
        if kind in ("swap", "impostor", "two_faces"):
            others = [n for n in names if n != subject]
            attacker = others[int(rng.integers(len(others)))]
        plans.append(SessionPlan(kind, i, subject, attacker, challenge, key))
    return plans


def _pick(rng: np.random.Generator, items: Sequence[str]) -> str:
    return items[int(rng.integers(len(items)))]


def replay_script(rng: np.random.Generator, ccfg: ChallengeConfig, positions: PositionRule | None,
                  timing: TimingRule | None, fps: float) -> tuple[tuple[str, ...], StepPlan, list[int]]:
    """A genuine session as recorded: its order, its targets and rests, and each step's frames."""
    order = draw_challenge(ccfg, rng)
    labels = with_neutral_steps(order)
    steps = draw_plan(labels, positions, timing, [int(v) for v in rng.integers(2**31, size=2)])
    durations = [int(rng.integers(8, 13) + round((steps.hold(k) or 0.0) * fps) if label == NEUTRAL
                     else rng.integers(12, 19)) for k, label in enumerate(labels)]
    return order, steps, durations


def build_actor(plan: SessionPlan, subjects: dict[str, Subject], ccfg: ChallengeConfig,
                variants: int, session_model: str = "smooth", positions: PositionRule | None = None,
                timing: TimingRule | None = None, fps: float = 10.0) -> tuple[Actor, dict[str, Any]]:
    """The actor of ``plan`` (a fresh one each call, from the plan's seed) and what it did, for the report."""
    if session_model not in SESSION_MODELS:
        raise ValueError(f"unknown session model {session_model!r}; choose from {', '.join(SESSION_MODELS)}")
    rng = np.random.default_rng((*plan.seed, 1))
    s = subjects[plan.subject]
    t = subjects[plan.attacker] if plan.attacker else None
    kind = plan.kind
    fade = TRANSITION_FRAMES if session_model == "smooth" else 0
    live = functools.partial(Performer, transition_frames=fade)  # a live person, in this session model

    if kind == BONA_FIDE:
        return live(s.images, rng, variants), {}
    if kind == "photo":
        image = _pick(rng, s.neutral_all)
        return Still(image, rng, variants), {"image": image}
    if kind == "expression_photo":
        label = _pick(rng, ccfg.expressions)
        image = _pick(rng, s.images(label))
        return Still(image, rng, variants), {"image": image, "expression": label}
    if kind == "replay":
        order, steps, durations = replay_script(rng, ccfg, positions, timing, fps)
        clip = record(live(s.images, rng, variants), with_neutral_steps(order), durations, steps.targets)
        live_targets = plan.step_plan(positions, timing).targets
        return Clip(clip), {"recorded_order": list(order), "order_matches": order == plan.challenge,
                            "places_match": steps.targets == live_targets, "clip_frames": len(clip)}
    if kind == "swap":
        own = set(s.all_images)
        return live(lambda label: s.images(label) if label == NEUTRAL else t.images(label), rng, variants,
                         same_person=lambda a, b: (a in own) == (b in own)), {}
    if kind == "impostor":
        return live(t.images, rng, variants), {}
    if kind == "two_faces":
        start = int(rng.integers(0, 10))
        image = _pick(rng, t.neutral_all)
        return WithBystander(live(s.images, rng, variants), image, start), {"second_face_from_frame": start}
    if kind == "track_jump":
        start = int(rng.integers(2, 10))
        offset = JUMPS[int(rng.integers(len(JUMPS)))]
        return WithJump(live(s.images, rng, variants), offset, start), {"jump_at_frame": start,
                                                                              "jump_px": list(offset)}
    raise ValueError(f"unknown session type {kind!r}; choose from {', '.join(SESSION_TYPES)}")
