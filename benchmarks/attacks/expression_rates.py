"""Which expressions the shipped model tells apart against a face at rest: per-expression true and false
rates of the session's own 'shown' rule (:class:`ExpressionBaseline`) on JAFFE and FER2013, for every
candidate challenge set.

- JAFFE: each person's rest profile is the mean log-odds of their own neutral images (a neutral image is
  judged against the mean of that person's OTHER neutral images), as in a session.
- FER2013 (test split, ``--per-class`` images of each class, evenly spaced): no identities, so the rest
  profile is the population's (the mean log-odds of the FER2013 neutral images judged): a weaker test
  than a person's own rest face, stated as such.

For a set S and an expression e in S, the true rate is how often an image of e is judged 'e shown'; the
false rate how often an image of anything else (neutral included) is. A set can only replace the default
without raising BPCER when every expression in it is shown at least as reliably as the default's weakest
and raised falsely no more than the default's worst (:func:`candidates`). Run::

    OMP_NUM_THREADS=1 python -m facelivenet.benchmarks.attacks.expression_rates --data DATA --out DIR
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from facelivenet.edge_runtime.api import open_pipeline
from facelivenet.edge_runtime.challenge import NEUTRAL
from facelivenet.edge_runtime.constants import DEFAULT_CHALLENGE
from facelivenet.edge_runtime.expression_baseline import ExpressionBaseline, log_odds
from facelivenet.edge_runtime.imageio import read_image
from facelivenet.edge_runtime.labels import EXPRESSION_LABELS
from facelivenet.edge_runtime.options import RuntimeOptions

from .data import list_jaffe_images
from .render import FrameSpec, Layer, Renderer

log = logging.getLogger(__name__)

EXPRESSIONS = tuple(e for e in EXPRESSION_LABELS if e != NEUTRAL)
FER_FOLDERS = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happy", "neutral": "neutral",
               "sad": "sadness", "surprise": "surprise"}
MARGIN = 1.1  # log-odds: the attack suite's calibrated margins run 1.04-1.20 (rest rate 0.05)


@dataclass
class Judged:
    """One image's class probabilities, its label and the rest reference it is judged against (7 log-odds)."""

    label: str
    probs: np.ndarray
    reference: np.ndarray


def _probs(pipeline, image: np.ndarray) -> np.ndarray | None:
    a = pipeline.analyze_still(image)
    return None if not a.analysed else np.asarray(a.probabilities)


def jaffe_judged(pipeline, folder: Path) -> list[Judged]:
    """Every JAFFE image on the suite's canvas, against its person's own rest (leave-one-out for neutrals)."""
    renderer = Renderer()
    by_person: dict[str, list[tuple[str, np.ndarray]]] = {}
    for item in list_jaffe_images(folder):
        p = _probs(pipeline, renderer.render(FrameSpec((Layer(str(folder / item.path), 320.0, 240.0),))))
        if p is not None:
            by_person.setdefault(item.subject, []).append((item.label, p))
    out = []
    for items in by_person.values():
        for k, (label, p) in enumerate(items):
            rests = [log_odds(q) for j, (other, q) in enumerate(items) if other == NEUTRAL and j != k]
            if rests:
                out.append(Judged(label, p, np.mean(rests, axis=0)))
    return out


def fer_judged(pipeline, folder: Path, per_class: int) -> list[Judged]:
    """FER2013 test images (upscaled 4x on a grey border), against the population's neutral profile."""
    rows: list[tuple[str, np.ndarray]] = []
    for name, label in FER_FOLDERS.items():
        files = sorted((folder / name).glob("*.jpg"))
        for i in np.linspace(0, len(files) - 1, min(per_class, len(files))).astype(int):
            face = cv2.resize(read_image(files[i]), (192, 192), interpolation=cv2.INTER_CUBIC)
            p = _probs(pipeline, cv2.copyMakeBorder(face, 64, 64, 64, 64, cv2.BORDER_CONSTANT, value=(110,) * 3))
            if p is not None:
                rows.append((label, p))
    rest = np.mean([log_odds(p) for label, p in rows if label == NEUTRAL], axis=0)
    return [Judged(label, p, rest) for label, p in rows]


def rates(judged: Sequence[Judged], expressions: Sequence[str], margin: float = MARGIN) -> dict[str, dict]:
    """Per expression of the set: the true rate, the false rate and their counts."""
    rule = ExpressionBaseline(expressions, margin)
    idx = np.array([EXPRESSION_LABELS.index(e) for e in rule.labels])
    shown = [rule.shown(j.probs, j.reference[idx]) for j in judged]
    out = {}
    for e in rule.labels:
        own = [s == e for s, j in zip(shown, judged) if j.label == e]
        other = [s == e for s, j in zip(shown, judged) if j.label != e]
        out[e] = {"true": float(np.mean(own)) if own else None, "false": float(np.mean(other)) if other else None,
                  "images": len(own), "others": len(other)}
    return out


def candidates(table: dict[str, dict[str, dict]], default: str) -> list[str]:
    """The sets whose every expression is at least as reliable as the default's weakest on every data set."""
    floor = {ds: min(r["true"] for r in table[ds][default].values()) for ds in table}
    ceiling = {ds: max(r["false"] for r in table[ds][default].values()) for ds in table}
    return [key for key in table[next(iter(table))] if key != default and all(
        all(r["true"] >= floor[ds] and r["false"] <= ceiling[ds] for r in table[ds][key].values()) for ds in table)]


def measure(data: Path, per_class: int, detector: str | None, sizes: Sequence[int] = (2, 3, 4)) -> dict:
    pipeline = open_pipeline(RuntimeOptions(detector=detector))
    judged = {"jaffe": jaffe_judged(pipeline, data / "jaffe"), "fer2013": fer_judged(pipeline, data / "fer2013" / "test",
                                                                                      per_class)}
    sets = [s for n in sizes for s in itertools.combinations(EXPRESSIONS, n)]
    table = {ds: {",".join(s): rates(j, s) for s in sets} for ds, j in judged.items()}
    default = ",".join(sorted(DEFAULT_CHALLENGE, key=EXPRESSIONS.index))
    return {"model": pipeline.model.description, "margin": MARGIN, "images": {k: len(v) for k, v in judged.items()},
            "default": default, "table": table, "no_worse_than_default": candidates(table, default)}


def markdown(result: dict, top: int = 12) -> str:
    """The default, then the sets ranked by their weakest true rate minus their worst false rate on JAFFE."""
    def row(key: str) -> str:
        cells = []
        for ds in ("jaffe", "fer2013"):
            r = result["table"][ds][key]
            cells.append("; ".join(f"{e} {v['true']:.2f}/{v['false']:.2f}" for e, v in r.items()))
        return f"| {key} | {' | '.join(cells)} |"

    def score(key: str) -> float:
        r = result["table"]["jaffe"][key].values()
        return min(v["true"] for v in r) - max(v["false"] for v in r)

    keys = sorted(result["table"]["jaffe"], key=score, reverse=True)[:top]
    lines = [f"model {result['model']}, margin {result['margin']} log-odds; images judged: "
             + ", ".join(f"{k} {v}" for k, v in result["images"].items()), "",
             "| set | JAFFE true/false per expression | FER2013 true/false per expression |", "| --- | --- | --- |",
             row(result["default"]) + " (default)", *[row(k) for k in keys if k != result["default"]], "",
             f"sets no worse than the default on both data sets: {', '.join(result['no_worse_than_default']) or 'none'}"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the rates; write expression_rates.json / .md to --out. Returns the exit code."""
    from facelivenet.edge_runtime.cli_common import add_data_option, add_detector_option, add_json_flag, add_log_options
    from facelivenet.edge_runtime.cli_runner import run_command

    prog = "python -m facelivenet.benchmarks.attacks.expression_rates"
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    add_data_option(p, "jaffe/ and fer2013/", type=Path)
    p.add_argument("--per-class", type=int, default=150, help="FER2013 test images per class (default 150)")
    add_detector_option(p)
    p.add_argument("--out", type=Path, required=True, help="folder for expression_rates.json / .md")
    add_json_flag(p)
    add_log_options(p)

    def run(args: argparse.Namespace):
        if args.data is None:
            raise ValueError("--data is required: the folder holding jaffe/ and fer2013/")
        result = measure(args.data, args.per_class, args.detector)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "expression_rates.json").write_text(json.dumps(result, indent=1))
        text = markdown(result)
        (args.out / "expression_rates.md").write_text(text + "\n")
        return 0, result, text

    return run_command(prog, p, argv, run, user_errors=(ValueError,))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
