"""Camera-like frames from still face images: placement on a 640x480 canvas, jitter, a second face.

A frame is described by a hashable :class:`FrameSpec` (which images, where,
which jitter kind and variant) and rendered deterministically from it, so the
same spec always gives the same pixels (and the detector and model caches of
:mod:`memo` hit). Jitter kinds:

- ``none``: the image as it is (enrollment and calibration stills);
- ``live``: a person in front of a camera: sub-pixel shifts (<= 1.5 px),
  scale +-2 %, roll +-1 deg, brightness gain +-7 % and offset +-6 grey levels,
  sensor noise sigma 1-3;
- ``photo``: a hand-held print or screen: shifts <= 4 px, scale +-8 %, roll
  +-3 deg, contrast 0.80-0.95, a lift of 0-15 grey levels, blur sigma
  0.4-1.4, noise sigma 2-5.

Each (kind, variant, layer) has its own seeded parameters; a session picks a
random variant per frame, so consecutive frames differ the way video frames do.
The face image is pasted with feathered edges onto a fixed textured background.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

import cv2
import numpy as np

from facelivenet.edge_runtime.imageio import read_image

CANVAS_HW = (480, 640)
JITTER_KINDS = ("none", "live", "photo")
NOISE_FIELDS = 4
FEATHER = 0.12  # fraction of the pasted image's side over which its edges fade into the background


@dataclass(frozen=True)
class Layer:
    """One face image placed with its centre at (cx, cy), scaled by ``scale``.

    With ``blend``, the pixels are ``(1 - mix) * image + mix * blend`` (a cross-fade between two
    stills of one person; JAFFE stills of a subject share the camera set-up, their eye centres
    vary by about 1 px, so they are cross-faded as they are).
    """

    image: str
    cx: float
    cy: float
    scale: float = 1.0
    blend: str | None = None
    mix: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.mix <= 1.0:
            raise ValueError(f"mix must be in [0, 1], got {self.mix}")

    def moved(self, dx: float, dy: float) -> "Layer":
        return replace(self, cx=self.cx + dx, cy=self.cy + dy)


@dataclass(frozen=True)
class FrameSpec:
    layers: tuple[Layer, ...]
    jitter: str = "none"
    variant: int = 0


@dataclass(frozen=True)
class Placement:
    cx: float = 250.0
    cy: float = 240.0
    scale: float = 1.0

    def layer(self, image: str) -> Layer:
        return Layer(image, self.cx, self.cy, self.scale)


BASE = Placement()  # where the user's face sits in every single-face frame
BYSTANDER = Placement(cx=505.0, cy=250.0, scale=0.95)  # a second face beside the user's
JUMPS = ((230.0, 0.0), (190.0, -90.0), (170.0, 95.0))  # teleports, each well over a face width (~130 px)


@dataclass(frozen=True)
class Jitter:
    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0
    angle: float = 0.0
    gain: float = 1.0
    offset: float = 0.0
    noise: float = 0.0
    blur: float = 0.0


def jitter_params(kind: str, variant: int, layer: int = 0) -> Jitter:
    """The seeded jitter of one (kind, variant, layer); ``none`` is the identity."""
    if kind not in JITTER_KINDS:
        raise ValueError(f"unknown jitter kind {kind!r}; choose from {', '.join(JITTER_KINDS)}")
    if kind == "none":
        return Jitter()
    r = np.random.default_rng([JITTER_KINDS.index(kind), int(variant), int(layer)])
    if kind == "live":
        return Jitter(dx=r.uniform(-1.5, 1.5), dy=r.uniform(-1.5, 1.5), scale=1 + r.uniform(-0.02, 0.02),
                      angle=r.uniform(-1, 1), gain=r.uniform(0.93, 1.07), offset=r.uniform(-6, 6),
                      noise=r.uniform(1, 3))
    return Jitter(dx=r.uniform(-4, 4), dy=r.uniform(-4, 4), scale=1 + r.uniform(-0.08, 0.08), angle=r.uniform(-3, 3),
                  gain=r.uniform(0.80, 0.95), offset=r.uniform(0, 15), noise=r.uniform(2, 5), blur=r.uniform(0.4, 1.4))


def _background(hw: tuple[int, int], seed: int) -> np.ndarray:
    """A static room: a soft vertical gradient with low-frequency texture, BGR float32."""
    h, w = hw
    r = np.random.default_rng(seed)
    texture = cv2.resize(r.normal(0, 12, (h // 32, w // 32)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    grey = np.linspace(150, 95, h, dtype=np.float32)[:, None] + texture
    tint = np.array([1.0, 0.97, 0.92], np.float32)
    return np.clip(grey[:, :, None] * tint, 0, 255)


def _feather_mask(h: int, w: int) -> np.ndarray:
    """1 inside, fading to 0 at the edges over FEATHER of the side."""
    def ramp(n: int) -> np.ndarray:
        k = max(1, int(n * FEATHER))
        x = np.minimum(np.arange(n), np.arange(n)[::-1]).astype(np.float32)
        return np.clip(x / k, 0, 1)

    m = ramp(h)[:, None] * ramp(w)[None, :]
    return (m * m * (3 - 2 * m)).astype(np.float32)  # smoothstep


class Renderer:
    """Renders :class:`FrameSpec` objects to BGR uint8 frames; the last ``cache_frames`` are kept.

    The same spec returns the very same array object while it is cached (callers
    must not modify frames).
    """

    def __init__(self, canvas_hw: tuple[int, int] = CANVAS_HW, cache_frames: int = 384, seed: int = 0) -> None:
        self.canvas_hw = canvas_hw
        self._bg = _background(canvas_hw, seed)
        r = np.random.default_rng(seed + 1)
        self._noise = [r.standard_normal(canvas_hw).astype(np.float32) for _ in range(NOISE_FIELDS)]
        self._images: dict[str, np.ndarray] = {}
        self._masks: dict[tuple[int, int], np.ndarray] = {}
        self._frames: OrderedDict[FrameSpec, np.ndarray] = OrderedDict()
        self.cache_frames = cache_frames
        self.rendered = 0

    def image(self, path: str) -> np.ndarray:
        """The source image (BGR uint8), read once."""
        if path not in self._images:
            self._images[path] = read_image(path)
        return self._images[path]

    def source(self, layer: Layer) -> np.ndarray:
        """The layer's face pixels (float32 BGR): its image, or its cross-fade with ``blend``."""
        src = self.image(layer.image).astype(np.float32)
        if layer.blend is None or layer.mix == 0.0:
            return src
        other = self.image(layer.blend).astype(np.float32)
        if other.shape != src.shape:
            other = cv2.resize(other, (src.shape[1], src.shape[0]), interpolation=cv2.INTER_AREA)
        return (1.0 - layer.mix) * src + layer.mix * other

    def render(self, spec: FrameSpec) -> np.ndarray:
        """The frame of ``spec`` (cached)."""
        frame = self._frames.get(spec)
        if frame is not None:
            self._frames.move_to_end(spec)
            return frame
        frame = self._draw(spec)
        self._frames[spec] = frame
        if len(self._frames) > self.cache_frames:
            self._frames.popitem(last=False)
        return frame

    def _draw(self, spec: FrameSpec) -> np.ndarray:
        h, w = self.canvas_hw
        out = self._bg.copy()
        noise = 0.0
        for i, layer in enumerate(spec.layers):
            j = jitter_params(spec.jitter, spec.variant, i)
            src = self.source(layer) * j.gain + j.offset
            if j.blur > 0:
                src = cv2.GaussianBlur(src, (0, 0), j.blur)
            sh, sw = src.shape[:2]
            if (sh, sw) not in self._masks:
                self._masks[(sh, sw)] = _feather_mask(sh, sw)
            m = cv2.getRotationMatrix2D((sw / 2, sh / 2), j.angle, layer.scale * j.scale)
            m[:, 2] += (layer.cx + j.dx - sw / 2, layer.cy + j.dy - sh / 2)
            face = cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            alpha = cv2.warpAffine(self._masks[(sh, sw)], m, (w, h), flags=cv2.INTER_LINEAR)[:, :, None]
            out = out * (1 - alpha) + face * alpha
            noise = max(noise, j.noise)
        if noise > 0:
            out += (noise * self._noise[spec.variant % NOISE_FIELDS])[:, :, None]
        self.rendered += 1
        return np.clip(out, 0, 255).astype(np.uint8)
