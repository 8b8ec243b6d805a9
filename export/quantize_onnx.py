"""ONNX int8: static QDQ (int8 activations) or int8 weights with float activations.

:func:`quantize_int8`: onnxruntime's ``quantize_static``: QDQ format, S8 or U8
activations (asymmetric), S8 per-channel symmetric weights, min/max ranges over
all calibration faces; :mod:`.static_int8` chooses U8S8 with 7-bit weights
(``reduce_range``). On x86 CPUs without VNNI onnxruntime's u8s8 kernels add
pairs of u8*s8 products in a saturating int16; full 8-bit weights overflow
there (shipped 8-bit file: embedding cosine 0.85, min 0.41 under an emulated
Haswell), S8S8 runs as slowly as fp32, and 7-bit weights are exact on both
kernel paths at U8S8 speed (ARCHITECTURE.md, "CPU portability"). Nodes of the
modules named in ``float_modules`` (always the L2 normalisation tail) stay in
float.

:func:`quantize_weights_int8`: every Conv / Gemm weight (outside
``float_modules``) stored as an int8 initializer, per output channel
symmetric (scale = max|w| / 127), dequantised by ``Cast`` + ``Mul``;
activations and compute stay float32. Weights already on that grid
(:mod:`.gptq`) are stored exactly. Not a ``DequantizeLinear``: onnxruntime
keeps those (for QDQ fusion) and re-runs them on every inference (7.2 ms vs
4.4 ms fp32 for the default model, one thread), while it constant-folds
Cast + Mul of initializers when the session loads: fp32 speed, a quarter of
the size.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import ExportError, require
from .onnx_export import nodes_in_modules, topological_sort
from .wrappers import INPUT_NAME

log = logging.getLogger(__name__)

CALIBRATION_BATCH = 16


def quantize_int8(fp32: Any, scopes: dict[str, list[str]], calib: np.ndarray, float_modules: list[str],
                  method: str = "minmax", activations: str = "S8",
                  reduce_range: bool = False) -> tuple[Any, list[str]]:
    """(int8 ModelProto, names of the nodes kept in float). ``calib``: float32 inputs in the file's layout;
    ``activations``: ``S8`` (int8, asymmetric) or ``U8`` (uint8: the type onnxruntime fuses into integer
    QLinearConv / QLinearAdd / QLinearConcat kernels on x86; see :mod:`.static_int8`); ``reduce_range``:
    weights on a 7-bit grid (-64..64), so that no pair of uint8 x int8 products overflows the int16 sums of
    x86 kernels without VNNI."""
    onnx = require("onnx")
    q = require("onnxruntime.quantization", "onnxruntime", "int8 quantisation")
    types = {"S8": q.QuantType.QInt8, "U8": q.QuantType.QUInt8}
    if activations not in types:
        raise ExportError(f"unknown activation type {activations!r}; valid: {', '.join(types)}")
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
                activation_type=types[activations], weight_type=q.QuantType.QInt8, nodes_to_exclude=exclude,
                reduce_range=reduce_range,
                calibrate_method=methods[method], extra_options={"CalibTensorRangeSymmetric": False},
            )
        except Exception as exc:
            raise ExportError(f"onnxruntime int8 quantisation failed: {type(exc).__name__}: {exc}") from exc
        finally:
            root.setLevel(old_level)
        return onnx.load(str(dst)), exclude


WEIGHT_OPS = ("Conv", "Gemm")


def _weight_axis(node: Any) -> int:
    """The output-channel axis of a Conv / Gemm weight."""
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    return 0


def per_channel_int8(weight: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(int8 weights, float32 scales, largest distance from the grid in steps) for ``weight``."""
    w = np.moveaxis(np.asarray(weight, np.float64), axis, 0)
    flat = w.reshape(w.shape[0], -1)
    scale = np.abs(flat).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    steps = flat / scale[:, None]
    q = np.clip(np.round(steps), -127, 127)
    off_grid = float(np.abs(steps - q).max()) if steps.size else 0.0
    return np.moveaxis(q.reshape(w.shape).astype(np.int8), 0, axis), scale.astype(np.float32), off_grid


def quantize_weights_int8(fp32: Any, scopes: dict[str, list[str]], float_modules: list[str],
                          fp16_modules: Sequence[str] = (),
                          only_modules: Sequence[str] | None = None) -> tuple[Any, list[str], float]:
    """(ModelProto with int8 weights and float activations, names of nodes kept in float, max off-grid steps).

    Weights of ``fp16_modules`` are stored as float16 behind a ``Cast`` (constant-folded at load).
    ``only_modules``: touch the float weights of these modules' nodes only (the float tail of a static file).
    """
    onnx = require("onnx")
    from onnx import helper, numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(fp32)
    graph = model.graph
    exclude = set(nodes_in_modules(model, scopes, float_modules))
    if float_modules and not exclude:
        raise ExportError(f"no ONNX node belongs to {float_modules}: the exporter's scope metadata changed")
    only = None if only_modules is None else set(nodes_in_modules(model, scopes, list(only_modules)))
    if only_modules and not only:
        raise ExportError(f"no ONNX node belongs to {list(only_modules)}: the exporter's scope metadata changed")
    op_type = {n.name: n.op_type for n in graph.node}
    half: set[str] = set()
    for module in fp16_modules:
        found = [n for n in nodes_in_modules(model, scopes, [module]) if op_type[n] in WEIGHT_OPS]
        if not found:
            raise ExportError(f"no ONNX Conv/Gemm node belongs to {module}: cannot keep its weights in fp16")
        half.update(found)
    inits = {t.name: t for t in graph.initializer}
    users: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    off_grid = 0.0
    dequant = []
    for node in graph.node:
        if node.op_type not in WEIGHT_OPS or node.name in exclude or len(node.input) < 2:
            continue
        if only is not None and node.name not in only:
            continue
        name = node.input[1]
        if name not in inits or users.get(name, 0) != 1:
            continue  # a computed or shared weight: leave it float
        if node.name in half:
            w16 = numpy_helper.to_array(inits[name]).astype(np.float16)
            graph.initializer.remove(inits[name])
            graph.initializer.append(numpy_helper.from_array(w16, f"{name}_fp16"))
            dequant.append(helper.make_node("Cast", [f"{name}_fp16"], [name], to=onnx.TensorProto.FLOAT))
            continue
        axis = _weight_axis(node)
        q, scale, off = per_channel_int8(numpy_helper.to_array(inits[name]), axis)
        off_grid = max(off_grid, off)
        shape = [1] * q.ndim
        shape[axis] = -1
        graph.initializer.remove(inits[name])
        graph.initializer.extend([numpy_helper.from_array(q, f"{name}_q"),
                                  numpy_helper.from_array(scale.reshape(shape), f"{name}_scale")])
        dequant.extend([helper.make_node("Cast", [f"{name}_q"], [f"{name}_qf"], to=onnx.TensorProto.FLOAT),
                        helper.make_node("Mul", [f"{name}_qf", f"{name}_scale"], [name])])
    graph.node.extend(dequant)
    topological_sort(graph)
    log.info("int8 weights: %d layers' weights fp16, the rest int8; largest distance from the int8 grid %.4f steps",
             len(half), off_grid)
    return model, sorted(exclude | half), off_grid
