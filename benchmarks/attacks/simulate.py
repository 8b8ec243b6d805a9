"""Run planned sessions through the runtime's own session code.

Frames come from an actor that sees the session's current prompt (a live
person reacts to it); each goes through :func:`run_session` (the same loop as
``facelive auth``) with the real :class:`FacePipeline` and :class:`AuthSession`.

Each session runs twice on the same frames:

- at the enrolled subject's calibrated verification threshold: the reported
  decision and reasons;
- with the identity check open (threshold -1, every frame's identity score
  recorded): the session's decision at ANY threshold t then follows as
  ``open decision == accept and min identity >= t`` (a frame under t rejects
  at once, and until then the session runs exactly as the open one). This
  gives the DET curve; :func:`derived_decision` is checked against the real
  run for every session (``derivation_mismatches`` in the report).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from facelivenet.edge_runtime import reasons
from facelivenet.edge_runtime.authenticate import run_session
from facelivenet.edge_runtime.challenge import ChallengeConfig
from facelivenet.edge_runtime.face_pipeline import FacePipeline
from facelivenet.edge_runtime.session import ACCEPT, PENDING, AuthSession, SessionConfig, SessionResult
from facelivenet.edge_runtime.sources import Frame

from .actors import Actor
from .data import Subject
from .render import Renderer
from .scenarios import SessionPlan, build_actor

log = logging.getLogger(__name__)

OPEN_THRESHOLD = -1.0


@dataclass
class SuiteSetup:
    """What every session shares."""

    pipeline: FacePipeline
    renderer: Renderer
    subjects: dict[str, Subject]
    templates: dict[str, np.ndarray]
    thresholds: dict[str, float]  # per enrolled subject
    ccfg: ChallengeConfig
    expression_threshold: float
    variants: int
    fps: float = 10.0
    hold_frames: int = 3
    step_timeout_s: float = 5.0

    def session_config(self, threshold: float) -> SessionConfig:
        return SessionConfig(verification_threshold=threshold, expression_threshold=self.expression_threshold,
                             hold_frames=self.hold_frames, step_timeout_s=self.step_timeout_s)

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

    @property
    def accepted(self) -> bool:
        return self.decision == ACCEPT

    def accepted_at(self, threshold: float) -> bool:
        """The decision at another verification threshold (see the module docstring)."""
        return derived_decision(self.open_decision, self.open_min_identity, threshold) == ACCEPT

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def derived_decision(open_decision: str, open_min_identity: float | None, threshold: float) -> str:
    """The decision at ``threshold`` of a session run with the identity check open."""
    ok = open_decision == ACCEPT and open_min_identity is not None and open_min_identity >= threshold
    return ACCEPT if ok else "reject"


def session_frames(actor: Actor, session: AuthSession, renderer: Renderer, fps: float,
                   max_frames: int) -> Iterator[Frame]:
    """The actor's frames, each rendered after the session has judged the previous one."""
    for i in range(max_frames):
        if session.status != PENDING:
            return
        spec = actor.spec(i, session.current_expected)
        if spec is None:
            return
        yield Frame(i, i / fps, renderer.render(spec), f"frame{i:04d}")


def run_once(setup: SuiteSetup, plan: SessionPlan, threshold: float) -> tuple[SessionResult, dict[str, Any]]:
    """One run of ``plan`` at ``threshold`` (a fresh actor from the plan's seed)."""
    actor, detail = build_actor(plan, setup.subjects, setup.ccfg, setup.variants)
    session = AuthSession(setup.templates[plan.subject], plan.challenge, setup.session_config(threshold))
    frames = session_frames(actor, session, setup.renderer, setup.fps, setup.max_frames(plan.challenge))
    return run_session(setup.pipeline, session, frames), detail


def run_plan(setup: SuiteSetup, plan: SessionPlan) -> SessionRecord:
    """``plan`` at its subject's threshold and with identity open."""
    threshold = setup.thresholds[plan.subject]
    result, detail = run_once(setup, plan, threshold)
    open_result, _ = run_once(setup, plan, OPEN_THRESHOLD)
    record = SessionRecord(
        kind=plan.kind, index=plan.index, subject=plan.subject, attacker=plan.attacker,
        challenge=list(plan.challenge), threshold=threshold, decision=result.decision,
        reasons=list(result.reasons), frames=result.frames, analysed_frames=result.analysed_frames,
        min_identity=result.min_identity, open_decision=open_result.decision,
        open_reasons=list(open_result.reasons), open_min_identity=open_result.min_identity, detail=detail)
    record.detail["derivation_agrees"] = record.accepted_at(threshold) == record.accepted
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
