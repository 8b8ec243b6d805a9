"""The face-authentication pair list (FaceLiveNet paper, eq. 8) rebuilt on JAFFE.

JAFFE files are ``<SUBJ>.<EXPR><n>.<id>.tiff`` (e.g. ``KA.HA1.29.tiff``), EXPR in
AN DI FE HA NE SA SU; 10 subjects, 213 images, all in one folder.

Construction (deterministic: sorted inputs, one ``numpy`` generator seeded by ``seed``):

- reference of a subject = its first neutral image by sorted file name
  (subjects without a neutral image are skipped, with a warning);
- for each subject S (sorted) and each asked expression A (default
  ``happy, surprise``), every image of S showing A is one ID-True/Ex-True pair.
  Each such pair gets one partner in each other cell, with the SAME reference
  and the SAME asked expression, so the four cells are equal in size and have
  identical reference / challenge distributions:

  - ID-True/Ex-False: another image of S whose expression is not A. The
    candidates are grouped by expression, neutral first (so neutral probes,
    the "did nothing" case, are always in), the other groups in seeded random
    order, and drawn round-robin without replacement;
  - ID-False/Ex-True: an image of another subject showing A, drawn round-robin
    over the other subjects (seeded order) without replacement;
  - ID-False/Ex-False: an image of another subject not showing A, drawn the
    same way.

  When a pool is too small for the group (never on the full JAFFE) the group is
  truncated in all four cells alike and a warning is logged.
- a probe is never its own reference. Paths are relative to the data set root.

On the full JAFFE with happy/surprise each cell has 61 pairs (31 happy + 30
surprise), 244 pairs in all.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, TypeVar

import numpy as np

from facelivenet.edge_runtime.constants import DEFAULT_CHALLENGE
from facelivenet.edge_runtime.labels import canonical_label

from .errors import ProtocolFileError
from facelivenet.edge_runtime.metrics import CELLS, cell_name

log = logging.getLogger(__name__)

T = TypeVar("T")

JAFFE_LAYOUT = "one folder of '<SUBJ>.<EXPR><n>.<id>.tiff' files, e.g. KA.HA1.29.tiff, EXPR in AN DI FE HA NE SA SU"


@dataclass(frozen=True)
class LabelledImage:
    """One image of a subject with its canonical expression label; path relative to the data root."""

    path: str
    subject: str
    label: str


@dataclass(frozen=True)
class AuthPair:
    """Reference (neutral, enrolled person) vs probe, with the asked expression and the two truths."""

    reference: str
    probe: str
    asked_expression: str
    id_true: bool
    ex_true: bool
    probe_expression: str = ""

    @property
    def cell(self) -> str:
        """``ID-True/Ex-False`` style name of the pair's cell."""
        return cell_name(self.id_true, self.ex_true)


def parse_jaffe_name(path: str | Path) -> tuple[str, str]:
    """(subject, canonical label) from a JAFFE file name, e.g. ``KA.HA1.29.tiff`` -> ('KA', 'happy')."""
    name = Path(path).name
    parts = name.split(".")
    code = parts[1].rstrip("0123456789") if len(parts) >= 4 else ""
    label = canonical_label(code) if code.isalpha() else None
    if not parts[0] or label is None:
        raise ProtocolFileError(f"{path}: not a JAFFE file name; expected {JAFFE_LAYOUT}")
    return parts[0], label


def list_jaffe_images(jaffe_root: str | Path) -> list[LabelledImage]:
    """Every ``*.tif[f]`` in ``jaffe_root`` with its subject and label, sorted by file name."""
    root = Path(jaffe_root)
    if not root.is_dir():
        raise ProtocolFileError(f"{root}: JAFFE folder does not exist; expected {JAFFE_LAYOUT}")
    files = sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in (".tif", ".tiff"))
    if not files:
        raise ProtocolFileError(f"{root}: no .tiff images; expected {JAFFE_LAYOUT}")
    return [LabelledImage(name, *parse_jaffe_name(name)) for name in files]


def _shuffled(items: Sequence[T], rng: np.random.Generator) -> list[T]:
    return [items[i] for i in rng.permutation(len(items))]


def _round_robin(groups: Sequence[Sequence[T]]) -> list[T]:
    """Interleave groups: first of each, then second of each, ..."""
    longest = max((len(g) for g in groups), default=0)
    return [g[i] for i in range(longest) for g in groups if i < len(g)]


def _draw(
    groups: dict[str, list[LabelledImage]], rng: np.random.Generator, first: str | None = None
) -> list[LabelledImage]:
    """Seeded round-robin order over groups (group ``first`` leads, if present), shuffled within groups."""
    keys = sorted(groups)
    lead = [first] if first in groups else []
    order = lead + _shuffled([k for k in keys if k != first], rng)
    return _round_robin([_shuffled(groups[k], rng) for k in order])


def build_auth_pairs(
    images: Sequence[LabelledImage], asked: Sequence[str] = DEFAULT_CHALLENGE, seed: int = 0
) -> list[AuthPair]:
    """The four balanced cells (see the module docstring), ordered cell by cell, then subject, asked."""
    asked_labels = []
    for a in asked:
        label = canonical_label(a)
        if label is None or label == "neutral":
            raise ValueError(f"asked expression {a!r} must be a canonical non-neutral label")
        asked_labels.append(label)
    rng = np.random.default_rng(seed)
    images = sorted(images, key=lambda im: im.path)
    by_subject: dict[str, list[LabelledImage]] = defaultdict(list)
    for im in images:
        by_subject[im.subject].append(im)
    references = {}
    for subject in sorted(by_subject):
        neutral = [im for im in by_subject[subject] if im.label == "neutral"]
        if neutral:
            references[subject] = neutral[0]
        else:
            log.warning("subject %s has no neutral image: left out of the authentication pairs", subject)

    cells: dict[str, list[AuthPair]] = {c: [] for c in CELLS}
    for subject, ref in references.items():
        own = [im for im in by_subject[subject] if im.path != ref.path]
        others = [im for s in references if s != subject for im in by_subject[s]]
        for a in asked_labels:
            genuine = [im for im in own if im.label == a]
            same_other_expr: dict[str, list[LabelledImage]] = defaultdict(list)
            for im in own:
                if im.label != a:
                    same_other_expr[im.label].append(im)
            other_asked: dict[str, list[LabelledImage]] = defaultdict(list)
            other_not: dict[str, list[LabelledImage]] = defaultdict(list)
            for im in others:
                (other_asked if im.label == a else other_not)[im.subject].append(im)
            pools = {
                "ID-True/Ex-False": _draw(same_other_expr, rng, first="neutral"),
                "ID-False/Ex-True": _draw(other_asked, rng),
                "ID-False/Ex-False": _draw(other_not, rng),
            }
            k = min([len(genuine)] + [len(p) for p in pools.values()])
            if k < len(genuine):
                log.warning(
                    "subject %s, asked %s: only %d of %d pairs per cell (small pools)", subject, a, k, len(genuine)
                )
            pools["ID-True/Ex-True"] = genuine
            for cell, pool in pools.items():
                id_true, ex_true = cell.startswith("ID-True"), cell.endswith("Ex-True")
                for probe in pool[:k]:
                    cells[cell].append(AuthPair(ref.path, probe.path, a, id_true, ex_true, probe.label))
    pairs = [p for c in CELLS for p in cells[c]]
    log.debug("authentication pairs: %d per cell, seed %d", len(cells[CELLS[0]]), seed)
    return pairs


def jaffe_auth_pairs(jaffe_root: str | Path, asked: Sequence[str] = DEFAULT_CHALLENGE, seed: int = 0) -> list[AuthPair]:
    """The JAFFE authentication pair list (paths relative to ``jaffe_root``)."""
    return build_auth_pairs(list_jaffe_images(jaffe_root), asked, seed)


def cell_counts(pairs: Sequence[AuthPair]) -> dict[str, int]:
    """Number of pairs per cell, in the order of :data:`CELLS`."""
    counts = dict.fromkeys(CELLS, 0)
    for p in pairs:
        counts[p.cell] += 1
    return counts
