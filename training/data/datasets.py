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


def augment_params(seed: int, epoch: int, index: int, pad: int, flip: bool) -> tuple[int, int, bool]:
    """(dy, dx, mirrored) of one image's augmentation, seeded by (seed, epoch, index) alone."""
    rng = np.random.default_rng([seed, epoch, int(index)])
    dy = dx = pad
    if pad > 0:
        dy, dx = (int(v) for v in rng.integers(0, 2 * pad + 1, size=2))
    return dy, dx, bool(flip and rng.random() < 0.5)


def already_batched(batch):
    """DataLoader ``collate_fn`` for datasets whose ``__getitems__`` returns a finished batch."""
    return batch


class FaceCropDataset(Dataset):
    """(tensor, label[, target]) from uint8 crops. Augmentation is seeded by (seed, epoch, index),
    so it is identical across workers, ranks and resumed runs.

    ``targets`` are per-image vectors (teacher descriptors), (N, D) or (N, 2, D) with the
    mirrored face's vector second: a flipped crop gets the mirrored target.
    ``__getitems__`` builds a whole batch at once (one gather, one pad, one normalise);
    ``__getitem__`` is that path for a batch of one.
    """

    def __init__(self, crops: np.ndarray, labels: np.ndarray, cfg: PreprocessConfig,
                 augment: bool = False, pad: int = 8, flip: bool = True, seed: int = 0,
                 targets: np.ndarray | None = None):
        if len(crops) != len(labels) or (targets is not None and len(targets) != len(labels)):
            raise ValueError(f"{len(crops)} crops, {len(labels)} labels, {None if targets is None else len(targets)} targets")
        if targets is not None and targets.ndim == 3 and targets.shape[1] != 2:
            raise ValueError(f"targets with views must be (N, 2, D) (plain, mirrored), got {targets.shape}")
        self.crops, self.labels, self.cfg = crops, np.asarray(labels, dtype=np.int64), cfg
        self.targets = targets
        self.augment, self.pad, self.flip, self.seed = augment, pad, flip, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int):
        """One image: the batch path for a batch of one, so both paths give the same tensors."""
        batch = self.__getitems__([i])
        if self.targets is None:
            return batch[0][0], int(batch[1][0])
        return batch[0][0], int(batch[1][0]), batch[2][0]

    def __getitems__(self, indices: list[int]):
        """One finished batch (x, y[, targets]) for ``indices`` (collate with :func:`already_batched`)."""
        idx = np.asarray(indices, dtype=np.int64)
        crops = np.asarray(self.crops[idx])  # one gather (also from a memmap'd cache)
        if crops.shape[-1] == 1:  # a grey cache read as stored: the model takes three equal channels
            crops = np.repeat(crops, 3, axis=3)
        mirrored = np.zeros(len(idx), dtype=bool)
        if self.augment:
            params = [augment_params(self.seed, self.epoch, int(i), self.pad, self.flip) for i in idx]
            s, p = crops.shape[1], self.pad
            if p > 0:
                padded = np.pad(crops, ((0, 0), (p, p), (p, p), (0, 0)), mode="edge")
                crops = np.stack([padded[k, dy : dy + s, dx : dx + s] for k, (dy, dx, _) in enumerate(params)])
            mirrored = np.array([m for _, _, m in params], dtype=bool)
            crops[mirrored] = crops[mirrored, :, ::-1]
        x = torch.from_numpy(normalize(crops, self.cfg))
        y = torch.from_numpy(self.labels[idx])
        if self.targets is None:
            return x, y
        t = np.asarray(self.targets[idx], dtype=np.float32)
        if t.ndim == 3:
            t = np.where(mirrored[:, None], t[:, 1], t[:, 0])
        return x, y, torch.from_numpy(np.ascontiguousarray(t))


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
