"""Load a checkpoint for evaluation and run it, batched, on aligned face crops.

This is the torch side of evaluation (the protocol and metric modules next to it
are pure numpy). Everything the tasks need from the model goes through
:class:`EvalContext`:

- the checkpoint (``--checkpoint``; default: the shipped model at
  ``training/default_model/model.pt``), refused with the differing keys when
  its model configuration differs from an expected one;
- face alignment through the training face cache
  (:func:`facelivenet.training.data.face_cache.load_or_build`) with the
  checkpoint's own :class:`PreprocessConfig`, so the crops are the ones the
  model was trained on; already-cropped expression faces (FER2013, CK+48) with
  the checkpoint's own ``data.expression_align`` (:meth:`EvalContext.align_precropped`);
- forward passes in eval mode under ``torch.no_grad`` on
  :func:`facelivenet.edge_runtime.preprocess.normalize` of the crops (the
  training and runtime transform), one pass per image, no test-time
  augmentation (the runtime makes one pass too).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from facelivenet.edge_runtime.manifest import sha256_file
from facelivenet.edge_runtime.preprocess import PreprocessConfig

from .. import checkpoint as ckpt_io
from ..config import ModelConfig, TrainConfig, from_dict
from ..data.face_cache import STATUS_FALLBACK, STATUS_OK, AlignedFaces, AlignSource, load_or_build, load_precropped
from ..data.sources import expression_alignment
from ..features import input_batches, trunk_features
from ..model import FaceLiveNet, count_parameters
from .errors import ProtocolFileError

log = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = ckpt_io.DEFAULT_CHECKPOINT


def resolve_checkpoint(path: str | Path | None) -> Path:
    """``--checkpoint`` as given, else the shipped default model (a clear error when it is absent)."""
    if path:
        return Path(path)
    if not DEFAULT_CHECKPOINT.is_file():
        raise ckpt_io.CheckpointError(
            f"no default model shipped at {DEFAULT_CHECKPOINT}; pass --checkpoint PATH (e.g. runs/<run>/model.pt)"
        )
    return DEFAULT_CHECKPOINT


@dataclass
class LoadedCheckpoint:
    """A checkpoint ready to evaluate: the model (eval mode), its configs and what it was trained on."""

    path: Path
    sha256: str
    blob: dict[str, Any]
    config: TrainConfig
    model: FaceLiveNet

    @property
    def preprocess(self) -> PreprocessConfig:
        return self.config.preprocess

    @property
    def trained_on(self) -> dict[str, Any]:
        return self.blob.get("trained_on") or {}

    def fresh_model(self) -> FaceLiveNet:
        """A new copy of the checkpoint's network (for per-fold retraining), in eval mode."""
        model = FaceLiveNet(self.config.model)
        model.load_state_dict(self.blob["model"])
        return model.eval()

    def summary(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "params": count_parameters(self.model),
            "input_size": self.config.model.input_size,
            "colour": self.preprocess.colour,
            "completed_stages": list(self.blob.get("completed_stages", [])),
        }


def load_checkpoint(path: str | Path | None, expect: ModelConfig | None = None) -> LoadedCheckpoint:
    """Load ``path`` (or the default model); refuse a model configuration other than ``expect``."""
    resolved = resolve_checkpoint(path)
    blob = ckpt_io.load(resolved)
    model = ckpt_io.model_from_checkpoint(blob, expect=expect)
    config = from_dict(TrainConfig, blob["config"])
    return LoadedCheckpoint(resolved, sha256_file(resolved), blob, config, model)


@dataclass
class FaceSet:
    """Aligned crops of a list of images and how each crop was obtained."""

    crops: np.ndarray
    paths: list[str]
    status: list[str]
    detect: bool

    def counts(self) -> dict[str, int]:
        """How many images, and (detection mode) how many fell back to a centre crop."""
        if not self.detect:
            return {"images": len(self.paths), "center_crop": self.status.count(STATUS_OK)}
        return {"images": len(self.paths), "detected": self.status.count(STATUS_OK),
                "center_fallback": self.status.count(STATUS_FALLBACK)}


@dataclass
class EvalContext:
    """What every task shares: the model, where faces come from, how to run, where to write."""

    ckpt: LoadedCheckpoint
    out_dir: Path
    detector: str | None = None
    cache_dir: str | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_size: int = 64
    quick: bool = False
    seed: int = 0
    show_progress: bool = True

    def __post_init__(self) -> None:
        self.ckpt.model.to(self.device).eval()

    @property
    def preprocess(self) -> PreprocessConfig:
        return self.ckpt.preprocess

    def expression_result(self, result: dict[str, Any], cm: np.ndarray, png: Path, faces: FaceSet,
                          quick_subset: str) -> dict[str, Any]:
        """An expression task's ``result`` completed with its confusion matrix, alignment and face counts,
        and (``--quick``) which subset ran."""
        result.update(confusion_matrix=cm.tolist(), confusion_png=png.name, alignment=self.expression_alignment,
                      faces=faces.counts())
        if self.quick:
            result["quick_subset"] = quick_subset
        return result

    # ---- faces ------------------------------------------------------------------------
    def align(self, name: str, paths: Sequence[str], source: AlignSource,
              fallback_fraction: float | None = None) -> FaceSet:
        """Aligned crops for ``paths`` (cached). Every image must give a crop: evaluation never
        drops a pair silently, so an unreadable image (or, without a fallback, an undetected
        face) is an error naming the file."""
        faces: AlignedFaces = load_or_build(name, list(paths), self.preprocess, source, self.detector,
                                            self.cache_dir, fallback_fraction, progress=self.show_progress)
        return self._face_set(name, faces, detect=source == "detect")

    @property
    def expression_alignment(self) -> dict[str, Any]:
        """How the checkpoint's Stage 2 aligned its (already-cropped) expression faces; checkpoints
        from before the option have none recorded and read as the centre crop."""
        return expression_alignment(self.ckpt.config.data)

    def align_precropped(self, name: str, paths: Sequence[str]) -> FaceSet:
        """Already-cropped faces (FER2013, CK+48) aligned the way the checkpoint's Stage 2 training
        aligned FER2013 (``data.expression_align`` of its config), cached like :meth:`align`."""
        data = self.ckpt.config.data
        faces = load_precropped(name, list(paths), self.preprocess, data.expression_align, data.expression_upscale,
                                self.detector, self.cache_dir, self.show_progress)
        return self._face_set(name, faces, detect=data.expression_align == "detect")

    def _face_set(self, name: str, faces: AlignedFaces, detect: bool) -> FaceSet:
        bad = [(p, s) for p, s in zip(faces.paths, faces.status) if s not in (STATUS_OK, STATUS_FALLBACK)]
        if bad:
            raise ProtocolFileError(f"{name}: {len(bad)} of {len(faces.paths)} images gave no face crop, "
                                    f"e.g. {bad[0][0]} ({bad[0][1]})")
        fs = FaceSet(np.asarray(faces.crops), list(faces.paths), list(faces.status), detect=detect)
        fallback = fs.status.count(STATUS_FALLBACK)
        if fallback:
            log.info("%s: no face detected in %d of %d images; used a centre crop for them", name, fallback,
                     len(fs.paths))
        return fs

    # ---- forward passes ---------------------------------------------------------------
    def _batches(self, crops: np.ndarray, desc: str, flip: bool = False):
        shown = desc if self.show_progress else None
        for x in input_batches(crops, self.preprocess, self.batch_size, flip, shown):
            yield x.to(self.device)

    @torch.no_grad()
    def embed_and_classify(self, crops: np.ndarray, desc: str = "model") -> tuple[np.ndarray, np.ndarray]:
        """(L2-normalised embeddings [N, D], expression probabilities [N, 7]) for uint8 crops."""
        model = self.ckpt.model.eval()
        embs, probs = [], []
        for x in self._batches(crops, desc):
            emb, logits = model(x)
            embs.append(emb.float().cpu().numpy())
            probs.append(F.softmax(logits.float(), dim=1).cpu().numpy())
        return np.concatenate(embs), np.concatenate(probs)

    def trunk_features(self, crops: np.ndarray, flip: bool = False, desc: str = "trunk") -> torch.Tensor:
        """The frozen stem's output (``model.trunk``) for uint8 crops, on the CPU."""
        shown = desc if self.show_progress else None
        return trunk_features(self.ckpt.model, crops, self.preprocess, self.device, flip, self.batch_size, shown)


@dataclass
class PairOutputs:
    """Model outputs for a list of image pairs (each distinct image aligned and run once)."""

    scores: np.ndarray  # cosine similarity of left[i] and right[i]
    right_probabilities: np.ndarray  # expression probabilities of right[i]
    faces: "FaceSet"


def run_pairs(ctx: "EvalContext", name: str, root: Path, left: Sequence[str], right: Sequence[str],
              fallback_fraction: float) -> PairOutputs:
    """Detect, align and run every image of the pairs once; score each pair by cosine similarity."""
    images = sorted(set(left) | set(right))
    faces = ctx.align(name, [str(root / p) for p in images], "detect", fallback_fraction)
    emb, probs = ctx.embed_and_classify(faces.crops, name)
    row = {p: i for i, p in enumerate(images)}
    li = np.array([row[p] for p in left])
    ri = np.array([row[p] for p in right])
    return PairOutputs(cosine_scores(emb[li], emb[ri]), probs[ri], faces)


def cosine_scores(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity (the embeddings are already L2-normalised; renormalised anyway)."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.sum(a * b, axis=1).astype(np.float64)
