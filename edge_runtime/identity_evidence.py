"""Identity as the evidence of the whole session, not its worst frame.

A per-frame rule ("every frame's score vs the template must reach the
threshold") turns per-frame noise into rejections, and the noise compounds
with the number of frames: at a 5 % per-frame miss rate thirty frames pass
21 % of the time. Expression frames are the hard comparison (a smiling face
against a neutral template), yet they are most of a session. So identity is
decided from three pieces of evidence, each answering one question with the
comparison that answers it best:

1. **Aggregate** (who is it?): the enrolled-identity score of the session's
   face at rest (the frames that held its neutral steps), as ONE normalised
   mean embedding against the template.
   Neutral against a neutral template is the easy comparison, and averaging
   the frames cancels per-frame noise (jitter, sensor noise) instead of
   letting its worst case decide. Judged once, when every step has passed.
2. **Continuity** (is it still the same face?): every frame's embedding
   against the normalised mean of the session's own previous ``window``
   analysed frames. A real face changes smoothly from frame to frame while it
   changes expression; another person put in its place (a stage swap at the
   same place in the frame, which the box tracker cannot see) changes it at
   once. Comparing with the session's own recent frames, not the template,
   means the same camera, light and moment on both sides. The default window
   is the previous analysed frame: a mean of 3 or 6 frames lags behind a face
   that is changing expression, and on the attack suite's sessions (40 per
   type, the shipped embedding and dlib's) it separated swaps from genuine
   changes no better than the previous frame alone.
3. **Floor** (is it grossly someone else?): every frame's score against the
   template, with a low threshold that only catches gross mismatches, so an
   attacker cannot use the expression steps (where the aggregate does not
   look) to show any face at all.

Each threshold is a cosine; the session passes identity only when all three
hold. Where they come from: callers calibrate them at a stated FAR on data
disjoint from what they report (``facelive-bench attacks`` does it
leave-one-subject-out); :func:`default_rule` derives a rule from a single
verification threshold when nothing better is known (stated there).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_FLOOR_GAP = 0.3  # default floor = verification threshold - this (an uncalibrated rule, see default_rule)
DEFAULT_WINDOW = 1  # previous analysed frames the continuity check compares with (see the module docstring)


@dataclass(frozen=True)
class IdentityRule:
    """The three identity thresholds (cosines) and the continuity window."""

    aggregate: float  # neutral frames' mean embedding vs template
    floor: float  # every frame vs template
    continuity: float  # every frame vs the mean of the previous ``window`` frames
    window: int = DEFAULT_WINDOW

    def __post_init__(self) -> None:
        for name in ("aggregate", "floor", "continuity"):
            value = getattr(self, name)
            if not -1.0 <= value <= 1.0:
                raise ValueError(f"identity {name} threshold must be a cosine in [-1, 1], got {value}")
        if self.window < 1:
            raise ValueError(f"the continuity window must be >= 1 frame, got {self.window}")


def default_rule(verification_threshold: float, floor: float | None = None, continuity: float | None = None,
                 window: int = DEFAULT_WINDOW) -> IdentityRule:
    """A rule from one verification threshold: aggregate = it; floor = it - DEFAULT_FLOOR_GAP; continuity = it.

    The aggregate is the comparison the verification threshold is calibrated for (a
    neutral face against a neutral template). Consecutive frames of one face are an
    easier same-person comparison than that, so the same threshold is a conservative
    continuity default. The floor gap is a rule, not a calibration: calibrate all three
    on your own data where you can.
    """
    return IdentityRule(
        aggregate=verification_threshold,
        floor=floor if floor is not None else max(-1.0, verification_threshold - DEFAULT_FLOOR_GAP),
        continuity=continuity if continuity is not None else verification_threshold,
        window=window,
    )


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to unit length (a zero vector stays zero)."""
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


@dataclass
class IdentityEvidence:
    """Accumulates one session's identity evidence frame by frame."""

    template: np.ndarray
    rule: IdentityRule
    scores: list[float] = field(default_factory=list)  # every analysed frame vs template
    continuity: list[float] = field(default_factory=list)  # every frame after the first vs its window
    _recent: list[np.ndarray] = field(default_factory=list)
    _neutral_sum: np.ndarray | None = None
    neutral_frames: int = 0

    def check_dimension(self, embedding: np.ndarray) -> str | None:
        """A message when the embedding cannot be compared with the template (another model), else None."""
        if self.template.ndim != 1 or embedding.shape != self.template.shape:
            return (f"the template ({self.template.shape}) and the model's embedding ({embedding.shape}) "
                    f"do not match: the template was made by another model")
        return None

    def frame(self, embedding: np.ndarray) -> str | None:
        """Record one analysed frame; a message when the floor or the continuity fails, else None."""
        e = np.asarray(embedding, dtype=np.float32)
        score = float(np.dot(e, self.template))
        self.scores.append(score)
        failure = None
        if self._recent:
            c = float(np.dot(e, unit(np.sum(self._recent, axis=0))))
            self.continuity.append(c)
            if c < self.rule.continuity:
                failure = (f"the face changed between frames: continuity {c:.3f} < {self.rule.continuity:.3f} "
                           f"(vs the previous {len(self._recent)} frame(s))")
        if failure is None and score < self.rule.floor:
            failure = f"identity score {score:.3f} < floor {self.rule.floor:.3f}"
        self._recent = (self._recent + [e])[-self.rule.window:]
        return failure

    def add_rest(self, embedding: np.ndarray) -> None:
        """Add one frame at rest (a frame that held a neutral step) to the aggregate."""
        e = np.asarray(embedding, dtype=np.float32)
        self._neutral_sum = e.copy() if self._neutral_sum is None else self._neutral_sum + e
        self.neutral_frames += 1

    @property
    def aggregate(self) -> float | None:
        """The neutral frames' normalised mean embedding vs the template (None before any neutral frame)."""
        if self._neutral_sum is None:
            return None
        return float(np.dot(unit(self._neutral_sum), self.template))

    def final(self) -> str | None:
        """A message when the aggregate fails (or there was no neutral frame), else None."""
        agg = self.aggregate
        if agg is None:
            return "no neutral frame was analysed: the identity aggregate has no evidence"
        if agg < self.rule.aggregate:
            return f"identity aggregate {agg:.3f} < threshold {self.rule.aggregate:.3f} over {self.neutral_frames} neutral frame(s)"
        return None

    def to_dict(self) -> dict:
        """The evidence, for JSON (exact floats: a caller may re-derive decisions from them)."""
        def r(v):
            return None if v is None else float(v)
        return {
            "aggregate": r(self.aggregate), "aggregate_threshold": r(self.rule.aggregate),
            "neutral_frames": self.neutral_frames,
            "min_continuity": r(min(self.continuity)) if self.continuity else None,
            "continuity_threshold": r(self.rule.continuity), "continuity_window": self.rule.window,
            "min_score": r(min(self.scores)) if self.scores else None, "floor_threshold": r(self.rule.floor),
        }
