"""The shipped default checkpoint, exported to ONNX int8 with the real gates on real faces.

Runs in CI (not marked slow) once ``training/default_model/model.pt`` exists;
skipped, with that reason, before. The parity faces are held-out LFW faces
plus FER2013 test faces (when the data folder has FER2013). The slow variant
exports every format.
"""

from __future__ import annotations

import json

import pytest

from facelivenet.edge_runtime.manifest import load_manifest


@pytest.fixture(scope="module")
def default_checkpoint():
    from facelivenet.export.source import default_checkpoint

    path = default_checkpoint()
    if not path.is_file():
        pytest.skip(f"no default model shipped yet at {path} (training/default_model/model.pt)")
    return path


@pytest.fixture(scope="module")
def lfw_images(data_root):
    path = data_root / "lfw" / "images"
    if not path.is_dir():
        pytest.skip(f"LFW images absent from the data folder ({path})")
    return path


def test_default_checkpoint_exports_to_onnx_int8_within_the_gates(onnx_converters, default_checkpoint, lfw_images,
                                                                   detector_path, tmp_path, capsys):
    from facelivenet.export.cli import main

    out = tmp_path / "bundle"
    code = main(["--out", str(out), "--formats", "onnx", "--precisions", "int8", "--calib", str(lfw_images),
                 "--detector", str(detector_path), "--json", "-q"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["gates_passed"] and summary["calibration_faces"] >= 200
    manifest = load_manifest(out)
    f = manifest.file_for("onnx", "int8")
    p = manifest.parity["onnx/int8"]
    assert p["passed"] and p["cosine_mean"] >= 0.995 and p["cosine_min"] >= 0.98
    assert p["expression_top1_agreement"] >= 0.99 and p["faces"] >= 16
    assert f.size_bytes <= 1_600_000 and p["size_bytes"] == f.size_bytes
    assert manifest.checkpoint_sha256 == summary["checkpoint"]["sha256"]
    assert "l2norm" in p["float_layers"] and p["attempts"][-1]["level"] == p["int8_level"]
    assert p["quantisation"]["weight_rounding"]["method"].startswith("GPTQ")
    assert p["self_check"]["passed"]
    parts = manifest.provenance["parity_faces"].get("parts", [manifest.provenance["parity_faces"]])
    assert parts[0]["folder"] == "lfw/images"  # LFW faces always among the parity faces
    if (lfw_images.parents[1] / "fer2013" / "test").is_dir():
        assert [q["folder"] for q in parts] == ["lfw/images", "fer2013/test"]
        assert set(p["subsets"]) == {"lfw/images", "fer2013/test"}

    # the device benchmark re-aligns the same real faces from the data folder (no torch needed there) and
    # reproduces the export's parity from the bundle's parity_reference.npz
    from facelivenet.benchmarks.device_cli import main as device_main

    reference = manifest.provenance["parity_reference"]
    assert reference["faces"] == p["faces"] and "lfw/images" in reference["folders"]
    code = device_main(["--bundle", str(out), "--data", str(lfw_images.parents[1]), "--runs", "2", "--warmup", "0",
                        "--detector", str(detector_path), "--json", "-q"])
    device = json.loads(capsys.readouterr().out)
    assert code == 0 and device["parity_failed"] == []
    real = device["real_faces"]
    assert real["faces_used"] == reference["faces"] and real["crops_identical"] == real["faces_used"]
    row = next(r for r in device["rows"] if (r["format"], r["precision"]) == ("onnx", "int8"))
    assert row["parity"]["faces"] == real["faces_used"] and row["parity"]["passed"]
    assert row["parity"]["expression_top1_agreement"] == pytest.approx(p["expression_top1_agreement"], abs=1e-9)
    assert row["self_check"]["passed"]


@pytest.mark.slow
def test_default_checkpoint_exports_every_format(converters, default_checkpoint, lfw_images, detector_path, tmp_path,
                                                  capsys):
    from facelivenet.export.cli import main

    out = tmp_path / "bundle"
    code = main(["--out", str(out), "--calib", str(lfw_images), "--detector", str(detector_path), "--json", "-q"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    manifest = load_manifest(out)
    assert len(manifest.files) == 9
    for key, p in manifest.parity.items():
        assert p["passed"] in (True, None), (key, p)  # None: CoreML off macOS
    for fmt in ("onnx", "tflite"):
        assert manifest.file_for(fmt, "int8").size_bytes <= 1_600_000
