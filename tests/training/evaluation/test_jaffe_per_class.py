"""The JAFFE per-expression top-1 report behind docs/results/index.md's row: every posed expression counted once."""

from __future__ import annotations

import json

from facelivenet.edge_runtime.constants import EXIT_FAILURE
from facelivenet.edge_runtime.labels import EXPRESSION_LABELS
from facelivenet.training.evaluation.jaffe_per_class import main

from .test_evaluate import make_checkpoint


def test_per_class_report_counts_every_jaffe_image(jaffe_root, detector_path, tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "tiny.pt", ["a", "b"], [2])
    out = tmp_path / "per_class.json"
    code = main(["--checkpoint", str(ckpt), "--data", str(jaffe_root.parent), "--detector", str(detector_path),
                 "--out", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    per = result["all_images"]
    assert list(per) == list(EXPRESSION_LABELS)
    assert sum(v["n"] for v in per.values()) == result["all_images_faces"]["images"] > 200
    assert all(0.0 <= v["accuracy"] <= 1.0 for v in per.values())
    assert json.loads(capsys.readouterr().out).keys() == per.keys()


def test_missing_jaffe_is_a_clear_error(tmp_path, capsys):
    assert main(["--data", str(tmp_path), "--out", str(tmp_path / "x.json")]) == EXIT_FAILURE
    assert "no jaffe/ folder" in capsys.readouterr().err
