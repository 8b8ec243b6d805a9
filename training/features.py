"""Batched model passes over cached uint8 crops (no gradient): trunk features and outputs."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from facelivenet.edge_runtime.preprocess import PreprocessConfig, normalize

from .model import FaceLiveNet
from facelivenet.edge_runtime.progress import progress as show_progress


def input_batches(crops: np.ndarray, cfg: PreprocessConfig, batch_size: int = 256, flip: bool = False,
                  progress: str | None = None, index: np.ndarray | None = None) -> Iterator[torch.Tensor]:
    """Normalised model inputs for uint8 crops (N, S, S, 3 or 1), optionally mirrored, in batches; with
    ``index`` only ``crops[index]``, gathered a batch at a time (a memmap'd cache is never read whole)."""
    n = len(crops) if index is None else len(index)
    for i in show_progress(range(0, n, batch_size), bool(progress), progress or ""):
        chunk = np.asarray(crops[i : i + batch_size] if index is None else crops[index[i : i + batch_size]])
        if chunk.shape[-1] == 1:  # a grey cache: the model takes three equal channels
            chunk = np.repeat(chunk, 3, axis=3)
        if flip:
            chunk = chunk[:, :, ::-1]
        yield torch.from_numpy(normalize(np.ascontiguousarray(chunk), cfg))


@torch.no_grad()
def trunk_features(model: FaceLiveNet, crops: np.ndarray, cfg: PreprocessConfig, device: torch.device | str = "cpu",
                   flip: bool = False, batch_size: int = 256, progress: str | None = None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The shared stem's output (``model.trunk``, eval mode) for every crop, stored on the CPU."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model.trunk(x.to(device)).to("cpu", dtype) for x in input_batches(crops, cfg, batch_size, flip, progress)])
    finally:
        model.train(was_training)


@torch.no_grad()
def identity_features(model: FaceLiveNet, crops: np.ndarray, cfg: PreprocessConfig, device: torch.device | str = "cpu",
                      index: np.ndarray | None = None, batch_size: int = 256, progress: str | None = None,
                      flip: bool = False) -> torch.Tensor:
    """Stage 1's features (Branch 1's prelogits, eval mode) of the crops (or ``crops[index]``), optionally
    mirrored, on the CPU."""
    was_training = model.training
    model.eval()
    try:
        out = [model.features(x.to(device), identity=True, expression=False).prelogits.float().cpu()
               for x in input_batches(crops, cfg, batch_size, flip, progress=progress, index=index)]
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, model.cfg.embedding_dim)


class TrunkFeatureDataset(torch.utils.data.Dataset):
    """Stage 2 on a frozen stem: precomputed trunk features of each image and its mirror image.

    Each epoch draws, per image, the plain or the mirrored features, seeded by
    (seed, epoch, index) like :class:`~facelivenet.training.data.datasets.FaceCropDataset`.
    """

    def __init__(self, plain: torch.Tensor, mirrored: torch.Tensor, labels: np.ndarray, seed: int = 0):
        if plain.shape != mirrored.shape or len(plain) != len(labels):
            raise ValueError("plain and mirrored features and labels must have the same length")
        self.plain, self.mirrored = plain, mirrored
        self.labels = np.asarray(labels, dtype=np.int64)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        mirror = np.random.default_rng([self.seed, self.epoch, int(i)]).random() < 0.5
        return (self.mirrored if mirror else self.plain)[i].float(), int(self.labels[i])
