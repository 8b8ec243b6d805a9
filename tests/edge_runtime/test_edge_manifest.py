"""The bundle manifest: schema validation that names the bad field, and sha256 checks."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from facelivenet.edge_runtime.errors import FaceLiveError, ManifestError
from facelivenet.edge_runtime.labels import EXPRESSION_LABELS
from facelivenet.edge_runtime.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    Outputs,
    load_manifest,
    manifest_from_dict,
    save_manifest,
    sha256_file,
)


def test_round_trip(build_bundle):
    bundle, manifest = build_bundle({"model_int8.onnx": b"a" * 100, "model_fp32.onnx": b"b" * 50})
    loaded = load_manifest(bundle)
    assert loaded == manifest
    assert loaded.schema_version == SCHEMA_VERSION
    on_disk = json.loads((bundle / MANIFEST_NAME).read_text())
    assert on_disk == manifest.to_dict() == loaded.to_dict()
    assert on_disk["outputs"]["expression_labels"] == list(EXPRESSION_LABELS)
    assert loaded.file_for("onnx", "fp32").path == "model_fp32.onnx"
    assert loaded.file_for("onnx", "int8").size_bytes == 100


def test_file_for_lists_what_exists(build_bundle):
    _, manifest = build_bundle()
    with pytest.raises(ManifestError, match=r"no tflite fp16 model \(it has: onnx/int8\)"):
        manifest.file_for("tflite", "fp16")


def _without(d: dict, dotted: str) -> dict:
    d = copy.deepcopy(d)
    *parents, last = dotted.split(".")
    node = d
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    del node[last]
    return d


def _with(d: dict, dotted: str, value) -> dict:
    d = copy.deepcopy(d)
    *parents, last = dotted.split(".")
    node = d
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    node[last] = value
    return d


def _refused(d: dict, *fragments: str) -> str:
    with pytest.raises(ManifestError) as info:
        manifest_from_dict(d)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize(
    "field",
    [
        "schema_version", "model_name", "model_version", "checkpoint_sha256", "files", "preprocess",
        "outputs", "thresholds",
    ],
)
def test_missing_top_level_field(manifest_dict, field):
    _refused(_without(manifest_dict, field), f"missing field {field}")


@pytest.mark.parametrize(
    "dotted, shown",
    [
        ("files.0.sha256", "files[0].sha256"),
        ("files.0.path", "files[0].path"),
        ("preprocess.layout", "preprocess.layout"),
        ("preprocess.mean", "preprocess.mean"),
        ("preprocess.input_size", "preprocess.input_size"),
        ("outputs.embedding_dim", "outputs.embedding_dim"),
        ("outputs.expression_labels", "outputs.expression_labels"),
        ("thresholds.verification_cosine", "thresholds.verification_cosine"),
    ],
)
def test_missing_nested_field_is_never_defaulted(manifest_dict, dotted, shown):
    _refused(_without(manifest_dict, dotted), f"missing field {shown}")


@pytest.mark.parametrize(
    "dotted, value, shown",
    [
        ("schema_version", "1", "schema_version"),
        ("schema_version", True, "schema_version"),
        ("model_name", 7, "model_name"),
        ("files", {"path": "x"}, "files"),
        ("files.0.size_bytes", "12", "files[0].size_bytes"),
        ("files.0.size_bytes", True, "files[0].size_bytes"),
        ("preprocess", [], "preprocess"),
        ("preprocess.input_size", "112", "preprocess.input_size"),
        ("outputs.embedding_dim", 128.0, "outputs.embedding_dim"),
        ("outputs.embedding_normalized", "yes", "outputs.embedding_normalized"),
        ("thresholds.target_far", "0.001", "thresholds.target_far"),
    ],
)
def test_wrong_type(manifest_dict, dotted, value, shown):
    _refused(_with(manifest_dict, dotted, value), f"field {shown} has type")


def test_files_entry_must_be_an_object(manifest_dict):
    _refused(_with(manifest_dict, "files", ["model.onnx"]), "files[0] must be an object")


@pytest.mark.parametrize("version", [0, 2, SCHEMA_VERSION + 1])
def test_wrong_schema_version(manifest_dict, version):
    _refused(_with(manifest_dict, "schema_version", version), f"schema_version {version} is not supported")


@pytest.mark.parametrize(
    "labels",
    [
        list(reversed(EXPRESSION_LABELS)),
        list(EXPRESSION_LABELS[:6]),
        [*EXPRESSION_LABELS, "contempt"],
        ["neutral", "angry", "disgust", "fear", "happy", "sad", "surprise"],  # aliases are not canonical
    ],
)
def test_wrong_labels(manifest_dict, labels):
    _refused(_with(manifest_dict, "outputs.expression_labels", labels), "outputs.expression_labels")


@pytest.mark.parametrize(
    "path", ["../model.onnx", "/etc/passwd", "sub/../../model.onnx", "..\\model.onnx", "C:/model.onnx", "", "."]
)
def test_path_escaping_the_bundle(manifest_dict, path):
    _refused(_with(manifest_dict, "files.0.path", path), "files[0].path must stay inside the bundle")


@pytest.mark.parametrize("dotted, value", [("files.0.format", "pt"), ("files.0.precision", "int4")])
def test_unknown_format_or_precision(manifest_dict, dotted, value):
    _refused(_with(manifest_dict, dotted, value), "files[0]", value)


@pytest.mark.parametrize(
    "dotted, value, shown",
    [
        ("preprocess.layout", "CHW", "preprocess"),
        ("preprocess.mean", [1.0, 2.0], "preprocess"),
        ("outputs.surprise_field", 1, "outputs"),
        ("thresholds.extra", 1, "thresholds"),
    ],
)
def test_invalid_section_values_name_the_section(manifest_dict, dotted, value, shown):
    _refused(_with(manifest_dict, dotted, value), f"manifest: {shown}:")


def test_top_level_must_be_an_object():
    _refused([1, 2], "top level must be a JSON object")  # type: ignore[arg-type]


def test_tampered_file_is_refused(build_bundle):
    bundle, manifest = build_bundle()
    model = bundle / manifest.files[0].path
    model.write_bytes(model.read_bytes() + b"!")
    with pytest.raises(ManifestError, match="model_int8.onnx does not match its manifest sha256"):
        load_manifest(bundle)
    assert load_manifest(bundle, verify_files=False) == manifest  # schema alone still checks out


def test_same_size_different_bytes_is_refused(build_bundle):
    bundle, manifest = build_bundle({"m.onnx": b"abcdef"})
    (bundle / "m.onnx").write_bytes(b"abcdeg")
    with pytest.raises(ManifestError, match="sha256"):
        load_manifest(bundle)


def test_missing_model_file_is_refused(build_bundle):
    bundle, manifest = build_bundle()
    (bundle / manifest.files[0].path).unlink()
    with pytest.raises(ManifestError, match="listed in the manifest is missing"):
        load_manifest(bundle)


def test_no_manifest_or_bad_json(tmp_path):
    with pytest.raises(ManifestError, match="no manifest.json"):
        load_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path)
    assert isinstance(info.value, FaceLiveError)


def test_save_refuses_an_invalid_manifest(tmp_path, make_manifest):
    bad = make_manifest((), outputs=Outputs(expression_labels=("happy", "sad")))
    with pytest.raises(ManifestError, match="expression_labels"):
        save_manifest(bad, tmp_path)
    assert not (tmp_path / MANIFEST_NAME).exists()


def test_folder_model_hash(tmp_path: Path):
    """Folder formats (.mlpackage) hash every file with its relative path."""
    pkg = tmp_path / "model.mlpackage"
    (pkg / "Data").mkdir(parents=True)
    (pkg / "Data" / "weights.bin").write_bytes(b"w" * 10)
    (pkg / "Manifest.json").write_text("{}")
    first = sha256_file(pkg)
    assert first == sha256_file(pkg) and len(first) == 64
    (pkg / "Data" / "weights.bin").write_bytes(b"w" * 9 + b"x")
    second = sha256_file(pkg)
    assert second != first
    (pkg / "Data" / "weights.bin").rename(pkg / "Data" / "weights2.bin")
    assert sha256_file(pkg) != second


def test_sha256_file_matches_hashlib(tmp_path):
    import hashlib

    data = bytes(range(256)) * 5000  # > one read chunk
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path, chunk=4096) == hashlib.sha256(data).hexdigest()
