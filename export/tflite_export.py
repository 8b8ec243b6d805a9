"""TFLite (LiteRT) with litert-torch, no TensorFlow: fp32, fp16 weights, int8 static.

- fp32: ``litert_torch.convert`` of :class:`~.wrappers.ExportModel` (batch 1,
  signature ``serving_default`` with input ``input`` and outputs ``embedding``,
  ``expression_logits``), NCHW or NHWC input;
- fp16: ai-edge-quantizer weight-only float casting (fp16 weights, fp32 compute);
- int8: ai-edge-quantizer, int8 weights per channel and either the static
  recipe (int8 activations, calibrated on real faces, float input/outputs) or
  the weight-only recipe (float activations); the modules in ``float_modules``
  (always the L2 normalisation tail) are left in float.

Afterwards the tensors get short names (the converter's names are module paths,
~0.1 MB per file) and the key manifest fields go into a ``metadata`` entry.
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import ExportError, require
from .metadata import METADATA_KEY, to_json
from .wrappers import INPUT_NAME, OUTPUT_NAMES, ExportModel, sample_input

log = logging.getLogger(__name__)

SIGNATURE = "serving_default"


def convert_fp32(model: ExportModel, input_size: int, path: str | Path, verbose: bool = False) -> Path:
    """Convert the float model to a .tflite file (batch 1)."""
    litert_torch = require("litert_torch", "litert-torch", "TFLite conversion")
    litert_torch.config.show_progress = verbose
    if not model.as_dict:
        raise ValueError("the TFLite export needs ExportModel(as_dict=True) for named outputs")
    x = sample_input(input_size, model.layout, batch=1)
    try:
        edge = litert_torch.convert(model, sample_args=(), sample_kwargs={INPUT_NAME: x})
        edge.export(str(path))
    except Exception as exc:
        raise ExportError(f"litert-torch conversion failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    return Path(path)


# An op that writes a model output is named after the output, not after its module.
OUTPUT_PRODUCERS = {"l2norm": OUTPUT_NAMES[0], "net.expression_head": OUTPUT_NAMES[1]}


def module_regexes(module_path: str) -> list[str]:
    """Regexes for the op scopes (output tensor names) litert-torch gives a module's ops.

    Names are ``Class_attr`` per module level under ``ExportModel/``; the ``net``
    level may be absent (the wrapper calls ``net.features``, not ``net.forward``).
    """
    parts = module_path.split(".")
    if parts[0] == "net":
        parts = parts[1:]
    body = "/".join(rf"[^/;]*_{re.escape(p)}" for p in parts)
    out = [rf"ExportModel/(?:[^/;]*_net/)?{body}(?:/|;|$)"]
    if module_path in OUTPUT_PRODUCERS:
        out.append(rf"^serving_default_{OUTPUT_PRODUCERS[module_path]}(?:_output)?(?::\d+)?(?:;|$)")
    return out


def _row_pattern(w: np.ndarray) -> np.ndarray:
    """Each output row divided by its largest-magnitude entry: invariant to per-channel scale and sign
    (what BatchNorm folding changes)."""
    rows = np.asarray(w, np.float64).reshape(w.shape[0], -1)
    pivot = rows[np.arange(len(rows)), np.abs(rows).argmax(1)]
    return rows / np.where(pivot == 0, 1.0, pivot)[:, None]


def weight_scopes(src: str | Path, weights: Sequence[np.ndarray]) -> list[str]:
    """Exact scope regexes of the ops whose constant weights are ``weights`` (torch layout: OIHW or OI).

    litert-torch fuses unrelated debug names into op scopes, so module-path regexes can
    match other layers; the op is found by its weight instead (up to the per-channel
    scale BatchNorm folding applies) and named by its full scope, as ai-edge-quantizer
    computes it.
    """
    from ai_edge_litert.tools import flatbuffer_utils as fb
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tfl

    model = fb.read_model(str(src))
    graph = model.subgraphs[0]
    candidates = []
    for op in graph.operators:
        if len(op.inputs) < 2 or op.inputs[1] < 0:
            continue
        tensor = graph.tensors[op.inputs[1]]
        data = model.buffers[tensor.buffer].data
        if data is None or tensor.type != 0:  # a float32 constant
            continue
        w = np.frombuffer(bytes(data), np.float32).reshape(tensor.shape)
        candidates.append((_row_pattern(w), tfl.get_op_scope(op, graph.tensors)))
    out = []
    for weight in weights:
        w = np.asarray(weight, np.float32)
        ohwi = w.transpose(0, 2, 3, 1) if w.ndim == 4 else w
        pattern = _row_pattern(ohwi)
        found = [scope for cand, scope in candidates if cand.shape == pattern.shape and np.allclose(cand, pattern, atol=1e-4)]
        if len(found) != 1:
            raise ExportError(f"{len(found)} TFLite ops carry a weight of shape {list(w.shape)}; expected exactly one")
        out.append("^" + re.escape(found[0]) + "$")
    return out


def _quantizer(src: Path):
    aeq = require("ai_edge_quantizer", "ai-edge-quantizer", "TFLite quantisation")
    from ai_edge_quantizer import quantizer

    return aeq, quantizer.Quantizer(str(src))


def quantize_fp16(src: str | Path, dst: str | Path) -> Path:
    """fp16 weights (float casting), float compute."""
    _, q = _quantizer(Path(src))
    from ai_edge_quantizer import algorithm_manager

    q.add_weight_only_config(regex=".*", operation_name="*", num_bits=16,
                             algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING)
    try:
        Path(dst).unlink(missing_ok=True)  # a fresh file: no "Overwriting the model" notice
        q.quantize().export_model(str(dst))
    except Exception as exc:
        raise ExportError(f"TFLite fp16 quantisation failed: {type(exc).__name__}: {exc}") from exc
    return Path(dst)


def quantize_int8(src: str | Path, dst: str | Path, calib: np.ndarray, float_modules: list[str],
                  activations: str = "int8", fp16_weights: Sequence[np.ndarray] = (),
                  int8_weight_modules: Sequence[str] = ()) -> list[str]:
    """int8 weights (per channel) and, with ``activations="int8"``, static int8 activations calibrated on
    ``calib`` (float32, file layout); ``"float"``: weight-only (float compute), and the layers whose
    weights are ``fp16_weights`` (torch layout) stored as float16. ``int8_weight_modules`` (a subset of
    ``float_modules``): float activations, but int8 weights. Returns the regexes kept float."""
    if activations not in ("int8", "float"):
        raise ValueError(f"activations must be 'int8' or 'float', got {activations!r}")
    _, q = _quantizer(Path(src))
    from ai_edge_quantizer import algorithm_manager, recipe

    no_quant = algorithm_manager.AlgorithmName.NO_QUANTIZE
    q.load_quantization_recipe(recipe.static_wi8_ai8() if activations == "int8" else recipe.weight_only_wi8_afp32())
    regexes = [rx for m in float_modules for rx in module_regexes(m)]
    for rx in regexes:
        q.update_quantization_recipe(regex=rx, operation_name="*", algorithm_key=no_quant)
    half = weight_scopes(src, fp16_weights) if fp16_weights else []
    for rx in half:
        q.add_weight_only_config(regex=rx, operation_name="*", num_bits=16,
                                 algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING)
    for rx in (rx for m in int8_weight_modules for rx in module_regexes(m)):
        q.add_weight_only_config(regex=rx, operation_name="FULLY_CONNECTED", num_bits=8)
    try:
        if activations == "int8":
            for io_op in ("INPUT", "OUTPUT"):  # float32 in and out: the runtime feeds normalised floats
                q.update_quantization_recipe(regex=".*", operation_name=io_op, algorithm_key=no_quant)
            data = {SIGNATURE: [{INPUT_NAME: np.ascontiguousarray(x[None], dtype=np.float32)} for x in calib]}
            result = q.quantize(_calibrate_min_max(q, Path(src), data))
        else:
            result = q.quantize()
        Path(dst).unlink(missing_ok=True)  # a fresh file: no "Overwriting the model" notice
        result.export_model(str(dst))
    except Exception as exc:
        raise ExportError(f"TFLite int8 quantisation failed: {type(exc).__name__}: {exc}") from exc
    return regexes + half


def _calibrate_min_max(q: Any, src: Path, data: dict) -> dict:
    """Activation ranges = min/max over ALL calibration faces.

    ``Quantizer.calibrate`` merges per-sample ranges with a moving average, which
    clips the faces with the widest activations: on FaceLiveNet that cost up to
    0.06 of embedding cosine on single faces (min 0.94 vs 0.99 with min/max).
    """
    from ai_edge_quantizer import calibrator
    from ai_edge_quantizer.utils import qsv_utils

    manager = getattr(q, "_recipe_manager", None)
    if manager is None:  # the quantizer's internals changed: fall back to its own (moving average) calibration
        log.warning("ai-edge-quantizer internals changed; calibrating with its moving-average ranges")
        return q.calibrate(data, num_threads=1)
    calib = calibrator.Calibrator(src.read_bytes(), num_threads=1, qsv_update_func=qsv_utils.min_max_update)
    calib.calibrate(data, manager)
    return calib.get_model_qsvs()


def finalize(path: str | Path, fields: dict[str, Any]) -> Path:
    """Short tensor names (signature names kept) and the ``facelivenet`` metadata entry, in place."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fb

    path = Path(path)
    model = fb.read_model(str(path))
    io_names: dict[int, str] = {}
    for sig in model.signatureDefs or []:
        for tmap in list(sig.inputs or []) + list(sig.outputs or []):
            name = tmap.name.decode() if isinstance(tmap.name, bytes) else tmap.name
            io_names[tmap.tensorIndex] = name
    for sg in model.subgraphs:
        for i, tensor in enumerate(sg.tensors):
            tensor.name = io_names.get(i, f"t{i}")
    model.metadata = [m for m in (model.metadata or [])
                      if (m.name.decode() if isinstance(m.name, bytes) else m.name) != METADATA_KEY]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(to_json(fields).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_KEY
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tflite", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        fb.write_model(model, str(tmp_path))
        tmp_path.replace(path)
    finally:
        tmp_path.unlink(missing_ok=True)
    return path


def read_metadata(path: str | Path) -> dict[str, Any] | None:
    """The ``facelivenet`` metadata entry of a .tflite file (None when absent)."""
    import json

    from ai_edge_litert import schema_py_generated as schema

    data = Path(path).read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        md = model.Metadata(i)
        if md.Name() and md.Name().decode() == METADATA_KEY:
            buf = model.Buffers(md.Buffer())
            return json.loads(buf.DataAsNumpy().tobytes().decode())
    return None


def signature_io(path: str | Path) -> tuple[list[str], list[str]]:
    """(input names, output names) of the ``serving_default`` signature."""
    from ai_edge_litert.interpreter import Interpreter

    sigs = Interpreter(model_path=str(path)).get_signature_list()
    if SIGNATURE not in sigs:
        raise ExportError(f"{path} has no {SIGNATURE} signature (it has {list(sigs)})")
    return list(sigs[SIGNATURE]["inputs"]), list(sigs[SIGNATURE]["outputs"])

