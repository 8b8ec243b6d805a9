import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facelivenet.edge_runtime.preprocess import PreprocessConfig
from facelivenet.training import checkpoint as ckpt_io
from facelivenet.training.identity_head import class_means, fit_scale, head_state, initial_head
from facelivenet.training.model import build_model
from facelivenet.training.trainer import Trainer

from .conftest import TINY_MODEL


def test_class_means_average_features_and_directions_per_class():
    feats = torch.tensor([[3.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    means, directions, counts = class_means(feats, torch.tensor([0, 0, 2]), 3)
    assert torch.allclose(means[0], torch.tensor([2.0, 0.0]))
    assert torch.allclose(directions[2], torch.tensor([0.0, 1.0]))
    assert counts.tolist() == [2.0, 0.0, 1.0]
    assert torch.all(directions[1] == 0)  # a class without faces has no direction


def test_fit_scale_prefers_sharp_logits_for_separable_classes_and_soft_ones_for_mixed():
    directions = torch.eye(2)
    separable = torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 4)
    mixed = torch.tensor([[1.0, 0.9], [0.9, 1.0]] * 4)
    labels = torch.tensor([0, 1] * 4)
    flipped = torch.tensor([1, 0] * 4)
    assert fit_scale(separable, labels, directions) > 10
    assert fit_scale(mixed, flipped, directions) < 1.0  # wrong on every face: the flattest logits win
    with pytest.raises(ValueError, match="no labelled faces"):
        fit_scale(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), directions)


def test_initial_head_keeps_rows_by_class_name_and_imprints_the_rest():
    torch.manual_seed(0)
    model = build_model(TINY_MODEL).eval()
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, size=(12, 32, 32, 3), dtype=np.uint8)
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, -1, -1, -1])
    dim = TINY_MODEL.embedding_dim
    kept = head_state(["b", "zz"], torch.full((2, dim), 7.0), torch.full((2, dim), 3.0))
    cfg = PreprocessConfig(input_size=32)
    weight, centres, assigned, summary = initial_head(model, crops, labels, ["a", "b", "c", "d"], cfg, kept)
    assert assigned.tolist() == [True, True, True, False]  # "d" has no faces: left to its fresh init
    assert torch.all(weight[1] == 7.0) and torch.all(centres[1] == 3.0)  # "b" carried by name
    assert summary["kept"] == 1 and summary["imprinted"] == 2 and summary["scale"] > 0
    with torch.no_grad():
        x = torch.from_numpy(np.stack([crops[i] for i in range(3)]))
        from facelivenet.edge_runtime.preprocess import normalize
        feats = model.features(torch.from_numpy(normalize(x.numpy(), cfg)), expression=False).prelogits
    assert torch.allclose(centres[0], feats.mean(0), atol=1e-5)
    expected = F.normalize(F.normalize(feats, dim=1).mean(0), dim=0) * summary["scale"]
    assert torch.allclose(weight[0], expected, atol=1e-5)


def test_head_state_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="classes"):
        head_state(["a"], torch.zeros(2, 4), torch.zeros(2, 4))


def _classifier_start(tiny_train_config, tmp_path, init, **changes):
    """Stage 1 from ``init`` for zero-cost inspection: the classifier rows the plan starts from."""
    from facelivenet.training.stages import Stage1Plan, StageSetup

    cfg = dataclasses.replace(tiny_train_config, stages=(1,), init_checkpoint=str(init), **changes)
    trainer = Trainer(cfg, tmp_path / "probe", progress=False)
    trainer._init_from(cfg.init_checkpoint)
    data = trainer._stage_data(Stage1Plan)
    setup = StageSetup(trainer.model, cfg, torch.device("cpu"), resuming=False, reinit_stage2=False, progress=False,
                       kept_heads=trainer.init_heads)
    return Stage1Plan.build(setup, data)


def test_a_finished_stage1_keeps_its_classifier_in_last_pt_and_a_fine_tune_starts_from_it(tiny_train_config, tmp_path):
    Trainer(dataclasses.replace(tiny_train_config, stages=(1,)), tmp_path / "s1", progress=False).fit()
    last = ckpt_io.load(tmp_path / "s1" / "last.pt")
    head = last["heads"]["stage1"]
    assert head["classes"] == [f"person_{i}" for i in range(4)]
    assert "heads" not in ckpt_io.load(tmp_path / "s1" / "model.pt")  # the users' file stays lean

    kept = _classifier_start(tiny_train_config, tmp_path, tmp_path / "s1" / "last.pt")
    assert torch.equal(kept.net.classifier.weight, head["classifier"])
    assert torch.equal(kept.loss_fn.triplet.centres, head["centres"])
    assert kept.head_summary["kept"] == 4

    imprinted = _classifier_start(tiny_train_config, tmp_path, tmp_path / "s1" / "model.pt")
    assert imprinted.head_summary["kept"] == 0 and imprinted.head_summary["imprinted"] == 4
    assert not torch.equal(imprinted.net.classifier.weight, head["classifier"])

    fresh = _classifier_start(tiny_train_config, tmp_path, tmp_path / "s1" / "last.pt", init_head="random")
    assert fresh.head_summary is None
    assert not torch.equal(fresh.net.classifier.weight, head["classifier"])


def test_fine_tune_records_where_its_classifier_started_and_passes_the_head_on(tiny_train_config, tmp_path):
    Trainer(dataclasses.replace(tiny_train_config, stages=(1,)), tmp_path / "s1", progress=False).fit()
    cfg = dataclasses.replace(tiny_train_config, init_checkpoint=str(tmp_path / "s1" / "last.pt"))
    path = Trainer(cfg, tmp_path / "ft", progress=False).fit()
    assert ckpt_io.load(path)["trained_on"]["stage1"]["init_head"]["kept"] == 4
    assert "stage1" in ckpt_io.load(tmp_path / "ft" / "last.pt")["heads"]


def test_an_unknown_init_head_is_refused_by_name(tiny_train_config, tmp_path):
    with pytest.raises(ValueError, match="init_head 'keep'"):
        Trainer(dataclasses.replace(tiny_train_config, init_head="keep"), tmp_path / "x", progress=False)
