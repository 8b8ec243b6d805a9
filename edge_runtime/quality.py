"""Quality gates for a detected face: size, sharpness, pose (from the five landmarks) and brightness.

Each failed gate yields a reason code (see :mod:`reasons`) so enrollment can say
"move closer" rather than silently storing a poor template, and a session can
skip a frame that cannot be judged. Default limits were set from the spread of
real faces (LFW, JAFFE) with room to spare; see :func:`face_measures`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from . import reasons
from .detection import Face


@dataclass(frozen=True)
class QualityConfig:
    """Limits of the quality gates. Pose limits are landmark ratios (0 = frontal)."""

    min_face_px: float = 48.0  # shorter side of the detector's box
    min_sharpness: float = 15.0  # variance of the Laplacian of the aligned grey crop
    max_roll_deg: float = 30.0  # tilt of the eye line
    max_yaw: float = 0.40  # nose offset from the eye midpoint / eye distance
    pitch_range: tuple[float, float] = (0.25, 0.75)  # nose height between eyes (0) and mouth (1)
    brightness_range: tuple[float, float] = (40.0, 220.0)  # mean grey level of the aligned crop

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FaceMeasures:
    """What the gates look at, for one face."""

    size_px: float
    sharpness: float
    roll_deg: float
    yaw: float
    pitch: float
    brightness: float


def pose_from_landmarks(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(roll in degrees, yaw ratio, pitch ratio) from eyes, nose tip and mouth corners (image order)."""
    pts = np.asarray(landmarks, dtype=np.float64)
    left_eye, right_eye, nose, mouth_l, mouth_r = pts
    eye_vec = right_eye - left_eye
    eye_dist = float(np.linalg.norm(eye_vec)) or 1.0
    roll = float(np.degrees(np.arctan2(eye_vec[1], eye_vec[0])))
    # Express the nose in the face's own frame: x along the eye line, y across it.
    ux = eye_vec / eye_dist
    uy = np.array([-ux[1], ux[0]])
    eye_mid = (left_eye + right_eye) / 2.0
    mouth_mid = (mouth_l + mouth_r) / 2.0
    yaw = float(np.dot(nose - eye_mid, ux) / eye_dist)
    span = float(np.dot(mouth_mid - eye_mid, uy)) or 1e-6
    pitch = float(np.dot(nose - eye_mid, uy) / span)
    return roll, yaw, pitch


def face_measures(face: Face, aligned_grey: np.ndarray) -> FaceMeasures:
    """Measure one face: its box size, its aligned crop's sharpness and brightness, its pose."""
    grey = aligned_grey if aligned_grey.ndim == 2 else aligned_grey[:, :, 0]
    sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    roll, yaw, pitch = pose_from_landmarks(face.landmarks)
    return FaceMeasures(face.size, sharpness, roll, yaw, pitch, float(grey.mean()))


def quality_reasons(m: FaceMeasures, cfg: QualityConfig) -> list[str]:
    """Reason codes of every gate the face fails (empty: usable)."""
    out = []
    if m.size_px < cfg.min_face_px:
        out.append(reasons.FACE_TOO_SMALL)
    if m.sharpness < cfg.min_sharpness:
        out.append(reasons.BLURRY)
    if abs(m.roll_deg) > cfg.max_roll_deg or abs(m.yaw) > cfg.max_yaw or not (
            cfg.pitch_range[0] <= m.pitch <= cfg.pitch_range[1]):
        out.append(reasons.POSE)
    if m.brightness < cfg.brightness_range[0]:
        out.append(reasons.TOO_DARK)
    elif m.brightness > cfg.brightness_range[1]:
        out.append(reasons.TOO_BRIGHT)
    return out
