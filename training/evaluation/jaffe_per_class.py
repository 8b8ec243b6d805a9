"""JAFFE top-1 accuracy per expression (every JAFFE image), aligned as the authentication protocol aligns JAFFE.

``python -m facelivenet.training.evaluation.jaffe_per_class [--checkpoint C] [--data DIR] --out FILE [--json]``
writes ``{"all_images": {label: {"accuracy", "n"}}, ...}``: how often the model's most probable
expression is the posed one, the numbers behind the "JAFFE top-1" row of docs/results/index.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from facelivenet.edge_runtime.cli_common import (HelpFormatter, add_data_option, add_detector_option, add_json_flag,
                                                 add_log_options)
from facelivenet.edge_runtime.cli_runner import run_command
from facelivenet.edge_runtime.constants import DATA_ENV, DETECTOR_ENV, EXIT_OK
from facelivenet.edge_runtime.errors import DatasetLayoutError
from facelivenet.edge_runtime.labels import EXPRESSION_LABELS

from ..data.sources import data_root
from .auth_eval import FALLBACK_FRACTION
from .auth_protocol import list_jaffe_images
from .runner import EvalContext, load_checkpoint

PROG = "python -m facelivenet.training.evaluation.jaffe_per_class"


def jaffe_per_class(checkpoint: str | None, jaffe_root: Path, detector: str | None = None) -> dict[str, Any]:
    """Top-1 accuracy of the argmax expression per posed JAFFE expression."""
    ckpt = load_checkpoint(checkpoint)
    images = list_jaffe_images(jaffe_root)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = EvalContext(ckpt, Path(tmp), detector=detector, show_progress=False)
        faces = ctx.align("jaffe", [str(jaffe_root / i.path) for i in images], "detect", FALLBACK_FRACTION)
        _, probs = ctx.embed_and_classify(faces.crops)
    pred = probs.argmax(1)
    out: dict[str, Any] = {"checkpoint": str(ckpt.path), "checkpoint_sha256": ckpt.sha256, "all_images": {},
                           "all_images_faces": faces.counts(),
                           "rule": "argmax of the seven expression probabilities == the posed expression"}
    for k, label in enumerate(EXPRESSION_LABELS):
        posed = np.array([i.label == label for i in images])
        out["all_images"][label] = {"accuracy": float((pred[posed] == k).mean()) if posed.any() else None,
                                    "n": int(posed.sum())}
    return out


def _run(args: argparse.Namespace) -> tuple:
    """Write the report to --out; the per-expression accuracies are the one JSON object on stdout."""
    root = data_root(args.data)
    if root is None or not (root / "jaffe").is_dir():
        raise DatasetLayoutError(f"no jaffe/ folder: pass --data DIR or set ${DATA_ENV}"
                                 + (f" ({root / 'jaffe'} does not exist)" if root is not None else ""))
    result = jaffe_per_class(args.checkpoint, root / "jaffe", args.detector)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    summary = {k: round(v["accuracy"], 3) for k, v in result["all_images"].items()}
    return EXIT_OK, summary, json.dumps(summary)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--checkpoint", help="checkpoint .pt (default: the shipped model)")
    add_data_option(p, "jaffe/")
    add_detector_option(p, f"${DETECTOR_ENV}")
    p.add_argument("--out", required=True, help="JSON file to write")
    add_json_flag(p)
    add_log_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """The module CLI, on the shared convention (ARCHITECTURE.md, "Commands"); returns the exit code."""
    return run_command(PROG, build_parser(), argv, _run)


if __name__ == "__main__":
    sys.exit(main())
