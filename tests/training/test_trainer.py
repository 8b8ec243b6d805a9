import dataclasses
import json

import cv2
import pytest
import torch

from facelivenet.edge_runtime.errors import DatasetLayoutError
from facelivenet.training import checkpoint as ckpt_io
from facelivenet.training.losses import Stage1Loss
from facelivenet.training.model import build_model
from facelivenet.training.trainer import IdentityNet, Trainer

from .conftest import TINY_MODEL


def _final_state(run_dir):
    return ckpt_io.load(run_dir / "model.pt")["model"]


def test_one_sgd_step_lowers_the_loss_on_a_tiny_batch():
    torch.manual_seed(0)
    model = build_model(TINY_MODEL)
    net = IdentityNet(model, num_classes=4).train()
    crit = Stage1Loss(4, TINY_MODEL.embedding_dim)
    x, y = torch.randn(8, 3, 32, 32), torch.tensor([0, 1, 2, 3] * 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    before, _ = crit(*net(x), y)
    opt.zero_grad()
    before.backward()
    opt.step()
    after, _ = crit(*net(x), y)
    assert after.item() < before.item()


def test_fit_runs_both_stages_and_writes_the_run_folder(tiny_train_config, tmp_path):
    out = tmp_path / "run"
    path = Trainer(tiny_train_config, out, progress=False).fit()
    assert path == out / "model.pt"
    ckpt = ckpt_io.load(path)
    assert ckpt["completed_stages"] == [1, 2]
    assert ckpt["trained_on"]["stage1"]["classes"] == [f"person_{i}" for i in range(4)]
    assert ckpt["trained_on"]["stage1"]["num_images"] == 32
    for name in ("config.yaml", "metrics.jsonl", "provenance.json", "stage1_images.txt", "stage2_images.txt"):
        assert (out / name).is_file(), name
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in records} == {1, 2}
    model = ckpt_io.model_from_checkpoint(ckpt)
    emb, logits = model(torch.randn(2, 3, 32, 32))
    assert emb.shape == (2, 16) and logits.shape == (2, 7)


def test_stage2_leaves_stem_and_branch1_bit_identical(tiny_train_config, tmp_path):
    stage1 = Trainer(dataclasses.replace(tiny_train_config, stages=(1,)), tmp_path / "s1", progress=False).fit()
    cfg2 = dataclasses.replace(tiny_train_config, stages=(2,), init_checkpoint=str(stage1))
    stage2 = Trainer(cfg2, tmp_path / "s2", progress=False).fit()
    before, after = _final_state(tmp_path / "s1"), _final_state(tmp_path / "s2")
    model = build_model(TINY_MODEL)
    identity_keys = set()
    for name, module in model.named_children():
        if any(module is m for m in model.identity_modules()):
            identity_keys |= {f"{name}.{k}" for k in module.state_dict()}
    assert identity_keys, "no identity tensors found"
    for k in identity_keys:
        assert torch.equal(before[k], after[k]), f"stage 2 changed {k}"
    changed = [k for k in after if k.startswith("expression_") and not torch.equal(before[k], after[k])]
    assert changed, "stage 2 did not train Branch 2"
    assert ckpt_io.load(stage2)["trained_on"]["stage1"]["num_images"] == 32


def test_resumed_run_matches_an_uninterrupted_one(tiny_train_config, tmp_path):
    Trainer(tiny_train_config, tmp_path / "straight", progress=False).fit()
    killed = Trainer(tiny_train_config, tmp_path / "resumed", progress=False)
    assert killed.fit(stop_after_steps=3) is None  # stopped mid stage 1 with a checkpoint
    assert Trainer(tiny_train_config, tmp_path / "resumed", progress=False).fit(resume=True, stop_after_steps=6) is None  # mid stage 2
    Trainer(tiny_train_config, tmp_path / "resumed", progress=False).fit(resume=True)
    a, b = _final_state(tmp_path / "straight"), _final_state(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_with_a_different_config_names_the_keys(tiny_train_config, tmp_path):
    Trainer(tiny_train_config, tmp_path / "run", progress=False).fit(stop_after_steps=2)
    other = dataclasses.replace(tiny_train_config, seed=7, stage1=dataclasses.replace(tiny_train_config.stage1, lr=0.5))
    with pytest.raises(ckpt_io.CheckpointError, match=r"seed.*stage1\.lr|stage1\.lr.*seed"):
        Trainer(other, tmp_path / "run", progress=False).fit(resume=True)


def test_starting_over_an_existing_run_is_refused(tiny_train_config, tmp_path):
    Trainer(tiny_train_config, tmp_path / "run", progress=False).fit(stop_after_steps=1)
    with pytest.raises(ckpt_io.CheckpointError, match="--resume"):
        Trainer(tiny_train_config, tmp_path / "run", progress=False).fit()


def test_corrupt_images_are_skipped_and_counted(tiny_train_config, identity_root, tmp_path):
    good = identity_root / "person_0" / "person_0_0000.png"
    (identity_root / "person_0" / "broken.jpg").write_bytes(good.read_bytes()[:40])
    (identity_root / "person_1" / "empty.png").write_bytes(b"")
    Trainer(dataclasses.replace(tiny_train_config, stages=(1,)), tmp_path / "run", progress=False).fit()
    prov = json.loads((tmp_path / "run" / "provenance.json").read_text())["stage1"]
    assert prov["images_listed"] == 34 and prov["images_used"] == 32
    assert prov["status_counts"] == {"ok": 32, "unreadable": 2}


def test_empty_dataset_names_the_path_and_layout(tiny_train_config, tmp_path):
    empty = tmp_path / "nothing"
    empty.mkdir()
    cfg = dataclasses.replace(tiny_train_config, data=dataclasses.replace(tiny_train_config.data, identity_root=str(empty)))
    with pytest.raises(DatasetLayoutError, match=r"nothing.*ROOT/<identity>/<image>\.jpg"):
        Trainer(cfg, tmp_path / "run", progress=False).fit()


def test_wrong_layout_files_directly_in_root_is_reported(tiny_train_config, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    cv2.imwrite(str(flat / "a.png"), (torch.rand(40, 40, 3) * 255).byte().numpy())
    cfg = dataclasses.replace(tiny_train_config, data=dataclasses.replace(tiny_train_config.data, identity_root=str(flat)))
    with pytest.raises(DatasetLayoutError, match="one folder per person"):
        Trainer(cfg, tmp_path / "run", progress=False).fit()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_fit_on_cuda_with_amp(tiny_train_config, tmp_path):
    cfg = dataclasses.replace(tiny_train_config, amp=True)
    path = Trainer(cfg, tmp_path / "cuda", progress=False).fit()
    ckpt = ckpt_io.load(path)
    assert all(t.device.type == "cpu" for t in ckpt["model"].values())
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values() if t.is_floating_point())


def test_stage2_on_cached_frozen_trunk_features(tiny_train_config, tmp_path):
    stage1 = Trainer(dataclasses.replace(tiny_train_config, stages=(1,)), tmp_path / "s1", progress=False).fit()
    stage2_cfg = dataclasses.replace(tiny_train_config.stage2, frozen_trunk_cache=True)
    cfg2 = dataclasses.replace(tiny_train_config, stages=(2,), init_checkpoint=str(stage1), stage2=stage2_cfg)
    Trainer(cfg2, tmp_path / "s2", progress=False).fit()
    before, after = _final_state(tmp_path / "s1"), _final_state(tmp_path / "s2")
    for k in before:
        if k.startswith(("stem", "blocks_", "reduction_", "identity_branch", "bottleneck")):
            assert torch.equal(before[k], after[k]), k
    assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith("expression_"))


def test_trunk_feature_dataset_serves_the_trunk_of_the_plain_or_mirrored_crop():
    import numpy as np

    from facelivenet.training.features import TrunkFeatureDataset, trunk_features
    from facelivenet.edge_runtime.preprocess import normalize

    from .conftest import TINY_PRE

    model = build_model(TINY_MODEL).eval()
    crops = np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
    plain = trunk_features(model, crops, TINY_PRE, batch_size=2)
    mirrored = trunk_features(model, crops, TINY_PRE, flip=True, batch_size=3)
    with torch.no_grad():
        direct = model.trunk(torch.from_numpy(normalize(crops, TINY_PRE)))
        direct_flip = model.trunk(torch.from_numpy(normalize(np.ascontiguousarray(crops[:, :, ::-1]), TINY_PRE)))
    torch.testing.assert_close(plain, direct)
    torch.testing.assert_close(mirrored, direct_flip)
    ds = TrunkFeatureDataset(plain, mirrored, np.arange(5), seed=1)
    picks = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        x, y = ds[2]
        picks.add(torch.equal(x, mirrored[2]))
        assert torch.equal(x, mirrored[2]) or torch.equal(x, plain[2])
    assert picks == {True, False}


def test_stage2_retrained_on_a_finished_model_reproduces_its_stage2(tiny_train_config, tmp_path):
    """Stage 2 alone on a (1, 2) model starts from what that run's Stage 2 started from (Branch 2 from
    Branch 1, the seed's fresh expression head), so with the same config it reaches the same weights."""
    stage2_cfg = dataclasses.replace(tiny_train_config.stage2, frozen_trunk_cache=True)
    cfg = dataclasses.replace(tiny_train_config, stage2=stage2_cfg)
    full = Trainer(cfg, tmp_path / "full", progress=False).fit()
    Trainer(dataclasses.replace(cfg, stages=(2,), init_checkpoint=str(full)), tmp_path / "again",
                    progress=False).fit()
    before, after = _final_state(tmp_path / "full"), _final_state(tmp_path / "again")
    assert all(torch.equal(before[k], after[k]) for k in before), [k for k in before if not torch.equal(before[k], after[k])]
