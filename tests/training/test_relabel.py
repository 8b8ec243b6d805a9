"""Cleaning identity labels with teacher descriptors, and the CelebA folder layout."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from facelivenet.edge_runtime.errors import DatasetLayoutError
from facelivenet.training.data.celeba import list_labelled, read_exclude, read_identities, write_folders
from facelivenet.training.data.relabel import clean_identities
from facelivenet.training.losses import Stage1Loss, relation_loss


def people(rng, n_people: int, per: int, dim: int = 32, spread: float = 0.3):
    centres = rng.normal(size=(n_people, dim))
    vecs = np.concatenate([c + spread * rng.normal(size=(per, dim)) for c in centres])
    return vecs, np.repeat(np.arange(n_people), per), centres


def test_outliers_are_dropped_and_one_person_under_two_numbers_is_merged():
    rng = np.random.default_rng(0)
    vecs, labels, centres = people(rng, 5, 4)
    labels[[16, 17, 18, 19]] = 9  # person 4's images filed under a second number too
    labels[16:18] = 4
    vecs[5] = centres[3] + 0.3 * rng.normal(size=32)  # an image of person 3 filed under person 1
    vecs[10] = 0.0  # the teacher found no face
    out = clean_identities(vecs, labels, outlier_cosine=0.5, merge_cosine=0.7)
    assert out.outliers == [5] and out.undescribed == 1
    assert out.merges == [[4, 9]]
    assert out.labels[5] == -1 and out.labels[10] == -1
    assert set(out.labels[16:20]) == {4}
    s = out.summary()
    assert s["images_kept"] == 18 and s["identities_out"] == 5 and s["identities_merged_away"] == 1


def test_a_two_image_identity_that_disagrees_loses_both_images():
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(2, 16))
    out = clean_identities(vecs, np.array([3, 3]), outlier_cosine=0.5, merge_cosine=0.9)
    assert sorted(out.outliers) == [0, 1] and (out.labels == -1).all()
    with pytest.raises(ValueError, match="need"):
        clean_identities(vecs, np.array([1, 2, 3]), 0.5, 0.9)


def test_celeba_listing_leaves_out_excluded_and_unlabelled_images(tmp_path):
    images = tmp_path / "celebA"
    images.mkdir()
    for name in ("000001.jpg", "000002.jpg", "000003.jpg", "000004.jpg", "000005.jpg"):
        (images / name).write_bytes(b"x")
    ids = tmp_path / "identity_CelebA.txt"
    ids.write_text("img label\n000001.jpg 10\n000002.jpg 10\n000003.jpg 11\n000004.jpg 12\n")
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("# rule: people of the evaluation sets\n11\n")
    paths, labels, counts = list_labelled(images, read_identities(ids), read_exclude(exclude))
    assert [p.rsplit("/", 1)[1] for p in paths] == ["000001.jpg", "000002.jpg", "000004.jpg"]
    assert labels.tolist() == [10, 10, 12]
    assert counts == {"images_present": 5, "images_without_identity": 1, "images_excluded": 1, "identities_excluded": 1,
                      "images_listed": 3, "identities_listed": 2}
    written = write_folders(paths, np.array([10, 10, -1]), tmp_path / "out", min_images=2)
    assert written == {"min_images_per_identity": 2, "identities_written": 1, "images_written": 2}
    linked = sorted((tmp_path / "out" / "images" / "celeba-10").iterdir())
    assert [p.name for p in linked] == ["000001.jpg", "000002.jpg"] and all(p.is_symlink() for p in linked)
    with pytest.raises(DatasetLayoutError, match="new --out"):
        write_folders(paths, labels, tmp_path / "out", 2)
    ids.write_text("img label\n000001.jpg ten\n")
    with pytest.raises(DatasetLayoutError, match="identity_CelebA.txt:2"):
        read_identities(ids)


def test_relation_loss_compares_pairwise_cosines_whatever_the_directions():
    rng = torch.Generator().manual_seed(0)
    teacher = torch.randn(6, 8, generator=rng)
    rotation = torch.linalg.qr(torch.randn(8, 8, generator=rng))[0]
    assert relation_loss(teacher @ rotation, teacher) < 1e-10  # same geometry, other axes: no loss
    assert relation_loss(torch.randn(6, 8, generator=rng), teacher) > 0.05
    one = torch.zeros(6, 8)
    one[0] = teacher[0]
    assert relation_loss(teacher, one) == 0  # fewer than two described rows


def test_stage1_loss_adds_the_weighted_relation_term():
    crit = Stage1Loss(2, 4, alpha=0.0, teacher_weight=0.0, relation_weight=2.0)
    feats = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    teacher = torch.tensor([[1.0, 0, 0, 0], [1.0, 0, 0, 0]])  # the teacher sees one face twice
    logits = torch.zeros(2, 2)
    total, parts = crit(logits, feats, torch.tensor([0, 1]), teacher)
    assert parts["relation"] == pytest.approx(1.0)  # off-diagonal cosines 0 vs 1
    assert torch.isclose(total, torch.tensor(np.log(2.0) + 2.0, dtype=torch.float32))


def test_fit_with_a_wide_teacher_projects_its_targets_and_saves_the_map(tiny_train_config, tmp_path, monkeypatch):
    import facelivenet.training.teacher as teacher_mod
    from facelivenet.training.trainer import Trainer

    monkeypatch.setattr(teacher_mod, "teacher_embeddings",
                        lambda paths, *a, **k: np.random.default_rng(0).normal(size=(len(paths), 64)).astype(np.float32))
    cfg = dataclasses.replace(
        tiny_train_config, stages=(1,),
        data=dataclasses.replace(tiny_train_config.data, teacher="arcface_fp", teacher_target_dim=16),
        loss=dataclasses.replace(tiny_train_config.loss, relation_weight=1.0),
    )
    Trainer(cfg, tmp_path / "run", progress=False).fit()
    prov = json.loads((tmp_path / "run" / "provenance.json").read_text())["stage1"]["teacher"]
    assert prov["teacher"] == "arcface_fp" and prov["projection"]["from_dim"] == 64 and prov["projection"]["to_dim"] == 16
    records = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["teacher"]) and np.isfinite(r["relation"]) for r in records)
    assert (tmp_path / "run" / "stage1_teacher_target_map.npz").is_file()
    bad = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, teacher_target_dim=32))
    with pytest.raises(ValueError, match="fewer than the student's 32|teacher targets have 32 dimensions"):
        Trainer(bad, tmp_path / "bad", progress=False).fit()


def test_prepare_cleans_with_the_teacher_and_reports_what_moved(tmp_path, monkeypatch):
    import facelivenet.training.teacher as teacher_mod
    from facelivenet.training.data.celeba import prepare

    images = tmp_path / "celebA"
    images.mkdir()
    rng = np.random.default_rng(0)
    people_vecs = rng.normal(size=(3, 16))
    truth = [0, 0, 0, 1, 1, 1, 2, 2]  # the files' real people
    filed = [5, 5, 5, 6, 6, 5, 7, 7]  # the sixth image (person 1) is filed under person 0's number 5
    lines = ["img label"]
    for k, (who, lab) in enumerate(zip(truth, filed)):
        name = f"{k + 1:06d}.jpg"
        (images / name).write_bytes(b"x")
        lines.append(f"{name} {lab}")
    (tmp_path / "ids.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "ex.txt").write_text("# none\n")
    vecs = np.stack([people_vecs[w] + 0.1 * rng.normal(size=16) for w in truth]).astype(np.float32)
    monkeypatch.setattr(teacher_mod, "teacher_embeddings", lambda paths, *a, **k: np.stack([vecs, vecs], axis=1))
    report = prepare(str(images), str(tmp_path / "ids.txt"), str(tmp_path / "ex.txt"), str(tmp_path / "out"), "arcface_fp",
                     None, None, outlier_cosine=0.5, merge_cosine=0.9, progress=False)
    assert report["outlier_files"] == ["000006.jpg"] and report["merged_identities"] == []
    assert report["cleaning"]["images_kept"] == 7 and report["written"]["identities_written"] == 3
    saved = json.loads((tmp_path / "out" / "relabel.json").read_text())
    assert saved["teacher"]["teacher"] == "arcface_fp" and saved["thresholds"] == {"outlier_cosine": 0.5, "merge_cosine": 0.9}
