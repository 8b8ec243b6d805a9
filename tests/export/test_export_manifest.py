"""The bundle's manifest: valid, complete, read by the runtime's loader, refused when tampered with."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from facelivenet.edge_runtime.errors import ManifestError
from facelivenet.edge_runtime.manifest import MANIFEST_NAME, load_manifest, manifest_from_dict, sha256_file

from .conftest import TINY_CALIB, TINY_PRE


def test_manifest_validates_and_matches_the_checkpoint(tiny_bundle, tiny_checkpoint):
    from facelivenet.edge_runtime.manifest import sha256_file as sha256_of

    bundle, summary = tiny_bundle
    data = json.loads((bundle / MANIFEST_NAME).read_text())
    manifest = manifest_from_dict(data)
    assert manifest.checkpoint_sha256 == sha256_of(tiny_checkpoint) == summary["checkpoint"]["sha256"]
    assert manifest.preprocess == TINY_PRE
    assert manifest.outputs.embedding_normalized and not manifest.outputs.expression_softmax_inside
    for f in manifest.files:
        assert f.sha256 == sha256_file(bundle / f.path)
    assert sorted(p.name for p in bundle.iterdir()) == sorted(  # models, manifest, detector, references: no faces
        [MANIFEST_NAME, "detector", "self_check.npz", "parity_reference.npz"] + [f.path for f in manifest.files])
    with np.load(bundle / "parity_reference.npz") as ref:  # hashes, paths and model outputs; never pixels
        assert set(ref.files) == {"folders", "folder_index", "relpath", "image_sha256", "crop_sha256", "embedding",
                                  "expression_logits"}
        faces = manifest.provenance["parity_reference"]["faces"]
        assert ref["embedding"].shape == (faces, manifest.outputs.embedding_dim) and len(ref["relpath"]) == faces
        assert all(ref[k].dtype.kind in "Uif" and ref[k].ndim <= 2 for k in ref.files)
    assert bundle.stat().st_mode & 0o777 == 0o755
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in bundle.rglob("*") if p.is_file())


def test_thresholds_are_marked_uncalibrated_without_an_evaluation(tiny_bundle):
    bundle, _ = tiny_bundle
    t = load_manifest(bundle).thresholds
    assert t.calibrated_on.startswith("uncalibrated:")
    assert t.verification_cosine == 1.0  # fail-closed placeholder: nothing matches


def test_provenance_records_data_by_hash(tiny_bundle, jaffe_dir):
    from facelivenet.export.calibration import images_digest, list_images

    bundle, _ = tiny_bundle
    prov = load_manifest(bundle).provenance
    cal = prov["calibration_faces"]
    assert cal["num_faces"] == TINY_CALIB and len(cal["images_sha256_digest"]) == 64
    assert cal["folder"].endswith("jaffe")
    assert prov["parity_faces"]["images_sha256_digest"] != cal["images_sha256_digest"]
    assert prov["datasets"] == [{"name": "random weights (test)", "licence": "none", "used_for": "stage1"}]
    assert "/nowhere" not in json.dumps(prov)  # local data paths stay out
    assert prov["exporter"]["torch"] and prov["checkpoint"]["file"] == "tiny.pt"
    # the digest is over image files: recomputable from the folder, and not the digest of all of JAFFE
    assert cal["images_sha256_digest"] != images_digest(list_images(jaffe_dir))


def test_self_check_reference_is_recorded_and_passes_on_every_file(tiny_bundle):
    import numpy as np

    from facelivenet.edge_runtime.backends import open_backend, parity_self_check

    bundle, _ = tiny_bundle
    manifest = load_manifest(bundle)
    ref = manifest.provenance["self_check"]
    assert ref["path"] == "self_check.npz" and ref["sha256"] == sha256_file(bundle / ref["path"])
    assert isinstance(ref["seed"], int) and "NOT faces" in ref["inputs"]
    with np.load(bundle / ref["path"]) as data:
        arrays = {k: data[k] for k in data.files}
    assert arrays["inputs"].shape[0] == ref["count"] == 8
    for f in manifest.files:
        p = manifest.parity[f"{f.format}/{f.precision}"]
        if f.format == "coreml" and not p.get("measured", True):
            continue
        assert p["self_check"]["passed"], (f.path, p["self_check"])
    f = manifest.file_for("onnx", "int8")  # what a runtime does with it
    parity_self_check(open_backend("onnx", bundle / f.path), arrays["inputs"], arrays["embedding"],
                      arrays["expression_logits"])


def test_detector_copied_with_hash_and_licence(tiny_bundle, detector_path, monkeypatch):
    from facelivenet.edge_runtime.detection import resolve_detector_path

    bundle, _ = tiny_bundle
    det = load_manifest(bundle).detector
    assert det["sha256"] == sha256_file(detector_path) == sha256_file(bundle / det["path"])
    if (detector_path.parent / "LICENSE").is_file():
        assert det["licence"] == "Apache-2.0" and (bundle / det["licence_file"]).is_file()
    monkeypatch.delenv("FACELIVE_DETECTOR", raising=False)
    assert resolve_detector_path(None, bundle_dir=bundle) == bundle / det["path"]  # the runtime finds it


def test_inspect_json_prints_the_manifest(tiny_bundle, capsys):
    from facelivenet.edge_runtime.cli import main

    bundle, _ = tiny_bundle
    assert main(["inspect", str(bundle), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((bundle / MANIFEST_NAME).read_text())


@pytest.mark.parametrize("victim", ["model_int8.onnx", "model_int8.tflite", "model_int8.mlpackage"])
def test_tampered_file_is_refused_by_the_runtime_loader(tiny_bundle, tmp_path, victim, capsys):
    from facelivenet.edge_runtime.cli import main

    bundle, _ = tiny_bundle
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    target = copy / victim
    if target.is_dir():  # an .mlpackage: change one byte of its weights
        target = max((p for p in target.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="does not match its manifest sha256"):
        load_manifest(copy)
    assert main(["inspect", str(copy), "--json"]) == 1
    assert "does not match" in capsys.readouterr().err


def test_summary_json_is_serialisable(tiny_bundle):
    _, summary = tiny_bundle
    text = json.dumps({k: v for k, v in summary.items() if k != "table"})
    assert "model_int8.onnx" in text and Path(summary["manifest"]).name == MANIFEST_NAME
