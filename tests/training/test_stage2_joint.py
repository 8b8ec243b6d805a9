"""Stage 2 with a trainable shared stem (``stage2.tune_shared``): what trains, what stays, the keep term, resume."""

import dataclasses

import numpy as np
import pytest
import torch

from facelivenet.training import checkpoint as ckpt_io
from facelivenet.training.features import identity_features
from facelivenet.training.losses import ExpressionLoss
from facelivenet.training.model import build_model
from facelivenet.training.trainer import Trainer

from .conftest import TINY_MODEL, TINY_PRE


def _joint(cfg, init: str, **stage2):
    s2 = dataclasses.replace(cfg.stage2, tune_shared="blocks_b", shared_lr_scale=0.5, **stage2)
    return dataclasses.replace(cfg, stages=(2,), init_checkpoint=init, stage2=s2,
                               loss=dataclasses.replace(cfg.loss, identity_keep_weight=4.0))


@pytest.fixture
def stage1(tiny_train_config, tmp_path):
    return str(Trainer(dataclasses.replace(tiny_train_config, stages=(1,)), tmp_path / "s1", progress=False).fit())


def _state(path):
    return ckpt_io.load(path)["model"]


def test_joint_stage2_trains_blocks_b_and_branch1_and_leaves_the_lower_stem(tiny_train_config, stage1, tmp_path):
    after = _state(Trainer(_joint(tiny_train_config, stage1), tmp_path / "j", progress=False).fit())
    before = _state(stage1)
    for k in before:
        if k.startswith(("stem", "blocks_a", "reduction_a")) or "running_" in k or "num_batches" in k:
            if not k.startswith("expression_"):
                assert torch.equal(before[k], after[k]), f"{k} moved"  # lower stem, and BatchNorm statistics
    for prefix in ("blocks_b", "identity_branch", "bottleneck.", "expression_branch", "expression_head"):
        assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith(prefix)), f"{prefix} did not train"
    records = [line for line in (tmp_path / "j" / "metrics.jsonl").read_text().splitlines()]
    assert records and all('"identity_keep"' in r for r in records)


def test_the_keep_term_holds_branch1_where_it_was(tiny_train_config, stage1, tmp_path):
    """With a large keep weight the embedding of the training faces moves much less than without one."""
    from facelivenet.training.data.sources import expression_data

    def drift(weight: float, out: str) -> float:
        cfg = _joint(tiny_train_config, stage1)
        cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, identity_keep_weight=weight),
                                  stage2=dataclasses.replace(cfg.stage2, shared_lr_scale=1.0, lr=0.01, epochs=4))
        model = ckpt_io.model_from_checkpoint(ckpt_io.load(Trainer(cfg, tmp_path / out, progress=False).fit()))
        crops = expression_data(cfg.data, cfg.preprocess, None, progress=False).dataset.crops
        a = torch.nn.functional.normalize(identity_features(start, crops, TINY_PRE), dim=1)
        b = torch.nn.functional.normalize(identity_features(model, crops, TINY_PRE), dim=1)
        return float((1 - (a * b).sum(1)).mean())

    start = ckpt_io.model_from_checkpoint(ckpt_io.load(stage1))
    held, loose = drift(100.0, "held"), drift(1e-6, "loose")
    assert held < loose / 2, (held, loose)


def test_joint_stage2_refuses_a_frozen_trunk_cache_or_no_keep_weight(tiny_train_config, stage1, tmp_path):
    with pytest.raises(ValueError, match="frozen_trunk_cache must be false"):
        Trainer(_joint(tiny_train_config, stage1, frozen_trunk_cache=True), tmp_path / "a", progress=False).fit()
    cfg = _joint(tiny_train_config, stage1)
    cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, identity_keep_weight=0.0))
    with pytest.raises(ValueError, match="identity_keep_weight > 0"):
        Trainer(cfg, tmp_path / "b", progress=False).fit()


def test_a_resumed_joint_stage2_keeps_its_reference_and_matches_a_straight_run(tiny_train_config, stage1, tmp_path):
    cfg = _joint(tiny_train_config, stage1)
    straight = _state(Trainer(cfg, tmp_path / "straight", progress=False).fit())
    assert Trainer(cfg, tmp_path / "resumed", progress=False).fit(stop_after_steps=2) is None
    assert "identity_reference" in ckpt_io.load(tmp_path / "resumed" / "last.pt")
    resumed = _state(Trainer(cfg, tmp_path / "resumed", progress=False).fit(resume=True))
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), k


def test_expression_loss_is_cross_entropy_plus_weighted_one_minus_cos():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0])
    feats = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    ref = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # cos 1 and 0
    total, parts = ExpressionLoss(3.0)(logits, feats, labels, ref)
    ce = torch.nn.functional.cross_entropy(logits, labels)
    assert parts["identity_keep"] == pytest.approx(0.5)
    assert float(total) == pytest.approx(float(ce) + 1.5)
    with pytest.raises(ValueError, match="reference"):
        ExpressionLoss(1.0)(logits, feats, labels, None)


def test_identity_features_of_mirrored_crops_are_those_of_the_flipped_images():
    model = build_model(TINY_MODEL).eval()
    crops = np.random.default_rng(1).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    flipped = np.ascontiguousarray(crops[:, :, ::-1])
    torch.testing.assert_close(identity_features(model, crops, TINY_PRE, flip=True), identity_features(model, flipped, TINY_PRE))
