"""What the model sees in training is byte-for-byte what the runtime feeds it."""

from pathlib import Path

import numpy as np
import torch

from facelivenet.edge_runtime.detection import YuNetDetector
from facelivenet.edge_runtime.imageio import read_image
from facelivenet.edge_runtime.preprocess import PreprocessConfig, face_crop, normalize
from facelivenet.training.data.datasets import FaceCropDataset
from facelivenet.edge_runtime.detection import pick_face
from facelivenet.training.data.face_cache import load_or_build


def test_training_eval_tensors_equal_runtime_tensors(data_root, detector_path, tmp_path):
    paths = sorted((data_root / "lfw" / "images" / "Abel_Pacheco").glob("*.jpg"))[:3]
    paths += sorted((data_root / "jaffe").glob("KA.HA*.tiff"))[:2]
    assert paths
    cfg = PreprocessConfig()
    faces = load_or_build("parity", [str(p) for p in paths], cfg, "detect", detector_path, tmp_path)
    assert faces.ok.all(), faces.counts()
    # the second call reads the cache; it must give the same crops
    again = load_or_build("parity", [str(p) for p in paths], cfg, "detect", detector_path, tmp_path)
    assert np.array_equal(faces.crops, again.crops)
    dataset = FaceCropDataset(again.crops, np.zeros(len(paths)), cfg, augment=False)
    detector = YuNetDetector(detector_path)
    for i, path in enumerate(paths):
        image = read_image(path)
        face = pick_face(detector.detect(image), image.shape)
        runtime = normalize(face_crop(image, cfg, face.landmarks), cfg)[0]
        train_tensor, _ = dataset[i]
        assert torch.equal(train_tensor, torch.from_numpy(runtime)), path


def test_center_crop_mode_parity_on_fer2013(data_root, tmp_path):
    paths = sorted((data_root / "fer2013" / "test" / "happy").glob("*.jpg"))[:4]
    cfg = PreprocessConfig()
    faces = load_or_build("parity-fer", [str(p) for p in paths], cfg, "center_crop", cache_dir=tmp_path)
    dataset = FaceCropDataset(faces.crops, np.zeros(len(paths)), cfg)
    for i, path in enumerate(paths):
        runtime = normalize(face_crop(read_image(path), cfg), cfg)[0]
        assert torch.equal(dataset[i][0], torch.from_numpy(runtime))


def test_a_cache_hit_gives_back_the_callers_paths(data_root, tmp_path, monkeypatch):
    """An entry built with paths relative to one working directory is hit from another (the key holds the
    absolute paths): the faces must name the caller's paths, which open from where it runs."""
    images = sorted((data_root / "fer2013" / "test" / "happy").glob("*.jpg"))[:3]
    cfg = PreprocessConfig()
    monkeypatch.chdir(images[0].parent.parent)
    relative = [str(p.relative_to(images[0].parent.parent)) for p in images]
    built = load_or_build("paths", relative, cfg, "center_crop", cache_dir=tmp_path / "cache")
    assert built.paths == relative
    monkeypatch.chdir(tmp_path)
    hit = load_or_build("paths", [str(p) for p in images], cfg, "center_crop", cache_dir=tmp_path / "cache")
    assert hit.paths == [str(p) for p in images] and all(Path(p).is_file() for p in hit.paths)
    assert np.array_equal(hit.crops, built.crops)
