"""LFW View 2 protocol files: ``pairs.txt`` (10 folds of pairs) and ``people.txt`` (10 folds of people).

Layouts (LFW README, sections 3c and 3d), fields separated by tabs or spaces:

``pairs.txt``
    first line ``S N`` (S folds, N matched = N mismatched pairs per fold; View 1
    files have a single number ``N`` and one fold), then per fold N matched lines
    ``name n1 n2`` followed by N mismatched lines ``name1 n1 name2 n2``.
``people.txt``
    first line = number of folds; then per fold a line with the count K followed
    by K lines ``name image_count``.

Folds are numbered from 1, as in the LFW README ("set 1" .. "set 10");
``fold_people(root)[k - 1]`` holds the people of fold k. Image paths are relative
to the LFW root: ``images/<Name>/<Name>_%04d.jpg``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .errors import ProtocolFileError

log = logging.getLogger(__name__)

PAIRS_LAYOUT = (
    "first line 'FOLDS PAIRS_PER_FOLD' (e.g. '10 300'), then per fold PAIRS_PER_FOLD lines "
    "'name n1 n2' (same person) and PAIRS_PER_FOLD lines 'name1 n1 name2 n2' (different people)"
)
PEOPLE_LAYOUT = (
    "first line = number of folds, then per fold a line with the count K followed by K lines 'name image_count'"
)


@dataclass(frozen=True)
class Pair:
    """One LFW pair: two image paths relative to the LFW root, same person or not, its fold (1-based)."""

    path1: str
    path2: str
    same: bool
    fold: int


def image_path(name: str, number: int) -> str:
    """``images/<Name>/<Name>_%04d.jpg``, relative to the LFW root."""
    return f"images/{name}/{name}_{number:04d}.jpg"


def name_of(path: str) -> str:
    """The person's name from an image path made by :func:`image_path`."""
    return Path(path).parent.name


def _read_lines(path: Path, layout: str) -> list[tuple[int, list[str]]]:
    """Non-empty lines of ``path`` as (1-based line number, fields)."""
    if not path.is_file():
        raise ProtocolFileError(f"{path}: file does not exist; expected LFW layout: {layout}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProtocolFileError(f"{path}: cannot read ({exc}); expected LFW layout: {layout}") from exc
    rows = [(i, line.split()) for i, line in enumerate(text.splitlines(), start=1)]
    return [(i, fields) for i, fields in rows if fields]


def _int(field: str, path: Path, lineno: int, layout: str) -> int:
    try:
        value = int(field)
    except ValueError:
        raise ProtocolFileError(f"{path}:{lineno}: {field!r} is not an integer; expected layout: {layout}") from None
    if value < 0:
        raise ProtocolFileError(f"{path}:{lineno}: negative number {value}; expected layout: {layout}")
    return value


def parse_pairs(path: str | Path) -> list[list[Pair]]:
    """Parse a ``pairs.txt`` (View 2) or ``pairsDev*.txt`` (View 1) file into folds of pairs.

    Returns one list per fold (fold k at index k - 1): the matched pairs first,
    then the mismatched pairs, in file order. Raises ProtocolFileError on a
    missing file or any line that does not fit the layout.
    """
    path = Path(path)
    rows = _read_lines(path, PAIRS_LAYOUT)
    if not rows:
        raise ProtocolFileError(f"{path}: empty file; expected layout: {PAIRS_LAYOUT}")
    header_no, header = rows[0]
    if len(header) == 1:
        n_folds, per_fold = 1, _int(header[0], path, header_no, PAIRS_LAYOUT)
    elif len(header) == 2:
        n_folds, per_fold = (_int(f, path, header_no, PAIRS_LAYOUT) for f in header)
    else:
        raise ProtocolFileError(f"{path}:{header_no}: header {' '.join(header)!r}; expected layout: {PAIRS_LAYOUT}")
    body = rows[1:]
    expected = 2 * n_folds * per_fold
    if len(body) != expected:
        raise ProtocolFileError(
            f"{path}: {len(body)} pair lines, header promises {expected} ({n_folds} folds x 2 x {per_fold}); "
            f"expected layout: {PAIRS_LAYOUT}"
        )
    folds: list[list[Pair]] = []
    for f in range(n_folds):
        chunk = body[2 * f * per_fold: 2 * (f + 1) * per_fold]
        pairs = []
        for k, (lineno, fields) in enumerate(chunk):
            same = k < per_fold
            want = 3 if same else 4
            if len(fields) != want:
                kind = "matched 'name n1 n2'" if same else "mismatched 'name1 n1 name2 n2'"
                raise ProtocolFileError(
                    f"{path}:{lineno}: {len(fields)} fields where fold {f + 1} needs a {kind} line; "
                    f"expected layout: {PAIRS_LAYOUT}"
                )
            if same:
                name, n1, n2 = fields
                p1 = image_path(name, _int(n1, path, lineno, PAIRS_LAYOUT))
                p2 = image_path(name, _int(n2, path, lineno, PAIRS_LAYOUT))
            else:
                name1, n1, name2, n2 = fields
                p1 = image_path(name1, _int(n1, path, lineno, PAIRS_LAYOUT))
                p2 = image_path(name2, _int(n2, path, lineno, PAIRS_LAYOUT))
            pairs.append(Pair(p1, p2, same, f + 1))
        folds.append(pairs)
    log.debug("%s: %d folds x %d pairs", path, n_folds, 2 * per_fold)
    return folds


def parse_people(path: str | Path) -> list[dict[str, int]]:
    """Parse a ``people.txt`` file into folds of {name: image count} (fold k at index k - 1).

    A ``peopleDev*.txt`` file (one count line, then names) parses as one fold.
    """
    path = Path(path)
    rows = _read_lines(path, PEOPLE_LAYOUT)
    if not rows:
        raise ProtocolFileError(f"{path}: empty file; expected layout: {PEOPLE_LAYOUT}")
    if len(rows) > 1 and len(rows[1][1]) == 2:  # View 1: "N" then N name lines
        n_folds, cursor = 1, 0
    else:
        n_folds, cursor = _int(rows[0][1][0], path, rows[0][0], PEOPLE_LAYOUT), 1
        if len(rows[0][1]) != 1:
            raise ProtocolFileError(f"{path}:{rows[0][0]}: header must be one number; expected layout: {PEOPLE_LAYOUT}")
    folds: list[dict[str, int]] = []
    for f in range(n_folds):
        if cursor >= len(rows):
            raise ProtocolFileError(f"{path}: ends after {f} of {n_folds} folds; expected layout: {PEOPLE_LAYOUT}")
        lineno, fields = rows[cursor]
        if len(fields) != 1:
            raise ProtocolFileError(
                f"{path}:{lineno}: fold {f + 1} must start with a count line; expected layout: {PEOPLE_LAYOUT}"
            )
        count = _int(fields[0], path, lineno, PEOPLE_LAYOUT)
        people: dict[str, int] = {}
        for lineno, fields in rows[cursor + 1: cursor + 1 + count]:
            if len(fields) != 2:
                raise ProtocolFileError(
                    f"{path}:{lineno}: fold {f + 1} has {len(fields)} fields where 'name image_count' was expected "
                    f"(count line says {count} people); expected layout: {PEOPLE_LAYOUT}"
                )
            people[fields[0]] = _int(fields[1], path, lineno, PEOPLE_LAYOUT)
        if len(people) != count:
            raise ProtocolFileError(
                f"{path}: fold {f + 1} lists {len(people)} distinct people, its count line says {count}; "
                f"expected layout: {PEOPLE_LAYOUT}"
            )
        folds.append(people)
        cursor += 1 + count
    if cursor != len(rows):
        lineno = rows[cursor][0]
        raise ProtocolFileError(f"{path}:{lineno}: extra lines after {n_folds} folds; expected layout: {PEOPLE_LAYOUT}")
    return folds


def lfw_pairs(lfw_root: str | Path) -> list[list[Pair]]:
    """The View 2 pairs of ``<lfw_root>/pairs.txt``: 10 folds of 600 pairs on the official files."""
    return parse_pairs(Path(lfw_root) / "pairs.txt")


def fold_people(lfw_root: str | Path) -> list[set[str]]:
    """The people of each View 2 fold from ``<lfw_root>/people.txt`` (fold k at index k - 1)."""
    return [set(people) for people in parse_people(Path(lfw_root) / "people.txt")]


def pairs_people(fold: list[Pair]) -> set[str]:
    """Every person's name that appears in the pairs of one fold."""
    return {name_of(p) for pair in fold for p in (pair.path1, pair.path2)}
