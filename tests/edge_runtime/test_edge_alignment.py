"""Similarity alignment onto the five-point template, and the centre-crop mode."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facelivenet.edge_runtime.alignment import (
    TEMPLATE_112,
    align_face,
    center_crop_face,
    landmark_template,
    similarity_transform,
)


def _similarity(angle: float, scale: float, shift) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[scale * c, -scale * s, shift[0]], [scale * s, scale * c, shift[1]]])


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


@pytest.mark.parametrize("seed", range(20))
def test_similarity_transform_recovers_a_known_transform(seed):
    rng = np.random.default_rng(seed)
    src = rng.uniform(-200, 400, size=(int(rng.integers(2, 12)), 2))
    truth = _similarity(rng.uniform(-math.pi, math.pi), rng.uniform(0.05, 8.0), rng.uniform(-500, 500, 2))
    m = similarity_transform(src, _apply(truth, src))
    assert m.shape == (2, 3) and m.dtype == np.float64
    np.testing.assert_allclose(m, truth, rtol=1e-9, atol=1e-7)


def test_similarity_transform_never_returns_a_reflection():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, size=(5, 2))
    mirrored = src * np.array([-1.0, 1.0])
    m = similarity_transform(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


def test_similarity_transform_is_least_squares_under_noise():
    rng = np.random.default_rng(2)
    src = TEMPLATE_112 * 2 + 30
    truth = _similarity(0.3, 0.5, (10, -4))
    dst = _apply(truth, src) + rng.normal(0, 0.5, src.shape)
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], truth[:, :2], atol=0.03)
    # the estimate fits the noisy points at least as well as the truth does
    fit = ((_apply(m, src) - dst) ** 2).sum()
    assert fit <= ((_apply(truth, src) - dst) ** 2).sum() + 1e-9
    assert np.abs(_apply(m, src) - _apply(truth, src)).max() < 1.0


@pytest.mark.parametrize(
    "src, dst",
    [(np.zeros((5, 2)), np.zeros((4, 2))), (np.zeros((5, 3)), np.zeros((5, 3))), (np.zeros((1, 2)), np.zeros((1, 2)))],
)
def test_similarity_transform_rejects_bad_shapes(src, dst):
    with pytest.raises(ValueError, match="point sets"):
        similarity_transform(src, dst)


def _dot_image(shape, centre, sigma=2.0) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    blob = np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * sigma**2))
    return np.repeat((blob * 255).round().astype(np.uint8)[:, :, None], 3, axis=2)


def _centroid(image: np.ndarray) -> np.ndarray:
    w = image[:, :, 0].astype(np.float64)
    yy, xx = np.mgrid[0 : w.shape[0], 0 : w.shape[1]]
    return np.array([(w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()])


@pytest.mark.parametrize("size", [112, 160])
def test_align_face_maps_landmarks_onto_the_template(size):
    # Landmarks of a face rotated by 25 degrees, 2.2x larger than the template, shifted.
    truth = _similarity(math.radians(25), 2.2, (60, 20))
    landmarks = _apply(truth, TEMPLATE_112).astype(np.float32)
    target = landmark_template(size)
    for point, expected in zip(landmarks, target):
        crop = align_face(_dot_image((400, 400), point, sigma=3.0), landmarks, size)
        assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
        assert np.linalg.norm(_centroid(crop) - expected) < 1.0


def test_landmark_template_scales_with_size():
    np.testing.assert_allclose(landmark_template(224), TEMPLATE_112 * 2)
    # eyes in image order: left one first, both above the nose, nose above the mouth
    t = TEMPLATE_112
    assert t[0, 0] < t[1, 0] and t[3, 0] < t[4, 0]
    assert t[:2, 1].max() < t[2, 1] < t[3:, 1].min()


@pytest.mark.parametrize(
    "shape, size, expected",
    [((48, 48), 112, (112, 112)), ((48, 64, 3), 112, (112, 112, 3)), ((300, 200, 3), 64, (64, 64, 3)),
     ((1, 1, 3), 16, (16, 16, 3))],
)
def test_center_crop_face_shapes(shape, size, expected):
    image = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    out = center_crop_face(image, size, crop_fraction=0.85)
    assert out.shape == expected and out.dtype == np.uint8


def test_center_crop_face_keeps_the_centre():
    image = np.full((100, 140, 3), 255, np.uint8)
    image[25:75, 45:95] = 0  # a black 50x50 square in the middle
    out = center_crop_face(image, 32, crop_fraction=0.5)
    assert out.max() == 0


@pytest.mark.parametrize("fraction", [0.0, 0.05, 1.01, 2.0])
def test_center_crop_face_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match="crop_fraction"):
        center_crop_face(np.zeros((48, 48, 3), np.uint8), 112, crop_fraction=fraction)


def test_center_crop_face_rejects_empty_image():
    with pytest.raises(ValueError, match="empty"):
        center_crop_face(np.zeros((0, 48, 3), np.uint8), 112)
