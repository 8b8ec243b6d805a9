"""Fuzzed manifests: whatever the dict or the file holds, the loader answers a Manifest or ManifestError.

Random JSON values, valid manifests with one field deleted / replaced / added
at any depth, and random bytes as manifest.json. Never another exception.
"""

from __future__ import annotations

import copy
import os
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facelivenet.edge_runtime.errors import ManifestError
from facelivenet.edge_runtime.manifest import (
    MANIFEST_NAME,
    Manifest,
    ModelFile,
    Outputs,
    Thresholds,
    load_manifest,
    manifest_from_dict,
)
from facelivenet.edge_runtime.preprocess import PreprocessConfig

FUZZ = settings(max_examples=int(os.environ.get("FACELIVE_FUZZ_EXAMPLES", "100")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

VALID = json.loads(json.dumps(Manifest(
    model_name="facelivenet", model_version="0.0.0-fuzz", checkpoint_sha256="0" * 64,
    files=(ModelFile("model_int8.onnx", "onnx", "int8", "1" * 64, 10),
           ModelFile("model.tflite", "tflite", "fp32", "2" * 64, 20, layout="NHWC")),
    preprocess=PreprocessConfig(), outputs=Outputs(),
    thresholds=Thresholds(verification_cosine=0.35, target_far=1e-3, expression_probability=0.5,
                          calibrated_on="fuzz"),
    provenance={"datasets": [{"name": "synthetic"}]}, parity={"onnx/int8": {"cosine_mean": 1.0}},
).to_dict()))

json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=12), kids, max_size=4), max_leaves=12)


def _check(d) -> None:
    try:
        result = manifest_from_dict(d)
    except ManifestError as exc:
        assert str(exc).startswith("manifest:"), exc
    else:
        assert isinstance(result, Manifest)


def _containers(node):
    """Every dict and list in a parsed JSON tree."""
    if isinstance(node, (dict, list)):
        yield node
        for child in (node.values() if isinstance(node, dict) else node):
            yield from _containers(child)


def test_the_fuzz_base_manifest_is_valid():
    assert manifest_from_dict(copy.deepcopy(VALID)).model_version == "0.0.0-fuzz"


@FUZZ
@given(value=json_values)
def test_random_json_values(value):
    _check(value)


@FUZZ
@given(value=st.dictionaries(st.sampled_from(sorted(VALID)), json_values, max_size=len(VALID)))
def test_random_values_under_the_real_keys(value):
    _check({**value, "schema_version": 1})


@FUZZ
@given(data=st.data())
def test_one_mutation_anywhere(data):
    d = copy.deepcopy(VALID)
    containers = list(_containers(d))
    node = data.draw(st.sampled_from(containers), label="container")
    action = data.draw(st.sampled_from(["delete", "replace", "add"]), label="action")
    if isinstance(node, dict):
        keys = sorted(node)
        if action == "add" or not keys:
            node[data.draw(st.text(max_size=12), label="new key")] = data.draw(json_values, label="value")
        else:
            key = data.draw(st.sampled_from(keys), label="key")
            if action == "delete":
                del node[key]
            else:
                node[key] = data.draw(json_values, label="value")
    elif node and action != "add":
        i = data.draw(st.integers(0, len(node) - 1), label="index")
        if action == "delete":
            del node[i]
        else:
            node[i] = data.draw(json_values, label="value")
    else:
        node.append(data.draw(json_values, label="value"))
    _check(d)


@FUZZ
@given(blob=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_random_bytes_as_manifest_json(tmp_path: Path, blob: bytes):
    (tmp_path / MANIFEST_NAME).write_bytes(blob)
    with pytest.raises(ManifestError):
        load_manifest(tmp_path, verify_files=False)


def test_deeply_nested_json_is_a_manifest_error(tmp_path: Path):
    (tmp_path / MANIFEST_NAME).write_text("[" * 100_000)
    with pytest.raises(ManifestError):
        load_manifest(tmp_path, verify_files=False)
