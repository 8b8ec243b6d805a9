"""Peer networks: parameter counts and compute within a few % of their papers' numbers."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from facelivenet.benchmarks.peers import EXPRESSION_CNN, FACENET_IRV1, MOBILEFACENET, MOBILEFACENET_RELU, PEERS  # noqa: E402
from facelivenet.benchmarks.peers.compare import net_facts  # noqa: E402
from facelivenet.benchmarks.peers.mobilefacenet import PAPER_MACS  # noqa: E402


def test_mobilefacenet_matches_the_paper():
    facts = net_facts(MOBILEFACENET)
    assert facts["params"] == pytest.approx(0.99e6, rel=0.03)
    assert facts["flops"] / 2 == pytest.approx(PAPER_MACS, rel=0.02)  # 221 M multiply-adds
    out = MOBILEFACENET.build()(torch.randn(2, 3, 112, 112))
    assert out.shape == (2, 128)
    assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)


def test_facenet_inception_resnet_v1_matches_the_paper():
    facts = net_facts(FACENET_IRV1)
    assert facts["params"] == pytest.approx(23e6, rel=0.03)
    with torch.no_grad():
        out = FACENET_IRV1.build()(torch.randn(1, 3, 160, 160))
    assert out.shape == (1, 128)


def test_expression_cnn_and_relu_variant():
    with torch.no_grad():
        logits = EXPRESSION_CNN.build()(torch.randn(1, 3, 112, 112))
    assert logits.shape == (1, 7)
    relu = MOBILEFACENET_RELU.build()
    assert not any(isinstance(m, torch.nn.PReLU) for m in relu.modules())
    assert any(isinstance(m, torch.nn.PReLU) for m in MOBILEFACENET.build().modules())


def test_registry_names_are_unique_and_pipeline_has_two_networks():
    names = [p.name for p in PEERS]
    assert len(names) == len(set(names))
    pipeline = next(p for p in PEERS if p.name == "two_model_pipeline")
    assert [n.output for n in pipeline.nets] == ["embedding", "expression_logits"]
    assert {n.input_size for n in pipeline.nets} == {112}
