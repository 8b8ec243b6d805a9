"""The steps of one authentication: lock-out check, template lookup, a drawn challenge, frames through the
session.

:class:`~.api.Authenticator` puts them together for ``facelive auth``, the demo
and any app, and records the attempt's outcome in the store (in one place,
:class:`~.api.LiveSession`); ``max_failures`` failures within ``window_s``
seconds (since the last success) lock the user out until the window has passed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from . import reasons
from .constants import DEFAULT_LOCKOUT_WINDOW_S, DEFAULT_MAX_FAILURES
from .challenge import ChallengeConfig, draw_challenge, fixed_challenge
from .face_pipeline import FacePipeline, FrameAnalysis
from .reasons import Decision
from .session import AuthSession, SessionConfig, SessionResult
from .sources import Frame
from .step_plan import StepPlan
from .store import TemplateStore


@dataclass(frozen=True)
class LockoutConfig:
    max_failures: int = DEFAULT_MAX_FAILURES
    window_s: float = DEFAULT_LOCKOUT_WINDOW_S


FrameCallback = Callable[[Frame, FrameAnalysis | None, AuthSession], None]


def choose_challenge(cfg: ChallengeConfig, seed: int | None = None, fixed_order: bool = False) -> tuple[str, ...]:
    """The drawn challenge (OS entropy unless ``seed``), or the set's own order with ``fixed_order``."""
    if fixed_order:
        return fixed_challenge(cfg)
    return draw_challenge(cfg, np.random.default_rng(seed))


def feed_frame(pipeline: FacePipeline, session: AuthSession, frame: Frame) -> FrameAnalysis | None:
    """Analyse one frame and feed it to the session; a frame that cannot be read ends it (BAD_FRAME)."""
    if frame.error is not None or frame.image is None:
        session.finish(frame.t, reasons.BAD_FRAME, f"{frame.name}: {frame.error or 'no image'}")
        return None
    try:
        image = pipeline.check_frame(frame.image)
    except ValueError as exc:
        session.finish(frame.t, reasons.BAD_FRAME, f"{frame.name}: {exc}")
        return None
    analysis = pipeline.analyze(image)
    session.feed(analysis, frame.t)
    return analysis


def run_session(pipeline: FacePipeline, session: AuthSession, frames: Iterable[Frame],
                on_frame: FrameCallback | None = None) -> SessionResult:
    """Feed frames until the session decides or the frames run out."""
    pipeline.reset()
    last_t = None
    seen = 0
    for frame in frames:
        seen += 1
        last_t = frame.t
        analysis = feed_frame(pipeline, session, frame)
        if on_frame is not None:
            on_frame(frame, analysis, session)
        if session.status != Decision.PENDING:
            break
    if seen == 0:
        return session.finish(0.0, reasons.SOURCE_ENDED, "the source gave no frames")
    return session.finish(last_t)


def open_session(pipeline: FacePipeline, store: TemplateStore, user: str, challenge: tuple[str, ...],
                 session_cfg: SessionConfig, lockout: LockoutConfig = LockoutConfig(),
                 now: float | None = None, plan: StepPlan | None = None) -> AuthSession:
    """A session against ``user``'s template for the pipeline's model; already rejected (LOCKED_OUT) when the
    user is locked out, without any frame being looked at. ``plan``: each step's target and rest (default:
    drawn from the session config with :mod:`secrets`). Raises UnknownUserError / ModelMismatchError
    (never compared)."""
    template = store.template(user, pipeline.model.fingerprint)
    now = time.time() if now is None else now
    until = store.locked_until(user, lockout.max_failures, lockout.window_s, now)
    session = AuthSession(template.template, challenge, session_cfg, plan)
    if until is not None:
        session.finish(0.0, reasons.LOCKED_OUT, f"locked for {until - now:.0f} s more after repeated failures")
    return session
