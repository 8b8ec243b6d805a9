"""Who (or what) is in front of the camera: frame by frame, a :class:`FrameSpec` for the next frame.

An actor is asked for frame ``i`` with the expression the session asks for
right now (``None`` once it has decided) and the target oval it asks the face
to be in (``None``: positions off) and answers with a frame spec, or ``None``
when its source has run out (a replayed clip ends).

Whoever holds the face (a person, an attacker holding a photo) moves it to
each new target (:class:`Mover`): after a reaction of ``MOVE_REACTION``
frames it glides there at 16-26 px a frame (eased: a head's move of up to
~290 px takes about a second), aiming the face box (not the image) at the
target centre, as a person watching the oval does.

- :class:`Performer`: a live person following the prompts. At each new prompt
  they keep the previous face for a reaction time of 2-5 frames (0.2-0.5 s at
  10 fps: simple visual reaction times are ~0.2-0.25 s), then show
  the asked expression; they hold one take (one image) of it and, when the
  step does not pass, try another take every 1-2 s, as people do when the
  system does not react. Every frame gets a random ``live`` jitter variant.
  With ``transition_frames`` > 0 (the smooth session model, :data:`SMOOTH`),
  a change of face is not a cut: over that many frames the old and the new
  still cross-fade while the head makes a small nod (up to
  ``NOD_PX`` pixels down and back), as a face does between two expressions at
  10 fps. ``same_person(a, b)`` says which changes are a person's own (faded);
  the others stay cuts (a stage swap puts another person in place at once).
- :class:`Still`: one image held up (a photo), with ``photo`` jitter, moved to each target.
- :class:`Clip`: a recorded list of frames played as it is, whatever is asked.
- :class:`WithBystander` / :class:`WithJump`: another actor's frames with a
  second face added, or moved to another place, from a given frame on.
"""

from __future__ import annotations

import math
from typing import Callable, Protocol, Sequence

import numpy as np

from facelivenet.edge_runtime.challenge import NEUTRAL
from facelivenet.edge_runtime.step_plan import Target

from .render import BASE, BYSTANDER, CANVAS_HW, FrameSpec, Layer, Placement

ImagesFor = Callable[[str], Sequence[str]]
SamePerson = Callable[[str, str], bool]
TRANSITION_FRAMES = 4  # 0.4 s at 10 fps: a face's change between two expressions
NOD_PX = 2.0  # the head's small motion during a transition (down and back), pixels
SMOOTH = (f"smooth: each change of a person's own face is a {TRANSITION_FRAMES}-frame cross-fade of the two "
          f"stills with a nod of up to {NOD_PX:g} px; live jitter as before on the frames between transitions")
CUTS = "cuts: each change of face is a one-frame cut from one still to the next; live jitter on every frame"
FACE_BELOW_CENTRE_PX = 20.0  # a JAFFE face box's centre lies ~20 px below its image's (measured: 20.7 +- 3.3)
MOVE_REACTION = (2, 6)  # frames before the face starts to move to a new target
MOVE_SPEED = (16, 27)  # px per frame on average (eased: up to 1.5x that mid-move; the tracker allows ~65)


def aim(target: Target) -> tuple[float, float]:
    """Where the image centre goes so that the face box sits on the target centre (pixels)."""
    h, w = CANVAS_HW
    return target.cx * w, target.cy * h - FACE_BELOW_CENTRE_PX


class Mover:
    """Where a hand-held or live face is, frame by frame: it follows each new target after a reaction."""

    def __init__(self, start: Placement, rng: np.random.Generator) -> None:
        self.start, self.rng = start, rng
        self._from = self._goal = (start.cx, start.cy)
        self._target: Target | None = None
        self._begin, self._frames = 0, 1

    def at(self, i: int, target: Target | None) -> Placement:
        """The placement at frame ``i`` while ``target`` is asked (advances the state)."""
        if target is not None and target != self._target:
            self._from, self._target = self._position(i), target
            self._goal = aim(target)
            self._begin = i + int(self.rng.integers(*MOVE_REACTION))
            distance = math.dist(self._from, self._goal)
            self._frames = max(3, math.ceil(distance / int(self.rng.integers(*MOVE_SPEED))))
        x, y = self._position(i)
        return Placement(float(round(x)), float(round(y)), self.start.scale)

    def _position(self, i: int) -> tuple[float, float]:
        k = min(1.0, max(0.0, (i - self._begin + 1) / self._frames))
        e = k * k * (3 - 2 * k)  # smoothstep: starts and stops gently
        return (self._from[0] + e * (self._goal[0] - self._from[0]), self._from[1] + e * (self._goal[1] - self._from[1]))


def transition_layer(placement: Placement, old: str, new: str, k: int, frames: int) -> Layer:
    """Frame ``k`` (0-based) of a ``frames``-frame cross-fade from ``old`` to ``new``, with the nod."""
    mix = (k + 1) / (frames + 1)
    nod = round(NOD_PX * float(np.sin(np.pi * mix)))
    return Layer(old, placement.cx, placement.cy + nod, placement.scale, blend=new, mix=round(mix, 4))


class Actor(Protocol):
    def spec(self, i: int, expected: str | None, target: Target | None = None) -> FrameSpec | None:
        """The frame shown at index ``i`` while ``expected`` is asked in ``target`` (None: the source ended)."""
        ...


class Performer:
    """A person performing the prompts with the faces ``images_for(label)`` gives."""

    def __init__(self, images_for: ImagesFor, rng: np.random.Generator, variants: int,
                 placement: Placement = BASE, reaction: tuple[int, int] = (2, 6),
                 take_frames: tuple[int, int] = (10, 21), transition_frames: int = 0,
                 same_person: SamePerson | None = None) -> None:
        self.images_for, self.rng, self.variants = images_for, rng, variants
        self.placement, self.reaction, self.take_frames = placement, reaction, take_frames
        self.transition_frames = transition_frames
        self.same_person = same_person or (lambda a, b: True)
        self.mover = Mover(placement, rng)
        self._target = self._shown = NEUTRAL
        self._switch_at = 0
        self._take, self._take_until = self._new_take(NEUTRAL, 0)
        self._fade_from: str | None = None
        self._fade_at = 0

    def _new_take(self, label: str, i: int, previous: str | None = None) -> tuple[str, int]:
        options = list(self.images_for(label))
        if not options:
            raise ValueError(f"no image of {label!r} for this performer")
        if previous in options and len(options) > 1:
            options.remove(previous)
        return options[int(self.rng.integers(len(options)))], i + int(self.rng.integers(*self.take_frames))

    def _change_take(self, take: tuple[str, int], i: int) -> None:
        old = self._take
        self._take, self._take_until = take
        if self.transition_frames > 0 and old != self._take and self.same_person(old, self._take):
            self._fade_from, self._fade_at = old, i

    def label_at(self, i: int, expected: str | None) -> str:
        """The expression shown at frame ``i`` (advances the performer's state)."""
        if expected is not None and expected != self._target:
            self._target = expected
            self._switch_at = i + int(self.rng.integers(*self.reaction))
        if self._shown != self._target and i >= self._switch_at:
            self._shown = self._target
            self._change_take(self._new_take(self._shown, i), i)
        elif i >= self._take_until:
            self._change_take(self._new_take(self._shown, i, self._take), i)
        return self._shown

    def spec(self, i: int, expected: str | None, target: Target | None = None) -> FrameSpec:
        self.label_at(i, expected)
        placement = self.mover.at(i, target)
        variant = int(self.rng.integers(self.variants))
        k = i - self._fade_at
        if self._fade_from is not None and k < self.transition_frames:
            # a transition is the same frames whenever it recurs (its jitter follows k), so caches hit
            layer = transition_layer(placement, self._fade_from, self._take, k, self.transition_frames)
            return FrameSpec((layer,), "live", k % self.variants)
        return FrameSpec((placement.layer(self._take),), "live", variant)


class Still:
    """One image held in front of the camera (a printed photo or a phone screen)."""

    def __init__(self, image: str, rng: np.random.Generator, variants: int, placement: Placement = BASE,
                 jitter: str = "photo") -> None:
        self.image, self.rng, self.variants, self.jitter = image, rng, variants, jitter
        self.mover = Mover(placement, rng)

    def spec(self, i: int, expected: str | None, target: Target | None = None) -> FrameSpec:
        layer = self.mover.at(i, target).layer(self.image)
        return FrameSpec((layer,), self.jitter, int(self.rng.integers(self.variants)))


class Clip:
    """A recorded sequence of frames, played from its first frame to its last."""

    def __init__(self, frames: Sequence[FrameSpec]) -> None:
        self.frames = list(frames)

    def spec(self, i: int, expected: str | None, target: Target | None = None) -> FrameSpec | None:
        return self.frames[i] if i < len(self.frames) else None


def record(performer: Performer, labels: Sequence[str], durations: Sequence[int],
           targets: Sequence[Target | None] | None = None) -> list[FrameSpec]:
    """A performer following a fixed script (``labels[k]`` asked in ``targets[k]`` for ``durations[k]``
    frames)."""
    targets = list(targets) if targets is not None else [None] * len(labels)
    script = [(label, target) for label, target, n in zip(labels, targets, durations) for _ in range(n)]
    return [performer.spec(i, label, target) for i, (label, target) in enumerate(script)]


class WithBystander:
    """``actor``'s frames with a second face (``image``) beside the first from frame ``start`` on (on the
    side of the frame away from the first face)."""

    def __init__(self, actor: Actor, image: str, start: int, placement: Placement = BYSTANDER) -> None:
        self.actor, self.layer, self.start = actor, placement.layer(image), start

    def spec(self, i: int, expected: str | None, target: Target | None = None) -> FrameSpec | None:
        s = self.actor.spec(i, expected, target)
        if s is None or i < self.start:
            return s
        layer = self.layer
        if s.layers[0].cx > CANVAS_HW[1] / 2:  # mirrored to the other side
            layer = layer.moved(CANVAS_HW[1] - 2 * layer.cx, 0.0)
        return FrameSpec(s.layers + (layer,), s.jitter, s.variant)


class WithJump:
    """``actor``'s frames with the face moved by ``offset`` pixels from frame ``start`` on (a teleport; its
    horizontal direction towards the frame's centre, so the face stays in view)."""

    def __init__(self, actor: Actor, offset: tuple[float, float], start: int) -> None:
        self.actor, self.offset, self.start = actor, offset, start
        self._sign = 1.0

    def spec(self, i: int, expected: str | None, target: Target | None = None) -> FrameSpec | None:
        s = self.actor.spec(i, expected, target)
        if s is None or i < self.start:
            return s
        if i == self.start:
            self._sign = -1.0 if s.layers[0].cx > CANVAS_HW[1] / 2 else 1.0
        dx, dy = self.offset
        return FrameSpec(tuple(layer.moved(self._sign * dx, dy) for layer in s.layers), s.jitter, s.variant)
