"""ONNX: the fp32 graph (torch.onnx dynamo exporter), fp16, metadata, clean-up.

The fp32 file has opset >= 17, a dynamic batch dimension, one input ``input``
and two outputs ``embedding`` and ``expression_logits``. Node metadata written
by the exporter (stack traces, module scopes: ~0.3 MB) is read once, to know
which nodes belong to which torch module, then stripped.
"""

from __future__ import annotations

import ast
import io
import logging
from pathlib import Path
from typing import Any

from .errors import ExportError, require
from .metadata import METADATA_KEY, to_json
from .wrappers import INPUT_NAME, OUTPUT_NAMES, ExportModel, sample_input

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
MIN_OPSET = 17
# onnxruntime >= 1.17 (the edge extra's floor) reads IR version 9; nothing here needs 10.
MAX_IR_VERSION = 9
SCOPE_KEY = "pkg.torch.onnx.name_scopes"


def export_fp32(model: ExportModel, input_size: int, opset: int = DEFAULT_OPSET) -> tuple[Any, dict[str, list[str]]]:
    """(ModelProto, node name -> torch module scopes) of the fp32 graph with a dynamic batch."""
    if opset < MIN_OPSET:
        raise ExportError(f"--opset {opset} is below the minimum {MIN_OPSET}")
    torch = require("torch")
    require("onnxscript", "onnxscript", "the torch.onnx dynamo exporter")
    onnx = require("onnx")
    x = sample_input(input_size, model.layout, batch=2)
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        program = torch.onnx.export(
            model, (x,), dynamo=True, input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
            dynamic_shapes=({0: batch},), opset_version=opset, external_data=False, optimize=True,
            verbose=False,
        )
    except Exception as exc:  # the exporter raises many types
        raise ExportError(f"torch.onnx.export failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    proto = program.model_proto
    buf = io.BytesIO()
    onnx.save(proto, buf)  # a detached copy that no longer shares memory with the exporter
    proto = onnx.load_from_string(buf.getvalue())
    scopes = node_scopes(proto)
    strip_node_metadata(proto)
    return proto, scopes


def node_scopes(proto: Any) -> dict[str, list[str]]:
    """Node name -> the torch module paths it was traced from (exporter metadata)."""
    out: dict[str, list[str]] = {}
    for node in proto.graph.node:
        for prop in node.metadata_props:
            if prop.key == SCOPE_KEY:
                try:
                    out[node.name] = [str(s) for s in ast.literal_eval(prop.value)]
                except (ValueError, SyntaxError):
                    out[node.name] = []
    return out


def nodes_in_modules(proto: Any, scopes: dict[str, list[str]], modules: list[str]) -> list[str]:
    """Names of the nodes that belong to any of ``modules`` (module paths like ``net.stem.0``)."""
    wanted = set(modules)
    return [n.name for n in proto.graph.node if wanted & set(scopes.get(n.name, []))]


def strip_node_metadata(proto: Any) -> None:
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    proto.graph.doc_string = ""


def simplify(proto: Any) -> tuple[Any, str]:
    """Constant folding and dead-code removal: onnxsim when installed, else the onnxscript optimizer."""
    try:
        import onnxsim  # type: ignore[import-not-found]

        simplified, ok = onnxsim.simplify(proto)
        if ok:
            return simplified, "onnxsim"
    except ImportError:
        pass
    from onnxscript import optimizer

    return optimizer.optimize(proto), "onnxscript.optimizer"


def to_fp16(proto: Any) -> Any:
    """fp16 weights and compute; float32 input and outputs (keep_io_types)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx = require("onnx")
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)  # the converter edits its argument
    fp16 = convert_float_to_float16(copy, keep_io_types=True, disable_shape_infer=False)
    topological_sort(fp16.graph)  # the converter appends its input/output Casts at the end
    return fp16


def topological_sort(graph: Any) -> None:
    """Reorder ``graph.node`` so every node follows the producers of its inputs (stable otherwise)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    nodes = list(graph.node)
    ordered: list[Any] = []
    while nodes:
        progressed = False
        rest = []
        for node in nodes:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
                progressed = True
            else:
                rest.append(node)
        if not progressed:
            raise ExportError("the ONNX graph has a cycle or an undefined input: "
                              + ", ".join(sorted({n for node in rest for n in node.input} - available))[:200])
        nodes = rest
    del graph.node[:]
    graph.node.extend(ordered)


def compact_names(proto: Any) -> None:
    """Short tensor names (``t12``), no node names: ~0.1 MB less for the int8 file. Graph I/O names stay."""
    graph = proto.graph
    keep = {v.name for v in graph.input} | {v.name for v in graph.output} | {""}
    mapping: dict[str, str] = {}

    def short(name: str) -> str:
        if name in keep:
            return name
        if name not in mapping:
            mapping[name] = f"t{len(mapping)}"
        return mapping[name]

    for t in graph.initializer:
        t.name = short(t.name)
    for node in graph.node:
        node.name = ""
        for i, name in enumerate(node.input):
            node.input[i] = short(name)
        for i, name in enumerate(node.output):
            node.output[i] = short(name)
    for v in graph.value_info:
        v.name = short(v.name)


def set_metadata(proto: Any, fields: dict[str, Any], doc: str = "") -> None:
    """Replace the ``facelivenet`` metadata_props entry (JSON) and describe the producer."""
    keep = [p for p in proto.metadata_props if p.key != METADATA_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, to_json(fields)
    proto.producer_name = "facelivenet.export"
    proto.doc_string = doc


def read_metadata(path: str | Path) -> dict[str, Any] | None:
    import json

    onnx = require("onnx")
    proto = onnx.load(str(path), load_external_data=False)
    for p in proto.metadata_props:
        if p.key == METADATA_KEY:
            return json.loads(p.value)
    return None


def save(proto: Any, path: str | Path) -> Path:
    """Check and write a single self-contained .onnx file."""
    onnx = require("onnx")
    proto.ir_version = min(proto.ir_version, MAX_IR_VERSION)
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:  # onnx.checker.ValidationError and friends
        raise ExportError(f"the exported ONNX graph is invalid: {str(exc).splitlines()[0]}") from exc
    path = Path(path)
    onnx.save(proto, str(path))
    return path
