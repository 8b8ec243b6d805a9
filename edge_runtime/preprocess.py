"""Preprocessing shared byte-for-byte by training, export, runtime and demo.

Two steps: :func:`face_crop` turns a BGR image (+ landmarks) into the aligned
uint8 crop in the model's colour mode; :func:`normalize` turns crops into the
float32 tensor the model takes. Training caches the first step and applies
augmentation between the two; everything else chains them directly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable, Literal

import cv2
import numpy as np

from .alignment import TEMPLATE_112, align_face, center_crop_face

ColourMode = Literal["gray", "rgb"]
AlignMode = Literal["landmarks", "center_crop"]


@dataclass(frozen=True)
class PreprocessConfig:
    """How a face becomes a model input. Recorded in checkpoints and bundle manifests.

    ``colour="gray"`` feeds luminance replicated to three channels: the expression
    data (FER2013, CK+, JAFFE) is grey, so a grey model sees the same kind of input
    in training and on a colour camera.
    """

    input_size: int = 112
    colour: ColourMode = "gray"
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (128.0, 128.0, 128.0)
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    template: tuple[tuple[float, float], ...] = field(
        default_factory=lambda: tuple(tuple(float(v) for v in p) for p in TEMPLATE_112)
    )
    crop_fraction: float = 0.85  # centre-crop mode: central part of an already-cropped face

    def __post_init__(self) -> None:
        if self.input_size < 16 or self.input_size > 1024:
            raise ValueError(f"input_size must be in [16, 1024], got {self.input_size}")
        if self.colour not in ("gray", "rgb"):
            raise ValueError(f"colour must be 'gray' or 'rgb', got {self.colour!r}")
        if self.layout not in ("NCHW", "NHWC"):
            raise ValueError(f"layout must be 'NCHW' or 'NHWC', got {self.layout!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("mean and std need three values each, std > 0")
        if len(self.template) != 5:
            raise ValueError("template needs five (x, y) points for a 112-pixel crop")

    @property
    def template_array(self) -> np.ndarray:
        return np.asarray(self.template, dtype=np.float64)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["template"] = [list(p) for p in self.template]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessConfig":
        d = dict(d)
        for key in ("mean", "std"):
            if key in d:
                d[key] = tuple(float(v) for v in d[key])
        if "template" in d:
            d["template"] = tuple(tuple(float(v) for v in p) for p in d["template"])
        return cls(**d)


def to_model_colour(image_bgr: np.ndarray, colour: ColourMode) -> np.ndarray:
    """BGR uint8 -> the model's colour order, three channels (grey is replicated)."""
    if colour == "gray":
        grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
        return np.repeat(grey[:, :, None], 3, axis=2)
    return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)


def face_crop(
    image_bgr: np.ndarray,
    cfg: PreprocessConfig,
    landmarks: np.ndarray | None = None,
    crop_fraction: float | None = None,
) -> np.ndarray:
    """Aligned uint8 crop (S, S, 3) in the model's colour mode.

    With ``landmarks`` (5x2, image pixels) the face is aligned to the template;
    without them the image is treated as an already-cropped face and the central
    ``crop_fraction`` (default ``cfg.crop_fraction``) is kept.
    """
    if landmarks is not None:
        crop = align_face(image_bgr, np.asarray(landmarks), cfg.input_size, cfg.template_array)
    else:
        fraction = cfg.crop_fraction if crop_fraction is None else crop_fraction
        crop = center_crop_face(image_bgr, cfg.input_size, fraction)
    return to_model_colour(crop, cfg.colour)


def normalize(crops: np.ndarray | Iterable[np.ndarray], cfg: PreprocessConfig) -> np.ndarray:
    """uint8 crops (S,S,3) or (N,S,S,3) -> float32 batch in ``cfg.layout``, (x - mean) / std."""
    batch = np.asarray(crops if isinstance(crops, np.ndarray) else np.stack(list(crops)))
    if batch.ndim == 3:
        batch = batch[None]
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"expected crops of shape (N, S, S, 3), got {batch.shape}")
    mean = np.asarray(cfg.mean, dtype=np.float32)
    scale = 1.0 / np.asarray(cfg.std, dtype=np.float32)
    out = (batch.astype(np.float32) - mean) * scale
    if cfg.layout == "NCHW":
        out = out.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(out)
