"""The enlargement of small faces before detection: OpenCV's bicubic, in arithmetic every CPU does alike."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facelivenet.edge_runtime.imageio import read_image
from facelivenet.edge_runtime.photo_align import CUBIC_A, resize_bicubic, upscale_for_detection


def _kernel(x: float) -> float:
    x = abs(x)
    if x <= 1:
        return ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1
    if x < 2:
        return ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A
    return 0.0


def _by_the_formula(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Every output pixel from the textbook definition: 4 x 4 taps, borders replicated."""
    h, w = img.shape
    out = np.zeros((height, width))
    for y in range(height):
        sy = (y + 0.5) * h / height - 0.5
        for x in range(width):
            sx = (x + 0.5) * w / width - 0.5
            total = 0.0
            for j in range(int(np.floor(sy)) - 1, int(np.floor(sy)) + 3):
                for i in range(int(np.floor(sx)) - 1, int(np.floor(sx)) + 3):
                    total += img[min(max(j, 0), h - 1), min(max(i, 0), w - 1)] * _kernel(sy - j) * _kernel(sx - i)
            out[y, x] = total
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def test_resize_bicubic_is_the_bicubic_formula():
    img = np.random.default_rng(0).integers(0, 256, (7, 9), dtype=np.uint8)
    got = resize_bicubic(img, 20, 15)
    want = _by_the_formula(img, 20, 15)
    # float rounding may differ in the last bit between the two evaluation orders, hence at most one level
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1 and (got == want).mean() > 0.99


@pytest.mark.parametrize("shape", [(48, 48), (48, 48, 3), (37, 52, 3)])
def test_resize_bicubic_matches_opencv_within_one_level(shape):
    img = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    img = cv2.GaussianBlur(img, (5, 5), 1.5)  # a photo-like image: smooth, not white noise
    w, h = round(shape[1] * 224 / min(shape[:2])), round(shape[0] * 224 / min(shape[:2]))
    ours, theirs = resize_bicubic(img, w, h), cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
    assert ours.shape == theirs.shape and ours.dtype == np.uint8
    diff = np.abs(ours.astype(int) - theirs.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_upscale_enlarges_a_real_fer2013_face_like_opencv(data_root):
    path = sorted((data_root / "fer2013" / "test" / "happy").glob("*.jpg"))[0]
    face = read_image(path)
    big = upscale_for_detection(face, 224)
    assert min(big.shape[:2]) == 224
    theirs = cv2.resize(face, big.shape[1::-1], interpolation=cv2.INTER_CUBIC)
    assert np.abs(big.astype(int) - theirs.astype(int)).max() <= 1
    assert upscale_for_detection(big, 224) is big  # already big enough: untouched
