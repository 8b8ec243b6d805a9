"""Expressions judged against the person's own face at rest, not a global floor.

A global rule ("the asked class is the top one and reaches p >= 0.3") cannot
know what a given face looks like at rest: a person whose face at rest reads
0.94 "happy" fails every neutral step, and one whose smile reads 0.25 never
passes a happy step. So the session's neutral frames record the person's own
expression profile at rest (the mean log-odds of each challenge expression
over the frames that held the neutral steps), and a challenge expression is
SHOWN on a frame when

- its log-odds rose by at least ``margin`` over that rest profile, and
- it rose more than any other of the challenge's expressions (it beats
  them relative to the same face at rest: a surprised face that the
  classifier also reads a little happier than at rest still shows surprise).

Log-odds, not probabilities: they do not saturate, so a rise from 0.94 to
0.99 (+1.8) counts like one from 0.05 to 0.25 (+1.8), whatever the person's
rest face. The margin is calibrated at a stated rate of "a face at rest shows
an expression" (``facelive-bench attacks`` measures it leave-one-subject-out
on pairs of neutral images of the other people).

Security follows from what a rise needs: a photo at rest never rises (only
sensor noise moves it); a photo frozen on an expression records that
expression as its rest profile at the first neutral step and then never rises
above it, so it fails the first expression step. The first neutral step has
no profile yet: it holds while the face is steady (no challenge expression
rises by the margin over the running mean of the frames held so far).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .labels import EXPRESSION_LABELS

DEFAULT_MARGIN = 1.5  # log-odds; an uncalibrated default (the attack suite calibrates its own)
_EPS = 1e-6


def log_odds(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), with p clipped to [1e-6, 1 - 1e-6]."""
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(q / (1 - q))


class ExpressionBaseline:
    """The rest profile of one session and the 'shown' rule against it."""

    def __init__(self, challenge: Sequence[str], margin: float = DEFAULT_MARGIN) -> None:
        if margin <= 0:
            raise ValueError(f"the expression margin must be > 0 (log-odds), got {margin}")
        self.labels = tuple(dict.fromkeys(challenge))
        self._idx = np.array([EXPRESSION_LABELS.index(e) for e in self.labels])
        self.margin = float(margin)
        self._sum: np.ndarray | None = None
        self.frames = 0

    @property
    def ready(self) -> bool:
        return self._sum is not None

    def add_rest(self, probs: np.ndarray) -> None:
        """Add one frame at rest (a frame that held a neutral step) to the profile."""
        lo = log_odds(np.asarray(probs)[self._idx])
        self._sum = lo if self._sum is None else self._sum + lo
        self.frames += 1

    def rest_log_odds(self) -> np.ndarray:
        """The profile: mean log-odds of each challenge expression at rest."""
        if self._sum is None:
            raise ValueError("no rest frame yet")
        return self._sum / self.frames

    def rises(self, probs: np.ndarray, reference: np.ndarray | None = None) -> dict[str, float]:
        """Each challenge expression's log-odds rise over the profile (or over ``reference`` log-odds)."""
        ref = self.rest_log_odds() if reference is None else reference
        lo = log_odds(np.asarray(probs)[self._idx])
        return {label: float(v) for label, v in zip(self.labels, lo - ref)}

    def shown(self, probs: np.ndarray, reference: np.ndarray | None = None) -> str | None:
        """The challenge expression shown on this frame (rose by the margin AND more than the others), else None."""
        rises = self.rises(probs, reference)
        values = np.array([rises[label] for label in self.labels])
        top = int(np.argmax(values))
        if np.sum(values == values[top]) > 1:  # a tie beats nobody
            return None
        return self.labels[top] if values[top] >= self.margin else None

    def reference_of(self, frames: Sequence[np.ndarray]) -> np.ndarray | None:
        """Mean log-odds of the challenge expressions over ``frames`` (None when empty)."""
        if not frames:
            return None
        return np.mean([log_odds(np.asarray(p)[self._idx]) for p in frames], axis=0)

    def profile(self) -> dict[str, float] | None:
        """The rest profile as probabilities per challenge expression (None before any rest frame)."""
        if self._sum is None:
            return None
        return {label: round(float(1 / (1 + np.exp(-v))), 4) for label, v in zip(self.labels, self.rest_log_odds())}

