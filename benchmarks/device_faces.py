"""Real-face parity on a device: the bundle's ``parity_reference.npz`` re-aligned from the device's own data copy.

The export saved, per held-out face, the image's path below its folder label,
the image's sha256, how it was aligned and the torch model's outputs
(:mod:`facelivenet.export.parity_reference`). Here each image is read from
``<data>/<folder>/<relpath>``, checked against its sha256, aligned with the
runtime's code (:func:`facelivenet.edge_runtime.photo_align.align_photo`) and
the device's OpenCV, and fed to each model file. ``crops_identical`` says how
many aligned crops came out byte-identical to the export's. Another CPU or
OpenCV build may move a landmark in its last bits and a crop by a grey level,
so identity of crops is reported, never required: the model outputs on the
re-aligned faces are what the parity gates judge (with the export's tolerances),
split into identical and differing crops, and the OpenCV version and CPU
features of both machines are reported next to it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facelivenet.edge_runtime.detection import YuNetDetector, resolve_detector_path
from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.edge_runtime.imageio import read_image
from facelivenet.edge_runtime.manifest import Manifest, sha256_file
from facelivenet.edge_runtime.photo_align import align_photo, alignment_platform, crop_sha256
from facelivenet.edge_runtime.preprocess import face_crop

from .errors import BenchError

log = logging.getLogger(__name__)


@dataclass
class ReferenceFaces:
    """The re-aligned faces that were found, with the torch outputs saved for them."""

    crops: np.ndarray
    embedding: np.ndarray
    expression_logits: np.ndarray
    folders: list[str]  # per face
    identical: np.ndarray = field(default_factory=lambda: np.zeros((0,), bool))  # per face: crop as the export's
    info: dict[str, Any] = field(default_factory=dict)


def load_reference_faces(bundle: Path, manifest: Manifest, data: Path, detector: str | Path | None = None,
                         limit: int | None = None) -> ReferenceFaces | None:
    """The bundle's reference faces re-aligned from ``data`` (none when ``data`` lacks their images); at most
    ``limit`` of them, evenly spread over the reference (a slow board); None when the bundle has no reference."""
    record = (manifest.provenance or {}).get("parity_reference")
    if not record:
        return None
    path = bundle / record["path"]
    if not path.is_file() or sha256_file(path) != record.get("sha256"):
        raise BenchError(f"{path} is missing or does not match the sha256 in the manifest")
    with np.load(path) as npz:
        ref = {k: npz[k] for k in npz.files}
    detector_path = resolve_detector_path(detector, bundle)
    det = YuNetDetector(detector_path)
    pre = manifest.preprocess
    keep: list[int] = []
    crops: list[np.ndarray] = []
    same: list[bool] = []
    missing = changed = unaligned = 0
    total = len(ref["relpath"])
    chosen = range(total) if not limit or limit >= total else np.linspace(0, total - 1, limit).round().astype(int)
    for i in chosen:
        k, rel, want = ref["folder_index"][i], ref["relpath"][i], ref["image_sha256"][i]
        folder = str(ref["folders"][k])
        image_path = data / folder / str(rel)
        if not image_path.is_file():
            missing += 1
            continue
        if sha256_file(image_path) != want:
            changed += 1
            continue
        how = record["folders"].get(folder, {})
        try:
            image = read_image(image_path)
        except FaceLiveError:
            changed += 1
            continue
        if how.get("align") == "center_crop":
            crop = face_crop(image, pre)
        else:
            crop, _ = align_photo(image, pre, det, int(how.get("upscale_to") or 0), how.get("fallback_fraction"))
        if crop is None:
            unaligned += 1
            continue
        same.append(crop_sha256(crop) == ref["crop_sha256"][i])
        keep.append(i)
        crops.append(crop)
    identical = int(sum(same))
    info = {"faces_in_reference": total, "faces_chosen": len(chosen), "faces_used": len(keep), "missing_images": missing,
            "changed_images": changed, "no_face_now": unaligned, "crops_identical": identical,
            "crops_identical_fraction": round(identical / len(keep), 4) if keep else None,
            "detector_same_as_export": sha256_file(detector_path) == record.get("detector_sha256"),
            "aligned_here_with": alignment_platform(),
            "export_aligned_with": record.get("aligned_with"),  # None: exported before it was recorded
            "data": str(data)}
    log.info("reference faces: %d of %d re-aligned from %s (%d crops byte-identical to the export's)",
             len(keep), total, data, identical)
    if not keep:
        log.warning("none of the bundle's %d reference faces were found under %s (expected %s there): parity on "
                    "the synthetic self-check inputs only", total, data, ", ".join(str(f) for f in ref["folders"]))
        return ReferenceFaces(np.zeros((0,), np.uint8), np.zeros((0,)), np.zeros((0,)), [], info=info)
    idx = np.asarray(keep)
    return ReferenceFaces(np.stack(crops), ref["embedding"][idx].astype(np.float32),
                          ref["expression_logits"][idx].astype(np.float32),
                          [str(ref["folders"][k]) for k in ref["folder_index"][idx]], np.asarray(same, bool), info)


def crop_drift(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """How far two alignments of the same faces (uint8 ``[N,H,W,C]``, e.g. two CPUs) moved apart, in grey levels:
    identical crops, and over the differing ones the largest pixel difference and the largest per-crop mean."""
    if a.shape != b.shape:
        raise ValueError(f"crop arrays differ in shape: {a.shape} vs {b.shape}")
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).reshape(len(a), -1)
    moved = diff.max(axis=1, initial=0) > 0
    return {"crops": int(len(a)), "identical": int((~moved).sum()),
            "max_abs_diff": int(diff.max(initial=0)),
            "max_crop_mean_abs_diff": round(float(diff[moved].mean(axis=1).max()), 4) if moved.any() else 0.0,
            "changed_pixel_fraction": round(float((diff[moved] > 0).mean()), 6) if moved.any() else 0.0}
