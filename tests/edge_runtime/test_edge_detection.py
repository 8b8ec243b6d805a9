"""Finding the YuNet file (never downloaded) and detecting real faces with it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facelivenet.edge_runtime.detection import DETECTOR_ENV, Face, YuNetDetector, resolve_detector_path
from facelivenet.edge_runtime.errors import DetectorNotFoundError, FaceLiveError
from facelivenet.edge_runtime.imageio import read_image


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"onnx")
    return path


@pytest.fixture
def places(tmp_path):
    """One candidate detector file in each place the search looks."""
    explicit = _touch(tmp_path / "explicit" / "my_yunet.onnx")
    env = _touch(tmp_path / "env" / "yunet_from_env.onnx")
    bundle = tmp_path / "bundle"
    in_bundle = _touch(bundle / "detector" / "yunet_s_640_640.onnx")
    return explicit, env, bundle, in_bundle


def test_search_order(places, monkeypatch, no_detector_env):
    explicit, env, bundle, in_bundle = places
    monkeypatch.setenv(DETECTOR_ENV, str(env))
    assert resolve_detector_path(explicit, bundle_dir=bundle) == explicit
    assert resolve_detector_path(None, bundle_dir=bundle) == env
    monkeypatch.delenv(DETECTOR_ENV)
    assert resolve_detector_path(None, bundle_dir=bundle) == in_bundle


def test_bundle_root_and_folders(tmp_path, no_detector_env):
    bundle = tmp_path / "bundle"
    other = _touch(bundle / "yunet_n_640_640.onnx")
    assert resolve_detector_path(bundle_dir=bundle) == other  # any yunet*.onnx in the bundle root
    preferred = _touch(bundle / "yunet_s_640_640.onnx")
    assert resolve_detector_path(bundle) == preferred  # a folder prefers the default name
    assert resolve_detector_path(str(preferred)) == preferred  # str paths work too


def test_explicit_path_that_is_missing_is_an_error_even_with_env(places, monkeypatch, no_detector_env):
    _, env, bundle, _ = places
    monkeypatch.setenv(DETECTOR_ENV, str(env))
    missing = env.parent / "typo.onnx"
    with pytest.raises(DetectorNotFoundError) as info:
        resolve_detector_path(missing, bundle_dir=bundle)
    message = str(info.value)
    assert f"--detector: {missing} (does not exist)" in message
    assert "Pass --detector" in message and DETECTOR_ENV in message


def test_missing_everywhere_says_where_it_looked_and_how_to_fix(tmp_path, monkeypatch, no_detector_env):
    monkeypatch.setenv(DETECTOR_ENV, str(tmp_path / "nope.onnx"))
    empty_bundle = tmp_path / "bundle"
    empty_bundle.mkdir()
    with pytest.raises(DetectorNotFoundError) as info:
        resolve_detector_path(None, bundle_dir=empty_bundle)
    message = str(info.value)
    assert f"${DETECTOR_ENV}: {tmp_path / 'nope.onnx'} (does not exist)" in message
    assert f"bundle: {empty_bundle} (a folder with no yunet*.onnx)" in message
    assert "--detector PATH/TO/yunet_s_640_640.onnx" in message and f"set {DETECTOR_ENV}" in message
    assert isinstance(info.value, FaceLiveError)


def test_nothing_given(no_detector_env):
    with pytest.raises(DetectorNotFoundError, match=r"no --detector given, \$FACELIVE_DETECTOR unset"):
        resolve_detector_path()


def test_detector_constructor_reports_missing_file(tmp_path, no_detector_env):
    with pytest.raises(DetectorNotFoundError, match="does not exist"):
        YuNetDetector(tmp_path / "missing.onnx")


# --------------------------------------------------------------------------- real detector


def _check_face(face: Face, image: np.ndarray) -> None:
    assert isinstance(face, Face)
    assert face.box.shape == (4,) and face.landmarks.shape == (5, 2)
    assert 0.6 <= face.score <= 1.0
    x, y, w, h = face.box
    assert w > 40 and h > 40 and face.size == pytest.approx(min(w, h))
    assert 0 <= x and 0 <= y and x + w <= image.shape[1] + 2 and y + h <= image.shape[0] + 2
    lm = face.landmarks
    assert (lm[:, 0] >= x).all() and (lm[:, 0] <= x + w).all()
    assert (lm[:, 1] >= y).all() and (lm[:, 1] <= y + h).all()
    left_eye, right_eye, nose, mouth_l, mouth_r = lm
    assert left_eye[0] < right_eye[0] and mouth_l[0] < mouth_r[0]  # image order, left to right
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_l[1], mouth_r[1])
    assert left_eye[0] < nose[0] < right_eye[0]


def test_one_face_in_real_lfw_and_jaffe_images(detector, lfw_samples, jaffe_samples):
    for path in [*lfw_samples, *jaffe_samples]:
        image = read_image(path)
        faces = detector.detect(image)
        assert len(faces) == 1, f"{path}: {len(faces)} faces"
        _check_face(faces[0], image)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_large_images_are_downscaled_and_mapped_back(detector, lfw_samples):
    image = read_image(lfw_samples[0])
    big = cv2.resize(image, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)  # 1000x1000 > max_side
    small_face, = detector.detect(image)
    big_face, = detector.detect(big)
    # the detector ran on a 640x640 copy; coordinates come back in the big image's pixels
    manual, = detector.detect(cv2.resize(big, (640, 640), interpolation=cv2.INTER_AREA))
    np.testing.assert_allclose(big_face.box, manual.box * 1000 / 640, rtol=1e-5)
    np.testing.assert_allclose(big_face.landmarks, manual.landmarks * 1000 / 640, rtol=1e-5)
    # and they describe the same face as the original (detector jitter across scales is a few %)
    assert _iou(big_face.box / 4, small_face.box) > 0.85
    np.testing.assert_allclose(big_face.landmarks / 4, small_face.landmarks, atol=0.08 * small_face.size)


def test_two_faces_best_first(detector, lfw_samples):
    a, b = read_image(lfw_samples[0]), read_image(lfw_samples[1])
    pair = np.hstack([a, b])
    faces = detector.detect(pair)
    assert len(faces) == 2
    assert faces[0].score >= faces[1].score
    assert sorted(f.box[0] < a.shape[1] for f in faces) == [False, True]  # one in each half


def test_no_face_in_a_blank_image(detector):
    assert detector.detect(np.full((240, 320, 3), 128, np.uint8)) == []
