"""The Table I ablation: variants change Branch 2 only, and the command runs the CK+48 protocol per variant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from facelivenet.edge_runtime.constants import EXIT_FAILURE
from facelivenet.training.evaluation.ablation import (VARIANTS, AblationError, parse_variants,
                                                      variant_checkpoint)
from facelivenet.training.evaluation.runner import load_checkpoint

from .test_evaluate import make_checkpoint, run_cli


@pytest.fixture()
def tiny_ckpt(tmp_path: Path):
    return load_checkpoint(make_checkpoint(tmp_path / "tiny.pt", ["a", "b"], [2]))


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_a_variant_keeps_the_stem_and_branch_1(tiny_ckpt, variant):
    v = variant_checkpoint(tiny_ckpt, variant)
    x = torch.randn(3, 3, tiny_ckpt.config.model.input_size, tiny_ckpt.config.model.input_size)
    with torch.no_grad():
        emb_before, _ = tiny_ckpt.model.eval()(x)
        emb_after, logits = v.model(x)
    assert torch.allclose(emb_before, emb_after, atol=1e-6)  # identity unchanged
    assert logits.shape == (3, 7)
    assert v.config.model.expression_c_blocks == variant.model_overrides["expression_c_blocks"]
    # the per-fold retraining starts from the same variant weights
    fresh = v.fresh_model()
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), v.model.state_dict().values()))


def test_rb_c2_gives_branch_2_its_own_reduction_started_from_branch_1(tiny_ckpt):
    v = variant_checkpoint(tiny_ckpt, parse_variants("rb_c2")[0])
    assert v.model.reduction_b is None
    for a, b in zip(v.model.identity_branch.reduction.parameters(), v.model.expression_branch.reduction.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(v.model.identity_branch.reduction.parameters(), tiny_ckpt.model.reduction_b.parameters()):
        assert torch.equal(a, b)


def test_unknown_variants_are_named():
    with pytest.raises(AblationError, match="valid: c1, c2, rb_c2"):
        parse_variants("c3")
    assert [v.name for v in parse_variants("rb_c2,c1")] == ["c1", "rb_c2"]


def test_ablation_without_ckplus_data_says_what_is_missing(tmp_path):
    ckpt = make_checkpoint(tmp_path / "tiny.pt", ["a", "b"], [2])
    (tmp_path / "data").mkdir()
    code, _, err = run_cli(["ablation", "--checkpoint", str(ckpt), "--data", str(tmp_path / "data"), "--quiet"])
    assert code == EXIT_FAILURE and "ckplus48" in err and "not found" in err


@pytest.mark.slow
def test_ablation_quick_on_real_ckplus(data_root, detector_path, tmp_path):
    if not (data_root / "ckplus48").is_dir():
        pytest.skip("CK+48 absent")
    code, out, err = run_cli(["ablation", "--data", str(data_root), "--quick", "--quiet", "--json",
                              "--variants", "c1,c2", "--detector", str(detector_path), "--out", str(tmp_path)])
    assert code == 0, err
    result = json.loads(out)
    assert [r["variant"] for r in result["variants"]] == ["c1", "c2"]
    assert all(0.0 < r["accuracy"] <= 1.0 for r in result["variants"])
    assert (tmp_path / "ablation.md").is_file() and (tmp_path / "c1" / "ckplus48_confusion.png").is_file()
