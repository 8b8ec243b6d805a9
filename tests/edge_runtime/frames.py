"""Camera-like frames made from real face photos, for scripted sessions."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from facelivenet.edge_runtime.imageio import read_image
from facelivenet.edge_runtime.sources import Frame

CANVAS = (480, 640)  # height, width: a VGA camera frame


def on_canvas(photos: Sequence[np.ndarray], offsets: Sequence[tuple[int, int]], grey: int = 90) -> np.ndarray:
    """Paste photos onto a VGA canvas at (x, y) offsets."""
    canvas = np.full((*CANVAS, 3), grey, np.uint8)
    for photo, (x, y) in zip(photos, offsets):
        h, w = photo.shape[:2]
        canvas[y:y + h, x:x + w] = photo
    return canvas


def scripted(paths: Sequence[Path], fps: float = 10.0, seed: int = 0, x: int = 192, y: int = 112,
             jitter: int = 0) -> list[Frame]:
    """One frame per path at (x, y), optionally moved by up to ``jitter`` px (a hand-held camera).

    Tests of the session logic keep ``jitter=0``: the shipped model's answers flip under 1-2 px shifts
    on some JAFFE images, and a test of the rules must not depend on that.
    """
    rng = np.random.default_rng(seed)
    cache: dict[Path, np.ndarray] = {}
    frames = []
    for i, path in enumerate(paths):
        photo = cache.setdefault(path, read_image(path))
        dx, dy = rng.integers(-jitter, jitter + 1, size=2)
        frames.append(Frame(i, i / fps, on_canvas([photo], [(x + int(dx), y + int(dy))]), str(path)))
    return frames
