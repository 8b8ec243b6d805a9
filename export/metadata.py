"""The key manifest fields embedded in every model file (ARCHITECTURE.md, "The bundle").

One JSON object under the key ``facelivenet`` (ONNX ``metadata_props``, CoreML
``user_defined_metadata``, a TFLite ``metadata`` entry): enough to use a file
found without its manifest, and to notice that it was separated from it. A file
never carries its own hash; the manifest does.
"""

from __future__ import annotations

import json
from typing import Any

from facelivenet.edge_runtime.manifest import SCHEMA_VERSION, Outputs, Thresholds
from facelivenet.edge_runtime.preprocess import PreprocessConfig

METADATA_KEY = "facelivenet"


def key_fields(
    *,
    model_name: str,
    model_version: str,
    checkpoint_sha256: str,
    fmt: str,
    precision: str,
    layout: str,
    preprocess: PreprocessConfig,
    outputs: Outputs,
    thresholds: Thresholds,
    float_layers: list[str] | None = None,
    quantisation: str | None = None,
) -> dict[str, Any]:
    """The JSON object embedded in a model file (``quantisation``: the int8 level's name, for int8 files)."""
    pre = preprocess.to_dict()
    pre["layout"] = layout  # this file's input layout
    return {
        "schema_version": SCHEMA_VERSION,
        "model_name": model_name,
        "model_version": model_version,
        "checkpoint_sha256": checkpoint_sha256,
        "format": fmt,
        "precision": precision,
        "preprocess": pre,
        "outputs": {
            "embedding": outputs.embedding,
            "expression_logits": outputs.expression_logits,
            "embedding_dim": outputs.embedding_dim,
            "embedding_normalized": outputs.embedding_normalized,
            "expression_labels": list(outputs.expression_labels),
            "expression_softmax_inside": outputs.expression_softmax_inside,
        },
        "thresholds": {
            "verification_cosine": thresholds.verification_cosine,
            "target_far": thresholds.target_far,
            "expression_probability": thresholds.expression_probability,
            "calibrated_on": thresholds.calibrated_on,
        },
        "float_layers": list(float_layers or []),
        **({"quantisation": quantisation} if quantisation else {}),
    }


def to_json(fields: dict[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))
