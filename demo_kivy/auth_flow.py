"""Authentication on live frames: :func:`facelivenet.edge_runtime.authenticate.authenticate` on a worker
thread, its per-frame callback turned into the live view (instruction, countdown, progress, scores).

The outcome is the session's result dict (``decision``, ``reasons``,
``challenge``, ``steps``, ...) plus the reasons in plain words. A user who is
not enrolled, or was enrolled with another model, gets a reject with
UNKNOWN_USER / MODEL_MISMATCH without any frame being judged. Leaving the
screen cancels the attempt before it is decided: it is not recorded.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from facelivenet.edge_runtime import reasons
from facelivenet.edge_runtime.authenticate import LockoutConfig, authenticate
from facelivenet.edge_runtime.face_pipeline import FacePipeline, FrameAnalysis
from facelivenet.edge_runtime.session import AuthSession, SessionConfig, SessionResult
from facelivenet.edge_runtime.sources import Frame
from facelivenet.edge_runtime.store import ModelMismatchError, TemplateStore, UnknownUserError

from .feed import FrameFeed
from .flow import Flow, view_of
from .guidance import reason_lines

log = logging.getLogger(__name__)


def refused(challenge: tuple[str, ...], code: str, detail: str) -> dict[str, Any]:
    """A reject decided before any frame (no template to compare with), as the session's result dict."""
    return SessionResult.refused(challenge, code, detail).to_dict()


class AuthFlow(Flow):
    """Authenticate ``user`` against the template in ``db`` with a drawn ``challenge``."""

    name = "auth"

    def __init__(self, feed: FrameFeed, pipeline: FacePipeline, db: str, user: str, challenge: tuple[str, ...],
                 session_cfg: SessionConfig, lockout: LockoutConfig) -> None:
        super().__init__(feed)
        self.pipeline, self.db, self.user = pipeline, db, user
        self.challenge, self.session_cfg, self.lockout = tuple(challenge), session_cfg, lockout
        steps = len(challenge) * 2
        self.publish(challenge=self.challenge, expected="neutral", step_count=steps,
                     threshold=session_cfg.verification_threshold, guidance="Look at the camera")

    def on_frame(self, frame: Frame, analysis: FrameAnalysis | None, session: AuthSession) -> None:
        """Per analysed frame (worker thread): publish what the screen shows."""
        identity = None
        if analysis is not None and analysis.embedding is not None:
            identity = float(np.dot(analysis.embedding, session.template))
        deadline = session.deadline()
        self.publish(**view_of(analysis, frame_index=frame.index, frame_t=frame.t, image=frame.image,
                               identity=identity, expected=session.current_expected, step_index=session.step_index,
                               step_count=len(session.step_labels),
                               remaining_s=None if deadline is None else max(0.0, deadline - frame.t)))

    def work(self) -> dict[str, Any]:
        if not Path(self.db).is_file():
            return self._with_words(refused(self.challenge, reasons.UNKNOWN_USER,
                                            f"no template database at {self.db}: enroll {self.user!r} first"))
        try:
            with TemplateStore(self.db, create=False) as store:
                result = authenticate(self.pipeline, store, self.user, self.feed.frames(self.stop), self.challenge,
                                      self.session_cfg, self.lockout, on_frame=self.on_frame)
        except UnknownUserError as exc:
            return self._with_words(refused(self.challenge, reasons.UNKNOWN_USER, str(exc)))
        except ModelMismatchError as exc:
            return self._with_words(refused(self.challenge, reasons.MODEL_MISMATCH, str(exc)))
        outcome = result.to_dict()
        outcome["identity_scores"] = [round(s, 4) for s in result.identity_scores]
        return self._with_words(outcome)

    def _with_words(self, outcome: dict[str, Any]) -> dict[str, Any]:
        outcome["reason_text"] = reason_lines(outcome["reasons"])
        outcome["user"] = self.user
        outcome["thresholds"] = {"verification_cosine": self.session_cfg.verification_threshold,
                                 "expression_probability": self.session_cfg.expression_threshold}
        return outcome
