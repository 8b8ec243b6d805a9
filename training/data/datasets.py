"""Torch datasets over cached aligned crops, and a resumable distributed batch sampler.

The evaluation transform is exactly :func:`facelivenet.edge_runtime.preprocess.normalize`
on the cached crop, so training and the runtime feed the model identical tensors.
Augmentation (the paper's random crop + flip) happens on the uint8 crop before it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from facelivenet.edge_runtime.preprocess import PreprocessConfig, normalize


def augment_crop(crop: np.ndarray, rng: np.random.Generator, pad: int, flip: bool) -> np.ndarray:
    """Random translation by up to ``pad`` pixels (edge-replicated) and a horizontal flip."""
    if pad > 0:
        s = crop.shape[0]
        padded = np.pad(crop, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        y, x = rng.integers(0, 2 * pad + 1, size=2)
        crop = padded[y : y + s, x : x + s]
    if flip and rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


class FaceCropDataset(Dataset):
    """(tensor, label) pairs from uint8 crops. Augmentation is seeded by (seed, epoch, index),
    so it is identical across workers, ranks and resumed runs."""

    def __init__(self, crops: np.ndarray, labels: np.ndarray, cfg: PreprocessConfig,
                 augment: bool = False, pad: int = 8, flip: bool = True, seed: int = 0,
                 targets: np.ndarray | None = None):
        if len(crops) != len(labels) or (targets is not None and len(targets) != len(labels)):
            raise ValueError(f"{len(crops)} crops, {len(labels)} labels, {None if targets is None else len(targets)} targets")
        self.crops, self.labels, self.cfg = crops, np.asarray(labels, dtype=np.int64), cfg
        self.targets = targets  # optional per-image vectors (teacher descriptors), returned third
        self.augment, self.pad, self.flip, self.seed = augment, pad, flip, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int):
        crop = self.crops[i]
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, int(i)])
            crop = augment_crop(crop, rng, self.pad, self.flip)
        x = torch.from_numpy(normalize(crop, self.cfg)[0])
        if self.targets is None:
            return x, int(self.labels[i])
        return x, int(self.labels[i]), torch.from_numpy(np.asarray(self.targets[i], dtype=np.float32))


class EpochBatchSampler(Sampler[list[int]]):
    """Shuffled batches for one epoch, split across ``world`` ranks, starting at batch ``start``.

    The permutation depends only on (seed, epoch), so a resumed run replays the
    same batches; every rank gets the same number of batches (the tail is dropped).
    """

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1, start: int = 0):
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.rank, self.world, self.start = rank, world, start

    def batches_per_epoch(self) -> int:
        return self.n // (self.batch_size * self.world)

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch() - self.start)

    def __iter__(self):
        perm = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        per_step = self.batch_size * self.world
        for b in range(self.start, self.batches_per_epoch()):
            chunk = perm[b * per_step : (b + 1) * per_step]
            yield chunk[self.rank * self.batch_size : (self.rank + 1) * self.batch_size].tolist()
