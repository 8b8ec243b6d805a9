"""Which model file the runtime runs: among the files matching what was asked (all of them when nothing
was), the bundle's preference is tried first and the device picks (test_file_ranking.py); a missing
runtime falls back to ONNX only when the bundle, not the user, chose the format."""

from __future__ import annotations

import logging
import shutil

import pytest

from facelivenet.edge_runtime import backends
from facelivenet.edge_runtime.bundle import DEFAULT_BUNDLE_DIR
from facelivenet.edge_runtime.errors import ManifestError
from facelivenet.edge_runtime.face_model import FaceModel
from facelivenet.edge_runtime.manifest import ModelFile, load_manifest
from facelivenet.edge_runtime.options import OptionsError, RuntimeOptions

pytestmark = pytest.mark.cpu_sensitive  # make cpu-check runs these on an emulated AVX2 x86 too


def _file(path: str, fmt: str, precision: str, variant: str = "") -> ModelFile:
    return ModelFile(path=path, format=fmt, precision=precision, sha256="0" * 64, size_bytes=1, variant=variant)


FILES = (_file("model.onnx", "onnx", "fp32"), _file("model_int8_static.onnx", "onnx", "int8", "static"),
         _file("model_int8.onnx", "onnx", "int8"), _file("model_fp32.tflite", "tflite", "fp32"),
         _file("model_int8_static.tflite", "tflite", "int8", "static"), _file("model_int8.tflite", "tflite", "int8"))


@pytest.fixture
def manifest(make_manifest):
    return make_manifest(FILES, default_file="model_int8_static.tflite")


@pytest.mark.parametrize("asked, chosen", [
    ((None, None, None), "model_int8_static.tflite"),  # nothing asked: the bundle's default file
    (("tflite", None, None), "model_int8_static.tflite"),
    ((None, "int8", None), "model_int8_static.tflite"),
    (("onnx", None, None), "model_int8_static.onnx"),  # closest to the default: int8, then listed order
    (("onnx", "int8", ""), "model_int8.onnx"),  # the weight-only fallback, asked for by name
    ((None, "int8", ""), "model_int8.tflite"),  # ... with no format: the default file's
    (("onnx", "fp32", None), "model.onnx"),
    ((None, "fp32", None), "model_fp32.tflite"),
])
def test_select_prefers_the_default_file_among_what_was_asked(manifest, asked, chosen):
    assert manifest.select(*asked).path == chosen


def test_without_a_default_file_the_fallback_order_is_onnx_int8(make_manifest):
    assert make_manifest(FILES).select().path == "model_int8_static.onnx"


def test_select_names_what_the_bundle_has(make_manifest):
    m = make_manifest(FILES[:3])
    with pytest.raises(ManifestError, match=r"no tflite int8 static model \(it has: onnx/fp32, onnx/int8/static, "):
        m.select("tflite", "int8", "static")
    with pytest.raises(ManifestError, match=r"no fp16 model \(it has: onnx/fp32, "):
        m.select(None, "fp16")


def test_the_shipped_bundle_runs_a_file_that_passed_here_and_was_fastest():
    manifest = load_manifest(DEFAULT_BUNDLE_DIR, verify_files=False)
    model = FaceModel(None)
    passing = [t for t in model.ranking.trials if t.passed]
    assert manifest.default_file and model.ranking.trials[0].path == manifest.default_file  # tried first
    assert len(passing) == len(manifest.files) and model.file.path == model.ranking.chosen
    chosen = next(t for t in passing if t.path == model.file.path)
    assert chosen.median_ms <= min(t.median_ms for t in passing) * 1.05 + 1e-9
    assert FaceModel(None, "onnx").file.format == "onnx"


def test_a_missing_runtime_falls_back_to_onnx_only_for_the_bundles_choice(monkeypatch, caplog):
    real = backends.open_backend

    def no_litert(fmt, path, threads=1, self_check=None):
        if fmt == "tflite":
            raise backends.BackendUnavailableError("ai_edge_litert is not installed: pip install 'facelivenet[edge]'")
        return real(fmt, path, threads, self_check)

    monkeypatch.setattr("facelivenet.edge_runtime.face_model.open_backend", no_litert)
    with caplog.at_level(logging.WARNING, logger="facelivenet.edge_runtime.face_model"):
        model = FaceModel(None)
    default = load_manifest(DEFAULT_BUNDLE_DIR, verify_files=False).select()
    assert (model.file.format, model.file.precision, model.file.variant) == ("onnx", default.precision, default.variant)
    assert len(caplog.records) == 1 and "not installed" in caplog.text and model.file.path in caplog.text
    with pytest.raises(backends.BackendUnavailableError):
        FaceModel(None, "tflite")  # asked for by name: no silent substitute


def test_a_file_that_fails_to_load_is_not_replaced(tmp_path, monkeypatch):
    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE_DIR, bundle)

    def broken(fmt, path, threads=1, self_check=None):
        raise backends.BackendError(f"cannot load {path.name}")

    monkeypatch.setattr("facelivenet.edge_runtime.face_model.open_backend", broken)
    with pytest.raises(backends.BackendError, match="cannot load"):
        FaceModel(bundle)


@pytest.mark.parametrize("kwargs, shown", [
    ({"variant": "dynamic"}, "variant must be one of static, weight-only"),
    ({"precision": "fp32", "variant": "static"}, "precision fp32 has none"),
])
def test_runtime_options_refuse_a_bad_variant(kwargs, shown):
    with pytest.raises(OptionsError, match=shown):
        RuntimeOptions(**kwargs)


def test_the_weight_only_fallback_is_one_option_away():
    from facelivenet.edge_runtime.api import open_pipeline

    pipeline = open_pipeline(RuntimeOptions(variant="weight-only"))
    # which format of it runs is this device's choice (test_file_ranking.py)
    assert (pipeline.model.file.precision, pipeline.model.file.variant) == ("int8", "")
    assert {t.key for t in pipeline.model.ranking.trials} == {"onnx/int8", "tflite/int8"}
