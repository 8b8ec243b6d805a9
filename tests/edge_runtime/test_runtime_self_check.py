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


@pytest.fixture
def legacy_tflite_only(monkeypatch):
    """LiteRT reported missing, its interpreter answering as the legacy ``tflite_runtime`` (same API)."""
    import importlib

    from facelivenet.edge_runtime import backends

    real = importlib.import_module

    def fake(name, *args):
        if name.startswith("ai_edge_litert"):
            raise ImportError(name)
        return real(name.replace("tflite_runtime", "ai_edge_litert"), *args)

    monkeypatch.setattr(backends.importlib, "import_module", fake)
    return backends


def _without_self_check(tmp_path):
    import json

    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE_DIR, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    del manifest["provenance"]["self_check"]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


def test_the_legacy_interpreter_is_accepted_after_the_self_check(legacy_tflite_only):
    import logging

    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger(legacy_tflite_only.__name__)  # its own handler: other tests may stop propagation
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        model = FaceModel(None, "tflite", "fp32")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert model.backend.name.startswith("tflite_runtime")
    assert any("passed the parity self-check" in m for m in seen), seen


def test_the_legacy_interpreter_is_refused_without_a_reference(tmp_path, legacy_tflite_only):
    bundle = _without_self_check(tmp_path)
    FaceModel(bundle, "onnx", "fp32")  # other runtimes need no reference
    with pytest.raises(legacy_tflite_only.BackendError, match="no self_check entry"):
        FaceModel(bundle, "tflite", "fp32")
