"""Content-addressed caches for the two costly calls of the real per-frame path.

The suite runs the runtime's own :class:`FacePipeline` (detection, tracking,
alignment, quality gates, the model) on every frame; only the face detector
and the model's forward pass are memoised, keyed by the exact bytes they are
given (blake2b of the frame / the aligned crop). A repeated frame therefore
gives exactly what a fresh call would, and every distinct frame still gets a
real detection and a real forward pass. A frame seen again as the same array
object (the renderer hands out cached frames) skips even the hashing.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import numpy as np

from facelivenet.edge_runtime.face_model import ModelOutputs


def digest(array: np.ndarray) -> bytes:
    """A 128-bit digest of an array's shape, dtype and bytes."""
    a = np.ascontiguousarray(array)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{a.shape}{a.dtype}".encode())
    h.update(memoryview(a).cast("B"))
    return h.digest()


class MemoDetector:
    """Wraps a detector (``detect(image) -> list[Face]``): each distinct frame is detected once."""

    def __init__(self, detector: Any, id_slots: int = 512) -> None:
        self._detector = detector
        self._by_digest: dict[bytes, list] = {}
        self._by_id: OrderedDict[int, tuple[np.ndarray, list]] = OrderedDict()
        self._id_slots = id_slots
        self.calls = 0
        self.computed = 0

    @property
    def model_path(self):
        return self._detector.model_path

    def detect(self, image: np.ndarray) -> list:
        self.calls += 1
        held = self._by_id.get(id(image))
        if held is not None and held[0] is image:  # the same object: the strong reference keeps its id unique
            return list(held[1])
        key = digest(image)
        faces = self._by_digest.get(key)
        if faces is None:
            faces = self._by_digest[key] = self._detector.detect(image)
            self.computed += 1
        self._by_id[id(image)] = (image, faces)
        if len(self._by_id) > self._id_slots:
            self._by_id.popitem(last=False)
        return list(faces)


class MemoModel:
    """Wraps a :class:`FaceModel`: each distinct aligned crop runs through the model once.

    Every other attribute (preprocess, fingerprint, manifest...) is the wrapped model's.
    """

    def __init__(self, model: Any) -> None:
        self._model = model
        self._cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
        self.calls = 0
        self.computed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def infer(self, crops: np.ndarray) -> ModelOutputs:
        batch = crops[None] if crops.ndim == 3 else crops
        keys = [digest(c) for c in batch]
        missing = [i for i, k in enumerate(keys) if k not in self._cache]
        if missing:
            out = self._model.infer(batch[missing])
            for row, i in enumerate(missing):
                self._cache[keys[i]] = (out.embeddings[row].copy(), out.probabilities[row].copy())
            self.computed += len(missing)
        self.calls += len(keys)
        return ModelOutputs(np.stack([self._cache[k][0] for k in keys]), np.stack([self._cache[k][1] for k in keys]))
