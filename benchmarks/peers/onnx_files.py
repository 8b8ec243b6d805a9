"""Peer networks as ONNX files: fp32, and int8 by the bundle's own quantiser, cached on disk.

- fp32: ``torch.onnx.export`` with a dynamic batch, input ``input`` (the
  TorchScript exporter, ~10x faster than dynamo on these graphs; dynamo when it
  is unavailable), then the same clean-up as our bundle
  (:func:`facelivenet.export.onnx_export.simplify`).
- int8: :func:`facelivenet.export.quantize_onnx.quantize_int8`, exactly what
  ``facelive-export`` does to our model (static QDQ, per-channel S8S8, min/max
  over real aligned faces), with nothing kept in float.

Files live in ``<cache>/bench-peers/`` keyed by the network's source, seed,
torch/onnx/onnxruntime versions and the calibration faces' digest, so a
benchmark pays the export once.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from facelivenet.export.calibration import FaceSet

from . import PeerNet

log = logging.getLogger(__name__)

INPUT_NAME = "input"


def _versions() -> str:
    import onnx
    import onnxruntime
    import torch

    return f"torch {torch.__version__}, onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}"


def net_key(net: PeerNet, seed: int) -> str:
    """Digest of what determines the fp32 file: the network's source, its settings, seed and tool versions."""
    import importlib

    source = inspect.getsource(importlib.import_module(f"{__package__}.{net.module}"))
    text = f"{net.name}|{net.kwargs}|{seed}|{_versions()}|{source}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _export_proto(model: Any, size: int, output: str) -> Any:
    import onnx
    import torch

    x = torch.zeros(2, 3, size, size)
    try:
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), buf, dynamo=False, input_names=[INPUT_NAME], output_names=[output],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, output: {0: "batch"}}, opset_version=18)
        return onnx.load_from_string(buf.getvalue())
    except Exception as exc:  # noqa: BLE001 - the legacy exporter may be gone; dynamo is the fallback
        log.info("TorchScript ONNX exporter unavailable (%s); using dynamo", exc)
    program = torch.onnx.export(model, (x,), dynamo=True, input_names=[INPUT_NAME], output_names=[output],
                                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
                                opset_version=18, external_data=False, optimize=True, verbose=False)
    return onnx.load_from_string(program.model_proto.SerializeToString())


def _save_atomic(proto: Any, path: Path) -> Path:
    from facelivenet.export.onnx_export import save

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        save(proto, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def fp32_file(net: PeerNet, cache: Path, seed: int = 0) -> Path:
    """The network's fp32 ONNX file (exported once, with random weights from ``seed``)."""
    path = cache / f"{net.name}-{net_key(net, seed)}" / "fp32.onnx"
    if path.is_file():
        return path
    import torch

    from facelivenet.export.onnx_export import simplify

    torch.manual_seed(seed)
    log.info("exporting peer %s to ONNX fp32", net.name)
    proto, _ = simplify(_export_proto(net.build(), net.input_size, net.output))
    return _save_atomic(proto, path)


def int8_file(net: PeerNet, fp32: Path, calib: FaceSet, calib_tensor: Any) -> Path:
    """The int8 file of ``fp32``, quantised on ``calib`` (NCHW float32 inputs) like our bundle's."""
    key = hashlib.sha256(f"{calib.digest()}|{len(calib)}".encode()).hexdigest()[:16]
    path = fp32.parent / f"int8-{key}.onnx"
    if path.is_file():
        return path
    import onnx

    from facelivenet.export.quantize_onnx import quantize_int8

    log.info("quantising peer %s to int8 on %d real faces", net.name, len(calib))
    proto, _ = quantize_int8(onnx.load(str(fp32)), {}, calib_tensor, [])
    return _save_atomic(proto, path)
