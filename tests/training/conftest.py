"""Tiny models and synthetic face folders for fast training tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facelivenet.edge_runtime.preprocess import PreprocessConfig
from facelivenet.training.config import DataConfig, ModelConfig, StageConfig, TrainConfig

TINY_MODEL = ModelConfig(
    input_size=32,
    stem_channels=(8, 8, 8, 16),
    a_channels=16,
    a_width=8,
    num_a_blocks=1,
    reduction_a=(8, 8, 8),
    b_width=8,
    num_b_blocks=1,
    reduction_b_width=8,
    c_width=8,
    embedding_dim=16,
    dropout=0.0,
)
TINY_PRE = PreprocessConfig(input_size=32)


def write_synthetic_faces(root: Path, classes: list[str], per_class: int, seed: int = 0, size: int = 40) -> Path:
    """Folders of small images, one visual pattern per class plus noise (not faces: no detection)."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, size=(4, 4, 3)).astype(np.float32)
        pattern = cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC)
        for j in range(per_class):
            img = np.clip(pattern + rng.normal(0, 12, pattern.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"{name}_{j:04d}.png"), img)
    return root


@pytest.fixture()
def identity_root(tmp_path: Path) -> Path:
    return write_synthetic_faces(tmp_path / "ids", [f"person_{i}" for i in range(4)], per_class=8)


@pytest.fixture()
def expression_root(tmp_path: Path) -> Path:
    root = tmp_path / "fer"
    write_synthetic_faces(root / "train", ["angry", "happy", "neutral", "surprise"], per_class=8, seed=1)
    return root


def tiny_config(identity_root: Path, expression_root: Path, cache: Path, **stage_overrides) -> TrainConfig:
    """A TrainConfig that trains the tiny model for a few steps on the synthetic folders."""
    stage = StageConfig(epochs=2, batch_size=8, lr=0.05, step_epochs=(1,), **stage_overrides)
    return TrainConfig(
        model=TINY_MODEL,
        preprocess=TINY_PRE,
        data=DataConfig(identity_root=str(identity_root), identity_align="center_crop",
                        expression_root=str(expression_root), cache_dir=str(cache)),
        stage1=stage,
        stage2=stage,
        log_every=1,
        checkpoint_every=1000,
    )


@pytest.fixture()
def tiny_train_config(identity_root: Path, expression_root: Path, tmp_path: Path) -> TrainConfig:
    return tiny_config(identity_root, expression_root, tmp_path / "cache")
