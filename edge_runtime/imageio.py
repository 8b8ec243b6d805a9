"""Image decoding with clear errors (never a crash on a bad file)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .errors import ImageReadError

MAX_IMAGE_PIXELS = 64_000_000  # refuse decompression bombs before decoding


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
    header = cv2.imdecode(buf, cv2.IMREAD_REDUCED_GRAYSCALE_8) if buf.size > 1_000_000 else None
    if header is not None and header.size * 64 > MAX_IMAGE_PIXELS:
        raise ImageReadError(f"cannot decode image {source}: larger than {MAX_IMAGE_PIXELS} pixels")
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageReadError(f"cannot decode image {source}: not a supported image or truncated")
    return to_bgr_uint8(image, source)


def to_bgr_uint8(image: np.ndarray, source: str = "<array>") -> np.ndarray:
    """Normalise an array's dtype and channels to BGR uint8 (H, W, 3)."""
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
