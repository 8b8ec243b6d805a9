"""The challenge-response session: a state machine fed one analysed frame at a time.

Per frame (ARCHITECTURE.md, "Session rules"): exactly one face (else MULTIPLE_FACES, or
NO_FACE once the face has been gone for more than ``max_missing_frames``); the
same tracked face (else TRACK_LOST); then the frame's identity evidence and
its expression.

Identity (:mod:`.identity_evidence`) is decided from the whole session, not
its worst frame: every frame must stay close to the session's own recent
frames (continuity) and above a floor that only catches gross mismatches
(either failing rejects at once, IDENTITY_MISMATCH); when every step has
passed, the mean embedding of the frames that held the neutral steps (the
face at rest) must match the template (the aggregate), else
IDENTITY_MISMATCH.

Expressions (:mod:`.expression_baseline`) are judged against the person's
own face at rest: the frames that held the neutral steps make the rest
profile, and an expression is SHOWN when its log-odds rose by the margin over
that profile and more than the challenge's other expressions rose. The asked
expression shown on ``hold_frames`` consecutive analysed frames passes the
step. A neutral step holds while no challenge expression is shown (the first
one, before any profile exists, while the face is steady); its held frames
join the profile. Each step has its own deadline (CHALLENGE_TIMEOUT).
Showing another challenge expression than the asked one for ``hold_frames``
frames at an expression step rejects at once (WRONG_EXPRESSION): a replay in
the wrong order fails there. At a neutral step an expression only breaks the
hold (people relax slowly, and a face in mid-change can read as anything;
no attack gains from it, since the next expression must then rise over the
face at rest). Frames failing a quality gate are not judged and break the
hold streak. A photo never rises above its own rest profile, so it
fails the first expression step (CHALLENGE_TIMEOUT), whatever expression it
shows.

Positions and timing (:mod:`.step_plan`, when the config has them): each
step carries a target oval (an expression step shares its neutral step's); a
frame holds only while the face box sits in it (a face elsewhere, moving
there, breaks the hold like a quality failure: the move is part of the step's
deadline). With positions, expressions are judged against the rest held at
the same place just before (each place has its own light), and a neutral
step holds while the face is steady. A neutral step passes once the face has
held at rest in place for ``hold_frames`` frames AND for the step's random
hold; then the next prompt is shown (``prompt_s``). A challenge expression
shown less than ``timing.min_reaction_s`` after its prompt rose before the
person could react: EARLY_RESPONSE.

``expression_threshold`` (the old global floor) no longer takes part in the
decision; it stays in the config and the JSON for their shape.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import reasons
from .constants import DEFAULT_HOLD_FRAMES, DEFAULT_MAX_MISSING_FRAMES, DEFAULT_STEP_TIMEOUT_S
from .challenge import NEUTRAL, with_neutral_steps
from .step_plan import PositionRule, StepPlan, Target, TimingRule, draw_plan
from .expression_baseline import DEFAULT_MARGIN, ExpressionBaseline
from .face_pipeline import FrameAnalysis
from .identity_evidence import DEFAULT_WINDOW, IdentityEvidence, IdentityRule, default_rule
from .labels import EXPRESSION_LABELS
from .reasons import Decision, Reason

PENDING, ACCEPT, REJECT = Decision.PENDING, Decision.ACCEPT, Decision.REJECT


@dataclass(frozen=True)
class SessionConfig:
    """Session thresholds. ``verification_threshold`` is the identity aggregate's; floor and continuity
    default from it (:func:`identity_evidence.default_rule`) unless given."""

    verification_threshold: float
    expression_threshold: float  # the old global floor: validated and reported, no longer decides
    hold_frames: int = DEFAULT_HOLD_FRAMES
    step_timeout_s: float = DEFAULT_STEP_TIMEOUT_S
    max_missing_frames: int = DEFAULT_MAX_MISSING_FRAMES
    expression_margin: float = DEFAULT_MARGIN  # log-odds rise over the face at rest
    identity_floor: float | None = None
    continuity_threshold: float | None = None
    continuity_window: int = DEFAULT_WINDOW
    positions: PositionRule | None = None  # None: the face may be anywhere (recorded sources)
    timing: TimingRule | None = None  # None: no random hold, no reaction bound (recorded sources)

    def __post_init__(self) -> None:
        if not -1.0 <= self.verification_threshold <= 1.0:
            raise ValueError(f"verification threshold must be a cosine in [-1, 1], got {self.verification_threshold}")
        if not 0.0 < self.expression_threshold <= 1.0:
            raise ValueError(f"expression threshold must be a probability in (0, 1], got {self.expression_threshold}")
        if self.hold_frames < 1 or self.step_timeout_s <= 0 or self.max_missing_frames < 0:
            raise ValueError("hold_frames >= 1, step_timeout_s > 0 and max_missing_frames >= 0 are required")
        if not self.expression_margin > 0:
            raise ValueError(f"expression margin must be > 0 (log-odds), got {self.expression_margin}")
        self.identity_rule  # validates the floor, continuity and window

    @property
    def identity_rule(self) -> IdentityRule:
        return default_rule(self.verification_threshold, self.identity_floor, self.continuity_threshold,
                            self.continuity_window)


@dataclass
class StepRecord:
    expected: str
    started_s: float
    ended_s: float | None = None
    passed: bool = False
    frames: int = 0  # analysed frames during the step
    best_probability: float = 0.0  # of the expected expression
    min_identity: float | None = None
    margin: float | None = None  # expression steps: the asked expression's best log-odds rise over the face at rest
    target: dict[str, float] | None = None  # the oval the face had to be in (Target.to_dict())
    hold_s: float | None = None  # neutral steps with timing: the rest required before the next prompt
    response_s: float | None = None  # expression steps: from the prompt to the first frame showing an expression

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["duration_s"] = None if self.ended_s is None else round(self.ended_s - self.started_s, 4)
        if d["margin"] is not None:
            d["margin"] = round(d["margin"], 4)
        return d


@dataclass
class SessionResult:
    decision: Decision
    reasons: list[Reason]
    challenge: list[str]
    steps: list[StepRecord]
    frames: int
    analysed_frames: int
    min_identity: float | None
    identity_scores: list[float] = field(default_factory=list)
    detail: str = ""
    identity: dict[str, Any] = field(default_factory=dict)  # IdentityEvidence.to_dict()
    expression: dict[str, Any] = field(default_factory=dict)  # margin threshold, rest profile, margins per step
    config: SessionConfig | None = None  # the thresholds and timings the session was judged with

    @classmethod
    def refused(cls, challenge: tuple[str, ...], reason: Reason, detail: str,
                config: SessionConfig | None = None) -> SessionResult:
        """A reject decided before any frame was judged (no template to compare with, a locked-out user)."""
        return cls(decision=Decision.REJECT, reasons=[Reason(reason)], challenge=list(challenge), steps=[], frames=0,
                   analysed_frames=0, min_identity=None, detail=detail, config=config)

    def thresholds(self) -> dict[str, Any]:
        """The thresholds the session was judged with, for JSON (empty without a config)."""
        cfg = self.config
        if cfg is None:
            return {}
        rule = cfg.identity_rule
        return {"verification_cosine": cfg.verification_threshold, "expression_probability": cfg.expression_threshold,
                "identity_floor": rule.floor, "continuity": rule.continuity, "continuity_window": rule.window,
                "expression_margin": cfg.expression_margin,
                "positions": None if cfg.positions is None else cfg.positions.to_dict(),
                "timing": None if cfg.timing is None else cfg.timing.to_dict()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reasons": list(self.reasons),
            "challenge": list(self.challenge),
            "steps": [s.to_dict() for s in self.steps],
            "frames": self.frames,
            "analysed_frames": self.analysed_frames,
            "min_identity": self.min_identity,
            "detail": self.detail,
            "identity": dict(self.identity),
            "expression": dict(self.expression),
        }


class AuthSession:
    """One authentication attempt against one template and one drawn challenge."""

    def __init__(self, template: np.ndarray, challenge: tuple[str, ...], cfg: SessionConfig,
                 plan: StepPlan | None = None) -> None:
        self.template = np.asarray(template, dtype=np.float32)
        self.challenge = tuple(challenge)
        self.cfg = cfg
        self.step_labels = with_neutral_steps(self.challenge)
        self.plan = plan if plan is not None else draw_plan(self.step_labels, cfg.positions, cfg.timing)
        self.status = PENDING
        self.reasons: list[str] = []
        self.detail = ""
        self.steps: list[StepRecord] = []
        self.frames = 0
        self.analysed = 0
        self.identity_scores: list[float] = []
        self.identity = IdentityEvidence(self.template, cfg.identity_rule)
        self.expressions = ExpressionBaseline(self.challenge, cfg.expression_margin)
        self._held: list[tuple[np.ndarray, np.ndarray]] = []  # (probabilities, embedding) of a neutral hold streak
        self._streak = 0
        self._wrong_streak = 0
        self._missing = 0
        self._seen_face = False
        self._last_quality: list[str] = []
        self._rest_t0: float | None = None  # when the face last came into the step's target
        self._run, self._run_t0 = 0, 0.0
        self._rested: list[tuple[np.ndarray, np.ndarray]] = []  # the neutral step's longest hold streak
        self._place_rest: list[tuple[np.ndarray, np.ndarray]] = []  # the last neutral step's, at its place
        self._last_miss: str | None = None  # why the last frame's face was not in the target

    # ---------------------------------------------------------------- state

    @property
    def step_index(self) -> int:
        return len([s for s in self.steps if s.passed])

    @property
    def current_expected(self) -> str | None:
        return self.step_labels[self.step_index] if self.status == PENDING and self.step_index < len(self.step_labels) else None

    @property
    def target(self) -> Target | None:
        """Where the face should be now (None: positions off, or decided)."""
        return self.plan.target(self.step_index) if self.current_expected is not None else None

    @property
    def prompt_s(self) -> float | None:
        """When the current step's prompt was shown (its start; None before the first frame)."""
        return self.steps[-1].started_s if self.steps and self.status == PENDING else None

    def deadline(self) -> float | None:
        """When the current step times out (None before the first frame)."""
        return self.steps[-1].started_s + self.cfg.step_timeout_s if self.steps else None

    def _reject(self, reason: str, t: float, detail: str = "") -> str:
        self.status = REJECT
        self.reasons.append(reason)
        self.detail = detail or reasons.describe(reason)
        if self.steps and self.steps[-1].ended_s is None:
            self.steps[-1].ended_s = t
        return self.status

    def _break_hold(self) -> None:
        self._streak = self._wrong_streak = 0
        self._held = []

    # ------------------------------------------------------------------ feed

    def feed(self, a: FrameAnalysis, t: float) -> str:
        """Judge one analysed frame taken at time ``t`` (seconds); returns the session status."""
        if self.status != PENDING:
            return self.status
        self.frames += 1
        if not self.steps:
            self._open_step(t)
        if t > self.deadline():
            if not self._seen_face:
                return self._reject(reasons.NO_FACE, t, "no usable face appeared before the first deadline")
            return self._reject(reasons.CHALLENGE_TIMEOUT, t, self._timeout_detail())
        if reasons.MULTIPLE_FACES in a.reasons:
            return self._reject(reasons.MULTIPLE_FACES, t)
        if reasons.NO_FACE in a.reasons:
            self._break_hold()
            if self._seen_face:
                self._missing += 1
                if self._missing > self.cfg.max_missing_frames:
                    return self._reject(reasons.NO_FACE, t, "the face left the view")
            return self.status
        self._missing = 0
        self._seen_face = True
        if reasons.TRACK_LOST in a.reasons or not a.continuous:
            return self._reject(reasons.TRACK_LOST, t)
        if not a.analysed:
            self._break_hold()
            self._last_quality = list(a.reasons)
            return self.status
        self._last_quality = []
        return self._judge(a, t)

    def _timeout_detail(self) -> str:
        step = self.steps[-1]
        detail = f"'{step.expected}' was not held in time"
        if step.expected != NEUTRAL and step.margin is not None and step.margin < self.expressions.margin:
            detail += (f" (its best rise over the face at rest was {step.margin:.2f} < margin "
                       f"{self.expressions.margin:.2f} log-odds)")
        if self._last_quality:
            detail += f" (last frames: {', '.join(self._last_quality)})"
        if self._last_miss:
            detail += f" (not in the target oval: {self._last_miss})"
        return detail

    def _open_step(self, t: float) -> None:
        k = len(self.steps)
        target = self.plan.target(k)
        self.steps.append(StepRecord(self.step_labels[k], started_s=t, hold_s=self.plan.hold(k) or None,
                                     target=None if target is None else target.to_dict()))
        self._rest_t0 = None
        self._run, self._run_t0 = 0, t  # frames in a row showing an expression at this step, since when
        self._rested = []

    def _in_place(self, a: FrameAnalysis) -> bool:
        """Is the face in the current step's target (always, without positions)?"""
        target = self.plan.target(self.step_index)
        if target is None or self.cfg.positions is None:
            self._last_miss = None
            return True
        if a.face is None or a.frame_hw is None:
            self._last_miss = "no face box"
            return False
        self._last_miss = self.cfg.positions.miss(target, a.face.box, a.frame_hw)
        return self._last_miss is None

    def _early(self, step: StepRecord, shown: str | None, t: float) -> bool:
        """An expression step's first run of ``hold_frames`` frames showing an expression: did it begin too
        soon after its prompt? (A one-frame flicker is no response.)"""
        if step.expected == NEUTRAL or step.response_s is not None:
            return False
        if shown is None:
            self._run = 0
            return False
        if self._run == 0:
            self._run_t0 = t
        self._run += 1
        if self._run < self.cfg.hold_frames:
            return False
        step.response_s = round(self._run_t0 - step.started_s, 4)
        return self.cfg.timing is not None and step.response_s < self.cfg.timing.min_reaction_s

    def _held_long_enough(self, step: StepRecord, t: float, holds: bool) -> bool:
        """hold_frames in a row; at a neutral step with timing, once such a streak has been held in the step,
        its random rest in place too, ending on a frame at rest (a frame that reads as an expression breaks
        the streak, not the rest: faces flicker)."""
        if step.hold_s is None:
            return self._streak >= self.cfg.hold_frames
        return (bool(self._rested) and holds and self._rest_t0 is not None
                and t - self._rest_t0 >= step.hold_s)

    def _reference(self, step: StepRecord) -> np.ndarray | None:
        """With positions, what a frame is judged against: at a neutral step its own hold streak (a steady
        face), at an expression step the rest held just before it at the same place (each place has its own
        light: the rest profile of another place shifts the expression outputs)."""
        frames = self._held if step.expected == NEUTRAL else self._place_rest
        return self.expressions.reference_of([p for p, _ in frames])

    def _shown(self, step: StepRecord, probs: np.ndarray) -> str | None:
        """The challenge expression shown on this frame; before any rest profile, against the hold streak."""
        if self.cfg.positions is not None:
            reference = self._reference(step)
            return None if reference is None else self.expressions.shown(probs, reference)
        if self.expressions.ready:
            return self.expressions.shown(probs)
        reference = self.expressions.reference_of([p for p, _ in self._held])
        return None if reference is None else self.expressions.shown(probs, reference)

    def _judge(self, a: FrameAnalysis, t: float) -> str:
        self.analysed += 1
        step = self.steps[-1]
        step.frames += 1
        if self.analysed == 1:
            mismatch = self.identity.check_dimension(np.asarray(a.embedding))
            if mismatch:
                return self._reject(reasons.MODEL_MISMATCH, t, mismatch)
        failure = self.identity.frame(a.embedding)
        score = self.identity.scores[-1]
        self.identity_scores.append(score)
        step.min_identity = score if step.min_identity is None else min(step.min_identity, score)
        if failure:
            return self._reject(reasons.IDENTITY_MISMATCH, t, failure)
        probs = np.asarray(a.probabilities)
        step.best_probability = max(step.best_probability, float(probs[EXPRESSION_LABELS.index(step.expected)]))
        shown = self._shown(step, probs)
        if self._early(step, shown, t):
            return self._reject(reasons.EARLY_RESPONSE, t, f"'{shown}' shown {step.response_s:.2f} s after its "
                                f"prompt (a person needs >= {self.cfg.timing.min_reaction_s:g} s to react)")
        in_place = self._in_place(a)
        if not in_place:
            self._rest_t0 = None
        elif self._rest_t0 is None:
            self._rest_t0 = t
        if step.expected == NEUTRAL:
            holds, wrong = shown is None, False  # at rest: an expression only breaks the hold
        else:
            rise = self.expressions.rises(probs, self._reference(step) if self.cfg.positions is not None
                                          else None)[step.expected]
            step.margin = rise if step.margin is None else max(step.margin, rise)
            holds = shown == step.expected
            wrong = shown is not None and shown != step.expected
        self._wrong_streak = self._wrong_streak + 1 if wrong else 0
        if self._wrong_streak >= self.cfg.hold_frames:
            return self._reject(reasons.WRONG_EXPRESSION, t, f"'{shown}' shown while '{step.expected}' was asked")
        holds = holds and in_place
        if holds:
            self._streak += 1
            if step.expected == NEUTRAL:
                self._held.append((probs, np.asarray(a.embedding)))
        else:
            self._streak = 0
            self._held = []
        if self._streak >= self.cfg.hold_frames and len(self._held) >= len(self._rested):
            self._rested = list(self._held)  # the step's longest streak at rest so far
        if self._held_long_enough(step, t, holds):
            return self._pass_step(step, t)
        return self.status

    def _pass_step(self, step: StepRecord, t: float) -> str:
        step.passed, step.ended_s = True, t
        if step.expected == NEUTRAL:
            self._place_rest = list(self._rested or self._held)
        for probs, embedding in self._rested or self._held:  # a neutral step's held frames are the face at rest
            self.expressions.add_rest(probs)
            self.identity.add_rest(embedding)
        self._break_hold()
        if self.step_index < len(self.step_labels):
            self._open_step(t)
            return self.status
        failure = self.identity.final()
        if failure:
            return self._reject(reasons.IDENTITY_MISMATCH, t, failure)
        self.status = ACCEPT
        self.detail = "the identity evidence held and every asked expression was shown in time"
        return self.status

    def finish(self, t: float | None = None, reason: str = reasons.SOURCE_ENDED, detail: str = "") -> SessionResult:
        """End the session (e.g. the source ran out) and return its result."""
        if self.status == PENDING:
            end = t if t is not None else (self.steps[-1].started_s if self.steps else 0.0)
            self._reject(reason, end, detail)
        return self.result()

    def expression_evidence(self) -> dict[str, Any]:
        """The rest profile, the margin threshold and each expression step's best rise, for JSON."""
        return {
            "margin_threshold": round(self.expressions.margin, 4),
            "rest_profile": self.expressions.profile(),
            "rest_frames": self.expressions.frames,
            "margins": [None if s.margin is None else round(s.margin, 4) for s in self.steps if s.expected != NEUTRAL],
        }

    def result(self) -> SessionResult:
        return SessionResult(
            decision=self.status if self.status != PENDING else REJECT,
            reasons=list(self.reasons),
            challenge=list(self.challenge),
            steps=list(self.steps),
            frames=self.frames,
            analysed_frames=self.analysed,
            min_identity=min(self.identity_scores) if self.identity_scores else None,
            identity_scores=list(self.identity_scores),
            detail=self.detail,
            identity=self.identity.to_dict(),
            expression=self.expression_evidence(),
            config=self.cfg,
        )
