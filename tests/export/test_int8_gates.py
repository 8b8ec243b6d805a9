"""Issue 17: the gates that measure what users lose, the static int8 file, the side-by-side speed and the
default file (task gates on synthetic labelled sets; speed and static files on the tiny model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.export.conftest import TINY_CALIB


def test_agreement_gate_applies_to_decisive_faces_only():
    from facelivenet.export.parity import DECISIVE_MARGIN, check, measure

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(100, 8))
    logits = rng.uniform(-0.1, 0.1, size=(100, 7))
    logits[:, 0] += 3.0  # 90 decisive faces: class 0 clearly ahead
    logits[:10, 1] = logits[:10, 0] - DECISIVE_MARGIN / 4  # 10 near ties
    flipped = logits.copy()
    flipped[:10, 1] = logits[:10, 0] + 1e-3  # every near tie changes its top class
    m = measure(emb, logits, emb.copy(), flipped)
    assert m["expression_top1_agreement"] == pytest.approx(0.9) and m["decisive_faces"] == 90
    assert m["expression_top1_agreement_decisive"] == 1.0 and m["near_tie_disagreements"] == 10
    assert check("int8", m) == []  # near ties alone do not fail a file
    flipped[20:22, 2] = flipped[20:22, 0] + 1.0  # two decisive faces change: 97.8 % < 99 %
    fails = check("int8", measure(emb, logits, emb.copy(), flipped))
    assert len(fails) == 1 and f"top-2 margin >= {DECISIVE_MARGIN}" in fails[0]


def _task_data(rng, n_images=120, n_fer=300):
    from facelivenet.export.task_gates import TaskData
    from facelivenet.export.task_sets import FerSet, JaffeSet, LfwSet

    pairs = 400
    left, right = rng.integers(0, n_images, pairs), rng.integers(0, n_images, pairs)
    lfw = LfwSet(np.zeros((n_images, 4, 4, 3), np.uint8), left, right, (np.arange(pairs) // 10) % 2 == 0,
                 np.arange(pairs) % 10 + 1, (1,), None)
    fer = FerSet(np.zeros((n_fer, 4, 4, 3), np.uint8), rng.integers(0, 7, n_fer), np.zeros(n_fer, bool), "test")
    jp = 80
    jaffe = JaffeSet(np.zeros((40, 4, 4, 3), np.uint8), rng.integers(0, 40, jp), rng.integers(0, 40, jp),
                     np.arange(jp) % 2 == 0, np.arange(jp) % 4 < 2, rng.integers(0, 7, jp),
                     np.array(["KA", "KL", "KM", "KR"])[np.arange(jp) % 4],
                     np.array(["KA", "KL", "KM", "KR"])[(np.arange(jp) + 1) % 4])
    return TaskData(lfw, fer, jaffe, [])


def _outputs(rng, data, emb_noise=0.0, flip=0, base=None):
    from facelivenet.export.task_gates import Outputs

    if base is None:
        lfw = rng.normal(size=(len(data.lfw.crops), 16))
        fer = rng.normal(size=(len(data.fer.crops), 7))
        jaffe = (rng.normal(size=(40, 16)), rng.normal(size=(40, 7)))
        return Outputs(lfw, fer, jaffe)
    fer = base.fer.copy()
    fer[:flip] = np.roll(fer[:flip], 1, axis=1)  # these faces change their predicted class
    return Outputs(base.lfw + emb_noise * rng.normal(size=base.lfw.shape), fer, base.jaffe)


def test_task_deltas_are_paired_with_an_interval(tmp_path):
    from facelivenet.export.task_gates import TASKS, TaskGateConfig, task_deltas

    rng = np.random.default_rng(1)
    data = _task_data(rng)
    cfg = TaskGateConfig(tmp_path, bootstrap=200)
    ref = _outputs(rng, data)
    ref.fer = 3.0 * np.eye(7)[data.fer.labels]  # the torch model is right on every FER face
    same = task_deltas(cfg, data, ref, _outputs(rng, data, base=ref))
    assert same["measured"] and same["passed"] and set(same["tasks"]) == set(TASKS)
    for t in same["tasks"].values():
        assert t["delta_points"] == 0 and t["ci_points"] == [0, 0] and t["passed"]
    moved = task_deltas(cfg, data, ref, _outputs(rng, data, emb_noise=0.5, flip=60, base=ref))
    fer = moved["tasks"]["fer2013_accuracy"]
    assert fer["ci_points"][0] <= fer["delta_points"] <= fer["ci_points"][1]
    assert not moved["passed"] and any(f.startswith("fer2013_accuracy delta") and "95 % CI" in f
                                       for f in moved["failures"])
    json.dumps(moved)  # the manifest stores it as is


def test_export_table_has_the_gate_columns():
    from facelivenet.export.progress import summary_table

    tasks = {"lfw_accuracy": {"delta_points": 0.17, "ci_points": [-0.33, 0.67]}}
    row = {"path": "model_int8_static.onnx", "size_bytes": 1_400_000,
           "parity": {"cosine_mean": 0.9996, "cosine_min": 0.997, "expression_top1_agreement": 0.958,
                      "expression_top1_agreement_decisive": 0.993, "decisive_margin": 0.2, "passed": True,
                      "task_gates": {"tasks": tasks}}}
    table = summary_table([row])
    assert "top-1 decisive" in table and "99.3% (>= 0.2)" in table and "+0.17 [-0.33, +0.67]" in table
    assert "d LFW TAR" in table and "pass" in table


def test_manifest_variants_keep_their_keys_and_default():
    from facelivenet.edge_runtime.errors import ManifestError
    from facelivenet.edge_runtime.manifest import Manifest, ModelFile, Outputs, Thresholds, manifest_from_dict
    from facelivenet.edge_runtime.preprocess import PreprocessConfig

    static = ModelFile("model_int8_static.onnx", "onnx", "int8", "0" * 64, 1, variant="static")
    weights = ModelFile("model_int8.onnx", "onnx", "int8", "0" * 64, 1)
    assert static.parity_key == "onnx/int8/static" and weights.parity_key == "onnx/int8"
    m = Manifest("m", "v", "0" * 64, (static, weights), PreprocessConfig(), Outputs(), Thresholds(0.5, 1e-3, 0.3, "x"),
                 default_file=static.path)
    back = manifest_from_dict(json.loads(json.dumps(m.to_dict())))
    assert back.files[0].variant == "static" and back.default_file == static.path
    assert back.file_for("onnx", "int8") == static  # the first listed: what the runtime runs
    with pytest.raises(ManifestError, match="default_file"):
        manifest_from_dict({**m.to_dict(), "default_file": "nope.onnx"})


def test_fastest_passing_file_goes_first_and_is_the_default():
    from facelivenet.export.pipeline import FileResult, default_file, order_results

    results = [FileResult("model.onnx", "onnx", "fp32", "NCHW", {"passed": True}),
               FileResult("model_int8.onnx", "onnx", "int8", "NCHW", {"passed": True}),
               FileResult("model_int8_static.onnx", "onnx", "int8", "NCHW", {"passed": True}, "static"),
               FileResult("model_int8_static.tflite", "tflite", "int8", "NCHW", {"passed": False}, "static")]
    speed = {"rows": [{"label": "model.onnx", "threads": 1, "median_ms": 2.4},
                      {"label": "model_int8.onnx", "threads": 1, "median_ms": 2.5},
                      {"label": "model_int8_static.onnx", "threads": 1, "median_ms": 1.1},
                      {"label": "model_int8_static.tflite", "threads": 1, "median_ms": 0.9}]}
    ordered = [r.rel for r in order_results(results, speed)]
    assert ordered.index("model_int8_static.onnx") < ordered.index("model_int8.onnx")
    assert default_file(results, speed) == "model_int8_static.onnx"  # the faster TFLite file failed a gate
    assert [r.rel for r in order_results(results, None)] == [r.rel for r in results]


def test_export_builds_and_gates_a_static_int8_file(converters, shared_onnx_export, tiny_checkpoint, jaffe_dir,
                                                    detector_path, face_cache, tmp_path, monkeypatch):
    """With task gates measured (stubbed: passing), each format gets a static int8 attempt, recorded first in
    the int8 file's attempts; a kept static file is listed with its variant; the files are timed side by
    side and the default is a passing file."""
    from facelivenet.edge_runtime.manifest import load_manifest
    from facelivenet.export import task_runs
    from facelivenet.export.pipeline import ExportOptions, export_bundle

    passing = {"measured": True, "tasks": {"fer2013_accuracy": {"delta_points": 0.0, "ci_points": [0.0, 0.0]}},
               "passed": True, "failures": []}
    monkeypatch.setattr(task_runs.TaskRuns, "load", lambda self: None)
    monkeypatch.setattr(task_runs.TaskRuns, "gate", lambda self, runner, layout: dict(passing))
    out = tmp_path / "b"
    summary = export_bundle(ExportOptions(
        out=out, checkpoint=tiny_checkpoint, formats=("onnx", "tflite"), precisions=("fp32", "int8"),
        calib=jaffe_dir, detector=detector_path, calib_count=TINY_CALIB, min_calib=TINY_CALIB, parity_count=16,
        cache_dir=face_cache, threads=1, progress=False, allow_parity_failure=True, task_data=tmp_path,
        speed_rounds=3))
    m = load_manifest(out)
    for fmt in ("onnx", "tflite"):
        attempts = m.parity[f"{fmt}/int8"]["attempts"]
        assert attempts[0]["level"] == "static int8" and "expression_top1_agreement_decisive" in attempts[0]
        static = [f for f in m.files if f.format == fmt and f.variant == "static"]
        assert bool(static) == attempts[0]["kept"]
        if static:
            rec = m.parity[static[0].parity_key]
            assert rec["passed"] and rec["task_gates"]["measured"] and static[0].path == f"model_int8_static.{fmt}"
            assert rec["quantisation"]["level"] == "static int8"
    assert m.provenance["static_int8"]["built"] is True
    assert {r["label"] for r in m.provenance["speed"]["rows"]} <= {f.path for f in m.files}
    assert m.default_file in {f.path for f in m.files if m.parity[f.parity_key].get("passed")}
    assert summary["default_file"] == m.default_file


def test_lfw_threshold_subset_keeps_every_reported_pair():
    from facelivenet.export.task_gates import reported_images, threshold_subset, used_images

    data = _task_data(np.random.default_rng(2))
    sub = threshold_subset(data.lfw, 3)
    assert (sub.folds == 1).sum() == (data.lfw.folds == 1).sum()
    for fold in range(2, 11):
        assert (sub.folds == fold).sum() == 6 and sub.labels[sub.folds == fold].sum() == 3
    assert set(reported_images(sub)) <= set(used_images(sub))


def test_the_size_gate_scales_with_the_parameter_count():
    from facelivenet.export.parity import MAX_INT8_BYTES, PAPER_PARAMETERS, max_int8_bytes

    assert max_int8_bytes(PAPER_PARAMETERS) == MAX_INT8_BYTES == 1_600_000
    assert max_int8_bytes(10_000) == MAX_INT8_BYTES  # never below 1.6 MB (tiny test models)
    assert 1_770_000 < max_int8_bytes(1_452_407) < 1_780_000  # the rb_c2 default model
