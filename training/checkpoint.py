"""Checkpoints that carry their config, what they trained on, and enough state to resume."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from facelivenet.edge_runtime.errors import FaceLiveError

from .config import ModelConfig, TrainConfig, diff_configs, from_dict, to_dict
from .model import FaceLiveNet

CHECKPOINT_FORMAT = 1
# The shipped default model: used by every command given no --checkpoint.
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "default_model" / "model.pt"


class CheckpointError(FaceLiveError):
    """A checkpoint is missing, unreadable or does not fit the requested configuration."""


def save_atomic(obj: dict[str, Any], path: str | Path) -> Path:
    """torch.save to a temp file in the same folder, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict on the CPU, with a clear error if it is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT or "model" not in ckpt:
        raise CheckpointError(f"{path} is not a facelivenet checkpoint (format {CHECKPOINT_FORMAT})")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], expect: ModelConfig | None = None) -> FaceLiveNet:
    """Rebuild the model a checkpoint holds; refuse (naming the keys) if it differs from ``expect``."""
    cfg = from_dict(TrainConfig, ckpt["config"])
    if expect is not None and cfg.model != expect:
        keys = diff_configs(to_dict(expect), to_dict(cfg.model))
        raise CheckpointError(f"checkpoint model configuration differs from the requested one in: {', '.join(keys)}")
    model = FaceLiveNet(cfg.model)
    model.load_state_dict(ckpt["model"])
    return model.eval()


def inference_checkpoint(model: FaceLiveNet, cfg: TrainConfig, meta: dict[str, Any]) -> dict[str, Any]:
    """The small checkpoint users get: weights, config, and what was trained on (no optimiser state)."""
    return {"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "config": to_dict(cfg), **meta}
