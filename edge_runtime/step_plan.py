"""Where and when each step of a session happens: a target oval per step and a random rest before each prompt.

A recorded genuine session (a replay) knows the order of the expressions only by luck (1 / orders); it
cannot know where this session asks the face to be, nor when it shows each prompt. So every step carries a
target oval in normalised frame coordinates: each neutral step draws one from a grid with :mod:`secrets`
per session (never the previous one's cell: the face moves before every prompt) and the expression step
after it keeps it (the expression is judged against the rest held at the same place, under the same
light), and each neutral step holds the face at rest for a random time before the next prompt.

Position rule (:class:`PositionRule`): a frame is *in place* when the tracked face's box centre lies
within ``tolerance`` of the target centre, in units of the oval's radii (an ellipse test), and the box
width over the oval width is in [``min_size``, ``max_size``]. The oval's size is fixed: the default
(0.26 of the width by 0.44 of the height) is filled by a face at a normal arm's length from a laptop or
phone camera (a face box about 0.2 of a 640x480 frame's width).

Timing rule (:class:`TimingRule`): the neutral hold before each prompt is drawn from
[``hold_min_s``, ``hold_max_s``] on a ``hold_step_s`` grid; an expression shown less than
``min_reaction_s`` after its prompt rose before the person could have seen it (EARLY_RESPONSE). The
bound, 0.15 s, lies under the fastest simple visual reaction times people show (means 0.19-0.25 s,
e.g. Woods et al. 2015, "Factors influencing the latency of simple reaction time", Front. Hum.
Neurosci. 9:131) and over the 0.1 s that athletics treats as a false start (World Athletics
Competition Rules, 16.6: a reaction under 0.100 s after the gun is a false start).
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .errors import FaceLiveError

CELLS_X: tuple[float, ...] = (0.3, 0.5, 0.7)  # target centres, fractions of the frame width ...
CELLS_Y: tuple[float, ...] = (0.36, 0.5, 0.64)  # ... and height
RADIUS_X, RADIUS_Y = 0.13, 0.22  # the oval's half-width and half-height, fractions of the frame's
POSITION_TOLERANCE = 0.3  # box centre within 0.3 of the radii of the target centre (about +-25 px at 640x480)
SIZE_RANGE = (0.6, 1.3)  # face box width / oval width
HOLD_RANGE_S = (0.6, 2.0)  # the random rest before each prompt
HOLD_STEP_S = 0.1  # its grid: one frame at 10 fps
MIN_REACTION_S = 0.15  # an expression sooner than this after its prompt is EARLY_RESPONSE


class PlanError(FaceLiveError, ValueError):
    """A position or timing parameter the session cannot use; the message names the field."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise PlanError(message)


@dataclass(frozen=True)
class Target:
    """An oval in normalised frame coordinates: centre (cx, cy) and radii (rx, ry) as fractions of the
    frame's width and height."""

    cx: float
    cy: float
    rx: float = RADIUS_X
    ry: float = RADIUS_Y

    def to_dict(self) -> dict[str, float]:
        return {"cx": self.cx, "cy": self.cy, "rx": self.rx, "ry": self.ry}

    def offset(self, box: Sequence[float], frame_hw: tuple[int, int]) -> float:
        """How far the box's centre is from the target centre, in units of the radii (0 = centred)."""
        h, w = frame_hw
        x, y = (box[0] + box[2] / 2) / w, (box[1] + box[3] / 2) / h
        return math.hypot((x - self.cx) / self.rx, (y - self.cy) / self.ry)

    def size(self, box: Sequence[float], frame_hw: tuple[int, int]) -> float:
        """The box width over the oval's width."""
        return float(box[2]) / (2 * self.rx * frame_hw[1])


@dataclass(frozen=True)
class PositionRule:
    """The target grid, the oval's size and how closely the face must sit in it."""

    cells_x: tuple[float, ...] = CELLS_X
    cells_y: tuple[float, ...] = CELLS_Y
    radius_x: float = RADIUS_X
    radius_y: float = RADIUS_Y
    tolerance: float = POSITION_TOLERANCE
    min_size: float = SIZE_RANGE[0]
    max_size: float = SIZE_RANGE[1]

    def __post_init__(self) -> None:
        object.__setattr__(self, "cells_x", tuple(float(v) for v in self.cells_x))
        object.__setattr__(self, "cells_y", tuple(float(v) for v in self.cells_y))
        _check(self.radius_x > 0 and self.radius_y > 0,
               f"positions.radius_x / radius_y: the oval needs a size > 0, got {self.radius_x} x {self.radius_y}")
        _check(len(self.cells) >= 2, "positions.cells_x / cells_y: at least two target cells are needed")
        for name, cells, r in (("cells_x", self.cells_x, self.radius_x), ("cells_y", self.cells_y, self.radius_y)):
            for c in cells:
                _check(r <= c <= 1 - r, f"positions.{name}: a target centred at {c} with radius {r} is outside "
                                        f"the frame (the oval must lie within 0..1)")
            _check(len(set(cells)) == len(cells), f"positions.{name}: repeated centre in {cells}")
        _check(0 < self.tolerance <= 1, f"positions.tolerance must be in (0, 1] (of the radii), got {self.tolerance}")
        _check(0 < self.min_size <= self.max_size,
               f"positions.min_size / max_size: need 0 < min <= max, got {self.min_size} > {self.max_size}"
               if self.min_size > self.max_size else f"positions.min_size must be > 0, got {self.min_size}")

    @property
    def cells(self) -> list[tuple[float, float]]:
        return [(x, y) for y in self.cells_y for x in self.cells_x]

    def target(self, cell: int) -> Target:
        x, y = self.cells[cell]
        return Target(x, y, self.radius_x, self.radius_y)

    def miss(self, target: Target, box: Sequence[float], frame_hw: tuple[int, int]) -> str | None:
        """Why the face box is not in the target (None: it is)."""
        off, size = target.offset(box, frame_hw), target.size(box, frame_hw)
        if off > self.tolerance:
            return f"the face centre is {off:.2f} radii from the target's (tolerance {self.tolerance:g})"
        if not self.min_size <= size <= self.max_size:
            return (f"the face fills {size:.2f} of the oval's width (range {self.min_size:g}-{self.max_size:g}): "
                    f"move {'closer' if size < self.min_size else 'back'}")
        return None

    def sequences(self, draws: int) -> int:
        """How many target sequences :func:`draw_plan` can draw with ``draws`` neutral steps."""
        n = len(self.cells)
        return n * (n - 1) ** (draws - 1) if draws else 1

    def to_dict(self) -> dict[str, Any]:
        return {"cells_x": list(self.cells_x), "cells_y": list(self.cells_y), "radius_x": self.radius_x,
                "radius_y": self.radius_y, "tolerance": self.tolerance, "min_size": self.min_size,
                "max_size": self.max_size}


@dataclass(frozen=True)
class TimingRule:
    """The random rest before each prompt and the fastest allowed response."""

    hold_min_s: float = HOLD_RANGE_S[0]
    hold_max_s: float = HOLD_RANGE_S[1]
    hold_step_s: float = HOLD_STEP_S
    min_reaction_s: float = MIN_REACTION_S

    def __post_init__(self) -> None:
        _check(self.hold_min_s >= 0, f"timing.hold_min_s must be >= 0 s, got {self.hold_min_s}")
        _check(self.hold_min_s <= self.hold_max_s,
               f"timing.hold_min_s / hold_max_s: min {self.hold_min_s} s > max {self.hold_max_s} s")
        _check(self.hold_step_s > 0, f"timing.hold_step_s must be > 0 s, got {self.hold_step_s}")
        _check(self.min_reaction_s >= 0, f"timing.min_reaction_s must be >= 0 s, got {self.min_reaction_s}")

    @property
    def buckets(self) -> int:
        """How many distinct holds one neutral step can draw."""
        return int(round((self.hold_max_s - self.hold_min_s) / self.hold_step_s)) + 1

    def hold(self, bucket: int) -> float:
        return round(min(self.hold_max_s, self.hold_min_s + bucket * self.hold_step_s), 4)

    def to_dict(self) -> dict[str, float]:
        return {"hold_min_s": self.hold_min_s, "hold_max_s": self.hold_max_s, "hold_step_s": self.hold_step_s,
                "min_reaction_s": self.min_reaction_s}


@dataclass(frozen=True)
class StepPlan:
    """Each step's target (None: positions off) and each step's rest before the next prompt (0 at expression
    steps; None: timing off)."""

    targets: tuple[Target | None, ...] = ()
    holds: tuple[float | None, ...] = ()

    def target(self, step: int) -> Target | None:
        return self.targets[step] if step < len(self.targets) else None

    def hold(self, step: int) -> float | None:
        return self.holds[step] if step < len(self.holds) else None

    def to_dict(self) -> dict[str, Any]:
        """JSON: ``{"targets": [Target.to_dict() | None, ...], "holds": [s | None, ...]}``; :meth:`from_dict`
        rebuilds the very same plan (a server's admin read, an offline replay of a served session)."""
        return {"targets": [None if t is None else t.to_dict() for t in self.targets], "holds": list(self.holds)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StepPlan":
        """The plan :meth:`to_dict` wrote; PlanError naming what is malformed."""
        try:
            targets = tuple(None if t is None else Target(float(t["cx"]), float(t["cy"]), float(t["rx"]), float(t["ry"]))
                            for t in d.get("targets", ()))
            holds = tuple(None if h is None else float(h) for h in d.get("holds", ()))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise PlanError(f"not a step plan (targets: [{{cx, cy, rx, ry}} | null], holds: [s | null]): {exc!r}") from exc
        return cls(targets, holds)


@dataclass
class _Draw:
    """A source of random integers: :mod:`secrets` (the default), or a seeded generator for tests."""

    rng: np.random.Generator | None = None

    def below(self, n: int) -> int:
        return secrets.randbelow(n) if self.rng is None else int(self.rng.integers(n))


def draw_plan(labels: Sequence[str], positions: PositionRule | None, timing: TimingRule | None,
              seed: int | Sequence[int] | None = None, neutral: str = "neutral") -> StepPlan:
    """A target per neutral step (never the previous one's cell), kept by the expression step after it, and a
    rest per neutral step, from :mod:`secrets` (or seeded, for tests and evaluation)."""
    key = None if seed is None else [*(seed if isinstance(seed, (tuple, list)) else (seed,)), 7]
    draw = _Draw(None if key is None else np.random.default_rng([int(k) for k in key]))
    targets: list[Target | None] = []
    previous = -1
    for label in labels:
        if positions is None:
            targets.append(None)
            continue
        if label != neutral and targets:
            targets.append(targets[-1])
            continue
        n = len(positions.cells)
        cell = draw.below(n - 1) if previous >= 0 else draw.below(n)
        if previous >= 0 and cell >= previous:
            cell += 1  # any cell but the previous one, uniformly
        targets.append(positions.target(cell))
        previous = cell
    holds = tuple(None if timing is None else (timing.hold(draw.below(timing.buckets)) if label == neutral else 0.0)
                  for label in labels)
    return StepPlan(tuple(targets), holds)


def distinct_challenges(orders: int, positions: PositionRule | None, timing: TimingRule | None,
                        neutral_steps: int) -> int:
    """Distinct (order x position x timing-bucket) challenges: orders times target sequences times holds."""
    cells = positions.sequences(neutral_steps) if positions is not None else 1
    holds = timing.buckets ** neutral_steps if timing is not None else 1
    return orders * cells * holds


def describe(positions: PositionRule | None, timing: TimingRule | None) -> str:
    """The session's position and timing parameters in one line each (``facelive inspect``)."""
    if positions is None:
        where = "positions  off (the face may be anywhere)"
    else:
        where = (f"positions  a target oval per step on a {len(positions.cells_x)}x{len(positions.cells_y)} grid "
                 f"(centres x {', '.join(f'{v:g}' for v in positions.cells_x)}; y "
                 f"{', '.join(f'{v:g}' for v in positions.cells_y)}), radii {positions.radius_x:g} x "
                 f"{positions.radius_y:g} of the frame, centre within {positions.tolerance:g} of the radii, face "
                 f"width {positions.min_size:g}-{positions.max_size:g} of the oval's")
    if timing is None:
        when = "timing     off (no random rest, no reaction bound)"
    else:
        when = (f"timing     rest {timing.hold_min_s:g}-{timing.hold_max_s:g} s before each prompt (step "
                f"{timing.hold_step_s:g} s), EARLY_RESPONSE under {timing.min_reaction_s:g} s after it")
    return f"{where}\n{when}"
