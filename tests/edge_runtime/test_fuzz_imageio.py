"""Fuzzed image decoding: random, truncated or corrupted bytes, huge declared sizes, odd arrays.

Whatever comes in, :func:`decode_image` / :func:`to_bgr_uint8` give a BGR uint8
(H, W, 3) array or raise ImageReadError, quickly; never another exception.
"""

from __future__ import annotations

import os
import struct
import time
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from facelivenet.edge_runtime.errors import ImageReadError
from facelivenet.edge_runtime.imageio import MAX_IMAGE_PIXELS, decode_image, to_bgr_uint8

FUZZ = settings(max_examples=int(os.environ.get("FACELIVE_FUZZ_EXAMPLES", "100")), deadline=None)
SLOW_DECODE_S = 5.0
# OpenCV's default CV_IO_MAX_IMAGE_PIXELS / _WIDTH / _HEIGHT: headers beyond them are the known bug of
# test_header_over_opencv_limits (cv2.error escapes); the property tests stay inside until it is fixed
OPENCV_PIXEL_LIMIT, OPENCV_SIDE_LIMIT = 2**30, 2**20
MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"BM", b"II*\x00", b"MM\x00*", b"RIFF\x00\x00\x00\x00WEBPVP8 ",
         b"P5\n", b"P6\n", b"GIF89a", b"\x00\x00\x00\x0cjP  "]
EXTENSIONS = [".png", ".jpg", ".bmp", ".tiff", ".webp", ".pgm"]


def _decode_ok_or_error(data: bytes) -> None:
    start = time.perf_counter()
    try:
        image = decode_image(data)
    except ImageReadError as exc:
        assert str(exc).startswith("cannot decode image"), exc
    else:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.size > 0
        assert image.shape[0] * image.shape[1] <= MAX_IMAGE_PIXELS
    assert time.perf_counter() - start < SLOW_DECODE_S


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(width: int, height: int, colour: int = 0, rows: int = 1) -> bytes:
    """A well-formed PNG header declaring width x height, followed by only ``rows`` rows of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    raw = b"".join(b"\x00" + bytes(min(width, 4096)) for _ in range(rows))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def bmp_declaring(width: int, height: int, bpp: int = 24, payload: int = 64) -> bytes:
    """A BMP header declaring width x height with only ``payload`` bytes of pixels."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bpp, 0, 0, 2835, 2835, 0, 0)
    palette = bytes(4 * 256) if bpp == 8 else b""
    offset = 14 + len(info) + len(palette)
    head = struct.pack("<2sIHHI", b"BM", offset + payload, 0, 0, offset)
    return head + info + palette + bytes(payload)


@FUZZ
@given(prefix=st.sampled_from(MAGIC), tail=st.binary(max_size=2048))
def test_random_bytes(prefix, tail):
    _decode_ok_or_error(prefix + tail)


small_images = hnp.arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40)).flatmap(
    lambda hw: st.sampled_from([hw, (*hw, 3)])))


@FUZZ
@given(image=small_images, ext=st.sampled_from(EXTENSIONS), cut=st.floats(0.0, 1.0),
       flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=6))
def test_truncated_or_corrupted_encodings(image, ext, cut, flips):
    if ext == ".pgm" and image.ndim == 3:
        image = image[:, :, 0]
    ok, encoded = cv2.imencode(ext, image)
    assert ok
    data = bytearray(encoded.tobytes())
    for where, value in flips:
        data[min(int(where * len(data)), len(data) - 1)] = value
    _decode_ok_or_error(bytes(data[: max(1, int(cut * len(data)))]))


@FUZZ
@given(width=st.integers(1, 2**31 - 1), height=st.integers(1, 2**31 - 1), colour=st.sampled_from([0, 2, 4, 6]),
       rows=st.integers(0, 3))
def test_png_declaring_huge_dimensions(width, height, colour, rows):
    _decode_ok_or_error(png_declaring(width, height, colour, rows))


@pytest.mark.parametrize("data", [png_declaring(29318, 36624), bmp_declaring(1, 2**20 + 1, bpp=1, payload=8)],
                         ids=["png-1.07G-pixels", "bmp-height-2**20+1"])
def test_header_over_opencv_limits(data):
    _decode_ok_or_error(data)


@FUZZ
@given(width=st.integers(-(2**31), 2**31 - 1), height=st.integers(-(2**31), 2**31 - 1),
       bpp=st.sampled_from([1, 4, 8, 16, 24, 32]), payload=st.integers(0, 512))
def test_bmp_declaring_huge_dimensions(width, height, bpp, payload):
    _decode_ok_or_error(bmp_declaring(width, height, bpp, payload))


ODD_DTYPES = [np.uint8, np.uint16, np.int8, np.int16, np.int32, np.int64, np.uint32, np.float16, np.float32,
              np.float64, np.bool_, np.complex64]


@FUZZ
@given(array=hnp.arrays(st.sampled_from(ODD_DTYPES), hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=6)))
def test_to_bgr_uint8_odd_dtypes_and_channels(array):
    try:
        out = to_bgr_uint8(array)
    except ImageReadError as exc:
        assert "unsupported" in str(exc), exc
    else:
        assert out.dtype == np.uint8 and out.shape == (*array.shape[:2], 3)


@pytest.mark.parametrize("shape, dtype", [((0, 5), np.uint8), ((3, 0), np.uint16), ((0, 0, 3), np.float32)])
def test_to_bgr_uint8_empty_arrays(shape, dtype):
    with pytest.raises(ImageReadError):
        to_bgr_uint8(np.zeros(shape, dtype))


def test_small_compressed_bomb_is_refused():
    side = int(MAX_IMAGE_PIXELS ** 0.5) + 64  # just over the limit: ~68 M pixels in a ~70 KB PNG
    ok, encoded = cv2.imencode(".png", np.zeros((side, side), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert ok and encoded.size < 1_000_000
    with pytest.raises(ImageReadError):
        decode_image(encoded.tobytes())
