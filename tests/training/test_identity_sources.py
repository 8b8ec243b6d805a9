"""Stage 1 on several identity folders, the batch loader, mirrored teacher targets, and bad input."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from facelivenet.training.checkpoint import CheckpointError
from facelivenet.training.data.datasets import EpochBatchSampler, FaceCropDataset
from facelivenet.training.data.sources import identity_data
from facelivenet.training.trainer import Trainer, make_loader

from .conftest import TINY_PRE, write_synthetic_faces


def _dataset(n=12, views=True, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    crops = rng.integers(0, 255, size=(n, 32, 32, channels), dtype=np.uint8)
    targets = rng.normal(size=(n, 2, 16) if views else (n, 16)).astype(np.float32)
    return FaceCropDataset(crops, np.arange(n) % 3, TINY_PRE, augment=True, pad=4, flip=True, seed=7, targets=targets)


def test_batch_loader_builds_exactly_the_per_image_batch():
    ds = _dataset()
    ds.set_epoch(3)
    idx = [5, 0, 11, 2, 2, 7]
    x, y, t = ds.__getitems__(idx)
    items = [ds[i] for i in idx]
    assert torch.equal(x, torch.stack([it[0] for it in items]))
    assert torch.equal(y, torch.tensor([it[1] for it in items]))
    assert torch.equal(t, torch.stack([it[2] for it in items]))


def test_a_flipped_crop_gets_the_mirrored_teacher_target():
    ds = _dataset(n=64)
    x, _, t = ds.__getitems__(list(range(64)))
    plain = torch.from_numpy(ds.targets[:, 0])
    mirrored = torch.from_numpy(ds.targets[:, 1])
    picked_mirror = (t == mirrored).all(1)
    assert ((t == plain).all(1) ^ picked_mirror).all()  # every row is one of its two views
    assert 10 < int(picked_mirror.sum()) < 54  # about half the crops were flipped
    ds.augment = False
    _, _, t_plain = ds.__getitems__(list(range(64)))
    assert torch.equal(t_plain, plain)  # no augmentation: never the mirrored view


def test_a_one_channel_cache_reads_like_the_three_channel_one():
    grey = _dataset(channels=1)
    rgb = FaceCropDataset(np.repeat(grey.crops, 3, axis=3), grey.labels, TINY_PRE, True, 4, True, 7, grey.targets)
    assert torch.equal(grey.__getitems__([1, 4, 9])[0], rgb.__getitems__([1, 4, 9])[0])


def test_make_loader_yields_the_sampler_batches():
    ds = _dataset(n=20)
    sampler = EpochBatchSampler(len(ds), 4, seed=1, epoch=0)
    batches = list(make_loader(ds, sampler, 0, False, 0))
    assert len(batches) == 5 and all(b[0].shape == (4, 3, 32, 32) for b in batches)


def test_identity_sources_are_combined_and_skips_are_counted(tiny_train_config, tmp_path):
    extra = write_synthetic_faces(tmp_path / "more", ["p_a", "p_b", "p_c"], per_class=3, seed=5)
    (extra / "p_lonely").mkdir()
    (extra / "p_a" / "p_a_9999.jpg").write_bytes(b"not a jpeg at all")  # a corrupt file among good ones
    write_synthetic_faces(tmp_path / "single", ["p_lonely"], per_class=1, seed=6)
    (extra / "p_lonely" / "only.png").write_bytes((tmp_path / "single" / "p_lonely" / "p_lonely_0000.png").read_bytes())
    data = dataclasses.replace(tiny_train_config.data, identity_roots=(str(extra),), min_images_per_identity=2)
    stage = identity_data(data, TINY_PRE, None, progress=False)
    first = json.dumps(stage.provenance)
    assert len(stage.class_names) == 4 + 3
    assert stage.class_names[-1] == "more/p_c" and stage.class_names[0].endswith("person_0")
    src = stage.provenance["sources"][1]
    assert src["identities_below_min_images"] == 1  # the folder with one image
    assert src["status_counts"] == {"ok": 9, "unreadable": 1}  # the corrupt JPEG, skipped and counted
    assert len(stage.dataset) == 4 * 8 + 9
    assert set(stage.dataset.labels[-9:]) == {4, 5, 6}
    assert json.dumps(identity_data(data, TINY_PRE, None, progress=False).provenance) == first  # cached, same


def test_resume_on_a_different_image_list_is_refused_and_names_it(tiny_train_config, tmp_path, identity_root):
    cfg = dataclasses.replace(tiny_train_config, stages=(1,), checkpoint_every=1)
    run = tmp_path / "run"
    assert Trainer(cfg, run, progress=False).fit(stop_after_steps=2) is None
    gone = sorted((identity_root / "person_3").iterdir())[0]
    gone.unlink()
    with pytest.raises(CheckpointError, match="different image list.*1 gone.*person_3"):
        Trainer(cfg, run, progress=False).fit(resume=True)


@pytest.mark.parametrize("frozen_trunk_cache", [False, True])
def test_both_stages_train_with_cpu_bf16_and_channels_last(tiny_train_config, tmp_path, frozen_trunk_cache):
    stage2 = dataclasses.replace(tiny_train_config.stage2, frozen_trunk_cache=frozen_trunk_cache)
    cfg = dataclasses.replace(tiny_train_config, cpu_bf16=True, channels_last=True, stage2=stage2)
    path = Trainer(cfg, tmp_path / "run", progress=False).fit()
    records = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in records} == {1, 2} and all(np.isfinite(r["loss"]) for r in records)
    blob = torch.load(path, map_location="cpu", weights_only=False)
    assert all(t.dtype == torch.float32 for t in blob["model"].values() if t.is_floating_point())  # weights stay fp32
