"""Enrollment and authentication with a verification server deciding (``facelive-demo --server URL``): the
same live view as the local flows, filled from the server's answers.

Enrollment captures frames as the local flow does (one every ``interval_s`` of
source time; without a model here there is no face check before the server's)
and sends them to the server, which quality-gates them and stores the
template. Authentication opens a server session, streams every frame the flow
takes as JPEG with its capture time, and shows what the server answers: the
step's expected expression, its target oval, its deadline and the face box.
The result is the server's coarse decision; scores and thresholds stay on the
server. Frames go out no faster than their capture times (a recorded source is
paced like a camera), since the server refuses frames whose times run ahead
of its own clock.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from facelivenet.edge_runtime import reasons
from facelivenet.edge_runtime.challenge import NEUTRAL
from facelivenet.edge_runtime.sources import Frame
from facelivenet.server.client import Client, Conflict, FrameReply, NotFound, ServerError, ServerSession

from .enroll_flow import EnrollFlow
from .feed import Cancelled, FrameFeed
from .flow import Flow
from .guidance import guidance, reason_lines

log = logging.getLogger(__name__)


class ServerEnrollFlow(EnrollFlow):
    """Capture frames of ``user`` and enroll them on the server (an admin key)."""

    def __init__(self, feed: FrameFeed, client: Client, user: str, wanted: int, interval_s: float) -> None:
        super().__init__(feed, None, user, wanted, interval_s)
        self.client = client

    def look(self, frame: Frame) -> dict[str, Any]:
        if frame.image is None:
            return {"guidance": "This frame could not be read"}
        return {"guidance": self.capture.take(frame), "usable": True}

    def store(self, frames: list[Frame]) -> dict[str, Any]:
        with self.client:
            done = self.client.enroll(self.user, [f.image for f in frames])
        return {"user": done.user, "images_used": done.images_used, "rejected": done.images_rejected,
                "model_fingerprint": done.model, "server": self.client.url}


class Pacer:
    """Holds frames back until the wall clock has caught up with their capture times (from the first one)."""

    def __init__(self) -> None:
        self._origin: tuple[float, float] | None = None  # (frame t, wall time) of the first frame

    def wait(self, t: float, stop) -> None:
        """Return once ``t`` is due; Cancelled when ``stop`` is set meanwhile."""
        if self._origin is None:
            self._origin = (t, time.monotonic())
            return
        ahead = (t - self._origin[0]) - (time.monotonic() - self._origin[1])
        if ahead > 0 and stop.wait(ahead):
            raise Cancelled("cancelled")


class ServerAuthFlow(Flow):
    """Authenticate ``user`` on the server: its challenge, its target ovals, its decision."""

    name = "auth"
    expression_threshold = None  # the server's thresholds never reach the app

    def __init__(self, feed: FrameFeed, client: Client, user: str) -> None:
        super().__init__(feed)
        self.client, self.user = client, user
        self.session: ServerSession | None = None
        self.asked: dict[int, str] = {}  # step index -> the expression the server asked for there
        self.refused: ServerError | None = None  # the frame the server refused, if it ended the attempt
        self.publish(expected="neutral", guidance="Look at the camera")

    def work(self) -> dict[str, Any]:
        with self.client:  # this flow's own connection (a client serves one thread)
            try:
                self.session = session = self.client.start_session(self.user)
            except (NotFound, Conflict) as exc:  # no template (unknown_user), or another model's (model_mismatch)
                return self._outcome("reject", exc.code, exc.message, frames=0)
            self._show_step(session, session.step)
            try:
                self._stream(session)
            except Cancelled:
                self._end_quietly(session)  # not left pending until it expires
                raise
            outcome = session.result()
        detail = "" if self.refused is None else f"the server refused a frame: {self.refused}"
        return self._outcome(outcome.decision, outcome.reason, detail, frames=session.seq)

    def _stream(self, session: ServerSession) -> None:
        pacer = Pacer()
        frames = self.feed.frames(self.stop)
        try:
            for frame in frames:
                if not session.pending:
                    return
                if frame.image is None:
                    continue
                pacer.wait(frame.t, self.stop)
                try:
                    reply = session.send(frame.image, frame.t)
                except ServerError as exc:  # expired, refused: the server's decision says the rest
                    log.warning("the server refused frame %d: %s", frame.index, exc)
                    self.refused = exc
                    return
                self._show_frame(session, frame, reply)
        finally:
            frames.close()

    def _show_step(self, session: ServerSession, step, **fields) -> None:
        if step is not None:
            self.asked[step.index] = step.expected
        self.publish(expected=None if step is None else step.expected,
                     step_index=session.steps if step is None else step.index, step_count=session.steps,
                     target=None if step is None else step.target, challenge=tuple(self.challenge), **fields)

    @property
    def challenge(self) -> list[str]:
        """The expressions the server asked for, as far as this attempt got (the server does not tell more)."""
        return [label for _, label in sorted(self.asked.items()) if label != NEUTRAL]

    def _show_frame(self, session: ServerSession, frame: Frame, reply: FrameReply) -> None:
        face = reply.face
        box = None if face is None else np.array(face.pixels(frame.image.shape[:2]), dtype=np.float32)
        deadline = reply.deadline_t
        self._show_step(session, reply.step, frame_index=frame.index, frame_t=frame.t, image=frame.image, box=box,
                        landmarks=None, usable=face is not None, reasons=(),
                        guidance="" if face is not None else guidance([reasons.NO_FACE]),
                        remaining_s=None if deadline is None else max(0.0, deadline - frame.t))

    def _end_quietly(self, session: ServerSession) -> None:
        try:
            session.result()
        except ServerError as exc:
            log.info("ending the cancelled session: %s", exc)
        except Exception as exc:  # noqa: BLE001 - a cancel must not fail on the network
            log.info("ending the cancelled session failed: %s", exc)

    def _outcome(self, decision: str, reason: str | None, detail: str, frames: int) -> dict[str, Any]:
        codes = [] if reason is None else [reason]
        session_id = None if self.session is None else self.session.session_id
        return {"decision": decision, "reasons": codes, "reason_text": reason_lines(codes), "user": self.user,
                "challenge": list(self.challenge), "steps": [], "frames": frames, "detail": detail,
                "server": self.client.url, "session_id": session_id}
