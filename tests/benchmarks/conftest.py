"""Fixtures for the benchmark tests: a tiny checkpoint and a tiny ONNX-only bundle built in seconds.

The tiny bundle holds ``model.onnx`` (fp32) and ``model_int8.onnx`` of the
~30 k-parameter random test model, exported with the TorchScript exporter and
quantised by the export's own quantiser on random inputs (these tests time
and shape results; parity on real faces is the export tests' job), with a
manifest written through the runtime's schema. It has no TFLite or CoreML
file, so it also exercises the "bundle lacks a format" path.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.export.conftest import write_tiny_checkpoint
from tests.training.conftest import TINY_PRE


def _export_tiny_onnx(checkpoint: Path, out: Path) -> None:
    import onnx
    import torch

    from facelivenet.export.onnx_export import save
    from facelivenet.export.quantize_onnx import quantize_int8
    from facelivenet.export.wrappers import INPUT_NAME, OUTPUT_NAMES, ExportModel
    from facelivenet.training.checkpoint import load, model_from_checkpoint

    model = ExportModel(model_from_checkpoint(load(checkpoint)))
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, 3, TINY_PRE.input_size, TINY_PRE.input_size),), buf, dynamo=False,
                          input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES), opset_version=18,
                          dynamic_axes={INPUT_NAME: {0: "batch"}})
    fp32 = onnx.load_from_string(buf.getvalue())
    save(fp32, out / "model.onnx")
    calib = np.random.default_rng(0).uniform(-1, 1, (32, 3, TINY_PRE.input_size, TINY_PRE.input_size))
    int8, _ = quantize_int8(fp32, {}, calib.astype(np.float32), [])
    save(int8, out / "model_int8.onnx")


def write_tiny_bundle(checkpoint: Path, out: Path) -> Path:
    """An ONNX fp32 + int8 bundle of ``checkpoint`` with a valid manifest."""
    from facelivenet.edge_runtime.manifest import Manifest, ModelFile, Outputs, Thresholds, save_manifest, sha256_file

    out.mkdir(parents=True)
    _export_tiny_onnx(checkpoint, out)
    # the export's quantiser calibrates activations too: the int8 file is a static one (int8 activations)
    files = tuple(ModelFile(name, "onnx", precision, sha256_file(out / name), (out / name).stat().st_size, "NCHW",
                            variant)
                  for name, precision, variant in (("model.onnx", "fp32", ""), ("model_int8.onnx", "int8", "static")))
    manifest = Manifest(model_name="facelivenet", model_version="tiny-test", checkpoint_sha256=sha256_file(checkpoint),
                        files=files, preprocess=TINY_PRE, outputs=Outputs(embedding_dim=16),
                        thresholds=Thresholds(1.0, 1e-3, 0.5, "uncalibrated: test bundle"))
    save_manifest(manifest, out)
    return out


@pytest.fixture(scope="session")
def bench_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    return write_tiny_checkpoint(tmp_path_factory.mktemp("bench-ckpt") / "tiny.pt")


@pytest.fixture(scope="session")
def bench_bundle(tmp_path_factory: pytest.TempPathFactory, bench_checkpoint: Path) -> Path:
    for module in ("onnx", "onnxruntime"):
        pytest.importorskip(module)
    return write_tiny_bundle(bench_checkpoint, tmp_path_factory.mktemp("bench-bundle") / "tiny")
