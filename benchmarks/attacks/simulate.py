"""Run planned sessions through the runtime's own session code.

Frames come from an actor that sees the session's current prompt (a live
person reacts to it); each goes through :func:`run_session` (the same loop as
``facelive auth``) with the real :class:`FacePipeline` and :class:`AuthSession`.

Each session runs twice on the same frames:

- at the enrolled subject's calibrated thresholds: the reported decision and
  reasons;
- with the identity checks open (aggregate, floor and continuity all -1, the
  evidence recorded): the session's decision at ANY identity thresholds then
  follows as ``open decision == accept and aggregate >= a and min score >= f
  and min continuity >= c`` (a frame under f or c rejects at once, and until
  then the session runs exactly as the open one; the aggregate is judged at
  the end). This gives the DET curve over the aggregate threshold;
  :func:`derived_decision` is checked against the real run for every session
  (``derivation_mismatches`` in the report).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from facelivenet.edge_runtime import reasons
from facelivenet.edge_runtime.authenticate import run_session
from facelivenet.edge_runtime.challenge import ChallengeConfig
from facelivenet.edge_runtime.constants import DEFAULT_FPS, DEFAULT_HOLD_FRAMES, DEFAULT_STEP_TIMEOUT_S
from facelivenet.edge_runtime.expression_baseline import DEFAULT_MARGIN
from facelivenet.edge_runtime.face_pipeline import FacePipeline
from facelivenet.edge_runtime.identity_evidence import IdentityRule, default_rule
from facelivenet.edge_runtime.session import ACCEPT, PENDING, REJECT, AuthSession, SessionConfig, SessionResult
from facelivenet.edge_runtime.sources import Frame
from facelivenet.edge_runtime.step_plan import PositionRule, TimingRule

from .actors import Actor
from .data import Subject
from .render import Renderer
from .scenarios import SessionPlan, build_actor

log = logging.getLogger(__name__)

OPEN_THRESHOLD = -1.0


@dataclass(frozen=True)
class SessionThresholds:
    """One enrolled subject's thresholds: the identity rule and the expression margin (log-odds)."""

    identity: IdentityRule
    margin: float = DEFAULT_MARGIN

    @classmethod
    def of(cls, value: "SessionThresholds | float") -> "SessionThresholds":
        """``value`` itself, or a single verification threshold with the runtime's defaults."""
        return value if isinstance(value, SessionThresholds) else cls(default_rule(float(value)))

    def opened(self) -> "SessionThresholds":
        """The same expression margin with every identity check open."""
        return SessionThresholds(IdentityRule(OPEN_THRESHOLD, OPEN_THRESHOLD, OPEN_THRESHOLD,
                                              self.identity.window), self.margin)

    def to_dict(self) -> dict[str, float]:
        return {"aggregate": self.identity.aggregate, "floor": self.identity.floor,
                "continuity": self.identity.continuity, "window": self.identity.window, "margin": self.margin}


@dataclass
class SuiteSetup:
    """What every session shares."""

    pipeline: FacePipeline
    renderer: Renderer
    subjects: dict[str, Subject]
    templates: dict[str, np.ndarray]
    thresholds: dict[str, SessionThresholds | float]  # per enrolled subject (a float: one verification threshold)
    ccfg: ChallengeConfig
    expression_threshold: float
    variants: int
    fps: float = DEFAULT_FPS
    hold_frames: int = DEFAULT_HOLD_FRAMES
    step_timeout_s: float = DEFAULT_STEP_TIMEOUT_S
    session_model: str = "smooth"
    positions: PositionRule | None = None  # each step's target oval (None: anywhere)
    timing: TimingRule | None = None  # the random rest before each prompt and the reaction bound

    def session_config(self, thresholds: SessionThresholds | float) -> SessionConfig:
        th = SessionThresholds.of(thresholds)
        return SessionConfig(verification_threshold=th.identity.aggregate,
                             expression_threshold=self.expression_threshold, hold_frames=self.hold_frames,
                             step_timeout_s=self.step_timeout_s, expression_margin=th.margin,
                             identity_floor=th.identity.floor, continuity_threshold=th.identity.continuity,
                             continuity_window=th.identity.window, positions=self.positions, timing=self.timing)

    def max_frames(self, challenge: Sequence[str]) -> int:
        """Enough frames for every step to time out."""
        return int(2 * len(challenge) * self.step_timeout_s * self.fps) + 2


@dataclass
class SessionRecord:
    """One session's plan and outcome, at the calibrated threshold and with identity open."""

    kind: str
    index: int
    subject: str
    attacker: str | None
    challenge: list[str]
    threshold: float
    decision: str
    reasons: list[str]
    frames: int
    analysed_frames: int
    min_identity: float | None
    open_decision: str
    open_reasons: list[str]
    open_min_identity: float | None
    detail: dict[str, Any] = field(default_factory=dict)
    rule: dict[str, float] = field(default_factory=dict)  # SessionThresholds.to_dict() of the real run
    identity: dict[str, Any] = field(default_factory=dict)  # the real run's identity evidence
    open_identity: dict[str, Any] = field(default_factory=dict)  # the open run's
    expression: dict[str, Any] = field(default_factory=dict)  # the real run's expression evidence

    @property
    def accepted(self) -> bool:
        return self.decision == ACCEPT

    def rule_at(self, aggregate: float) -> IdentityRule:
        """The record's identity rule with another aggregate threshold."""
        return IdentityRule(aggregate, self.rule.get("floor", OPEN_THRESHOLD),
                            self.rule.get("continuity", OPEN_THRESHOLD), int(self.rule.get("window", 1)))

    def accepted_at(self, aggregate: float) -> bool:
        """The decision at another aggregate threshold, floor and continuity as calibrated (module docstring)."""
        return derived_decision(self.open_decision, self.open_identity, self.rule_at(aggregate)) == ACCEPT

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def derived_decision(open_decision: str, open_identity: dict[str, Any], rule: IdentityRule) -> str:
    """The decision under ``rule`` of a session run with the identity checks open (its evidence dict)."""
    def at_least(key: str, threshold: float, missing_ok: bool) -> bool:
        v = open_identity.get(key)
        return missing_ok if v is None else v >= threshold

    ok = (open_decision == ACCEPT and at_least("aggregate", rule.aggregate, False)
          and at_least("min_score", rule.floor, False) and at_least("min_continuity", rule.continuity, True))
    return ACCEPT if ok else REJECT


def session_frames(actor: Actor, session: AuthSession, renderer: Renderer, fps: float,
                   max_frames: int) -> Iterator[Frame]:
    """The actor's frames, each rendered after the session has judged the previous one."""
    for i in range(max_frames):
        if session.status != PENDING:
            return
        spec = actor.spec(i, session.current_expected, session.target)
        if spec is None:
            return
        yield Frame(i, i / fps, renderer.render(spec), f"frame{i:04d}")


def run_once(setup: SuiteSetup, plan: SessionPlan,
             thresholds: SessionThresholds | float) -> tuple[SessionResult, dict[str, Any]]:
    """One run of ``plan`` at ``thresholds`` (a fresh actor from the plan's seed)."""
    actor, detail = build_actor(plan, setup.subjects, setup.ccfg, setup.variants, setup.session_model,
                                setup.positions, setup.timing, setup.fps)
    session = AuthSession(setup.templates[plan.subject], plan.challenge, setup.session_config(thresholds),
                          plan.step_plan(setup.positions, setup.timing))
    frames = session_frames(actor, session, setup.renderer, setup.fps, setup.max_frames(plan.challenge))
    return run_session(setup.pipeline, session, frames), detail


def run_plan(setup: SuiteSetup, plan: SessionPlan) -> SessionRecord:
    """``plan`` at its subject's thresholds and with identity open."""
    th = SessionThresholds.of(setup.thresholds[plan.subject])
    result, detail = run_once(setup, plan, th)
    open_result, _ = run_once(setup, plan, th.opened())
    record = SessionRecord(
        kind=plan.kind, index=plan.index, subject=plan.subject, attacker=plan.attacker,
        challenge=list(plan.challenge), threshold=th.identity.aggregate, decision=result.decision,
        reasons=list(result.reasons), frames=result.frames, analysed_frames=result.analysed_frames,
        min_identity=result.min_identity, open_decision=open_result.decision,
        open_reasons=list(open_result.reasons), open_min_identity=open_result.min_identity, detail=detail,
        rule=th.to_dict(), identity=result.identity, open_identity=open_result.identity,
        expression=result.expression)
    record.detail["why"] = result.detail  # the session's own words (e.g. which step timed out and why)
    record.detail["steps"] = [{"expected": st.expected, "passed": st.passed, "frames": st.frames,
                               "hold_s": st.hold_s, "response_s": st.response_s} for st in result.steps]
    record.detail["derivation_agrees"] = record.accepted_at(th.identity.aggregate) == record.accepted
    if not record.detail["derivation_agrees"]:
        log.warning("%s #%d: the derived decision differs from the real run (%s)", plan.kind, plan.index,
                    ",".join(result.reasons))
    return record


def run_plans(setup: SuiteSetup, plans: Sequence[SessionPlan],
              progress: Callable[[int, int], None] | None = None) -> list[SessionRecord]:
    """Every plan, in order."""
    out = []
    for k, plan in enumerate(plans):
        out.append(run_plan(setup, plan))
        if progress is not None:
            progress(k + 1, len(plans))
    return out


def reason_code(record: SessionRecord) -> str:
    """The session's outcome as one code: ACCEPT, or its first reason."""
    return "ACCEPT" if record.accepted else (record.reasons[0] if record.reasons else reasons.SOURCE_ENDED)
