"""Already-cropped 48x48 faces (FER2013, CK+48): centre crop or YuNet landmarks on the upscaled image."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np

from facelivenet.edge_runtime.detection import YuNetDetector, pick_face
from facelivenet.edge_runtime.imageio import read_image
from facelivenet.edge_runtime.preprocess import PreprocessConfig, face_crop
from facelivenet.training.config import DataConfig, TrainConfig, from_dict, to_dict
from facelivenet.edge_runtime.photo_align import upscale_for_detection
from facelivenet.training.data.face_cache import STATUS_FALLBACK, STATUS_OK, cache_key, load_precropped
from facelivenet.training.data.sources import expression_data
from facelivenet.training.evaluation.runner import EvalContext, LoadedCheckpoint
from facelivenet.training.model import FaceLiveNet

from .conftest import TINY_MODEL, TINY_PRE, write_synthetic_faces

CFG = PreprocessConfig()


def _fer_images(data_root: Path, n: int = 2) -> list[str]:
    return [str(p) for p in sorted((data_root / "fer2013" / "test" / "happy").glob("*.jpg"))[:n]]


def _blank(tmp_path: Path) -> str:
    path = tmp_path / "blank.png"
    cv2.imwrite(str(path), np.full((48, 48, 3), 128, np.uint8))
    return str(path)


def _entries(cache: Path) -> dict[str, dict]:
    return {d.name: json.loads((d / "index.json").read_text()) for d in (cache / "faces").iterdir()}


def test_cache_key_holds_the_mode_and_upscale_size_and_keeps_old_keys():
    paths = ["a.jpg", "b.jpg"]
    keys = {cache_key(paths, CFG, "center_crop", "", None), cache_key(paths, CFG, "detect", "d", 0.85),
            cache_key(paths, CFG, "detect", "d", 0.85, upscale_to=224),
            cache_key(paths, CFG, "detect", "d", 0.85, upscale_to=160)}
    assert len(keys) == 4
    # no upscale: the key of the entries built before the option existed
    assert cache_key(paths, CFG, "detect", "d", 0.85, upscale_to=0) == cache_key(paths, CFG, "detect", "d", 0.85)


def test_upscale_for_detection_enlarges_only_small_images():
    small = np.zeros((48, 40, 3), np.uint8)
    assert upscale_for_detection(small, 224).shape == (269, 224, 3)
    assert upscale_for_detection(small, 0) is small
    assert upscale_for_detection(np.zeros((300, 300, 3), np.uint8), 224).shape == (300, 300, 3)


def test_fer_image_is_aligned_with_landmarks_like_the_runtime(data_root, detector_path, tmp_path):
    paths = _fer_images(data_root)
    faces = load_precropped("fer", paths, CFG, "detect", 224, detector_path, tmp_path, progress=False)
    assert faces.status == [STATUS_OK] * len(paths)
    detector = YuNetDetector(detector_path)
    for i, path in enumerate(paths):
        big = cv2.resize(read_image(path), (224, 224), interpolation=cv2.INTER_CUBIC)
        face = pick_face(detector.detect(big), big.shape)
        assert np.array_equal(faces.crops[i], face_crop(big, CFG, face.landmarks))
        assert not np.array_equal(faces.crops[i], face_crop(read_image(path), CFG))  # not the centre crop
    centre = load_precropped("fer", paths, CFG, "center_crop", 224, detector_path, tmp_path, progress=False)
    for i, path in enumerate(paths):
        assert np.array_equal(centre.crops[i], face_crop(read_image(path), CFG))
    # two entries, each saying how it was made; a second detect call reads the cache
    recorded = sorted((e["source"], e.get("upscale_to")) for e in _entries(tmp_path).values())
    assert recorded == [("center_crop", 0), ("detect", 224)]
    again = load_precropped("fer", paths, CFG, "detect", 224, detector_path, tmp_path, progress=False)
    assert np.array_equal(again.crops, faces.crops) and len(_entries(tmp_path)) == 2


def test_no_face_falls_back_to_the_centre_crop_and_is_recorded(detector_path, tmp_path):
    blank = _blank(tmp_path)
    faces = load_precropped("blank", [blank], CFG, "detect", 224, detector_path, tmp_path / "c", progress=False)
    assert faces.status == [STATUS_FALLBACK] and faces.ok.all()
    assert np.array_equal(faces.crops[0], face_crop(read_image(blank), CFG))
    (index,) = _entries(tmp_path / "c").values()
    assert index["counts"] == {STATUS_FALLBACK: 1} and index["fallback_fraction"] == CFG.crop_fraction


def test_stage2_data_records_the_alignment_and_fallbacks(detector_path, tmp_path):
    root = write_synthetic_faces(tmp_path / "fer" / "train", ["happy", "surprise"], per_class=3)
    data = DataConfig(expression_root=str(root.parent), expression_align="detect", expression_upscale=96,
                      detector=str(detector_path), cache_dir=str(tmp_path / "cache"))
    stage = expression_data(data, TINY_PRE, None, progress=False)
    prov = stage.provenance
    assert prov["align"] == "detect" and prov["upscale_to"] == 96
    assert prov["status_counts"] == {STATUS_FALLBACK: 6} and prov["images_used"] == 6
    default = expression_data(dataclasses.replace(data, expression_align="center_crop"), TINY_PRE, None,
                              progress=False)
    assert default.provenance["align"] == "center_crop" and "upscale_to" not in default.provenance


def test_evaluation_aligns_like_the_checkpoint_trained(detector_path, tmp_path):
    blank = _blank(tmp_path)

    def context(config: TrainConfig) -> EvalContext:
        ckpt = LoadedCheckpoint(tmp_path / "m.pt", "", {}, config, FaceLiveNet(TINY_MODEL))
        return EvalContext(ckpt, tmp_path, detector=str(detector_path), cache_dir=str(tmp_path / "c"),
                           show_progress=False)

    # an old checkpoint's config has no expression_align: centre crop
    old = to_dict(TrainConfig(model=TINY_MODEL, preprocess=TINY_PRE))
    del old["data"]["expression_align"], old["data"]["expression_upscale"]
    ctx = context(from_dict(TrainConfig, old))
    assert ctx.expression_alignment == {"align": "center_crop"}
    assert ctx.align_precropped("x", [blank]).counts() == {"images": 1, "center_crop": 1}

    aligned = TrainConfig(model=TINY_MODEL, preprocess=TINY_PRE, data=DataConfig(expression_align="detect"))
    ctx = context(aligned)
    assert ctx.expression_alignment == {"align": "detect", "upscale_to": 224}
    faces = ctx.align_precropped("x", [blank])
    assert faces.counts() == {"images": 1, "detected": 0, "center_fallback": 1}
