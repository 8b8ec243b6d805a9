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
