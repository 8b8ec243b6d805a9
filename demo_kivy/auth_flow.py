"""Authentication on live frames: :meth:`Authenticator.authenticate` on a worker thread, its per-frame
callback turned into the live view (instruction, countdown, progress, scores).

The outcome is the session's result dict (``decision``, ``reasons``,
``challenge``, ``steps``, ...) plus the reasons in plain words. A user who is
not enrolled, or was enrolled with another model, gets a reject with
UNKNOWN_USER / MODEL_MISMATCH without any frame being judged. Leaving the
screen cancels the attempt before it is decided: it is not recorded.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from facelivenet.edge_runtime import reasons
from facelivenet.edge_runtime.api import Authenticator, ModelMismatchError, UnknownUserError
from facelivenet.edge_runtime.face_pipeline import FrameAnalysis
from facelivenet.edge_runtime.session import AuthSession, SessionResult
from facelivenet.edge_runtime.sources import Frame

from .feed import FrameFeed
from .flow import Flow, view_of
from .guidance import reason_lines

log = logging.getLogger(__name__)


class AuthFlow(Flow):
    """Authenticate ``user`` with a challenge drawn as the authenticator's options say."""

    name = "auth"

    def __init__(self, feed: FrameFeed, auth: Authenticator, user: str) -> None:
        super().__init__(feed)
        self.auth, self.user = auth, user
        self.challenge, self.session_cfg = auth.draw_challenge(), auth.session_config
        self.expression_threshold: float | None = self.session_cfg.expression_threshold  # the meters' mark
        self.publish(challenge=self.challenge, expected="neutral", step_count=len(self.challenge) * 2,
                     threshold=self.session_cfg.verification_threshold, guidance="Look at the camera")

    def on_frame(self, frame: Frame, analysis: FrameAnalysis | None, session: AuthSession) -> None:
        """Per analysed frame (worker thread): publish what the screen shows."""
        identity = None
        if analysis is not None and analysis.embedding is not None:
            identity = float(np.dot(analysis.embedding, session.template))
        deadline = session.deadline()
        self.publish(**view_of(analysis, frame_index=frame.index, frame_t=frame.t, image=frame.image,
                               identity=identity, expected=session.current_expected, step_index=session.step_index,
                               target=session.target,
                               step_count=len(session.step_labels),
                               remaining_s=None if deadline is None else max(0.0, deadline - frame.t)))

    def work(self) -> dict[str, Any]:
        judged = True
        try:
            result = self.auth.authenticate(self.user, self.feed.frames(self.stop), challenge=self.challenge,
                                            on_frame=self.on_frame)
        except (UnknownUserError, ModelMismatchError) as exc:  # no template to compare with
            code = reasons.UNKNOWN_USER if isinstance(exc, UnknownUserError) else reasons.MODEL_MISMATCH
            result, judged = SessionResult.refused(self.challenge, code, str(exc), self.session_cfg), False
        outcome = result.to_dict()
        if judged:
            outcome["identity_scores"] = [round(s, 4) for s in result.identity_scores]
        outcome["reason_text"] = reason_lines(outcome["reasons"])
        outcome["user"] = self.user
        outcome["thresholds"] = {k: v for k, v in result.thresholds().items()
                                 if k in ("verification_cosine", "expression_probability")}
        return outcome
