"""CoreML (coremltools, mlprogram): fp32, fp16, int8 weights (linear quantisation).

Conversion runs on any OS; prediction only on macOS. On other systems the spec
is checked instead (:func:`check_spec`): input, outputs, op types, and for int8
that the weights really are quantised. Key manifest fields go into
``user_defined_metadata["facelivenet"]``.

The model is traced with TorchScript (``torch.jit.trace``): coremltools 9.0
was tested with torch 2.7 and reads torch.export programs only in the ATEN
dialect (torch >= 2.9 exports TRAINING, coremltools PR #2743), and its
ExportedProgram path refuses a ``RangeDim`` batch that the program does not
declare. The batch dimension is a ``RangeDim(1, 64)``; input and outputs are
float32 (fp16 compute casts inside).
"""

from __future__ import annotations

import logging
import platform
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ExportError, require
from .metadata import METADATA_KEY, to_json
from .wrappers import INPUT_NAME, OUTPUT_NAMES, ExportModel, sample_input

log = logging.getLogger(__name__)

MAX_BATCH = 64
# Ops a converted FaceLiveNet may contain (anything else means the graph changed).
EXPECTED_OPS = {
    "conv", "relu", "concat", "add", "mul", "max_pool", "reduce_mean", "reshape", "linear", "batch_norm",
    "reduce_l2_norm", "maximum", "real_div", "expand_dims", "squeeze", "tile", "shape", "equal", "select",
    "cast", "transpose", "const", "gather", "slice_by_index", "sub", "pow", "sqrt", "reduce_sum", "clip",
    "identity", "square", "abs", "mean",
}
# Quantise every weight tensor with at least this many elements (coremltools' default, 2048,
# would leave the first convolutions of the default model, and all of a small model, in fp16).
WEIGHT_THRESHOLD = 256
QUANTISED_WEIGHT_OPS = {"constexpr_affine_dequantize", "constexpr_blockwise_shift_scale"}


def can_predict() -> bool:
    """CoreML prediction needs macOS (the Core ML framework)."""
    return platform.system() == "Darwin"


def _quiet_coremltools() -> Any:
    ct = require("coremltools", "coremltools", "CoreML conversion")
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    return ct


def convert(model: ExportModel, input_size: int, precision: str) -> Any:
    """An MLModel (mlprogram) of ``model`` in ``precision`` (fp32, fp16, int8 = fp16 + int8 weights)."""
    ct = _quiet_coremltools()
    torch = require("torch")
    if model.as_dict:
        raise ValueError("CoreML export needs ExportModel(as_dict=False)")
    compute = ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16
    x = sample_input(input_size, model.layout, batch=1)
    shape = list(x.shape)
    shape[0] = ct.RangeDim(1, MAX_BATCH, 1)
    outputs = [ct.TensorType(name=n, dtype=np.float32) for n in OUTPUT_NAMES]
    common = dict(convert_to="mlprogram", outputs=outputs, compute_precision=compute,
                  minimum_deployment_target=ct.target.iOS16, skip_model_load=not can_predict())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            traced = torch.jit.trace(model, x, check_trace=False)
            mlmodel = ct.convert(traced, inputs=[ct.TensorType(name=INPUT_NAME, shape=tuple(shape), dtype=np.float32)],
                                 **common)
        except Exception as exc:
            raise ExportError(f"coremltools conversion failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    if precision == "int8":
        mlmodel = quantize_weights_int8(mlmodel)
    return mlmodel


def quantize_weights_int8(mlmodel: Any, skip_ops: list[str] | None = None) -> Any:
    """int8 per-channel symmetric linear quantisation of the weights (compute stays fp16)."""
    _quiet_coremltools()
    from coremltools.optimize.coreml import OpLinearQuantizerConfig, OptimizationConfig, linear_quantize_weights

    cfg = OptimizationConfig(
        global_config=OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel",
                                              weight_threshold=WEIGHT_THRESHOLD),
        op_name_configs={name: None for name in (skip_ops or [])},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return linear_quantize_weights(mlmodel, config=cfg)
        except Exception as exc:
            raise ExportError(f"CoreML int8 weight quantisation failed: {type(exc).__name__}: {exc}") from exc


def set_metadata(mlmodel: Any, fields: dict[str, Any]) -> None:
    mlmodel.user_defined_metadata[METADATA_KEY] = to_json(fields)
    mlmodel.short_description = (f"FaceLiveNet {fields['model_version']}: L2-normalised identity embedding and "
                                 "expression logits from one aligned face")
    mlmodel.version = str(fields["model_version"])
    mlmodel.input_description[INPUT_NAME] = (
        f"aligned face, {fields['preprocess']['layout']}, (x - mean) / std, see metadata 'facelivenet'")
    mlmodel.output_description[OUTPUT_NAMES[0]] = "identity embedding, L2-normalised"
    mlmodel.output_description[OUTPUT_NAMES[1]] = "expression logits (softmax outside), canonical label order"


def save(mlmodel: Any, path: str | Path) -> Path:
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlmodel.save(str(path))
    return path


def load_spec(path: str | Path) -> Any:
    ct = _quiet_coremltools()
    return ct.utils.load_spec(str(path))


def read_metadata(path: str | Path) -> dict[str, Any] | None:
    import json

    meta = dict(load_spec(path).description.metadata.userDefined)
    return json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else None


def op_types(spec: Any) -> Counter:
    ops: Counter = Counter()

    def walk(block: Any) -> None:
        for op in block.operations:
            ops[op.type] += 1
            for inner in op.blocks:
                walk(inner)

    for fn in spec.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            walk(block)
    return ops


def check_spec(path: str | Path, input_size: int, embedding_dim: int, precision: str, layout: str = "NCHW") -> dict[str, Any]:
    """Check a saved .mlpackage without running it; ExportError naming the first mismatch."""
    spec = load_spec(path)
    if spec.WhichOneof("Type") != "mlProgram":
        raise ExportError(f"{path}: not an mlprogram ({spec.WhichOneof('Type')})")
    inputs = {i.name: i for i in spec.description.input}
    outputs = {o.name: o for o in spec.description.output}
    if list(inputs) != [INPUT_NAME]:
        raise ExportError(f"{path}: inputs {list(inputs)}, expected [{INPUT_NAME!r}]")
    if sorted(outputs) != sorted(OUTPUT_NAMES):
        raise ExportError(f"{path}: outputs {sorted(outputs)}, expected {sorted(OUTPUT_NAMES)}")
    arr = inputs[INPUT_NAME].type.multiArrayType
    shape = list(arr.shape)
    want = [1, 3, input_size, input_size] if layout == "NCHW" else [1, input_size, input_size, 3]
    if shape != want:
        raise ExportError(f"{path}: input shape {shape}, expected {want}")
    ranges = [(r.lowerBound, r.upperBound) for r in arr.shapeRange.sizeRanges]
    float32 = 65568  # ArrayFeatureType.FLOAT32
    if arr.dataType != float32 or any(o.type.multiArrayType.dataType != float32 for o in outputs.values()):
        raise ExportError(f"{path}: input and outputs must be float32")
    ops = op_types(spec)
    unexpected = sorted(set(ops) - EXPECTED_OPS - QUANTISED_WEIGHT_OPS - {"cast"})
    if unexpected:
        raise ExportError(f"{path}: unexpected op types {unexpected}")
    if ops.get("conv", 0) == 0 or ops.get("linear", 0) < 2:
        raise ExportError(f"{path}: expected conv and two linear ops, found {dict(ops)}")
    quantised = sum(ops.get(o, 0) for o in QUANTISED_WEIGHT_OPS)
    if precision == "int8" and quantised == 0:
        raise ExportError(f"{path}: int8 model without quantised weights")
    return {
        "input": {"name": INPUT_NAME, "shape": shape, "batch_range": list(ranges[0]) if ranges else None},
        "outputs": sorted(outputs),
        "op_counts": dict(sorted(ops.items())),
        "quantised_weight_ops": quantised,
        "embedding_dim": embedding_dim,
    }


def predict(path: str | Path, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run a saved .mlpackage (macOS only), through the edge runtime's Core ML backend."""
    if not can_predict():
        raise ExportError("CoreML prediction needs macOS")
    from .runners import coreml_runner

    return coreml_runner(path)(batch)
