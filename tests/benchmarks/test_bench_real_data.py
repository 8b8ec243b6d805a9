"""facelive-bench on real faces: parity, accuracy, int8 peers calibrated on real faces, dlib (slow)."""

from __future__ import annotations

import json
import numpy as np
import pytest

from facelivenet.benchmarks.cli import main


@pytest.mark.slow
def test_quick_with_real_faces(capsys, tmp_path, data_root, detector_path, bench_bundle, bench_checkpoint):
    if not (data_root / "lfw" / "images").is_dir():
        pytest.skip("LFW absent from the data folder")
    code = main(["--bundle", str(bench_bundle), "--checkpoint", str(bench_checkpoint), "--data", str(data_root),
                 "--detector", str(detector_path), "--quick", "--json", "--runs", "5", "--warmup", "1",
                 "--peers", "mobilefacenet,two_model_pipeline", "--no-dlib", "--cache-dir", str(tmp_path / "cache")])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    rows = {(r["format"], r["precision"]): r for r in result["rows"]}
    int8 = rows[("onnx", "int8")]
    assert int8["parity"]["faces"] == 100 and -1.0 <= int8["parity"]["cosine_min"] <= 1.0
    assert "passed" in int8["parity"] and "gate" in int8["parity"]
    for key in (("onnx", "int8"), ("torch", "fp32")):
        acc = rows[key]["accuracy"]
        assert 0.0 <= acc["lfw"]["accuracy"] <= 1.0 and "quick_subset" in acc["lfw"]
        assert acc["fer2013"]["images"] == 300
    assert rows[("onnx", "fp32")]["accuracy"].get("skipped")  # quick: accuracy for torch + int8 ONNX only
    peers = {(p["name"], p["precision"]) for p in result["peers"]}
    assert peers == {("mobilefacenet", "int8"), ("two_model_pipeline", "int8")}  # quick: int8 only
    assert all(p["ratio_method"] == "paired" for p in result["peers"])
    assert all(t["holds"] in (True, False) for t in result["targets"])
    assert result["timing_input"].startswith("a real aligned face")


def test_dlib_latency_job_in_process(tmp_path):
    from facelivenet.benchmarks.jobs import run_job
    from facelivenet.benchmarks.peers.dlib_resnet import available, timing_face

    if available():
        pytest.skip(available())
    image, box, what = timing_face(None, None)
    assert what.startswith("synthetic")
    path = tmp_path / "face.npy"
    np.save(path, image)
    result = run_job({"kind": "dlib", "input": str(path), "box": box, "threads": 1, "runs": 2, "warmup": 1})
    assert result["latency_ms"]["runs"] == 2 and result["latency_ms"]["median"] > 0
    assert result["runtime"].startswith("dlib")


@pytest.mark.slow
def test_dlib_lfw_accuracy_quick_subset(tmp_path, data_root, detector_path):
    from facelivenet.benchmarks.peers.dlib_resnet import available

    if available():
        pytest.skip(available())
    if not (data_root / "lfw" / "pairs.txt").is_file():
        pytest.skip("LFW absent from the data folder")
    from facelivenet.benchmarks.peers.dlib_resnet import lfw_accuracy

    out = lfw_accuracy(data_root, detector_path, tmp_path, quick=True)
    assert out["pairs"] == 100 and out["folds"] == list(range(1, 11)) and "quick_subset" in out
    assert out["accuracy"] > 0.9  # dlib's ResNet: 99.38 % on the full View 2 protocol
