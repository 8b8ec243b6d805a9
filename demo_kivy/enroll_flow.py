"""Enrollment from live frames: guide the person until enough usable frames are captured, then enroll.

A frame is captured when it holds exactly one face passing the quality gates,
at least ``interval_s`` (of the source's time) after the previous capture, so
the template averages a few different moments. When ``wanted`` frames are
captured, or a finite source ends with at least one, the captured frames go to
:meth:`Authenticator.enroll` (which checks each again and stores the template
in one transaction).
"""

from __future__ import annotations

import logging
from typing import Any

from facelivenet.edge_runtime.api import Authenticator, validate_user_id
from facelivenet.edge_runtime.enrollment import EnrollmentError
from facelivenet.edge_runtime.face_pipeline import FacePipeline, FrameAnalysis
from facelivenet.edge_runtime.sources import Frame

from .feed import FrameFeed
from .flow import Flow, view_of
from .guidance import guidance

log = logging.getLogger(__name__)


class EnrollmentCapture:
    """Chooses the frames to enroll from; says what to fix on the others."""

    def __init__(self, wanted: int, interval_s: float) -> None:
        self.wanted = wanted
        self.interval_s = interval_s
        self.frames: list[Frame] = []
        self.last_guidance = ""

    @property
    def complete(self) -> bool:
        return len(self.frames) >= self.wanted

    def offer(self, frame: Frame, analysis: FrameAnalysis | None) -> str:
        """Consider one analysed frame; returns the line to show for it."""
        if analysis is None:
            self.last_guidance = "This frame could not be read"
            return self.last_guidance
        if not analysis.analysed or analysis.reasons:
            self.last_guidance = guidance(list(analysis.reasons))
            return self.last_guidance
        return self.take(frame)

    def take(self, frame: Frame) -> str:
        """Capture ``frame`` if it comes ``interval_s`` after the previous capture; returns the line to show."""
        if not self.frames or frame.t - self.frames[-1].t >= self.interval_s - 1e-6:  # float frame times
            self.frames.append(frame)
        return f"Hold still: captured {len(self.frames)} of {self.wanted}"


def analyse_frame(pipeline: FacePipeline, frame: Frame, track: bool) -> FrameAnalysis | None:
    """One frame through the pipeline; None when it cannot be read."""
    if frame.error is not None or frame.image is None:
        return None
    try:
        image = pipeline.check_frame(frame.image)
    except ValueError:
        return None
    return pipeline.analyze(image, track=track)


class EnrollFlow(Flow):
    """Capture frames of ``user`` from ``feed`` and enroll them with ``auth``."""

    name = "enroll"

    def __init__(self, feed: FrameFeed, auth: Authenticator, user: str, wanted: int, interval_s: float) -> None:
        super().__init__(feed)
        validate_user_id(user)
        self.auth, self.user = auth, user
        self.capture = EnrollmentCapture(wanted, interval_s)
        self.publish(wanted=wanted, guidance="Look at the camera")

    def look(self, frame: Frame) -> dict[str, Any]:
        """One frame: offered to the capture; the live view's fields for it."""
        analysis = analyse_frame(self.auth.pipeline, frame, track=False)
        return view_of(analysis, guidance=self.capture.offer(frame, analysis))

    def store(self, frames: list[Frame]) -> dict[str, Any]:
        """Enroll from the captured frames (each checked again, stored in one transaction); the outcome."""
        return self.auth.enroll(self.user, frames).to_dict()

    def work(self) -> dict[str, Any]:
        frames = self.feed.frames(self.stop)
        try:
            for frame in frames:
                self.publish(**self.look(frame), frame_index=frame.index, frame_t=frame.t, image=frame.image,
                             captured=len(self.capture.frames))
                if self.capture.complete:
                    break
        finally:
            frames.close()
        if not self.capture.frames:
            why = self.capture.last_guidance or "the source gave no frames"
            raise EnrollmentError(f"no usable frame of {self.user!r} before the source ended ({why}); nothing was stored")
        self.publish(guidance=f"Enrolling {self.user} from {len(self.capture.frames)} frame(s)...")
        outcome = self.store(self.capture.frames)
        log.info("enrolled %r from %d frame(s)", self.user, outcome["images_used"])
        self.publish(guidance=f"Enrolled {self.user} from {outcome['images_used']} frame(s)")
        return outcome
