"""The challenge-response session: a state machine fed one analysed frame at a time.

Per frame (DESIGN.md section 5): exactly one face (else MULTIPLE_FACES, or
NO_FACE once the face has been gone for more than ``max_missing_frames``); the
same tracked face (else TRACK_LOST); its identity score against the template at
or above the threshold on EVERY analysed frame (else IDENTITY_MISMATCH). An
expression is "shown" on a frame when it is the most probable of the seven
AND its probability reaches the expression threshold; the asked expression
shown on ``hold_frames`` consecutive analysed frames passes the step. A
neutral step asks for a face at rest: it holds while NONE of the challenge's
expressions is shown (the classifier's "neutral" itself is its least reliable
class on posed faces: 17-60 % recall on JAFFE). Security needs only that:
a photo frozen on an expression fails the neutral step, a photo at rest
never shows the expression. Each step has its
own deadline (CHALLENGE_TIMEOUT). Holding another challenge expression than
the asked one for ``hold_frames`` frames rejects at once (WRONG_EXPRESSION):
a replay in the wrong order, or a photo showing an expression at a neutral
step, fails there. The expression of the step just passed is tolerated during
the next step (people relax slowly). Frames failing a quality gate are not
judged and break the hold streak.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import reasons
from .challenge import NEUTRAL, with_neutral_steps
from .face_pipeline import FrameAnalysis
from .labels import EXPRESSION_LABELS

PENDING, ACCEPT, REJECT = "pending", "accept", "reject"


@dataclass(frozen=True)
class SessionConfig:
    verification_threshold: float
    expression_threshold: float
    hold_frames: int = 3
    step_timeout_s: float = 5.0
    max_missing_frames: int = 2

    def __post_init__(self) -> None:
        if not -1.0 <= self.verification_threshold <= 1.0:
            raise ValueError(f"verification threshold must be a cosine in [-1, 1], got {self.verification_threshold}")
        if not 0.0 < self.expression_threshold <= 1.0:
            raise ValueError(f"expression threshold must be a probability in (0, 1], got {self.expression_threshold}")
        if self.hold_frames < 1 or self.step_timeout_s <= 0 or self.max_missing_frames < 0:
            raise ValueError("hold_frames >= 1, step_timeout_s > 0 and max_missing_frames >= 0 are required")


@dataclass
class StepRecord:
    expected: str
    started_s: float
    ended_s: float | None = None
    passed: bool = False
    frames: int = 0  # analysed frames during the step
    best_probability: float = 0.0  # of the expected expression
    min_identity: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["duration_s"] = None if self.ended_s is None else round(self.ended_s - self.started_s, 4)
        return d


@dataclass
class SessionResult:
    decision: str
    reasons: list[str]
    challenge: list[str]
    steps: list[StepRecord]
    frames: int
    analysed_frames: int
    min_identity: float | None
    identity_scores: list[float] = field(default_factory=list)
    detail: str = ""

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
        }


class AuthSession:
    """One authentication attempt against one template and one drawn challenge."""

    def __init__(self, template: np.ndarray, challenge: tuple[str, ...], cfg: SessionConfig) -> None:
        self.template = np.asarray(template, dtype=np.float32)
        self.challenge = tuple(challenge)
        self.cfg = cfg
        self.step_labels = with_neutral_steps(self.challenge)
        self._challenge_set = set(self.challenge)
        self.status = PENDING
        self.reasons: list[str] = []
        self.detail = ""
        self.steps: list[StepRecord] = []
        self.frames = 0
        self.analysed = 0
        self.identity_scores: list[float] = []
        self._streak = 0
        self._wrong_streak = 0
        self._missing = 0
        self._seen_face = False
        self._last_quality: list[str] = []

    # ---------------------------------------------------------------- state

    @property
    def step_index(self) -> int:
        return len([s for s in self.steps if s.passed])

    @property
    def current_expected(self) -> str | None:
        return self.step_labels[self.step_index] if self.status == PENDING and self.step_index < len(self.step_labels) else None

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

    # ------------------------------------------------------------------ feed

    def feed(self, a: FrameAnalysis, t: float) -> str:
        """Judge one analysed frame taken at time ``t`` (seconds); returns the session status."""
        if self.status != PENDING:
            return self.status
        self.frames += 1
        if not self.steps:
            self.steps.append(StepRecord(self.step_labels[0], started_s=t))
        if t > self.deadline():
            if not self._seen_face:
                return self._reject(reasons.NO_FACE, t, "no usable face appeared before the first deadline")
            extra = f" (last frames: {', '.join(self._last_quality)})" if self._last_quality else ""
            return self._reject(reasons.CHALLENGE_TIMEOUT, t,
                                f"'{self.steps[-1].expected}' was not held in time{extra}")
        if reasons.MULTIPLE_FACES in a.reasons:
            return self._reject(reasons.MULTIPLE_FACES, t)
        if reasons.NO_FACE in a.reasons:
            self._streak = self._wrong_streak = 0
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
            self._streak = self._wrong_streak = 0
            self._last_quality = list(a.reasons)
            return self.status
        self._last_quality = []
        return self._judge(a, t)

    def _judge(self, a: FrameAnalysis, t: float) -> str:
        self.analysed += 1
        step = self.steps[-1]
        step.frames += 1
        score = float(np.dot(a.embedding, self.template))
        self.identity_scores.append(score)
        step.min_identity = score if step.min_identity is None else min(step.min_identity, score)
        if score < self.cfg.verification_threshold:
            return self._reject(reasons.IDENTITY_MISMATCH, t,
                                f"identity score {score:.3f} < threshold {self.cfg.verification_threshold:.3f}")
        probs = a.probabilities
        asked = EXPRESSION_LABELS.index(step.expected)
        step.best_probability = max(step.best_probability, float(probs[asked]))
        shown = EXPRESSION_LABELS[int(np.argmax(probs))]
        confident = float(probs.max()) >= self.cfg.expression_threshold
        if step.expected == NEUTRAL:  # at rest: none of the challenge's expressions on the face
            holds = not (confident and shown in self._challenge_set)
        else:
            holds = confident and shown == step.expected
        self._streak = self._streak + 1 if holds else 0
        previous = self.step_labels[self.step_index - 1] if self.step_index > 0 else NEUTRAL
        wrong = confident and shown != step.expected and shown in self._challenge_set and shown != previous
        self._wrong_streak = self._wrong_streak + 1 if wrong else 0
        if self._wrong_streak >= self.cfg.hold_frames:
            return self._reject(reasons.WRONG_EXPRESSION, t, f"'{shown}' shown while '{step.expected}' was asked")
        if self._streak >= self.cfg.hold_frames:
            step.passed, step.ended_s = True, t
            self._streak = self._wrong_streak = 0
            if self.step_index == len(self.step_labels):
                self.status = ACCEPT
                self.detail = "identity held on every frame and every asked expression was shown in time"
            else:
                self.steps.append(StepRecord(self.step_labels[self.step_index], started_s=t))
        return self.status

    def finish(self, t: float | None = None, reason: str = reasons.SOURCE_ENDED, detail: str = "") -> SessionResult:
        """End the session (e.g. the source ran out) and return its result."""
        if self.status == PENDING:
            end = t if t is not None else (self.steps[-1].started_s if self.steps else 0.0)
            self._reject(reason, end, detail)
        return self.result()

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
        )
