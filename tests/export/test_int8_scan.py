"""The static int8 scan: its regions, its probes and its report, on a tiny random model."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from .conftest import TINY_PRE
from .test_export_int8 import _inputs


@pytest.fixture(scope="module")
def tiny_net():
    torch = pytest.importorskip("torch")

    from facelivenet.training.model import build_model
    from tests.training.conftest import TINY_MODEL

    torch.manual_seed(2)
    return build_model(TINY_MODEL).eval()


def test_regions_are_the_top_level_modules_with_weights_and_the_identity_tail(tiny_net):
    from facelivenet.export.int8_scan import IDENTITY_REGION, regions, top_level
    from facelivenet.export.wrappers import IDENTITY_TAIL

    found = regions(tiny_net)
    assert list(found)[0] == "net.stem" and found["net.expression_head"] == ("net.expression_head",)
    assert found[IDENTITY_REGION] == IDENTITY_TAIL  # the bottleneck is probed with its BatchNorm and the pooling
    assert "net.bottleneck" not in found and "net.dropout" not in found
    singles = [s for scopes in found.values() if scopes != IDENTITY_TAIL for s in scopes]
    assert set(singles) < set(top_level(tiny_net))


def test_margin_shares_count_close_top_two_logits():
    from facelivenet.export.int8_scan import margin_shares

    logits = np.array([[0.0, 0.04, -1.0], [0.0, 0.15, -1.0], [2.0, 0.0, 0.0], [0.0, 0.08, 0.0]])
    assert margin_shares(logits) == {"0.05": 0.25, "0.1": 0.5, "0.2": 0.75}


def test_scan_probes_every_region_both_ways(onnx_converters, shared_onnx_export, tiny_net, tmp_path):
    from facelivenet.export import onnx_export
    from facelivenet.export.int8_scan import Prober, markdown, regions, scan_network
    from facelivenet.export.wrappers import ExportModel, torch_reference

    proto, scopes = onnx_export.export_fp32(ExportModel(tiny_net), TINY_PRE.input_size)
    proto, _ = onnx_export.simplify(proto)
    calib, parity_x = _inputs(24, seed=5), _inputs(16, seed=6)
    prober = Prober(proto, scopes, calib, parity_x, torch_reference(tiny_net, parity_x), 1, tmp_path)
    steps: list[str] = []

    @contextlib.contextmanager
    def step(label):
        steps.append(label)
        yield

    rows = scan_network(tiny_net, prober, ["minmax"], step)
    names = regions(tiny_net)
    assert len(rows) == len(steps) == 1 + 2 * len(names) + 1
    whole = rows[0]
    assert whole["probe"] == "all int8" and whole["quantize_nodes"] > 0
    for region in names:  # every region, the identity tail included, changes what is quantised
        only_float = next(r for r in rows if r["probe"] == "float only" and r["region"] == region)
        only_int8 = next(r for r in rows if r["probe"] == "int8 only" and r["region"] == region)
        assert only_float["quantize_nodes"] < whole["quantize_nodes"]
        assert only_int8["quantize_nodes"] < whole["quantize_nodes"]
    stem_float = next(r for r in rows if r["probe"] == "float only" and r["region"] == "net.stem")
    assert stem_float["quantize_nodes"] < whole["quantize_nodes"]  # a region of convolutions really left int8
    weights = rows[-1]
    assert weights["probe"] == "weights only" and weights["quantize_nodes"] == 0
    assert weights["logit_rmse"] <= whole["logit_rmse"]  # float activations lose less than int8 ones
    for r in rows:
        assert -1.0 <= r["cosine_min"] <= r["cosine_mean"] <= 1.0 + 1e-6
        assert 0.0 <= r["expression_top1_agreement"] <= 1.0
    report = {"checkpoint": {"file": "tiny.pt", "sha256": "ab" * 32}, "calibration_faces": 24, "parity_faces": 16,
              "gate": {"cosine_mean": 0.995, "cosine_min": 0.98, "top1_agreement": 0.99},
              "top2_margin_shares": {"0.1": 0.5}, "rows": rows}
    table = markdown(report)
    assert table.count("\n| ") == len(rows) + 1 and "50.0 % under 0.1" in table


def test_scan_config_refuses_an_unknown_method(tmp_path):
    from facelivenet.export.errors import ExportError
    from facelivenet.export.int8_scan import ScanConfig

    with pytest.raises(ExportError, match="unknown calibration method.*valid: minmax, entropy, percentile"):
        ScanConfig(out=tmp_path, methods=("minmax", "kl"))


def test_scan_cli_names_a_missing_calibration_folder(tmp_path, capsys):
    pytest.importorskip("torch")
    from facelivenet.export.int8_scan import main

    missing = tmp_path / "no-such-faces"
    assert main(["--calib", str(missing), "--no-expression-data", "--out", str(tmp_path / "scan"), "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"calibration folder {missing} does not exist" in err[0]
    assert not (tmp_path / "scan").exists()  # nothing written


def test_static_file_keeps_the_identity_tail_float(onnx_converters, shared_onnx_export, tiny_net):
    """The export's static ONNX file: the identity embedding's pooled features and bottleneck Gemm compute in
    float (no DequantizeLinear feeds them, nothing quantises their outputs) on int8 weights; the expression
    head's Gemm is int8."""
    from facelivenet.export import onnx_export
    from facelivenet.export.static_int8 import StaticInt8Config, onnx_static
    from facelivenet.export.wrappers import ExportModel

    proto, scopes = onnx_export.export_fp32(ExportModel(tiny_net), TINY_PRE.input_size)
    proto, _ = onnx_export.simplify(proto)
    identity_gemm = [n.name for n in proto.graph.node if n.op_type == "Gemm" and "net.bottleneck_bn" in scopes[n.name]]
    head_gemm = [n.name for n in proto.graph.node if n.op_type == "Gemm" and "net.expression_head" in scopes[n.name]]
    assert len(identity_gemm) == len(head_gemm) == 1  # the BatchNorm folded into the bottleneck's Gemm
    q, kept = onnx_static(proto, scopes, _inputs(24, seed=5), StaticInt8Config())
    assert identity_gemm[0] in kept and head_gemm[0] not in kept
    producer = {o: n for n in q.graph.node for o in n.output}
    consumers = {i for n in q.graph.node if n.op_type == "QuantizeLinear" for i in n.input[:1]}

    def node(name):
        return next(n for n in q.graph.node if n.name == name)

    gemm = node(identity_gemm[0])
    assert producer[gemm.input[0]].op_type != "DequantizeLinear" and gemm.output[0] not in consumers
    assert producer[gemm.input[0]].op_type in ("Reshape", "Flatten")  # the pooled features, float as well
    assert producer[gemm.input[1]].op_type == "Mul"  # its weights int8 behind Cast + Mul (the size gate)
    inits = {t.name for t in q.graph.initializer if t.data_type == 3}  # INT8
    assert producer[producer[gemm.input[1]].input[0]].input[0] in inits
    assert producer[node(head_gemm[0]).input[0]].op_type == "DequantizeLinear"
