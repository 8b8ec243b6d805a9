"""Face detection with YuNet (``cv2.FaceDetectorYN``).

The detector file is never downloaded: it comes from an explicit path
(``--detector``), the ``FACELIVE_DETECTOR`` environment variable, or a bundle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .constants import DETECTOR_ENV
from .errors import DetectorNotFoundError


try:  # OpenCV's DNN warns on every detector load that targets are unsupported: noise for users
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
except AttributeError:  # pragma: no cover - builds without the logging utils
    pass
DEFAULT_DETECTOR_NAME = "yunet_s_640_640.onnx"


@dataclass(frozen=True)
class Face:
    """One detected face: box (x, y, w, h), five landmarks and a score.

    Landmarks are in image pixels, ordered: eye on the image's left, eye on the
    image's right, nose tip, mouth corner on the left, mouth corner on the right.
    """

    box: np.ndarray  # (4,) float32: x, y, w, h
    landmarks: np.ndarray  # (5, 2) float32
    score: float

    @property
    def size(self) -> float:
        """The shorter side of the box, in pixels."""
        return float(min(self.box[2], self.box[3]))


def pick_face(faces: Sequence[Face], image_shape: tuple[int, ...]) -> Face | None:
    """The face an image is about: the one nearest the image centre, ties to the larger.

    Used where a picture may show bystanders (LFW pairs, ``facelive verify``);
    enrollment and authentication instead require exactly one face.
    """
    if not faces:
        return None
    h, w = image_shape[:2]
    centre = np.array([w / 2.0, h / 2.0])

    def cost(f: Face) -> float:
        c = f.box[:2] + f.box[2:] / 2.0
        return float(np.linalg.norm(c - centre) / max(h, w) - 0.1 * f.size / max(h, w))

    return min(faces, key=cost)


def resolve_detector_path(explicit: str | Path | None = None, bundle_dir: str | Path | None = None) -> Path:
    """Find the YuNet ONNX file: explicit path, then $FACELIVE_DETECTOR, then the bundle.

    A directory is accepted anywhere a file is and searched for the default file name.
    An explicit path that does not exist is an error (no fallback to the others).
    Raises DetectorNotFoundError listing every place looked at and how to provide one.
    """
    candidates: list[tuple[str, Path]] = []
    if explicit:
        candidates.append(("--detector", Path(explicit)))
    env = os.environ.get(DETECTOR_ENV)
    if env:
        candidates.append((f"${DETECTOR_ENV}", Path(env)))
    if bundle_dir:
        candidates.append(("bundle", Path(bundle_dir) / "detector"))
        candidates.append(("bundle", Path(bundle_dir)))
    looked: list[str] = []
    for source, path in candidates:
        if path.is_dir():
            files = sorted(path.glob("yunet*.onnx"))
            preferred = [f for f in files if f.name == DEFAULT_DETECTOR_NAME]
            if preferred or files:
                return (preferred or files)[0]
            looked.append(f"{source}: {path} (a folder with no yunet*.onnx)")
        elif path.is_file():
            return path
        else:
            looked.append(f"{source}: {path} (does not exist)")
            if source == "--detector":
                break  # an explicit choice that is wrong is an error, never silently replaced
    where = "; ".join(looked) if looked else "no --detector given, $FACELIVE_DETECTOR unset, no bundle"
    raise DetectorNotFoundError(
        f"YuNet face detector not found ({where}). Pass --detector PATH/TO/{DEFAULT_DETECTOR_NAME} "
        f"or set {DETECTOR_ENV}; the file ships with OpenCV's model zoo (Apache-2.0)."
    )


class YuNetDetector:
    """Thin wrapper over ``cv2.FaceDetectorYN`` returning :class:`Face` objects, best first."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        top_k: int = 50,
        max_side: int = 640,
    ) -> None:
        self.model_path = resolve_detector_path(model_path)
        self.max_side = max_side
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(self.model_path), "", (320, 320), score_threshold, nms_threshold, top_k
            )
        except cv2.error as exc:
            raise DetectorNotFoundError(
                f"cannot load the face detector {self.model_path}: not a YuNet ONNX model OpenCV can read"
            ) from exc
        self._input_size: tuple[int, int] | None = None

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        """Detect faces in a BGR uint8 image; larger images are downscaled to ``max_side`` first."""
        h, w = image_bgr.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = image_bgr
        if scale < 1.0:
            small = cv2.resize(image_bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        size = (small.shape[1], small.shape[0])
        if size != self._input_size:
            self._net.setInputSize(size)
            self._input_size = size
        _, raw = self._net.detect(small)
        if raw is None:
            return []
        faces = []
        for row in raw:
            box = (row[0:4] / scale).astype(np.float32)
            landmarks = (row[4:14].reshape(5, 2) / scale).astype(np.float32)
            faces.append(Face(box=box, landmarks=landmarks, score=float(row[14])))
        faces.sort(key=lambda f: f.score, reverse=True)
        return faces
