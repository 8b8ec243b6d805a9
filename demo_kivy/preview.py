"""The preview picture: the frame as RGB with the face box and landmarks drawn, mirrored for a front camera.

Only the picture is mirrored; the analysis always sees the frame as the camera
gave it, and the box is mirrored here to stay on the face.
"""

from __future__ import annotations

import cv2
import numpy as np

GOOD = (40, 200, 90)  # RGB: one usable face
TARGET = (255, 255, 255)  # the oval the face should move into
WARN = (250, 170, 30)  # a face that fails a gate or the identity
MAX_SIDE = 960  # larger frames are shrunk for the screen


def mirror_box(box: np.ndarray, width: int) -> np.ndarray:
    """An (x, y, w, h) box reflected about the frame's vertical centre line."""
    x, y, w, h = (float(v) for v in box[:4])
    return np.array([width - x - w, y, w, h], dtype=np.float32)


def draw_target(rgb: np.ndarray, target, mirror: bool, thick: int) -> None:
    """The target oval (centre and radii as fractions of the frame), with a dark outline so it shows on any
    background."""
    h, w = rgb.shape[:2]
    cx = (1.0 - target.cx) if mirror else target.cx
    centre, axes = (round(cx * w), round(target.cy * h)), (round(target.rx * w), round(target.ry * h))
    cv2.ellipse(rgb, centre, axes, 0, 0, 360, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.ellipse(rgb, centre, axes, 0, 0, 360, TARGET, thick, cv2.LINE_AA)


def render_preview(image_bgr: np.ndarray, box: np.ndarray | None = None, landmarks: np.ndarray | None = None,
                   good: bool = True, mirror: bool = False, target=None) -> np.ndarray:
    """RGB uint8 picture of a BGR (or grey) frame with the face (and the target oval) drawn; a new array, the
    frame is untouched."""
    img = image_bgr
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    scale = min(1.0, MAX_SIDE / max(img.shape[:2]))
    if scale < 1.0:
        img = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    width = rgb.shape[1]
    if mirror:
        rgb = np.ascontiguousarray(rgb[:, ::-1])
    colour = GOOD if good else WARN
    thick = max(2, round(width / 240))
    if target is not None:
        draw_target(rgb, target, mirror, thick)
    if box is not None:
        b = np.asarray(box, dtype=np.float32)[:4] * scale
        if mirror:
            b = mirror_box(b, width)
        x, y, w, h = (round(v) for v in b)
        cv2.rectangle(rgb, (x, y), (x + w, y + h), colour, thick)
    if landmarks is not None:
        for px, py in np.asarray(landmarks, dtype=np.float32) * scale:
            px = width - px if mirror else px
            cv2.circle(rgb, (round(px), round(py)), thick + 1, colour, -1)
    return rgb
