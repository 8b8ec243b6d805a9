"""Enrollment: quality-gated images of one person -> a template in the store.

Each image must hold exactly one face that passes the quality gates; the
template is the normalised mean of the accepted embeddings (the individual
ones are kept too). Nothing is written unless at least ``min_images`` images
were accepted, and then in one transaction: a failed or interrupted enrollment
leaves the user's previous template as it was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from . import reasons
from .errors import FaceLiveError, FrameTooLargeError
from .face_pipeline import FacePipeline
from .sources import FileListSource, Frame, expand_image_paths
from .store import TemplateStore, validate_user_id

log = logging.getLogger(__name__)


class EnrollmentError(FaceLiveError):
    """Too few usable images: nothing was stored."""


@dataclass
class EnrollmentResult:
    user: str
    images_used: int
    rejected: list[dict] = field(default_factory=list)  # {"path", "reason", "detail"}
    model_fingerprint: str = ""

    def to_dict(self) -> dict:
        return {"user": self.user, "images_used": self.images_used, "rejected": list(self.rejected),
                "model_fingerprint": self.model_fingerprint}


def enroll_frames(pipeline: FacePipeline, store: TemplateStore, user: str, frames: Iterable[Frame],
                  min_images: int = 1) -> EnrollmentResult:
    """Enroll ``user`` from frames (files or a video); the rejected ones are listed with reason codes."""
    validate_user_id(user)
    result = EnrollmentResult(user, 0, model_fingerprint=pipeline.model.fingerprint)
    embeddings, sources = [], []
    for frame in frames:
        if frame.error is not None or frame.image is None:
            code = frame.reason or reasons.UNREADABLE
            result.rejected.append({"path": frame.name, "reason": code, "detail": frame.error or "no image"})
            continue
        try:
            image = pipeline.check_frame(frame.image)
        except ValueError as exc:
            code = reasons.IMAGE_TOO_LARGE if isinstance(exc, FrameTooLargeError) else reasons.UNREADABLE
            result.rejected.append({"path": frame.name, "reason": code, "detail": str(exc)})
            continue
        a = pipeline.analyze(image, track=False)
        if not a.analysed:
            code = a.reasons[0]
            result.rejected.append({"path": frame.name, "reason": code, "detail": reasons.describe(code)})
            continue
        embeddings.append(a.embedding)
        sources.append(frame.name)
    result.images_used = len(embeddings)
    if len(embeddings) < min_images:
        why = "; ".join(f"{r['path']}: {r['reason']}" for r in result.rejected[:5])
        raise EnrollmentError(f"only {len(embeddings)} usable image(s) for {user!r}, need {min_images}; nothing was "
                              f"stored{' (' + why + ')' if why else ''}")
    store.put(user, pipeline.model.fingerprint, embeddings, sources)
    log.info("enrolled %r from %d image(s), %d rejected", user, len(embeddings), len(result.rejected))
    return result


def enroll_paths(pipeline: FacePipeline, store: TemplateStore, user: str, items: Sequence[str | Path],
                 min_images: int = 1) -> EnrollmentResult:
    """Enroll ``user`` from image files and folders."""
    paths = expand_image_paths(items)
    return enroll_frames(pipeline, store, user, FileListSource(paths, fps=1.0), min_images)
