"""Small pieces: choice parsing, parity gates, thresholds from an evaluation, calibration listing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facelivenet.export.errors import ExportError
from facelivenet.export.parity import check, cosine_rows, measure
from facelivenet.export.pipeline import parse_choices


def test_parse_choices_keeps_canonical_order_and_lists_valid():
    assert parse_choices("int8, fp32", ("fp32", "fp16", "int8"), "precision") == ("fp32", "int8")
    with pytest.raises(ExportError, match="unknown format 'tf'; valid: onnx, tflite"):
        parse_choices("onnx,tf", ("onnx", "tflite"), "format")
    with pytest.raises(ExportError, match="no format given"):
        parse_choices(" , ", ("onnx",), "format")


def test_gates_use_the_issue_numbers():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(50, 8))
    logits = rng.normal(size=(50, 7))
    same = measure(ref, logits, ref.copy(), logits.copy())
    assert same["cosine_mean"] == pytest.approx(1.0) and same["expression_top1_agreement"] == 1.0
    assert check("int8", same) == [] and check("fp32", same) == []
    noisy = measure(ref, logits, ref + rng.normal(scale=0.3, size=ref.shape), logits[::-1])
    fails = check("int8", noisy)
    assert any(f.startswith("cosine mean") for f in fails) and any("top-1" in f for f in fails)
    assert check("fp16", {"cosine_mean": 0.9995, "cosine_min": 0.5, "expression_top1_agreement": 0.0}) == []
    assert check("fp32", {"cosine_mean": 0.9995, "cosine_min": 1, "expression_top1_agreement": 1}) != []
    assert cosine_rows(np.array([[1.0, 0]]), np.array([[0, 2.0]]))[0] == pytest.approx(0.0)


class _Src:
    sha256 = "a" * 64
    path = Path("/x/model.pt")


def _evaluation(sha: str = "a" * 64) -> dict:
    return {
        "checkpoint": {"sha256": sha},
        "quick": False,
        "lfw": {"folds": [3, 4], "pairs_reported": 1200,
                "tar_at_far_1e-3_detail": {"target_far": 0.001, "threshold": 0.41, "far": 0.0008, "tar": 0.7,
                                           "n_genuine": 600, "n_impostor": 600}},
        "authentication_jaffe": {"expression_threshold": None, "expression_rule": "argmax"},
    }


def test_thresholds_from_an_evaluation_of_this_checkpoint(tmp_path):
    from facelivenet.export.source import resolve_thresholds

    path = tmp_path / "evaluation.json"
    path.write_text(json.dumps(_evaluation()))
    t, info = resolve_thresholds(_Src(), evaluation_file=path)
    assert (t.verification_cosine, t.target_far) == (0.41, 0.001)
    assert not t.calibrated_on.startswith("uncalibrated") and "LFW View 2 folds [3, 4]" in t.calibrated_on
    assert "expression_probability 0.5 is an uncalibrated rule" in t.calibrated_on
    assert info["verification"]["impostor_pairs"] == 600


def test_evaluation_of_another_checkpoint_is_refused(tmp_path):
    from facelivenet.export.source import resolve_thresholds

    path = tmp_path / "evaluation.json"
    path.write_text(json.dumps(_evaluation(sha="b" * 64)))
    with pytest.raises(ExportError, match="made for another checkpoint"):
        resolve_thresholds(_Src(), evaluation_file=path)


def test_thresholds_file_and_placeholder(tmp_path):
    from facelivenet.export.source import UNCALIBRATED, resolve_thresholds

    path = tmp_path / "t.json"
    path.write_text(json.dumps({"verification_cosine": 0.3, "target_far": 1e-4, "expression_probability": 0.6,
                                "calibrated_on": "site data, 2026"}))
    t, _ = resolve_thresholds(_Src(), thresholds_file=path)
    assert t.verification_cosine == 0.3 and t.calibrated_on == "site data, 2026"
    path.write_text(json.dumps({"verification_cosine": 0.3}))
    with pytest.raises(ExportError, match="lacks field"):
        resolve_thresholds(_Src(), thresholds_file=path)

    class Beside(_Src):
        path = tmp_path / "model.pt"

    t, info = resolve_thresholds(Beside())
    assert t.calibrated_on.startswith(f"{UNCALIBRATED}:") and info["source"] == "placeholder"


def test_list_images_is_recursive_and_explains_empty_folders(tmp_path):
    from facelivenet.export.calibration import list_images

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.JPG").write_bytes(b"")
    (tmp_path / "a" / "notes.txt").write_text("")
    assert [p.name for p in list_images(tmp_path)] == ["x.JPG"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ExportError, match="holds no images"):
        list_images(empty)
    with pytest.raises(ExportError, match="does not exist"):
        list_images(tmp_path / "missing")


def test_import_export_needs_no_converter():
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None; sys.modules['onnx'] = None; sys.modules['coremltools'] = None;"
            "import facelivenet.export, facelivenet.export.cli; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr
