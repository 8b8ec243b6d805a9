"""Real aligned faces from the data folder (``--data`` / ``$FACELIVE_DATA``), and batch-1 timing inputs.

Calibration and parity faces come from ``<data>/lfw/images`` through
:func:`facelivenet.export.calibration.collect_faces`, with the export's seed
and counts by default (200 calibration + 100 held-out faces): with the
bundle's own preprocessing that gives back exactly the faces the bundle was
calibrated and gated on, so the parity faces are held out from calibration.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from facelivenet.edge_runtime.constants import DATA_ENV

from .errors import BenchError

log = logging.getLogger(__name__)

CALIB_FACES = 200
PARITY_FACES = 100
SYNTHETIC_SEED = 0


def resolve_data_root(explicit: str | Path | None) -> Path | None:
    """``--data`` (must exist), else ``$FACELIVE_DATA`` when it is a folder, else None."""
    if explicit:
        path = Path(explicit)
        if not path.is_dir():
            raise BenchError(f"--data {path} is not a folder (the face data root holding lfw/, fer2013/ ...)")
        return path
    env = os.environ.get(DATA_ENV)
    return Path(env) if env and Path(env).is_dir() else None


def lfw_images(data: Path) -> Path:
    """``<data>/lfw/images``; BenchError when absent."""
    path = data / "lfw" / "images"
    if not path.is_dir():
        raise BenchError(f"{path} does not exist: real faces for calibration and parity come from LFW under --data")
    return path


def real_faces(data: Path, cfg: Any, detector: str | Path | None, cache_dir: str | Path | None,
               calib_count: int = CALIB_FACES, parity_count: int = PARITY_FACES, seed: int = 0):
    """(calibration FaceSet, held-out parity FaceSet) aligned with ``cfg`` (a PreprocessConfig)."""
    from facelivenet.export.calibration import collect_faces

    return collect_faces(lfw_images(data), cfg, detector=detector, calib_count=calib_count, min_calib=calib_count,
                         parity_count=parity_count, min_parity=min(parity_count, 16), cache_dir=cache_dir,
                         seed=seed, progress=False)


def synthetic_input(size: int, layout: str = "NCHW") -> np.ndarray:
    """A seeded batch-1 float32 input in the normalised range (latency does not depend on the pixels)."""
    x = np.random.default_rng(SYNTHETIC_SEED).uniform(-1.0, 1.0, (1, 3, size, size)).astype(np.float32)
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1) if layout == "NHWC" else x)
