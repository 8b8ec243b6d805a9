"""Image decoding with clear errors (never a crash on a bad file)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

MAX_IMAGE_PIXELS = 64_000_000  # refuse decompression bombs before decoding
# OpenCV's own decoder limit, read once at its first decode: keep it at ours for the formats we do not parse.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from .errors import ImageReadError, ImageTooLargeError  # noqa: E402


def declared_size(buf: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, BMP or JPEG header without decoding; None for other formats."""
    if buf[:8] == b"\x89PNG\r\n\x1a\n" and len(buf) >= 24:
        return struct.unpack(">II", buf[16:24])
    if buf[:2] == b"BM" and len(buf) >= 26:
        w, h = struct.unpack("<ii", buf[18:26])
        return abs(w), abs(h)
    if buf[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(buf) and buf[i] == 0xFF:
            marker, length = buf[i + 1], struct.unpack(">H", buf[i + 2:i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", buf[i + 5:i + 9])
                return w, h
            i += 2 + length
    return None


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as a BGR uint8 array of shape (H, W, 3).

    Grey images are expanded to three channels and alpha is dropped. Raises
    :class:`ImageReadError` naming the path for a missing or undecodable file.
    """
    path = Path(path)
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc
    return decode_image(data, source=str(path))


def decode_image(data: bytes | np.ndarray, source: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes to BGR uint8 (H, W, 3); raise ImageReadError if impossible."""
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray)) else data
    if buf.size == 0:
        raise ImageReadError(f"cannot decode image {source}: the file is empty")
    size = declared_size(buf[:65536].tobytes())
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(f"cannot decode image {source}: {size[0]}x{size[1]} is larger than {MAX_IMAGE_PIXELS} pixels")
    try:
        header = cv2.imdecode(buf, cv2.IMREAD_REDUCED_GRAYSCALE_8) if buf.size > 1_000_000 else None
        if header is not None and header.size * 64 > MAX_IMAGE_PIXELS:
            raise ImageTooLargeError(f"cannot decode image {source}: larger than {MAX_IMAGE_PIXELS} pixels")
        image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # OpenCV refuses oversized or malformed headers by raising
        raise ImageReadError(f"cannot decode image {source}: {one_line_cv2(exc)}") from exc
    if image is None:
        raise ImageReadError(f"cannot decode image {source}: not a supported image or truncated")
    return to_bgr_uint8(image, source)


def one_line_cv2(exc: Exception) -> str:
    """OpenCV's multi-line error reduced to its last meaningful line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def to_bgr_uint8(image: np.ndarray, source: str = "<array>") -> np.ndarray:
    """Normalise an array's dtype and channels to BGR uint8 (H, W, 3)."""
    if image.size == 0 or image.ndim < 2:
        raise ImageReadError(f"unsupported (empty) image shape {image.shape} in {source}")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = np.clip(image * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageReadError(f"unsupported pixel type {image.dtype} in {source}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return np.ascontiguousarray(image)
    raise ImageReadError(f"unsupported image shape {image.shape} in {source}")
