"""normalize / face_crop / PreprocessConfig: the bytes the model sees everywhere."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from facelivenet.edge_runtime.alignment import TEMPLATE_112
from facelivenet.edge_runtime.preprocess import PreprocessConfig, face_crop, normalize, to_model_colour


def _crops(n: int, size: int = 112, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "layout, shape", [("NCHW", (1, 3, 112, 112)), ("NHWC", (1, 112, 112, 3))]
)
def test_normalize_single_crop_shape(layout, shape):
    out = normalize(_crops(1)[0], PreprocessConfig(layout=layout))
    assert out.shape == shape and out.dtype == np.float32 and out.flags.c_contiguous


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_normalize_batch_and_list_agree(layout):
    crops = _crops(4)
    cfg = PreprocessConfig(layout=layout)
    a = normalize(crops, cfg)
    b = normalize(list(crops), cfg)
    assert a.shape[0] == 4
    np.testing.assert_array_equal(a, b)


def test_normalize_values_and_channel_placement():
    crops = _crops(2, size=32, seed=3)
    nchw = normalize(crops, PreprocessConfig(layout="NCHW"))
    nhwc = normalize(crops, PreprocessConfig(layout="NHWC"))
    expected = (crops.astype(np.float64) - 127.5) / 128.0
    np.testing.assert_allclose(nhwc, expected, atol=1e-6)
    np.testing.assert_allclose(nchw, expected.transpose(0, 3, 1, 2), atol=1e-6)
    # one pixel, spelled out
    assert nchw[1, 2, 5, 7] == pytest.approx((int(crops[1, 5, 7, 2]) - 127.5) / 128.0, abs=1e-6)


def test_normalize_extremes():
    crops = np.stack([np.zeros((16, 16, 3), np.uint8), np.full((16, 16, 3), 255, np.uint8)])
    out = normalize(crops, PreprocessConfig(input_size=16))
    assert out[0].min() == out[0].max() == pytest.approx(-127.5 / 128, abs=1e-7)
    assert out[1].min() == out[1].max() == pytest.approx(127.5 / 128, abs=1e-7)


def test_normalize_per_channel_mean_std():
    cfg = PreprocessConfig(mean=(10.0, 20.0, 30.0), std=(1.0, 2.0, 4.0), layout="NHWC")
    out = normalize(np.full((8, 8, 3), 50, np.uint8), cfg)
    np.testing.assert_allclose(out[0, 0, 0], [40.0, 15.0, 5.0])


@pytest.mark.parametrize("shape", [(112, 112), (2, 112, 112, 1), (112, 112, 4), (1, 1, 112, 112, 3)])
def test_normalize_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="expected crops"):
        normalize(np.zeros(shape, np.uint8), PreprocessConfig())


def _colour_image() -> np.ndarray:
    image = np.zeros((200, 200, 3), np.uint8)
    image[..., 0] = 200  # blue
    image[50:150, :, 2] = 90  # a red band
    image[:, 50:150, 1] = 30
    return image


def test_grey_mode_replicates_luminance():
    image = _colour_image()
    crop = face_crop(image, PreprocessConfig(colour="gray", input_size=64))
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop[..., 0], crop[..., 1])
    np.testing.assert_array_equal(crop[..., 0], crop[..., 2])
    grey = to_model_colour(image, "gray")
    np.testing.assert_array_equal(grey[..., 1], cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))


def test_rgb_mode_reverses_bgr():
    image = _colour_image()
    np.testing.assert_array_equal(to_model_colour(image, "rgb"), image[..., ::-1])


def test_face_crop_with_landmarks_aligns():
    image = _colour_image()
    landmarks = TEMPLATE_112 * 1.5 + 10
    crop = face_crop(image, PreprocessConfig(input_size=112, colour="rgb"), landmarks)
    assert crop.shape == (112, 112, 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(input_size=8), "input_size"),
        (dict(input_size=4096), "input_size"),
        (dict(colour="bgr"), "colour"),
        (dict(layout="CHW"), "layout"),
        (dict(mean=(1.0, 2.0)), "mean and std"),
        (dict(std=(128.0, 0.0, 128.0)), "std"),
        (dict(template=((1.0, 2.0),) * 4), "template"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PreprocessConfig(**kwargs)


@pytest.mark.parametrize(
    "cfg",
    [PreprocessConfig(), PreprocessConfig(input_size=96, colour="rgb", layout="NHWC", mean=(1.0, 2.0, 3.0),
                                          std=(4.0, 5.0, 6.0), crop_fraction=0.7)],
)
def test_config_dict_round_trip(cfg):
    d = cfg.to_dict()
    assert PreprocessConfig.from_dict(d) == cfg
    # and through JSON, as in manifests and checkpoints
    assert PreprocessConfig.from_dict(json.loads(json.dumps(d))) == cfg
    np.testing.assert_allclose(cfg.template_array, np.asarray(d["template"]))


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(TypeError):
        PreprocessConfig.from_dict({"input_size": 112, "colour_space": "rgb"})
