"""int8 building blocks: GPTQ weight rounding, int8-weight ONNX, expression faces, the self-check reference."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import TINY_MODEL, TINY_PRE


@pytest.fixture(scope="module")
def tiny_net():
    torch = pytest.importorskip("torch")

    from facelivenet.training.model import build_model

    torch.manual_seed(1)
    return build_model(TINY_MODEL).eval()


def _inputs(n: int, seed: int = 0) -> np.ndarray:
    """Smooth random patterns in the normalised input range (not faces: these tests need no data)."""
    from facelivenet.edge_runtime.preprocess import normalize
    from facelivenet.export.selfcheck import synthetic_pixels

    rng = np.random.default_rng(seed)
    pixels = np.stack([synthetic_pixels(rng, TINY_PRE.input_size, "gray") for _ in range(n)])
    return normalize(pixels, TINY_PRE)


def test_round_rows_lands_on_the_grid_and_pins_each_rows_largest_weight():
    torch = pytest.importorskip("torch")

    from facelivenet.export.gptq import on_grid, round_rows

    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 40, generator=g, dtype=torch.float64)
    x = torch.randn(500, 40, generator=g, dtype=torch.float64)
    q = round_rows(w, x.T @ x)
    assert on_grid(q.numpy())
    scale = w.abs().amax(1) / 127
    np.testing.assert_allclose(q.abs().amax(1).numpy(), (127 * scale).numpy(), rtol=1e-12)  # same scale as w
    naive = torch.round(w / scale[:, None]) * scale[:, None]
    assert ((x @ (q - w).T) ** 2).sum() < ((x @ (naive - w).T) ** 2).sum()  # GPTQ: smaller output error


def test_gptq_round_copies_the_model_and_beats_round_to_nearest(tiny_net):
    import copy

    import torch

    from facelivenet.export.gptq import gptq_round, on_grid

    calib, held_out = _inputs(48, seed=1), torch.from_numpy(_inputs(32, seed=2))
    rounded, record = gptq_round(tiny_net, calib, skip=("expression_head",))
    assert rounded is not tiny_net and record["faces"] == 48 and record["kept_float"] == ["expression_head"]
    assert torch.equal(rounded.expression_head.weight, tiny_net.expression_head.weight)
    assert all(on_grid(m.weight.detach().numpy()) for n, m in rounded.named_modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and n != "expression_head")
    naive = copy.deepcopy(tiny_net)
    for m in naive.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            w = m.weight.data
            s = w.abs().reshape(w.shape[0], -1).amax(1).reshape(-1, *[1] * (w.ndim - 1)) / 127
            m.weight.data = torch.round(w / s) * s
    with torch.no_grad():
        ref = tiny_net(held_out)[1]
        err_gptq = (rounded(held_out)[1] - ref).pow(2).mean()
        err_naive = (naive(held_out)[1] - ref).pow(2).mean()
    assert err_gptq < err_naive


def test_int8_weight_onnx_stores_the_gptq_grid_exactly(onnx_converters, tiny_net, tmp_path):
    import torch

    from facelivenet.export import onnx_export, quantize_onnx
    from facelivenet.export.gptq import gptq_round
    from facelivenet.export.runners import onnx_runner
    from facelivenet.export.wrappers import ExportModel

    rounded, _ = gptq_round(tiny_net, _inputs(32, seed=3))
    fp32, scopes = onnx_export.export_fp32(ExportModel(rounded), TINY_PRE.input_size)
    fp32, _ = onnx_export.simplify(fp32)
    proto, kept, off_grid = quantize_onnx.quantize_weights_int8(fp32, scopes, ["l2norm"])
    assert off_grid < 1e-3 and kept  # BatchNorm folding keeps the per-channel grid
    int8 = [t for t in proto.graph.initializer if t.data_type == 3]  # INT8
    assert len(int8) == sum(n.op_type in ("Conv", "Gemm") for n in fp32.graph.node)
    assert not [n for n in proto.graph.node if n.op_type == "QuantizeLinear"]  # activations stay float
    path = onnx_export.save(proto, tmp_path / "w8.onnx")
    x = _inputs(8, seed=4)
    emb, logits = onnx_runner(path)(x)
    with torch.no_grad():
        r_emb, r_logits = rounded(torch.from_numpy(x))
    np.testing.assert_allclose(logits, r_logits.numpy(), atol=1e-4)  # exactly the rounded model, float compute
    np.testing.assert_allclose(emb, r_emb.numpy(), atol=1e-4)
    half, _, _ = quantize_onnx.quantize_weights_int8(fp32, scopes, ["l2norm"], ["net.expression_head", "net.stem.0"])
    fp16 = [t for t in half.graph.initializer if t.data_type == 10]  # FLOAT16
    assert len(fp16) == 2 and len([t for t in half.graph.initializer if t.data_type == 3]) == len(int8) - 2


def test_expression_faces_split_train_for_calibration_and_test_for_parity(data_root, tmp_path):
    from facelivenet.export.calibration import collect_expression_faces, merge_sets

    fer = data_root / "fer2013"
    if not (fer / "train").is_dir():
        pytest.skip(f"FER2013 absent from the data folder ({fer})")
    calib, parity = collect_expression_faces(fer, TINY_PRE, calib_count=6, parity_count=5, cache_dir=tmp_path,
                                             progress=False)
    assert (len(calib), len(parity)) == (6, 5)
    assert all("/train/" in p for p in calib.paths) and all("/test/" in p for p in parity.paths)
    assert calib.record()["folder"] == "fer2013/train" and "centre crop" in calib.record()["alignment"]
    again, _ = collect_expression_faces(fer, TINY_PRE, 6, 5, cache_dir=tmp_path, progress=False)
    assert again.paths == calib.paths  # seeded: the same faces every time
    merged = merge_sets([parity, calib], "x")
    assert len(merged) == 11 and [r.stop for _, r in merged.subsets()] == [5, 11]
    rec = merged.record()
    assert rec["num_faces"] == 11 and [p["num_faces"] for p in rec["parts"]] == [5, 6]
    assert merged.tensor(TINY_PRE).shape == (11, 3, 32, 32)


def test_self_check_reference_is_synthetic_seeded_and_clear(tiny_net, tmp_path):
    from facelivenet.export import selfcheck

    arrays, record = selfcheck.build(tiny_net, TINY_PRE, count=4, candidates=16)
    again, _ = selfcheck.build(tiny_net, TINY_PRE, count=4, candidates=16)
    assert all(np.array_equal(arrays[k], again[k]) for k in arrays)
    assert arrays["pixels"].shape == (4, 32, 32, 3) and arrays["pixels"].dtype == np.uint8
    assert arrays["inputs"].shape == (4, 3, 32, 32) and arrays["embedding"].shape == (4, TINY_MODEL.embedding_dim)
    assert np.array_equal(arrays["pixels"][..., 0], arrays["pixels"][..., 2])  # grey model: grey patterns
    assert "NOT faces" in record["inputs"] and record["seed"] == selfcheck.SEED
    written = selfcheck.write(tmp_path, arrays, record)
    from facelivenet.edge_runtime.manifest import sha256_file

    assert written["sha256"] == sha256_file(tmp_path / selfcheck.SELF_CHECK_NAME)
    with np.load(tmp_path / selfcheck.SELF_CHECK_NAME) as data:
        assert set(data.files) == {"pixels", "inputs", "embedding", "expression_logits"}


def test_runners_delegate_to_the_runtime_backends(tmp_path):
    from facelivenet.export.errors import ExportError
    from facelivenet.export.runners import open_backend, runner_for

    with pytest.raises(ExportError, match="unknown format 'tf'"):
        runner_for("tf", tmp_path / "x")
    pytest.importorskip("onnxruntime")
    with pytest.raises(ExportError, match="cannot load"):
        open_backend("onnx", tmp_path / "missing.onnx")


def test_sensitivity_scan_ranks_expression_layers_and_fits_the_budget(tiny_net):
    from facelivenet.export import sensitivity
    from facelivenet.export.gptq import gptq_round

    calib = _inputs(40, seed=5)
    rounded, _ = gptq_round(tiny_net, calib)
    errors = sensitivity.expression_errors(tiny_net, rounded, calib, faces=24)
    names = [n for n, _ in sensitivity.quantised_layers(tiny_net)]
    assert set(errors) == set(names)
    assert all(errors[n] == 0.0 for n in names if n.startswith(("identity_branch", "bottleneck")))
    assert any(errors[n] > 0 for n in names if n.startswith("expression_branch"))
    assert any(errors[n] > 0 for n in names if n.startswith("stem"))  # the shared stem feeds Branch 2 too
    sizes = {"a": 100, "b": 10, "c": 50, "d": 10}
    picked = sensitivity.pick_fp16_layers({"a": 5.0, "b": 2.0, "c": 0.1, "d": 0.0}, sizes, budget=60)
    assert picked == ["b", "c"]  # most error per weight first; "a" does not fit; "d" adds nothing
    chosen, record = sensitivity.scan(tiny_net, rounded, calib, fraction=0.1)
    assert record["fp16_layers"] == chosen and record["fp16_weights"] <= record["fp16_budget_weights"]
    assert sensitivity.export_path(tiny_net, "stem.0.0") == "net.stem.0"  # conv + BN: the ConvBNReLU
    assert sensitivity.export_path(tiny_net, "expression_head") == "net.expression_head"


def test_tflite_weight_only_keeps_exactly_the_chosen_layers_in_fp16(converters, tiny_net, tmp_path):
    from ai_edge_litert.tools import flatbuffer_utils as fb

    from facelivenet.export import tflite_export
    from facelivenet.export.sensitivity import quantised_layers
    from facelivenet.export.wrappers import ExportModel

    src = tflite_export.convert_fp32(ExportModel(tiny_net, as_dict=True), TINY_PRE.input_size, tmp_path / "f.tflite")
    layers = dict(quantised_layers(tiny_net))
    chosen = ["blocks_a.0.branches.1.0.0", "expression_branch.blocks.0.project", "expression_head"]
    dst = tmp_path / "w8.tflite"
    regexes = tflite_export.quantize_int8(src, dst, _inputs(4), ["l2norm"], "float",
                                          [layers[n].weight.detach().numpy() for n in chosen])
    assert len(regexes) > len(chosen)  # the L2 tail's regexes, then one exact scope per fp16 layer
    model = fb.read_model(str(dst))
    graph = model.subgraphs[0]
    sizes = {}
    for t in graph.tensors:
        data = model.buffers[t.buffer].data
        if data is not None and len(data) and t.type in (1, 9):  # float16, int8 constants
            sizes.setdefault(t.type, []).append(int(np.prod(t.shape)))
    assert sorted(sizes[1]) == sorted(layers[n].weight.numel() for n in chosen)
    assert len(sizes[9]) == len(layers) - len(chosen)
