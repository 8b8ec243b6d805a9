"""Is this the same face as in the previous frame? Box overlap and landmark continuity.

A session must follow ONE face from its first frame to its last: a face that
jumps (a swapped photo, a second person stepping in where the first one was)
breaks the track. Continuity holds when the boxes overlap enough (IoU) AND the
landmarks moved less than a fraction of the face's size, both measured against
the last frame where the face was seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .detection import Face


@dataclass(frozen=True)
class TrackerConfig:
    min_iou: float = 0.3
    max_landmark_shift: float = 0.5  # mean landmark displacement / the previous box's shorter side


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def landmark_shift(prev: Face, cur: Face) -> float:
    """Mean landmark displacement between two faces, relative to the previous face's size."""
    shift = np.linalg.norm(np.asarray(cur.landmarks) - np.asarray(prev.landmarks), axis=1).mean()
    return float(shift / max(prev.size, 1.0))


class FaceTracker:
    """Follows one face across frames; ``update`` says whether the new face continues the track."""

    def __init__(self, cfg: TrackerConfig = TrackerConfig()) -> None:
        self.cfg = cfg
        self.last: Face | None = None
        self.track_id = 0
        self.breaks = 0

    def reset(self) -> None:
        self.last = None
        self.track_id = 0
        self.breaks = 0

    def continues(self, face: Face) -> bool:
        """True when ``face`` is the tracked face moved a plausible amount (or there is no track yet)."""
        if self.last is None:
            return True
        return (box_iou(self.last.box, face.box) >= self.cfg.min_iou
                and landmark_shift(self.last, face) <= self.cfg.max_landmark_shift)

    def update(self, face: Face) -> bool:
        """Record ``face`` as the latest; returns False (and starts a new track) on a jump."""
        ok = self.continues(face)
        if self.last is None:
            self.track_id = 1
        elif not ok:
            self.track_id += 1
            self.breaks += 1
        self.last = face
        return ok
