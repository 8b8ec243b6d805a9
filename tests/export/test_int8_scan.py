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


def test_regions_are_the_top_level_modules_with_weights(tiny_net):
    from facelivenet.export.int8_scan import regions, top_level

    found = regions(tiny_net)
    assert found[0] == "net.stem" and "net.expression_head" in found and "net.bottleneck" in found
    assert "net.bottleneck_bn" not in found and "net.dropout" not in found  # no Conv / Linear inside
    assert set(found) < set(top_level(tiny_net))


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
    for region in names:
        only_float = next(r for r in rows if r["probe"] == "float only" and r["region"] == region)
        only_int8 = next(r for r in rows if r["probe"] == "int8 only" and r["region"] == region)
        assert only_float["quantize_nodes"] <= whole["quantize_nodes"]
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
