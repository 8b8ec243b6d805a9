"""Five-point similarity alignment and the centre-crop mode for pre-cropped faces."""

from __future__ import annotations

import numpy as np
import cv2

# Canonical landmark positions for a 112x112 crop (the widely used ArcFace
# template): eye, eye, nose tip, mouth corner, mouth corner, in image order.
TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def landmark_template(size: int, template: np.ndarray = TEMPLATE_112) -> np.ndarray:
    """The 5-point template scaled to a square crop of ``size`` pixels."""
    return template * (size / 112.0)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, shift) mapping src to dst.

    Closed-form Umeyama estimate; returns a 2x3 float64 matrix for ``cv2.warpAffine``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need matching (N>=2, 2) point sets, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1, 1] = -1.0
    rotation = u @ d @ vt
    var_src = (src_c**2).sum() / len(src)
    scale = (s * np.diag(d)).sum() / var_src if var_src > 0 else 1.0
    shift = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, shift[:, None]])


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int, template: np.ndarray = TEMPLATE_112) -> np.ndarray:
    """Warp ``image`` so its five ``landmarks`` land on the template, as a ``size`` x ``size`` crop."""
    matrix = similarity_transform(landmarks, landmark_template(size, template))
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def center_crop_face(image: np.ndarray, size: int, crop_fraction: float = 1.0) -> np.ndarray:
    """For images that already are a face crop (FER2013, CK+48): keep the central
    ``crop_fraction`` of the shorter side and resize it to ``size`` x ``size``."""
    if not 0.1 <= crop_fraction <= 1.0:
        raise ValueError(f"crop_fraction must be in [0.1, 1], got {crop_fraction}")
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"cannot crop an empty image of shape {image.shape}")
    side = max(1, round(min(h, w) * crop_fraction))
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[top : top + side, left : left + side]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)
