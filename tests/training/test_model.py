import pytest
import torch

from facelivenet.edge_runtime.labels import NUM_EXPRESSIONS
from facelivenet.training.config import ModelConfig
from facelivenet.training.flops import count_flops
from facelivenet.training.model import build_model, count_parameters

from .conftest import TINY_MODEL

PAPER_PARAMS = 1.31e6


def test_default_config_matches_paper_parameter_count():
    params = count_parameters(build_model())
    assert abs(params - PAPER_PARAMS) / PAPER_PARAMS <= 0.02, params


def test_output_shapes_and_unit_norm_embedding():
    model = build_model(TINY_MODEL).eval()
    emb, logits = model(torch.randn(3, 3, 32, 32))
    assert emb.shape == (3, TINY_MODEL.embedding_dim)
    assert logits.shape == (3, NUM_EXPRESSIONS)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))


@pytest.mark.parametrize("size", [112, 160])
def test_default_model_runs_at_112_and_160(size):
    model = build_model(ModelConfig(input_size=size)).eval()
    with torch.no_grad():
        emb, logits = model(torch.randn(1, 3, size, size))
    assert emb.shape == (1, 128) and logits.shape == (1, 7)


def test_branch2_initialised_from_branch1_copies_every_block_tensor():
    model = build_model(TINY_MODEL)
    src = model.identity_branch.state_dict()
    assert any(not torch.equal(v, model.expression_branch.state_dict()[k]) for k, v in src.items() if v.is_floating_point())
    copied = model.init_expression_branch_from_identity()
    assert copied == len(src)
    for k, v in model.expression_branch.state_dict().items():
        assert torch.equal(v, src[k]), k


def test_one_c_block_branch_copies_the_first_block():
    cfg = ModelConfig(**{**TINY_MODEL.__dict__, "expression_c_blocks": 1})
    model = build_model(cfg)
    model.init_expression_branch_from_identity()
    a = model.expression_branch.blocks[0].project.weight
    assert torch.equal(a, model.identity_branch.blocks[0].project.weight)


def test_reduction_b_split_gives_each_branch_its_own_reduction():
    cfg = ModelConfig(**{**TINY_MODEL.__dict__, "expression_branch_split": "reduction_b"})
    model = build_model(cfg)
    assert model.reduction_b is None
    assert model.identity_branch.reduction is not None and model.expression_branch.reduction is not None
    emb, logits = model.eval()(torch.randn(2, 3, 32, 32))
    assert emb.shape == (2, 16) and logits.shape == (2, 7)


def test_flops_are_counted_and_grow_with_input_size():
    model = build_model(TINY_MODEL)
    small, large = count_flops(model, 32), count_flops(model, 64)
    assert small > 0
    assert 3.0 < large / small < 5.0  # convolutions scale with pixel count
