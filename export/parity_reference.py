"""``parity_reference.npz``: the torch model's outputs on the export's held-out real faces, by image (no pixels).

A device has the data set (copied over by its owner) but no torch. The export
records, for each held-out parity face, which image it came from (its folder
label such as ``lfw/images``, its path inside that folder, the image's sha256),
how it was aligned, the sha256 of the aligned crop, and the torch model's
embedding and expression logits. ``facelive-bench device --data DIR`` re-aligns
the same images with the runtime's own code (:mod:`facelivenet.edge_runtime.photo_align`)
and compares each model file with these outputs: parity on real faces, measured
on the device, with nothing but hashes and model outputs in the bundle.

Keys: ``folders`` (str, one per part), ``folder_index`` (int per face),
``relpath``, ``image_sha256``, ``crop_sha256`` (str per face), ``embedding``
(float16, L2-normalised), ``expression_logits`` (float32).
"""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Any

import numpy as np

from facelivenet.edge_runtime.manifest import sha256_file
from facelivenet.edge_runtime.photo_align import alignment_platform, crop_sha256
from facelivenet.edge_runtime.preprocess import PreprocessConfig

from .calibration import CENTRE_CROP, FaceSet

REFERENCE_NAME = "parity_reference.npz"


def _relpath(path: str, folder: str) -> str:
    """``path`` below its folder label (``.../lfw/images/A/A_0001.jpg`` -> ``A/A_0001.jpg``)."""
    parts, label = PurePath(path).parts, PurePath(folder).parts
    for i in range(len(parts) - len(label), -1, -1):
        if parts[i:i + len(label)] == label:
            return PurePath(*parts[i + len(label):]).as_posix()
    raise ValueError(f"{path} is not below a folder named {folder}")


def _alignment(part: FaceSet, cfg: PreprocessConfig) -> dict[str, Any]:
    if part.alignment == CENTRE_CROP:
        return {"align": "center_crop"}
    # already-cropped faces (upscaled first) fall back to the centre crop, as training aligned them
    return {"align": "detect", "upscale_to": int(part.upscale_to),
            "fallback_fraction": float(cfg.crop_fraction) if part.upscale_to else None}


def write(folder: Path, faces: FaceSet, cfg: PreprocessConfig, embedding: np.ndarray, logits: np.ndarray,
          detector_sha256: str) -> dict[str, Any]:
    """Write ``parity_reference.npz`` into ``folder``; its manifest record."""
    parts = faces.parts or [faces]
    folders, index, rel, image_sha, crop_sha = [], [], [], [], []
    start = 0
    for k, part in enumerate(parts):
        folders.append(part.folder)
        for j, path in enumerate(part.paths):
            index.append(k)
            rel.append(_relpath(path, part.folder))
            image_sha.append(sha256_file(path))
            crop_sha.append(crop_sha256(faces.crops[start + j]))
        start += len(part)
    path = Path(folder) / REFERENCE_NAME
    with open(path, "wb") as fh:
        np.savez_compressed(fh, folders=np.array(folders), folder_index=np.array(index, np.int32),
                            relpath=np.array(rel), image_sha256=np.array(image_sha), crop_sha256=np.array(crop_sha),
                            embedding=np.asarray(embedding, np.float16),
                            expression_logits=np.asarray(logits, np.float32))
    return {
        "path": REFERENCE_NAME,
        "sha256": sha256_file(path),
        "faces": len(rel),
        "folders": {p.folder: {"faces": len(p), **_alignment(p, cfg)} for p in parts},
        "detector_sha256": detector_sha256,
        "aligned_with": alignment_platform(),  # crop_sha256 holds on this OpenCV + CPU; elsewhere a few may differ
        "contents": "per held-out parity face: image path below its folder, image and aligned-crop sha256, the "
                    "torch model's embedding (float16) and expression logits; no pixels",
        "used_by": "facelive-bench device --data DIR (real-face parity on a device without torch); "
                   "the runtime never reads it and a deployment may drop it",
    }
