"""Which embedding decides identity in the suite: the model's own, or dlib's ResNet as a diagnostic.

``--identity dlib`` runs the very same sessions (same frames, detector,
tracker, expression probabilities and session rules) with one change: each
analysed frame's embedding is dlib's ResNet descriptor (the training
teacher, :class:`training.teacher.DlibTeacher`, 99.38 % on LFW) of the face
in YuNet's box, scaled to unit length; enrollment and calibration use it too.
The rates it gives separate rule errors from model errors: what the rules
reject with a far stronger embedding is the rules' doing.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .memo import digest

log = logging.getLogger(__name__)

IDENTITIES = {
    "model": "the bundle model's own embedding",
    "dlib": "dlib_face_recognition_resnet_model_v1 descriptors (unit length) of each frame's YuNet box: the "
            "diagnostic (same frames, same rules, same expression model)",
}


class DlibIdentityPipeline:
    """A :class:`FacePipeline` whose analysed frames carry dlib's descriptor as their embedding.

    Every other attribute is the wrapped pipeline's; descriptors are memoised by the frame's bytes and box.
    """

    def __init__(self, pipeline: Any, teacher: Any = None) -> None:
        if teacher is None:
            from facelivenet.training.teacher import DlibTeacher

            teacher = DlibTeacher()
        self._pipeline = pipeline
        self._teacher = teacher
        self._cache: dict[bytes, np.ndarray] = {}
        self.calls = 0
        self.computed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipeline, name)

    def describe(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        """dlib's descriptor of the face in ``box`` (x, y, w, h), unit length."""
        self.calls += 1
        key = digest(frame) + np.asarray(box, np.float32).tobytes()
        d = self._cache.get(key)
        if d is None:
            raw = np.asarray(self._teacher.describe(frame, box), np.float32)
            d = self._cache[key] = raw / max(float(np.linalg.norm(raw)), 1e-12)
            self.computed += 1
        return d

    def analyze(self, frame: np.ndarray, track: bool = True, gate_quality: bool = True):
        """The wrapped pipeline's analysis with the embedding replaced by dlib's descriptor."""
        a = self._pipeline.analyze(frame, track=track, gate_quality=gate_quality)
        if a.analysed:
            a.embedding = self.describe(frame, a.face.box)
        return a


def identity_pipeline(pipeline: Any, identity: str) -> Any:
    """``pipeline`` itself for ``model``, wrapped for ``dlib``; ValueError naming a bad choice."""
    if identity not in IDENTITIES:
        raise ValueError(f"unknown identity {identity!r}; choose from {', '.join(IDENTITIES)}")
    return pipeline if identity == "model" else DlibIdentityPipeline(pipeline)
