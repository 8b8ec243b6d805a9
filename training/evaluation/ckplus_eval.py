"""CK+48 expression accuracy by 10-fold subject-independent cross-validation (ARCHITECTURE.md, "Metrics").

Protocol
--------
- Images: CK+48 peak frames of the six expressions anger, disgust, fear, happy,
  sadness, surprise (``contempt`` is dropped; CK+48 has no neutral), aligned
  like the checkpoint's FER2013 training images (its ``data.expression_align``).
- Folds: the subjects (``S<id>`` from the file name) sorted by id, subject i
  (0-based) going to fold ``i % 10 + 1``. All images of a subject are in one
  fold, so no fold tests a face it trained on (CK+48 holds three near-identical
  frames per sequence).
- Per fold, Stage 2 is retrained on the frozen stem, following Algorithm 1: a
  fresh copy of the checkpoint's weights, Branch 2 re-initialised from Branch 1
  (``init_expression_branch_from_identity``), the expression head re-initialised
  (Xavier, seeded by ``seed + fold``); then Branch 2 + head are trained on the
  nine other folds. The frozen trunk (``model.trunk``) is computed once for every
  image and its horizontal mirror (no other augmentation); the mirrored copies
  are used for training only. Training and prediction use the six CK+ logits
  only (the neutral logit is left out of the softmax). The recipe
  (:class:`CkplusRecipe`) is written to the JSON.
- Reported: ``accuracy`` = mean of the per-fold accuracies, ``accuracy_std`` =
  their population std (ddof 0), the per-fold list, the pooled accuracy over
  every held-out image, and a pooled 6x6 confusion matrix PNG.
- ``--quick``: the first :data:`QUICK_FOLDS` folds held out, :data:`QUICK_EPOCHS` epochs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facelivenet.edge_runtime.labels import EXPRESSION_LABELS

from ..data.readers import read_ckplus48
from facelivenet.edge_runtime import metrics
from . import plots
from facelivenet.edge_runtime.progress import progress
from .runner import EvalContext

log = logging.getLogger(__name__)

CKPLUS_LABELS: tuple[str, ...] = ("anger", "disgust", "fear", "happy", "sadness", "surprise")
CKPLUS_INDEX = [EXPRESSION_LABELS.index(label) for label in CKPLUS_LABELS]
QUICK_FOLDS = 3
QUICK_EPOCHS = 3


@dataclass(frozen=True)
class CkplusRecipe:
    """How Stage 2 is retrained on each fold (Branch 2 + expression head; stem and Branch 1 frozen)."""

    folds: int = 10
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # per step, from lr to 0
    flip_copies: bool = True  # mirrored training images added (trunk computed on both)
    branch2_init: str = "branch1"  # Branch 2 copied from Branch 1; head re-initialised (Xavier)


def required_files(ck_root: Path) -> list[Path]:
    return [ck_root]


def subject_folds(subjects: Sequence[str], k: int) -> dict[str, int]:
    """Subject -> fold (1-based): sorted subjects dealt round-robin into k folds."""
    return {s: i % k + 1 for i, s in enumerate(sorted(set(subjects)))}


def _reset_head(head: nn.Linear, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    bound = math.sqrt(6.0 / (head.in_features + head.out_features))
    with torch.no_grad():
        head.weight.copy_(torch.empty_like(head.weight).uniform_(-bound, bound, generator=g))
        head.bias.zero_()


def train_fold(ctx: EvalContext, x: torch.Tensor, y: torch.Tensor, recipe: CkplusRecipe, seed: int):
    """Stage 2 on trunk features ``x`` with six-class targets ``y``; returns the trained model (eval mode)."""
    torch.manual_seed(seed)  # dropout masks: the same fold trains alike whatever ran before it
    model = ctx.ckpt.fresh_model()
    model.init_expression_branch_from_identity()
    _reset_head(model.expression_head, seed)
    for p in model.parameters():
        p.requires_grad_(False)
    params = [p for m in model.expression_modules() for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    model.to(ctx.device)
    if recipe.optimizer == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=recipe.lr, momentum=0.9, weight_decay=recipe.weight_decay)
    g = torch.Generator().manual_seed(seed)
    n = len(x)
    per_epoch = max(1, math.ceil(n / recipe.batch_size))
    total = recipe.epochs * per_epoch
    index = torch.tensor(CKPLUS_INDEX, device=ctx.device)
    step = 0
    model.train()
    for _ in range(recipe.epochs):
        perm = torch.randperm(n, generator=g)
        for b in range(per_epoch):
            idx = perm[b * recipe.batch_size : (b + 1) * recipe.batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples in training mode
                continue
            lr = recipe.lr * (0.5 * (1 + math.cos(math.pi * step / total)) if recipe.schedule == "cosine" else 1.0)
            for group in opt.param_groups:
                group["lr"] = lr
            logits = model.features_from_trunk_expression(x[idx].to(ctx.device)).index_select(1, index)
            loss = F.cross_entropy(logits, y[idx].to(ctx.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    return model.eval()


@torch.no_grad()
def predict(ctx: EvalContext, model, x: torch.Tensor) -> np.ndarray:
    """Six-class predictions (indices into :data:`CKPLUS_LABELS`) for trunk features."""
    index = torch.tensor(CKPLUS_INDEX, device=ctx.device)
    out = []
    for i in range(0, len(x), ctx.batch_size):
        logits = model.features_from_trunk_expression(x[i : i + ctx.batch_size].to(ctx.device))
        out.append(logits.index_select(1, index).argmax(1).cpu().numpy())
    return np.concatenate(out)


def evaluate_ckplus(ctx: EvalContext, ck_root: Path, recipe: CkplusRecipe | None = None) -> dict[str, Any]:
    """The ``ckplus48`` entry of the evaluation JSON."""
    recipe = recipe or CkplusRecipe()
    if ctx.quick:
        recipe = dataclasses.replace(recipe, epochs=min(recipe.epochs, QUICK_EPOCHS))
    records = read_ckplus48(ck_root)
    six = {EXPRESSION_LABELS[i]: k for k, i in enumerate(CKPLUS_INDEX)}
    labels = np.array([six[EXPRESSION_LABELS[r.label]] for r in records])
    fold_of = subject_folds([r.group for r in records], recipe.folds)
    fold_ids = np.array([fold_of[r.group] for r in records])
    held_out = list(range(1, recipe.folds + 1))[: QUICK_FOLDS if ctx.quick else recipe.folds]

    faces = ctx.align_precropped("ckplus48", [r.path for r in records])
    trunk = ctx.trunk_features(faces.crops, desc="ckplus48 trunk")
    mirrored = ctx.trunk_features(faces.crops, flip=True, desc="ckplus48 trunk (mirrored)") if recipe.flip_copies else None
    y_all = torch.from_numpy(labels).long()

    accs, y_true, y_pred = [], [], []
    for fold in progress(held_out, ctx.show_progress, "ckplus48 folds", unit="fold"):
        t0 = time.perf_counter()
        train = torch.from_numpy(fold_ids != fold)
        x_train, y_train = trunk[train], y_all[train]
        if mirrored is not None:
            x_train, y_train = torch.cat([x_train, mirrored[train]]), torch.cat([y_train, y_all[train]])
        model = train_fold(ctx, x_train, y_train, recipe, ctx.seed + fold)
        test = fold_ids == fold
        pred = predict(ctx, model, trunk[torch.from_numpy(test)])
        accs.append(metrics.accuracy(labels[test], pred))
        y_true.append(labels[test])
        y_pred.append(pred)
        log.info("ckplus48 fold %d: accuracy %.4f on %d images (%.1f s)", fold, accs[-1], int(test.sum()),
                 time.perf_counter() - t0)
    yt, yp = np.concatenate(y_true), np.concatenate(y_pred)
    cm = metrics.confusion_matrix(yt, yp, len(CKPLUS_LABELS))
    title = f"CK+48, {recipe.folds}-fold subject-independent CV"
    if len(held_out) < recipe.folds:
        title += f" (folds {', '.join(map(str, held_out))})"
    png = plots.plot_confusion(cm, CKPLUS_LABELS, ctx.out_dir / "ckplus48_confusion.png", title)
    arr = np.asarray(accs)
    result: dict[str, Any] = {
        "accuracy": float(arr.mean()),
        "accuracy_std": float(arr.std()),
        "fold_accuracies": [float(a) for a in accs],
        "folds_evaluated": held_out,
        "pooled_accuracy": metrics.accuracy(yt, yp),
        "images": len(records),
        "subjects": len(fold_of),
        "labels": list(CKPLUS_LABELS),
        "fold_assignment": f"subjects sorted by id, subject i to fold i % {recipe.folds} + 1",
        "recipe": dataclasses.asdict(recipe),
    }
    return ctx.expression_result(result, cm, png, faces, f"folds {held_out} held out, {recipe.epochs} epochs")
