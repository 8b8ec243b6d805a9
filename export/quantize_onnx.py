"""ONNX int8: static QDQ, per-channel weights, calibrated on real aligned faces.

onnxruntime's ``quantize_static``: QDQ format, S8 activations (asymmetric), S8
per-channel symmetric weights, min/max ranges over all calibration faces.

Why S8S8 and not the common U8S8: on x86 CPUs without VNNI (SSE4.1, AVX2,
AVX-512) onnxruntime's u8s8 kernels add pairs of u8*s8 products in int16 and
saturate; FaceLiveNet's first convolution, which sees the full pixel range,
overflowed there (embedding cosine 0.95, min 0.60, on the smoke checkpoint)
while S8S8 gave 0.9998 / 0.9993. S8S8 QDQ runs on every onnxruntime build (ARM
phones and Raspberry Pi included). Nodes of the modules named in
``float_modules`` (always the L2 normalisation tail) stay in float.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ExportError, require
from .onnx_export import nodes_in_modules
from .wrappers import INPUT_NAME

log = logging.getLogger(__name__)

CALIBRATION_BATCH = 16


def quantize_int8(fp32: Any, scopes: dict[str, list[str]], calib: np.ndarray, float_modules: list[str],
                  method: str = "minmax") -> tuple[Any, list[str]]:
    """(int8 ModelProto, names of the nodes kept in float). ``calib``: float32 inputs in the file's layout."""
    onnx = require("onnx")
    q = require("onnxruntime.quantization", "onnxruntime", "int8 quantisation")
    methods = {"minmax": q.CalibrationMethod.MinMax, "percentile": q.CalibrationMethod.Percentile,
               "entropy": q.CalibrationMethod.Entropy}
    if method not in methods:
        raise ExportError(f"unknown ONNX calibration method {method!r}; valid: {', '.join(methods)}")
    exclude = nodes_in_modules(fp32, scopes, float_modules)
    if float_modules and not exclude:
        raise ExportError(f"no ONNX node belongs to {float_modules}: the exporter's scope metadata changed")

    # The histogram collectors (percentile, entropy) need batches of one shape: use single faces.
    size = CALIBRATION_BATCH if method == "minmax" else 1

    class Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([calib[i:i + size] for i in range(0, len(calib), size)])

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)}

    with tempfile.TemporaryDirectory(prefix="facelive-onnx-q-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        inferred = onnx.shape_inference.infer_shapes(fp32)
        onnx.save(inferred, str(src))
        root = logging.getLogger()
        old_level = root.level
        root.setLevel(max(old_level, logging.ERROR))  # ORT warns on the root logger about pre-processing
        try:
            q.quantize_static(
                str(src), str(dst), Reader(), quant_format=q.QuantFormat.QDQ, per_channel=True,
                activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8, nodes_to_exclude=exclude,
                calibrate_method=methods[method], extra_options={"CalibTensorRangeSymmetric": False},
            )
        except Exception as exc:
            raise ExportError(f"onnxruntime int8 quantisation failed: {type(exc).__name__}: {exc}") from exc
        finally:
            root.setLevel(old_level)
        return onnx.load(str(dst)), exclude
