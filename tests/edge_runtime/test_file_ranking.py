"""The runtime picks, on the device it runs on, the fastest bundle file that passes its self-check there:
a file that computes wrongly is skipped with one warning naming both files, the ranking is cached per
bundle and CPU, and a bundle where nothing passes is refused with every file's failure."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from facelivenet.edge_runtime import file_ranking
from facelivenet.edge_runtime.backends import BackendError, BackendUnavailableError
from facelivenet.edge_runtime.bundle import DEFAULT_BUNDLE_DIR
from facelivenet.edge_runtime.face_model import FaceModel
from facelivenet.edge_runtime.file_ranking import FileTrial, NoUsableFileError, pick
from facelivenet.edge_runtime.manifest import MANIFEST_NAME, sha256_file

pytestmark = pytest.mark.cpu_sensitive  # make cpu-check runs these on an emulated AVX2 x86 too

LOGGER = "facelivenet.edge_runtime.face_model"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test ranks into a cache of its own."""
    monkeypatch.setenv("FACELIVE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def timings(monkeypatch):
    """Fixed per-file timings (ms by file name), so the ranking is decided by the test, not the machine."""
    table: dict[str, float] = {}

    def fake(backend, probe):
        return table[Path(backend.path_for_test).name]

    real_open = FaceModel._open

    def tagged_open(self, file, threads):
        backend = real_open(self, file, threads)
        backend.path_for_test = file.path
        return backend

    monkeypatch.setattr(file_ranking, "_median_ms", fake)
    monkeypatch.setattr(FaceModel, "_open", tagged_open)
    return table


def _all_files(ms: float = 5.0) -> dict[str, float]:
    manifest = json.loads((DEFAULT_BUNDLE_DIR / MANIFEST_NAME).read_text())
    return {f["path"]: ms for f in manifest["files"]}


def _broken_copy(tmp_path: Path, victim: str = "model_int8_static.onnx") -> Path:
    """The shipped bundle with one ONNX file that computes wrongly (one convolution's weights scaled), its
    manifest entry updated so that only the self-check can tell."""
    import onnx
    from onnx import numpy_helper

    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE_DIR, bundle)
    model = onnx.load(str(bundle / victim))
    for init in model.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.ndim == 4 and w.shape[0] >= 32:  # a convolution's weights (int8 or float)
            flipped = (-w.astype(np.int16)).clip(-127, 127).astype(w.dtype) if w.dtype == np.int8 else -w
            init.CopyFrom(numpy_helper.from_array(flipped, init.name))
            break
    onnx.save(model, str(bundle / victim))
    manifest = json.loads((bundle / MANIFEST_NAME).read_text())
    for f in manifest["files"]:
        if f["path"] == victim:
            f["sha256"], f["size_bytes"] = sha256_file(bundle / victim), (bundle / victim).stat().st_size
    (bundle / MANIFEST_NAME).write_text(json.dumps(manifest))
    return bundle


def test_the_fastest_passing_file_runs(timings):
    timings.update({**_all_files(5.0), "model.onnx": 1.0})
    model = FaceModel(None)
    assert model.file.path == "model.onnx"
    assert "faster on this device" in model.ranking.why and "model_int8_static.tflite" in model.ranking.why
    assert all(t.passed for t in model.ranking.trials) and len(model.ranking.trials) == 6


def test_the_bundles_choice_wins_a_near_tie(timings):
    default = json.loads((DEFAULT_BUNDLE_DIR / MANIFEST_NAME).read_text())["default_file"]
    timings.update({**_all_files(5.0), "model.onnx": 1.0, default: 1.0 * (1 + file_ranking.TIE_FRACTION / 2)})
    assert FaceModel(None).file.path == default


def test_a_request_ranks_only_the_files_it_matches(timings):
    timings.update({**_all_files(5.0), "model_fp32.tflite": 1.0, "model_int8.onnx": 2.0})
    model = FaceModel(None, fmt="onnx")
    assert model.file.path == "model_int8.onnx" and {t.key.split("/")[0] for t in model.ranking.trials} == {"onnx"}
    one = FaceModel(None, fmt="onnx", precision="fp32")  # one file: checked, not timed
    assert one.file.path == "model.onnx" and one.ranking.trials[0].median_ms is None


def test_a_file_that_computes_wrongly_is_skipped_with_one_warning(tmp_path, caplog):
    bundle = _broken_copy(tmp_path)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        model = FaceModel(bundle, fmt="onnx", precision="int8")
    trials = {t.path: t for t in model.ranking.trials}
    assert not trials["model_int8_static.onnx"].passed
    assert "self-check failed" in trials["model_int8_static.onnx"].reason
    assert model.file.path == "model_int8.onnx"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "model_int8_static.onnx" in warnings[0].message and "model_int8.onnx" in warnings[0].message
    assert "the bundle's choice model_int8_static.onnx is out" in model.ranking.why


def test_the_ranking_is_cached_per_bundle_and_cpu(timings, tmp_path, caplog):
    timings.update({**_all_files(5.0), "model_int8.tflite": 1.0})
    first = FaceModel(None)
    assert not first.ranking.cached and first.ranking.cache_file
    timings.update({"model_int8.tflite": 9.0})  # the cache, not a new timing, decides now
    again = FaceModel(None)
    assert again.ranking.cached and again.file.path == "model_int8.tflite"
    assert FaceModel(None, rerank=True).file.path != "model_int8.tflite"  # measured again

    cache = Path(again.ranking.cache_file)
    data = json.loads(cache.read_text())
    data["cpu"]["family"] = "arm64 dot product"  # a ranking made on another CPU
    cache.write_text(json.dumps(data))
    assert not FaceModel(None).ranking.cached
    cache.write_text("{ not json")
    with caplog.at_level(logging.WARNING, logger="facelivenet.edge_runtime.file_ranking"):
        rebuilt = FaceModel(None)
    assert not rebuilt.ranking.cached and "corrupt" in caplog.text
    assert json.loads(cache.read_text())["trials"]  # rewritten whole


def test_a_cached_ranking_for_another_bundle_is_ignored(timings, tmp_path):
    timings.update(_all_files(5.0))
    other = tmp_path / "other"
    shutil.copytree(DEFAULT_BUNDLE_DIR, other)
    manifest = json.loads((other / MANIFEST_NAME).read_text())
    manifest["model_version"] += "-copy"
    (other / MANIFEST_NAME).write_text(json.dumps(manifest))
    shipped = FaceModel(None)
    copied = FaceModel(other)
    assert not copied.ranking.cached and copied.ranking.cache_file != shipped.ranking.cache_file
    # a file renamed onto the other bundle's cache name is still refused: its content names the shipped bundle
    shutil.copy(shipped.ranking.cache_file, copied.ranking.cache_file)
    assert not FaceModel(other).ranking.cached


def test_a_bundle_where_nothing_passes_is_refused_with_every_failure(monkeypatch):
    def always_wrong(self, file, backend):
        raise BackendError(f"{file.path} disagrees")

    monkeypatch.setattr(FaceModel, "_check", always_wrong)
    with pytest.raises(NoUsableFileError) as err:
        FaceModel(None)
    manifest = json.loads((DEFAULT_BUNDLE_DIR / MANIFEST_NAME).read_text())
    for f in manifest["files"]:
        assert f"{f['path']}: self-check failed: {f['path']} disagrees" in str(err.value)


def test_a_missing_runtime_for_every_asked_file_says_so(monkeypatch):
    def no_litert(self, file, threads):
        raise BackendUnavailableError("ai_edge_litert is not installed")

    monkeypatch.setattr(FaceModel, "_open", no_litert)
    with pytest.raises(BackendUnavailableError, match="model_int8_static.tflite: runtime not installed"):
        FaceModel(None, fmt="tflite")


def test_pick_prefers_the_bundle_within_the_tie_only():
    trials = [FileTrial("a", "k", True, median_ms=1.00), FileTrial("b", "k", True, median_ms=1.04),
              FileTrial("c", "k", False, "self-check failed", None)]
    assert pick(trials, ["b", "a"]).path == "b"
    assert pick([FileTrial("a", "k", True, median_ms=1.0), FileTrial("b", "k", True, median_ms=1.2)], ["b", "a"]).path == "a"
    assert pick(trials[2:], ["c"]) is None
