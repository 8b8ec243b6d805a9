"""Stage 1's identity classifier across runs: kept in ``last.pt``, carried into a fine-tune, or imprinted.

A fine-tune (``init_checkpoint``) of Stage 1 used to start its softmax classifier (and triplet centres)
from scratch, so its first steps fitted a new classifier rather than the task (after a 4-epoch fine-tune
the softmax accuracy was 0.53 against 0.90 before; the embedding's held-out distance to the teacher came
out the same either way: ``stage1_attempts.json`` entries 15 and 16). Two remedies, in order:

* **kept**: a finished Stage 1 writes its classifier rows and triplet centres, keyed by class name,
  into ``last.pt`` (``heads["stage1"]``); a fine-tune initialised from that ``last.pt`` takes the rows
  of every class it shares with it;
* **imprinted**: any class without a kept row gets the mean direction of its faces' embeddings under
  the initial model, scaled by one factor fitted by cross-entropy on those faces (and its triplet
  centre the mean of their features), so the classifier starts where the embedding already is.

``TrainConfig.init_head`` picks ``auto`` (kept, else imprinted), ``imprint`` or ``random`` (the old way).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from facelivenet.edge_runtime.preprocess import PreprocessConfig

from .features import identity_features
from .model import FaceLiveNet

log = logging.getLogger(__name__)

INIT_HEAD_CHOICES = ("auto", "imprint", "random")
SCALE_GRID = np.geomspace(0.5, 200.0, 61)


def head_state(class_names: list[str], classifier: torch.Tensor, centres: torch.Tensor) -> dict[str, Any]:
    """What a finished Stage 1 keeps of its classifier: rows and centres by class name (on the CPU)."""
    if len(class_names) != len(classifier) or classifier.shape != centres.shape:
        raise ValueError(f"{len(class_names)} classes, classifier {tuple(classifier.shape)}, "
                         f"centres {tuple(centres.shape)}")
    return {"classes": list(class_names), "classifier": classifier.detach().float().cpu().clone(),
            "centres": centres.detach().float().cpu().clone()}


def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per class: the mean feature, the mean embedding direction (unit length) and the face count."""
    feats = features.double()
    feat_sum = torch.zeros(num_classes, feats.shape[1], dtype=torch.float64).index_add_(0, labels, feats)
    dir_sum = torch.zeros_like(feat_sum).index_add_(0, labels, F.normalize(feats, dim=1))
    counts = torch.zeros(num_classes, dtype=torch.float64).index_add_(0, labels, torch.ones(len(labels), dtype=torch.float64))
    seen = counts.clamp(min=1.0)[:, None]
    return (feat_sum / seen).float(), F.normalize(dir_sum / seen, dim=1).float(), counts


def fit_scale(features: torch.Tensor, labels: torch.Tensor, directions: torch.Tensor) -> float:
    """The factor s for classifier rows ``s * direction`` that minimises the softmax cross-entropy of
    ``features`` (a sample of the training faces) over a log-spaced grid."""
    if len(features) == 0:
        raise ValueError("no labelled faces to fit the imprinted classifier's scale on")
    raw = features.float() @ directions.float().T
    losses = [float(F.cross_entropy(raw * s, labels)) for s in SCALE_GRID]
    return float(SCALE_GRID[int(np.argmin(losses))])


def initial_head(model: FaceLiveNet, crops: np.ndarray, labels: np.ndarray, class_names: list[str],
                 cfg: PreprocessConfig, kept: dict[str, Any] | None, device: torch.device | str = "cpu",
                 sample: int = 4096, seed: int = 0, progress: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Classifier rows and triplet centres for a Stage 1 fine-tune, which rows were set, and a summary.

    Classes found in ``kept`` (a :func:`head_state`) take its rows; the rest with faces are imprinted;
    classes with neither keep their fresh initialisation (``assigned`` False).
    """
    n = len(class_names)
    dim = model.cfg.embedding_dim
    weight = torch.zeros(n, dim)
    centres = torch.zeros(n, dim)
    carried = np.zeros(n, dtype=bool)
    if kept:
        if kept["classifier"].shape[1] != dim:
            raise ValueError(f"the kept identity classifier has {kept['classifier'].shape[1]} dimensions, "
                             f"the model {dim}")
        row = {name: i for i, name in enumerate(kept["classes"])}
        for i, name in enumerate(class_names):
            j = row.get(name)
            if j is not None:
                weight[i], centres[i], carried[i] = kept["classifier"][j], kept["centres"][j], True
    summary: dict[str, Any] = {"classes": n, "kept": int(carried.sum()), "imprinted": 0, "scale": None}
    todo = ~carried
    if todo.any():
        labels = np.asarray(labels, dtype=np.int64)
        need = np.flatnonzero((labels >= 0) & np.isin(labels, np.flatnonzero(todo)))
        feats = identity_features(model, crops, cfg, device, index=need,
                                  progress="imprinting the identity classifier" if progress else None)
        y = torch.from_numpy(labels[need])
        means, directions, counts = class_means(feats, y, n)
        pick = np.random.default_rng(seed).permutation(len(need))[:sample]
        scale = fit_scale(feats[pick], y[pick], directions)
        imprint = torch.from_numpy(todo) & (counts > 0)
        weight[imprint] = scale * directions[imprint]
        centres[imprint] = means[imprint]
        summary.update(imprinted=int(imprint.sum()), scale=scale)
        carried |= imprint.numpy()
    log.info("stage 1: identity classifier from the init checkpoint: %(kept)d classes kept, %(imprinted)d "
             "imprinted (scale %(scale)s) of %(classes)d", summary)
    return weight, centres, torch.from_numpy(carried), summary
