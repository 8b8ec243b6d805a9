"""Image reading: bad files raise ImageReadError naming the path; odd formats become BGR uint8."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facelivenet.edge_runtime.errors import FaceLiveError, ImageReadError
from facelivenet.edge_runtime.imageio import decode_image, read_image, to_bgr_uint8


def _photo(h: int = 64, w: int = 80) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 3 % 256, yy * 4 % 256, (xx + yy) % 256], axis=2).astype(np.uint8)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _encoded(ext: str, image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def _assert_refused(path: Path) -> None:
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, FaceLiveError)


def test_empty_file(tmp_path):
    _assert_refused(_write(tmp_path / "empty.jpg", b""))


@pytest.mark.parametrize("seed", range(3))
def test_random_bytes(tmp_path, seed):
    data = np.random.default_rng(seed).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    _assert_refused(_write(tmp_path / f"noise{seed}.jpg", data))


@pytest.mark.parametrize("ext", [".jpg", ".png"])
@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_truncated(tmp_path, ext, fraction):
    data = _encoded(ext, _photo(120, 160))
    _assert_refused(_write(tmp_path / f"cut{ext}", data[: int(len(data) * fraction)]))


def test_text_file_named_like_an_image(tmp_path):
    _assert_refused(_write(tmp_path / "notes.png", b"this is not a picture\n" * 20))


def test_missing_file_and_folder(tmp_path):
    _assert_refused(tmp_path / "does_not_exist.jpg")
    _assert_refused(tmp_path)


def test_decode_image_names_its_source():
    with pytest.raises(ImageReadError, match="camera frame 7"):
        decode_image(b"\x00\x01garbage", source="camera frame 7")


def test_colour_jpeg_and_png_round_trip(tmp_path):
    image = _photo()
    png = read_image(_write(tmp_path / "a.png", _encoded(".png", image)))
    np.testing.assert_array_equal(png, image)
    jpg = read_image(_write(tmp_path / "a.jpg", _encoded(".jpg", image)))
    assert jpg.shape == image.shape and jpg.dtype == np.uint8


def test_grey_becomes_three_equal_channels(tmp_path):
    grey = _photo()[..., 0]
    out = read_image(_write(tmp_path / "g.png", _encoded(".png", grey)))
    assert out.shape == (*grey.shape, 3) and out.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


def test_alpha_is_dropped(tmp_path):
    bgra = np.dstack([_photo(), np.full(_photo().shape[:2], 7, np.uint8)])
    out = read_image(_write(tmp_path / "a.png", _encoded(".png", bgra)))
    assert out.shape == (*bgra.shape[:2], 3)
    np.testing.assert_array_equal(out, bgra[..., :3])


@pytest.mark.parametrize("ext", [".png", ".tiff"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16_bit_becomes_8_bit(tmp_path, ext, channels):
    base = _photo().astype(np.uint16) * 257  # full 16-bit range
    image = base[..., 0] if channels == 1 else (base if channels == 3 else np.dstack([base, base[..., :1]]))
    out = read_image(_write(tmp_path / f"deep{ext}", _encoded(ext, image)))
    assert out.dtype == np.uint8 and out.shape == (*base.shape[:2], 3)
    expected = (base >> 8).astype(np.uint8)
    np.testing.assert_array_equal(out, np.repeat(expected[..., :1], 3, axis=2) if channels == 1 else expected)


def test_to_bgr_uint8_float_and_bad_inputs():
    f = np.full((4, 4, 3), 0.5, np.float32)
    assert to_bgr_uint8(f).max() == 127
    with pytest.raises(ImageReadError, match="pixel type"):
        to_bgr_uint8(np.zeros((4, 4, 3), np.int32), "x")
    with pytest.raises(ImageReadError, match="shape"):
        to_bgr_uint8(np.zeros((4, 4, 2), np.uint8), "x")


def test_real_jaffe_tiff(jaffe_samples):
    out = read_image(jaffe_samples[0])
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
