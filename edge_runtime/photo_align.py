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

from .cpu_features import cpuinfo_field
from .detection import YuNetDetector, pick_face
from .preprocess import PreprocessConfig, face_crop

STATUS_OK, STATUS_NO_FACE, STATUS_FALLBACK = "ok", "no_face", "center_fallback"


CUBIC_A = -0.75  # OpenCV's bicubic kernel parameter: the enlargement matches cv2.INTER_CUBIC to one grey level


def upscale_for_detection(image: np.ndarray, min_side: int) -> np.ndarray:
    """``image`` enlarged (bicubic) so its shorter side is at least ``min_side``; as is when already that big."""
    h, w = image.shape[:2]
    scale = min_side / min(h, w) if min_side else 1.0
    if scale <= 1.0:
        return image
    return resize_bicubic(image, round(w * scale), round(h * scale))


def _cubic_taps(n_out: int, n_in: int) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Source indices (n_out, 4, border replicated) and the four weights of each output position along one axis,
    with OpenCV's pixel-centre mapping ``x_src = (x_dst + 0.5) * n_in / n_out - 0.5``."""
    x = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    x0 = np.floor(x)
    t = x - x0
    u = 1.0 - t
    a = CUBIC_A
    w0 = ((a * (t + 1.0) - 5.0 * a) * (t + 1.0) + 8.0 * a) * (t + 1.0) - 4.0 * a
    w1 = ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
    w2 = ((a + 2.0) * u - (a + 3.0)) * u * u + 1.0
    w3 = 1.0 - w0 - w1 - w2
    taps = np.clip(x0.astype(np.int64)[:, None] + np.arange(-1, 3)[None, :], 0, n_in - 1)
    return taps, (w0, w1, w2, w3)


def resize_bicubic(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """A uint8 image resized bicubically, bit-identical on every CPU.

    OpenCV's ``INTER_CUBIC`` takes a different SIMD path on ARM and on x86 and
    their results differ (up to tens of grey levels after YuNet and the warp:
    the enlarged 48-px faces of FER2013 and CK+ then align a fraction of a pixel
    apart). This one uses only element-wise float64 operations in a fixed order,
    each correctly rounded by IEEE 754 whatever the vector width, so two machines
    enlarge alike; it matches ``cv2.INTER_CUBIC`` to one grey level (on about one
    pixel in 100,000) and costs about 3 ms for a 48-px face enlarged to 224 px.
    """
    src = np.asarray(image, dtype=np.float64)
    rows_idx, rows_w = _cubic_taps(height, src.shape[0])
    cols_idx, cols_w = _cubic_taps(width, src.shape[1])
    per_row = (-1,) + (1,) * (src.ndim - 1)
    per_col = (1, -1) + (1,) * (src.ndim - 2)
    rows = src[rows_idx[:, 0]] * rows_w[0].reshape(per_row)
    for k in range(1, 4):  # one addition at a time: a fixed order (no reduction whose order a library may pick)
        rows = rows + src[rows_idx[:, k]] * rows_w[k].reshape(per_row)
    out = rows[:, cols_idx[:, 0]] * cols_w[0].reshape(per_col)
    for k in range(1, 4):
        out = out + rows[:, cols_idx[:, k]] * cols_w[k].reshape(per_col)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


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
    have = set((cpuinfo_field("flags", "features") or "").split())
    return [f for f in SIMD_FLAGS if f in have]


def alignment_platform() -> dict[str, object]:
    """What decides an aligned crop's last bits on this machine: OpenCV's version, the kernels it was built to
    dispatch to and the CPU's SIMD features (a crop can differ by a grey level between CPUs)."""
    line = cv2.getCPUFeaturesLine() if hasattr(cv2, "getCPUFeaturesLine") else ""
    return {"opencv": cv2.__version__, "numpy": np.__version__, "machine": platform.machine(),
            "opencv_dispatch": " ".join(line.split()), "cpu_simd": cpu_simd_flags()}
