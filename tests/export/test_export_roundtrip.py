"""Every format x precision of a tiny random model: converted, run, compared with torch on real faces."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facelivenet.edge_runtime.manifest import FORMATS, PRECISIONS, load_manifest

from .conftest import TINY_MODEL, TINY_PARITY, TINY_PRE

# Cosine floors for a random 30 k-parameter model (the real gates are checked on the real model).
FLOOR = {"fp32": 0.9999, "fp16": 0.999, "int8": 0.99}


def _torch_outputs(checkpoint, batch_nchw):
    from facelivenet.export.source import load_source
    from facelivenet.export.wrappers import torch_reference

    return torch_reference(load_source(checkpoint).model, batch_nchw)


def _cos(a, b):
    from facelivenet.export.parity import cosine_rows

    return cosine_rows(a, b)


def test_bundle_holds_every_format_and_precision(tiny_bundle):
    bundle, summary = tiny_bundle
    manifest = load_manifest(bundle)
    have = {(f.format, f.precision) for f in manifest.files}
    assert have == {(f, p) for f in FORMATS for p in PRECISIONS}
    layouts = {(f.format, f.layout) for f in manifest.files}
    assert ("tflite", "NHWC") in layouts and ("onnx", "NCHW") in layouts and ("coreml", "NCHW") in layouts
    assert manifest.file_for("onnx", "fp32").path == "model.onnx"
    assert len(summary["files"]) == 9 and summary["parity_faces"] == TINY_PARITY


@pytest.mark.parametrize("precision", PRECISIONS)
def test_onnx_round_trip(tiny_bundle, tiny_checkpoint, tiny_faces, precision):
    import onnx

    from facelivenet.export.runners import onnx_runner

    bundle, _ = tiny_bundle
    f = load_manifest(bundle).file_for("onnx", precision)
    proto = onnx.load(str(bundle / f.path))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["embedding", "expression_logits"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    _, parity = tiny_faces
    x = parity.tensor(TINY_PRE, "NCHW")
    ref_emb, ref_logits = _torch_outputs(tiny_checkpoint, x)
    run = onnx_runner(bundle / f.path)
    emb, logits = run(x)
    assert emb.shape == (len(x), TINY_MODEL.embedding_dim) and logits.shape == (len(x), 7)
    assert _cos(ref_emb, emb).mean() >= FLOOR[precision]
    one, _ = run(x[:1])  # batch 1 works too and gives the same row
    np.testing.assert_allclose(one[0], emb[0], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-3)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_tflite_round_trip_in_ai_edge_litert(tiny_bundle, tiny_checkpoint, tiny_faces, precision):
    from ai_edge_litert.interpreter import Interpreter

    bundle, _ = tiny_bundle
    f = load_manifest(bundle).file_for("tflite", precision)
    assert f.layout == "NHWC"
    interpreter = Interpreter(model_path=str(bundle / f.path))
    sig = interpreter.get_signature_list()["serving_default"]
    assert sig["inputs"] == ["input"] and sorted(sig["outputs"]) == ["embedding", "expression_logits"]
    runner = interpreter.get_signature_runner("serving_default")
    _, parity = tiny_faces
    ref_emb, ref_logits = _torch_outputs(tiny_checkpoint, parity.tensor(TINY_PRE, "NCHW"))
    nhwc = parity.tensor(TINY_PRE, "NHWC")
    outs = [runner(input=x[None]) for x in nhwc]
    emb = np.concatenate([o["embedding"] for o in outs])
    logits = np.concatenate([o["expression_logits"] for o in outs])
    assert emb.dtype == np.float32 and logits.dtype == np.float32  # float I/O, int8 inside
    assert _cos(ref_emb, emb).mean() >= FLOOR[precision]
    assert (np.argmax(logits, 1) == np.argmax(ref_logits, 1)).mean() >= 0.9


@pytest.mark.parametrize("precision", PRECISIONS)
def test_coreml_spec_has_expected_inputs_and_outputs(tiny_bundle, precision):
    from facelivenet.export import coreml_export

    bundle, _ = tiny_bundle
    f = load_manifest(bundle).file_for("coreml", precision)
    assert f.path.endswith(".mlpackage") and (bundle / f.path).is_dir()
    report = coreml_export.check_spec(bundle / f.path, TINY_PRE.input_size, TINY_MODEL.embedding_dim, precision)
    assert report["input"]["shape"] == [1, 3, TINY_PRE.input_size, TINY_PRE.input_size]
    assert report["input"]["batch_range"] == [1, coreml_export.MAX_BATCH]
    assert report["outputs"] == ["embedding", "expression_logits"]
    assert report["op_counts"]["conv"] > 0
    assert (report["quantised_weight_ops"] > 0) == (precision == "int8")
    spec = coreml_export.load_spec(bundle / f.path)
    assert spec.WhichOneof("Type") == "mlProgram"


@pytest.mark.skipif(__import__("platform").system() != "Darwin",
                    reason="CoreML prediction needs macOS (the Core ML framework); on Linux the spec is checked instead")
@pytest.mark.parametrize("precision", PRECISIONS)
def test_coreml_predicts_like_torch_on_macos(tiny_bundle, tiny_checkpoint, tiny_faces, precision):
    from facelivenet.export import coreml_export

    bundle, _ = tiny_bundle
    f = load_manifest(bundle).file_for("coreml", precision)
    _, parity = tiny_faces
    x = parity.tensor(TINY_PRE, "NCHW")
    ref_emb, _ = _torch_outputs(tiny_checkpoint, x)
    emb, logits = coreml_export.predict(bundle / f.path, x)
    assert _cos(ref_emb, emb).mean() >= min(FLOOR[precision], 0.999)
    assert load_manifest(bundle).parity[f"coreml/{precision}"]["measured"] is not False


def test_parity_recorded_per_file_with_gates(tiny_bundle):
    bundle, _ = tiny_bundle
    manifest = load_manifest(bundle)
    for f in manifest.files:
        p = manifest.parity[f"{f.format}/{f.precision}"]
        assert p["path"] == f.path
        if f.format == "coreml":
            assert p["spec_check"] == "passed"
            continue
        assert p["faces"] == TINY_PARITY
        assert set(p["gate"]) >= {"cosine_mean"}
        assert p["passed"] == (not p["failures"])
        if f.precision in ("fp32", "fp16"):
            assert p["passed"], p
        else:
            assert "l2norm" in p["float_layers"] and p["attempts"]
            assert p["size_limit_bytes"] == 1_600_000


def test_each_model_file_carries_the_key_fields(tiny_bundle):
    from facelivenet.export import coreml_export, onnx_export, tflite_export

    bundle, _ = tiny_bundle
    manifest = load_manifest(bundle)
    readers = {"onnx": onnx_export.read_metadata, "tflite": tflite_export.read_metadata,
               "coreml": coreml_export.read_metadata}
    for f in manifest.files:
        meta = readers[f.format](bundle / f.path)
        assert meta is not None, f.path
        assert meta["checkpoint_sha256"] == manifest.checkpoint_sha256
        assert (meta["format"], meta["precision"]) == (f.format, f.precision)
        assert meta["preprocess"]["layout"] == f.layout
        assert meta["preprocess"]["mean"] == list(manifest.preprocess.mean)
        assert meta["outputs"]["expression_labels"] == list(manifest.outputs.expression_labels)
        assert meta["thresholds"]["calibrated_on"] == manifest.thresholds.calibrated_on
        json.dumps(meta)
