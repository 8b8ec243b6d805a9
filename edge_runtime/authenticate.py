"""Run one authentication: lock-out check, template lookup, a drawn challenge, frames through the session.

This is what ``facelive auth`` and the demo call. The attempt's outcome is
recorded in the store; ``max_failures`` failures within ``window_s`` seconds
(since the last success) lock the user out until the window has passed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from . import reasons
from .challenge import ChallengeConfig, draw_challenge, fixed_challenge
from .face_pipeline import FacePipeline, FrameAnalysis
from .session import AuthSession, SessionConfig, SessionResult
from .sources import Frame
from .store import TemplateStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LockoutConfig:
    max_failures: int = 5
    window_s: float = 300.0


FrameCallback = Callable[[Frame, FrameAnalysis | None, AuthSession], None]


def choose_challenge(cfg: ChallengeConfig, seed: int | None = None, fixed_order: bool = False) -> tuple[str, ...]:
    """The drawn challenge (OS entropy unless ``seed``), or the set's own order with ``fixed_order``."""
    if fixed_order:
        return fixed_challenge(cfg)
    return draw_challenge(cfg, np.random.default_rng(seed))


def run_session(pipeline: FacePipeline, session: AuthSession, frames: Iterable[Frame],
                on_frame: FrameCallback | None = None) -> SessionResult:
    """Feed frames until the session decides or the frames run out."""
    pipeline.reset()
    last_t = None
    seen = 0
    for frame in frames:
        seen += 1
        last_t = frame.t
        analysis = None
        if frame.error is not None or frame.image is None:
            session.finish(frame.t, reasons.BAD_FRAME, f"{frame.name}: {frame.error or 'no image'}")
        else:
            try:
                image = pipeline.check_frame(frame.image)
            except ValueError as exc:
                session.finish(frame.t, reasons.BAD_FRAME, f"{frame.name}: {exc}")
            else:
                analysis = pipeline.analyze(image)
                session.feed(analysis, frame.t)
        if on_frame is not None:
            on_frame(frame, analysis, session)
        if session.status != "pending":
            break
    if seen == 0:
        return session.finish(0.0, reasons.SOURCE_ENDED, "the source gave no frames")
    return session.finish(last_t)


def authenticate(pipeline: FacePipeline, store: TemplateStore, user: str, frames: Iterable[Frame],
                 challenge: tuple[str, ...], session_cfg: SessionConfig,
                 lockout: LockoutConfig = LockoutConfig(), on_frame: FrameCallback | None = None,
                 now: float | None = None) -> SessionResult:
    """Authenticate ``user`` on ``frames``; the store's template must come from the pipeline's model.

    Raises UnknownUserError / ModelMismatchError (never compared); a locked-out user gets a
    reject with LOCKED_OUT without any frame being looked at.
    """
    template = store.template(user, pipeline.model.fingerprint)
    now = time.time() if now is None else now
    until = store.locked_until(user, lockout.max_failures, lockout.window_s, now)
    session = AuthSession(template.template, challenge, session_cfg)
    if until is not None:
        session.finish(0.0, reasons.LOCKED_OUT, f"locked for {until - now:.0f} s more after repeated failures")
        return session.result()
    result = run_session(pipeline, session, frames, on_frame)
    store.record_attempt(user, result.decision == "accept", result.reasons, now)
    log.info("auth %r: %s %s", user, result.decision, ",".join(result.reasons))
    return result
