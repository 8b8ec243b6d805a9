import dataclasses
import json

import numpy as np
import pytest
import torch

from facelivenet.training.losses import Stage1Loss, distillation_loss
from facelivenet.training.trainer import Trainer


def test_distillation_loss_ignores_rows_without_a_teacher():
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    teacher = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    # row 0: cos 1 -> 0; row 1: cos 0 -> 1; row 2 has no teacher
    assert torch.isclose(distillation_loss(student, teacher), torch.tensor(0.5))
    assert distillation_loss(student, torch.zeros(3, 2)) == 0


def test_stage1_loss_adds_the_weighted_teacher_term():
    crit = Stage1Loss(2, 2, alpha=0.0, teacher_weight=3.0)
    logits = torch.tensor([[1.0, 0.0]])
    feats = torch.tensor([[0.0, 5.0]])
    total, parts = crit(logits, feats, torch.tensor([0]), torch.tensor([[1.0, 0.0]]))
    ce = torch.nn.functional.cross_entropy(logits, torch.tensor([0]))
    assert torch.isclose(total, ce + 3.0 * 1.0)
    assert parts["teacher"] == pytest.approx(1.0)


def test_fit_with_a_teacher_logs_the_distillation_term(tiny_train_config, tmp_path, monkeypatch):
    import facelivenet.training.teacher as teacher_mod

    monkeypatch.setattr(teacher_mod, "teacher_embeddings",
                        lambda paths, *a, **k: np.random.default_rng(0).normal(size=(len(paths), 128)).astype(np.float32))
    monkeypatch.setattr(teacher_mod.DlibTeacher, "name", "fake")
    cfg = dataclasses.replace(
        tiny_train_config,
        stages=(1,),
        model=dataclasses.replace(tiny_train_config.model, embedding_dim=128),
        data=dataclasses.replace(tiny_train_config.data, teacher="dlib"),
    )
    Trainer(cfg, tmp_path / "run", progress=False).fit()
    records = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["teacher"]) for r in records)
    prov = json.loads((tmp_path / "run" / "provenance.json").read_text())["stage1"]
    assert prov["teacher"]["name"] == "fake" and prov["teacher"]["described"] == 32
    assert prov["teacher"]["centred"] is True


def test_centred_descriptors_drop_the_shared_direction_and_keep_missing_rows_empty():
    from facelivenet.training.teacher import centre_descriptors

    rng = np.random.default_rng(0)
    common = rng.normal(size=128).astype(np.float32) * 3  # a large shared component, as in dlib's descriptors
    raw = common + rng.normal(size=(200, 128)).astype(np.float32)
    raw[5] = 0.0  # an image the teacher could not describe
    unit = raw[10:60] / np.linalg.norm(raw[10:60], axis=1, keepdims=True)
    assert (unit @ unit.T)[np.triu_indices(50, 1)].mean() > 0.8  # raw: everyone looks alike
    out, how = centre_descriptors(raw)
    assert how["centred"] and how["mean_norm"] > 20
    assert np.all(out[5] == 0.0)
    keep = np.delete(np.arange(200), 5)
    assert np.allclose(np.linalg.norm(out[keep], axis=1), 1.0, atol=1e-5)
    c = out[keep][:50]
    assert abs((c @ c.T)[np.triu_indices(50, 1)].mean()) < 0.05  # centred: unrelated people near orthogonal


def test_teacher_only_rows_do_not_move_the_centring_origin():
    from facelivenet.training.teacher import centre_descriptors

    rng = np.random.default_rng(1)
    identity = rng.normal(size=(40, 2, 16)).astype(np.float32) + 3.0
    extra = rng.normal(size=(10, 2, 16)).astype(np.float32) - 5.0  # another population, far off
    both = np.concatenate([identity, extra])
    out, how = centre_descriptors(both, mean_rows=np.arange(50) < 40)
    alone, how_alone = centre_descriptors(identity)
    assert np.allclose(out[:40], alone) and how["mean_norm"] == how_alone["mean_norm"]
    assert not np.allclose(centre_descriptors(both)[0][:40], alone)  # the union's mean would move them


def test_dlib_teacher_separates_people_on_real_faces(data_root, detector_path, tmp_path):
    pytest.importorskip("dlib", reason="the dlib teacher is not installed (facelivenet[teacher])")
    from facelivenet.training.teacher import teacher_embeddings

    lfw = data_root / "lfw" / "images"
    paths = [str(p) for p in sorted((lfw / "Abel_Pacheco").glob("*.jpg"))[:2] + sorted((lfw / "Aaron_Peirsol").glob("*.jpg"))[:1]]
    emb = teacher_embeddings(paths, detector_path, tmp_path, progress=False)
    assert emb.shape == (3, 128) and (np.abs(emb).sum(1) > 0).all()
    same, diff = np.linalg.norm(emb[0] - emb[1]), np.linalg.norm(emb[0] - emb[2])
    assert same < 0.6 < diff  # dlib's documented decision distance
    assert np.array_equal(teacher_embeddings(paths, detector_path, tmp_path, progress=False), emb)  # cached
    # two worker processes give the same descriptors, row for row (a fresh cache folder: no hit)
    split = teacher_embeddings(paths, detector_path, tmp_path / "workers", progress=False, workers=2)
    assert np.array_equal(split, emb)


def test_dlib_teacher_mirrored_view_and_resumable_chunks(data_root, detector_path, tmp_path):
    pytest.importorskip("dlib", reason="the dlib teacher is not installed (facelivenet[teacher])")
    from facelivenet.edge_runtime.detection import YuNetDetector
    from facelivenet.training import teacher as teacher_mod

    lfw = data_root / "lfw" / "images"
    paths = [str(p) for p in sorted((lfw / "Abel_Pacheco").glob("*.jpg"))[:2]]
    plain = teacher_mod.teacher_embeddings(paths, detector_path, tmp_path / "one", progress=False)
    both = teacher_mod.teacher_embeddings(paths, detector_path, tmp_path / "two", progress=False, views=2)
    assert both.shape == (2, 2, 128)
    assert np.allclose(both[:, 0], plain, atol=1e-6)  # view 0 is the plain descriptor
    assert np.linalg.norm(both[0, 0] - both[0, 1]) < 0.6  # the mirrored face is still the same person
    assert not np.allclose(both[:, 0], both[:, 1])
    # a run cut short keeps its finished chunks: a stored chunk is used, not computed again
    entry = teacher_mod._cache_entry(paths, teacher_mod.DlibTeacher(), YuNetDetector(detector_path),
                                     tmp_path / "cut", 0, 2)
    marker = np.full((2, 2, 128), 0.25, dtype=np.float32)
    teacher_mod._save_atomic(marker, entry.with_suffix(".parts") / "000000.npy")
    resumed = teacher_mod.teacher_embeddings(paths, detector_path, tmp_path / "cut", progress=False, views=2)
    assert np.array_equal(resumed, marker) and entry.is_file() and not entry.with_suffix(".parts").exists()


def test_teacher_only_rows_train_the_teacher_term_alone():
    crit = Stage1Loss(2, 2, alpha=1.0, teacher_weight=3.0)
    logits = torch.tensor([[1.0, 0.0], [0.0, 9.0]])
    feats = torch.tensor([[1.0, 0.0], [0.0, 5.0]])
    teacher = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    total, parts = crit(logits, feats, torch.tensor([0, -1]), teacher)
    labelled_only, _ = Stage1Loss(2, 2, alpha=1.0)(logits[:1], feats[:1], torch.tensor([0]))
    # softmax and triplet see row 0 only; the teacher term sees both (row 1: cos 0 -> 1)
    assert torch.isclose(total, labelled_only + 3.0 * 0.5)
    total, parts = crit(logits, feats, torch.tensor([-1, -1]), teacher)
    assert torch.isclose(total, torch.tensor(1.5)) and parts["softmax"] == 0
    crit.triplet.update_centres(feats, torch.tensor([0, -1]))
    assert torch.equal(crit.triplet.centres[1], torch.zeros(2))  # an unlabelled row moves no centre


def test_fit_with_teacher_only_faces(tiny_train_config, tmp_path, monkeypatch):
    import facelivenet.training.teacher as teacher_mod
    from .conftest import write_synthetic_faces

    monkeypatch.setattr(teacher_mod, "teacher_embeddings",
                        lambda paths, *a, **k: np.random.default_rng(0).normal(size=(len(paths), 128)).astype(np.float32))
    monkeypatch.setattr(teacher_mod.DlibTeacher, "name", "fake")
    unlabelled = write_synthetic_faces(tmp_path / "unlabelled", ["a"], per_class=5, seed=3)
    write_synthetic_faces(unlabelled / "sub", ["b"], per_class=5, seed=4)  # read at any depth
    data = dataclasses.replace(tiny_train_config.data, teacher="dlib", distill_root=str(unlabelled),
                               distill_max_images=7)
    cfg = dataclasses.replace(tiny_train_config, stages=(1,), data=data,
                              model=dataclasses.replace(tiny_train_config.model, embedding_dim=128))
    Trainer(cfg, tmp_path / "run", progress=False).fit()
    records = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) and 0 <= r["accuracy"] <= 1 for r in records)
    prov = json.loads((tmp_path / "run" / "provenance.json").read_text())["stage1"]
    assert prov["teacher_only"]["images_listed"] == 10 and prov["teacher_only"]["images_used"] == 7
    assert prov["teacher"]["described"] == 32 + 7
    listed = (tmp_path / "run" / "stage1_images.txt").read_text().splitlines()
    assert len(listed) == 32 + 7 and sum("unlabelled" in p for p in listed) == 7
    blob = torch.load(tmp_path / "run" / "model.pt", map_location="cpu", weights_only=False)
    assert len(blob["trained_on"]["stage1"]["classes"]) == 4  # the unlabelled faces add no class


def test_teacher_only_faces_need_the_teacher(tiny_train_config, tmp_path):
    from facelivenet.edge_runtime.errors import DatasetLayoutError
    from facelivenet.training.data.sources import identity_data
    from .conftest import TINY_PRE, write_synthetic_faces

    unlabelled = write_synthetic_faces(tmp_path / "unlabelled", ["a"], per_class=2)
    data = dataclasses.replace(tiny_train_config.data, distill_root=str(unlabelled))
    with pytest.raises(DatasetLayoutError, match="data.teacher=dlib"):
        identity_data(data, TINY_PRE, None, progress=False)
