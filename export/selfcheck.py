"""The bundle's self-check reference: synthetic inputs and the torch model's outputs on them.

A device runtime checks an interpreter it does not trust (e.g. the legacy
``tflite_runtime``, ARCHITECTURE.md, "Toolchain notes") without any face data:
:func:`facelivenet.edge_runtime.backends.parity_self_check` runs the inputs
and compares with the references. The inputs are NOT faces (no face data is
ever shipped in a bundle): smooth random patterns, cubic-upsampled random
grids plus a gradient, generated from a recorded seed. Of ``CANDIDATES``
patterns the first ``COUNT`` whose torch top-2 expression logit gap is at
least ``MIN_MARGIN`` are kept, so that the agreement check is not decided by
a near tie (an int8 file's logits move by ~0.01-0.1).

``self_check.npz`` keys: ``pixels`` (uint8 N x S x S x 3, the model's colour
mode), ``inputs`` (float32, normalised, in the manifest's preprocessing
layout), ``embedding`` and ``expression_logits`` (the torch model's outputs).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from facelivenet.edge_runtime.backends import SELF_CHECK_MIN_AGREEMENT, SELF_CHECK_MIN_COSINE
from facelivenet.edge_runtime.manifest import sha256_file
from facelivenet.edge_runtime.preprocess import PreprocessConfig, normalize

log = logging.getLogger(__name__)

SELF_CHECK_NAME = "self_check.npz"
SEED = 20_240_611
COUNT = 8
CANDIDATES = 64
MIN_MARGIN = 0.5
# What a runtime applies (edge_runtime/backends.py, parity_self_check's defaults).
CHECK_MIN_COSINE = SELF_CHECK_MIN_COSINE
CHECK_MIN_AGREEMENT = SELF_CHECK_MIN_AGREEMENT


def synthetic_pixels(rng: np.random.Generator, size: int, colour: str) -> np.ndarray:
    """One smooth random pattern, uint8 (S, S, 3): a cubic-upsampled random grid plus a linear gradient."""
    import cv2

    channels = 1 if colour == "gray" else 3
    cells = int(rng.integers(3, 10))
    grid = rng.uniform(0.0, 1.0, size=(cells, cells, channels)).astype(np.float32)
    image = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC).reshape(size, size, channels)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    image = image + rng.uniform(0.0, 0.6) * (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
    lo, hi = np.sort(rng.uniform(10.0, 245.0, size=2))
    span = float(image.max() - image.min()) or 1.0
    image = lo + (image - image.min()) / span * max(hi - lo, 30.0)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return np.repeat(image, 3, axis=2) if channels == 1 else image


def build(net: Any, cfg: PreprocessConfig, seed: int = SEED, count: int = COUNT,
          candidates: int = CANDIDATES) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays for ``self_check.npz``, the manifest record without path and sha256)."""
    from .wrappers import torch_reference

    rng = np.random.default_rng(seed)
    pixels = np.stack([synthetic_pixels(rng, cfg.input_size, cfg.colour) for _ in range(candidates)])
    nchw = normalize(pixels, dataclasses.replace(cfg, layout="NCHW"))
    emb, logits = torch_reference(net, nchw)
    top2 = np.sort(logits, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    keep = np.flatnonzero(margin >= MIN_MARGIN)[:count]
    if len(keep) < count:  # too few clear winners: take the clearest ones, in generation order
        keep = np.sort(np.argsort(-margin)[:count])
    inputs = normalize(pixels[keep], cfg)
    arrays = {"pixels": pixels[keep], "inputs": np.ascontiguousarray(inputs, np.float32),
              "embedding": emb[keep].astype(np.float32), "expression_logits": logits[keep].astype(np.float32)}
    record = {
        "seed": seed,
        "count": int(len(keep)),
        "inputs": ("synthetic smooth random patterns (cubic-upsampled random grids plus a gradient, "
                   f"numpy default_rng(seed)), NOT faces; the first {count} of {candidates} whose torch top-2 "
                   f"expression logit gap >= {MIN_MARGIN}"),
        "candidates_used": [int(i) for i in keep],
        "min_logit_margin": float(margin[keep].min()),
        "layout": cfg.layout,
        "keys": {"pixels": "uint8 N x S x S x 3, the model's colour mode (normalize() them for any layout)",
                 "inputs": f"float32, (x - mean) / std, {cfg.layout}",
                 "embedding": "torch model, L2-normalised", "expression_logits": "torch model"},
        "reference": "the torch model of checkpoint_sha256",
        "check": (f"facelivenet.edge_runtime.backends.parity_self_check (cosine min >= {CHECK_MIN_COSINE}, "
                  f"top-1 agreement >= {CHECK_MIN_AGREEMENT})"),
    }
    return arrays, record


def write(folder: Path, arrays: dict[str, np.ndarray], record: dict[str, Any]) -> dict[str, Any]:
    """Write ``self_check.npz`` into ``folder``; the full manifest record (path, sha256, ...)."""
    path = Path(folder) / SELF_CHECK_NAME
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return {"path": SELF_CHECK_NAME, "sha256": sha256_file(path), **record}


def check_file(fmt: str, path: Path, arrays: dict[str, np.ndarray], cfg: PreprocessConfig, layout: str,
               threads: int = 1) -> dict[str, Any]:
    """Run the runtime's self-check on one exported file: {"passed", cosine/agreement numbers or "error"}."""
    from facelivenet.edge_runtime.backends import BackendError, parity_self_check

    from .runners import open_backend

    inputs = normalize(arrays["pixels"], dataclasses.replace(cfg, layout=layout))
    try:
        result = parity_self_check(open_backend(fmt, path, threads), inputs, arrays["embedding"],
                                   arrays["expression_logits"], CHECK_MIN_COSINE, CHECK_MIN_AGREEMENT)
    except BackendError as exc:
        return {"passed": False, "error": str(exc)}
    return {"passed": True, **{k: round(v, 6) for k, v in result.items()}}
