"""The bundle's self-check reference (synthetic inputs, torch outputs): every file the runtime opens passes it on
this device first (file_ranking.py), and a legacy TFLite interpreter is accepted only after it."""

from __future__ import annotations

import shutil

import pytest

from facelivenet.edge_runtime.bundle import DEFAULT_BUNDLE_DIR
from facelivenet.edge_runtime.errors import ManifestError
from facelivenet.edge_runtime.face_model import FaceModel

pytestmark = pytest.mark.cpu_sensitive  # make cpu-check runs these on an emulated AVX2 x86 too


@pytest.mark.parametrize("fmt, precision", [("onnx", "int8"), ("tflite", "int8"), ("tflite", "fp32")])
def test_every_shipped_file_passes_its_self_check(fmt, precision):
    model = FaceModel(None, fmt, precision)
    result = model._check(model.file, model.backend)
    assert result["cosine_min"] > 0.99 and result["expression_agreement"] == 1.0
    assert all(t.passed for t in model.ranking.trials)  # every matching file, static and weight-only alike


def test_a_tampered_self_check_file_is_refused(tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE_DIR, bundle)
    model = FaceModel(bundle, "onnx", "int8")
    (bundle / "self_check.npz").write_bytes(b"not the reference")
    with pytest.raises(ManifestError, match="self-check"):
        FaceModel(bundle, "onnx", "int8")
