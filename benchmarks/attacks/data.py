"""The people of the attack suite: a JAFFE-shaped folder split into enrollment and session images.

A JAFFE-shaped folder holds ``<SUBJ>.<EXPR><n>.<id>.tiff`` files (EXPR in AN DI
FE HA NE SA SU), e.g. ``KA.HA1.29.tiff``. Per subject, the neutral (NE) images
sorted by file name are split:

- enrollment: every NE image but the last;
- session neutral: the last NE image, shown at the challenge's neutral steps,
  so the frames a session judges are never the ones the template was made of.

A subject with a single NE image uses it for both (``shared_neutral``; none in
JAFFE, which has three NE images per subject). Expression steps show the
subject's images of that expression (all of them; JAFFE has 2-4 per
expression). Subjects lacking an image of a challenge expression are left out
with a warning.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from facelivenet.edge_runtime.challenge import NEUTRAL
from facelivenet.edge_runtime.errors import DatasetLayoutError
from facelivenet.training.evaluation.auth_protocol import list_jaffe_images

log = logging.getLogger(__name__)

JAFFE_FOLDER = "jaffe"


@dataclass(frozen=True)
class Subject:
    """One person's images, by canonical expression label; paths are absolute."""

    name: str
    enroll: tuple[str, ...]  # NE images the template is made of
    neutral: tuple[str, ...]  # NE images shown at neutral steps
    expressions: dict[str, tuple[str, ...]]  # every non-neutral label -> images
    shared_neutral: bool = False  # one NE image only: enrollment and sessions share it

    def images(self, label: str) -> tuple[str, ...]:
        """The images a performer shows for ``label`` (neutral: the session neutral images)."""
        return self.neutral if label == NEUTRAL else self.expressions.get(label, ())

    @property
    def all_images(self) -> tuple[str, ...]:
        """Every image of the subject (enrollment ones included), sorted."""
        return tuple(sorted({*self.enroll, *self.neutral, *(p for v in self.expressions.values() for p in v)}))

    @property
    def neutral_all(self) -> tuple[str, ...]:
        """Every NE image (what a photo attacker may hold up)."""
        return tuple(sorted({*self.enroll, *self.neutral}))


def resolve_jaffe_dir(data: str | Path) -> Path:
    """``DATA/jaffe`` when it exists, else ``DATA`` itself (any JAFFE-shaped folder)."""
    root = Path(data)
    if (root / JAFFE_FOLDER).is_dir():
        return root / JAFFE_FOLDER
    if not root.is_dir():
        raise DatasetLayoutError(f"--data {root} is not a folder (a data root holding jaffe/, or a JAFFE-shaped folder)")
    return root


def load_subjects(folder: str | Path, challenge_expressions: Sequence[str]) -> list[Subject]:
    """Subjects with at least one NE image and one image of every challenge expression, sorted by name."""
    folder = Path(folder)
    by_subject: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for item in list_jaffe_images(folder):
        by_subject[item.subject][item.label].append(str(folder / item.path))
    subjects = []
    for name in sorted(by_subject):
        labels = by_subject[name]
        missing = [e for e in (NEUTRAL, *challenge_expressions) if not labels.get(e)]
        if missing:
            log.warning("subject %s left out: no image of %s", name, ", ".join(missing))
            continue
        ne = sorted(labels[NEUTRAL])
        shared = len(ne) == 1
        subjects.append(Subject(
            name=name,
            enroll=tuple(ne if shared else ne[:-1]),
            neutral=(ne[-1],),
            expressions={k: tuple(sorted(v)) for k, v in sorted(labels.items()) if k != NEUTRAL},
            shared_neutral=shared,
        ))
    if len(subjects) < 2:
        raise DatasetLayoutError(
            f"{folder}: {len(subjects)} usable subject(s); the attack suite needs at least 2 people with NE images "
            f"and images of {', '.join(challenge_expressions)} (<SUBJ>.<EXPR><n>.<id>.tiff files)")
    return subjects


def split_description(subjects: Sequence[Subject]) -> dict:
    """The enrollment / session split, for the report."""
    return {
        "rule": "per subject, NE images sorted by name: all but the last enroll, the last is shown at neutral steps; "
                "expression steps show the subject's images of that expression",
        "subjects": len(subjects),
        "enrollment_images": sum(len(s.enroll) for s in subjects),
        "session_neutral_images": sum(len(s.neutral) for s in subjects),
        "shared_neutral_subjects": [s.name for s in subjects if s.shared_neutral],
    }
