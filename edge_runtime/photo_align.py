"""One stored photo -> one aligned model crop: how training, export and the device benchmark align an image file.

The live runtime aligns camera frames in :mod:`face_pipeline`; data sets and
reference faces are single photos, aligned here with the same detector, the
same face choice (:func:`~.detection.pick_face`) and the same crop
(:func:`~.preprocess.face_crop`). Already-cropped small faces (FER2013's 48 px)
are enlarged first so YuNet finds them, and may fall back to a centre crop.
"""

from __future__ import annotations

import hashlib
import platform

import cv2
import numpy as np

from .detection import YuNetDetector, pick_face
from .preprocess import PreprocessConfig, face_crop

STATUS_OK, STATUS_NO_FACE, STATUS_FALLBACK = "ok", "no_face", "center_fallback"


def upscale_for_detection(image: np.ndarray, min_side: int) -> np.ndarray:
    """``image`` enlarged (bicubic) so its shorter side is at least ``min_side``; as is when already that big."""
    h, w = image.shape[:2]
    scale = min_side / min(h, w) if min_side else 1.0
    if scale <= 1.0:
        return image
    return cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)


def align_photo(image: np.ndarray, cfg: PreprocessConfig, detector: YuNetDetector, upscale_to: int = 0,
                fallback_fraction: float | None = None) -> tuple[np.ndarray | None, str]:
    """(uint8 crop or None, status): YuNet on the (optionally enlarged) image, 5-point alignment to the template;
    without a face, the central ``fallback_fraction`` of the original image when one is given."""
    work = upscale_for_detection(image, upscale_to)
    face = pick_face(detector.detect(work), work.shape)
    if face is not None:
        return face_crop(work, cfg, face.landmarks), STATUS_OK
    if fallback_fraction:
        return face_crop(image, cfg, crop_fraction=fallback_fraction), STATUS_FALLBACK
    return None, STATUS_NO_FACE


def crop_sha256(crop: np.ndarray) -> str:
    """sha256 of an aligned uint8 crop's bytes (C order): tells whether two machines aligned a photo alike."""
    return hashlib.sha256(np.ascontiguousarray(crop, np.uint8).tobytes()).hexdigest()


SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
              "asimd", "asimdhp", "asimddp", "i8mm", "sve", "bf16")


def cpu_simd_flags() -> list[str]:
    """The SIMD features this CPU reports (Linux ``/proc/cpuinfo`` ``flags`` / ``Features``; [] elsewhere)."""
    try:
        text = open("/proc/cpuinfo", encoding="ascii", errors="replace").read()
    except OSError:
        return []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            have = set(value.split())
            return [f for f in SIMD_FLAGS if f in have]
    return []


def alignment_platform() -> dict[str, object]:
    """What decides an aligned crop's last bits on this machine: OpenCV's version, the kernels it was built to
    dispatch to and the CPU's SIMD features (a crop can differ by a grey level between CPUs)."""
    line = cv2.getCPUFeaturesLine() if hasattr(cv2, "getCPUFeaturesLine") else ""
    return {"opencv": cv2.__version__, "numpy": np.__version__, "machine": platform.machine(),
            "opencv_dispatch": " ".join(line.split()), "cpu_simd": cpu_simd_flags()}
