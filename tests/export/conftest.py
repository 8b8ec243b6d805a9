"""Fixtures for the export tests: a tiny random checkpoint, real aligned faces, one tiny bundle.

The tiny bundle (every format x precision of a ~30 k-parameter random model,
exported once per session) is what the round-trip, manifest, metadata and
tamper tests read. Faces are real (JAFFE, from ``../shared/data``), aligned by
YuNet; they live in a per-session cache under pytest's tmp folder and never
in a bundle.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.training.conftest import TINY_MODEL, TINY_PRE

CONVERTERS = ("torch", "onnx", "onnxscript", "onnxruntime", "litert_torch", "ai_edge_quantizer", "ai_edge_litert",
              "coremltools")
TINY_CALIB = 24
TINY_PARITY = 16


ONNX_CONVERTERS = ("torch", "onnx", "onnxscript", "onnxruntime")


def missing_converters(modules: tuple[str, ...] = CONVERTERS) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


@pytest.fixture(scope="session")
def onnx_converters() -> None:
    missing = missing_converters(ONNX_CONVERTERS)
    if missing:
        pytest.skip(f"ONNX export needs {', '.join(missing)}: pip install -e '.[export]'")


@pytest.fixture(scope="session")
def converters() -> None:
    missing = missing_converters()
    if missing:
        pytest.skip(f"export converters not installed ({', '.join(missing)}): pip install -e '.[export]'")


def write_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    import torch

    from facelivenet.training.checkpoint import inference_checkpoint, save_atomic
    from facelivenet.training.config import TrainConfig
    from facelivenet.training.model import build_model

    torch.manual_seed(seed)
    model = build_model(TINY_MODEL).eval()
    meta = {
        "trained_on": {"stage1": {"num_images": 0, "images_sha256": "0" * 64,
                                  "provenance": {"dataset": "random weights (test)", "terms": "none",
                                                 "root": "/nowhere"}}},
        "completed_stages": [],
    }
    return save_atomic(inference_checkpoint(model, TrainConfig(model=TINY_MODEL, preprocess=TINY_PRE), meta), path)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="session")
def face_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("face-cache")


@pytest.fixture(scope="session")
def jaffe_dir(data_root: Path) -> Path:
    path = data_root / "jaffe"
    if not path.is_dir():
        pytest.skip(f"JAFFE absent from the data folder ({path})")
    return path


@pytest.fixture(scope="session")
def tiny_faces(jaffe_dir: Path, detector_path: Path, face_cache: Path):
    """(calibration, parity) real aligned faces at the tiny model's 32 px."""
    from facelivenet.export.calibration import collect_faces

    return collect_faces(jaffe_dir, TINY_PRE, detector=detector_path, calib_count=TINY_CALIB, min_calib=TINY_CALIB,
                         parity_count=TINY_PARITY, cache_dir=face_cache, progress=False)


@pytest.fixture(scope="session")
def shared_onnx_export(converters):
    """Memoise the dynamo ONNX export per model weights: the tests that export the same tiny model pay once."""
    import hashlib

    import onnx

    from facelivenet.export import onnx_export

    real = onnx_export.export_fp32
    cache: dict = {}

    def memo(model, input_size, opset=onnx_export.DEFAULT_OPSET):
        h = hashlib.sha256()
        for name, tensor in model.state_dict().items():
            h.update(name.encode() + tensor.detach().cpu().numpy().tobytes())
        key = (h.hexdigest(), model.layout, input_size, opset)
        if key not in cache:
            cache[key] = real(model, input_size, opset)
        proto, scopes = cache[key]
        copy = onnx.ModelProto()
        copy.CopyFrom(proto)
        return copy, dict(scopes)

    patch = pytest.MonkeyPatch()
    patch.setattr(onnx_export, "export_fp32", memo)
    yield
    patch.undo()


@pytest.fixture(scope="session")
def tiny_bundle(converters, shared_onnx_export, tmp_path_factory, tiny_checkpoint, jaffe_dir, detector_path, face_cache):
    """(bundle folder, summary): every format x precision of the tiny model, TFLite in NHWC."""
    from facelivenet.export.pipeline import ExportOptions, export_bundle

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    summary = export_bundle(ExportOptions(
        out=out, checkpoint=tiny_checkpoint, calib=jaffe_dir, detector=detector_path,
        calib_count=TINY_CALIB, min_calib=TINY_CALIB, parity_count=TINY_PARITY, tflite_layout="NHWC",
        allow_parity_failure=True, cache_dir=face_cache, threads=1, progress=False,
    ))
    return out, summary


@pytest.fixture(scope="session", autouse=True)
def native_cpu_check_only():
    """Exports in these tests check their files on this CPU only: the emulated families (minutes each) run
    in ``make cpu-check``; test_cpu_check.py tests the check itself."""
    from facelivenet.export import cpu_check

    patch = pytest.MonkeyPatch()
    patch.setattr(cpu_check, "TARGETS", cpu_check.TARGETS[:1])
    yield
    patch.undo()


@pytest.fixture(scope="session", autouse=True)
def no_default_task_data():
    """Exports in these tests skip the task gates (and so the static int8 files) unless a test passes
    ``task_data`` itself: the gates align every LFW pair image, the FER2013 test subset and JAFFE,
    minutes per fresh face cache. Session-wide, so the session's bundles are built without them too."""
    patch = pytest.MonkeyPatch()
    patch.setattr("facelivenet.export.pipeline.default_task_data", lambda: None)
    yield
    patch.undo()
