"""The challenge: which expressions to perform, in which order, with neutral before each.

Drawn at random (never predictable by the person in front of the camera) from a
configurable set, without the same expression twice in a row. The number of
distinct orders bounds how often a recorded genuine session, replayed blindly,
matches the drawn challenge: 1 / :func:`distinct_orders`. Longer challenges or
larger sets raise it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .constants import DEFAULT_CHALLENGE
from .labels import EXPRESSION_LABELS, canonical_label

NEUTRAL = "neutral"
DEFAULT_EXPRESSIONS = DEFAULT_CHALLENGE  # the paper's two most reliable expressions
MAX_STEPS = 16  # longer challenges exhaust people long before they exhaust attackers


@dataclass(frozen=True)
class ChallengeConfig:
    expressions: tuple[str, ...] = DEFAULT_EXPRESSIONS
    length: int = 0  # expression steps per challenge; 0 = one per expression in the set

    def __post_init__(self) -> None:
        labels = tuple(parse_expressions(self.expressions))
        object.__setattr__(self, "expressions", labels)
        if not 0 <= self.length <= MAX_STEPS:
            raise ValueError(f"challenge length must be in [0, {MAX_STEPS}], got {self.length}")

    @property
    def steps(self) -> int:
        return self.length or len(self.expressions)


def parse_expressions(names) -> list[str]:
    """Canonical, distinct, non-neutral expression names; ValueError naming a bad one."""
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    out: list[str] = []
    for name in names:
        label = canonical_label(str(name))
        if label is None:
            raise ValueError(f"unknown expression {name!r}; choose from {', '.join(EXPRESSION_LABELS[1:])}")
        if label == NEUTRAL:
            raise ValueError("neutral is not a challenge expression (it comes before each one by itself)")
        if label not in out:
            out.append(label)
    if not out:
        raise ValueError("the challenge set needs at least one expression")
    return out


def distinct_orders(cfg: ChallengeConfig) -> int:
    """How many different challenges :func:`draw_challenge` can produce."""
    k = len(cfg.expressions)
    if k == 1:
        return 1
    return k * (k - 1) ** (cfg.steps - 1)


def draw_challenge(cfg: ChallengeConfig, rng: np.random.Generator) -> tuple[str, ...]:
    """A random expression sequence of ``cfg.steps`` steps, never the same expression twice in a row."""
    seq: list[str] = []
    for _ in range(cfg.steps):
        choices = [e for e in cfg.expressions if not seq or e != seq[-1]] or list(cfg.expressions)
        seq.append(choices[int(rng.integers(len(choices)))])
    return tuple(seq)


def fixed_challenge(cfg: ChallengeConfig) -> tuple[str, ...]:
    """The set in its given order, cycled to ``cfg.steps`` steps (for tests and evaluation only)."""
    return tuple(cfg.expressions[i % len(cfg.expressions)] for i in range(cfg.steps))


def with_neutral_steps(expressions: tuple[str, ...]) -> tuple[str, ...]:
    """neutral -> e1 -> neutral -> e2 ...: a photo frozen on one expression can never pass."""
    steps: list[str] = []
    for e in expressions:
        steps += [NEUTRAL, e]
    return tuple(steps)
