from collections import Counter

import pytest

from facelivenet.edge_runtime.errors import DatasetLayoutError
from facelivenet.edge_runtime.labels import EXPRESSION_LABELS
from facelivenet.training.data.readers import (
    read_ckplus48,
    read_expression_folders,
    read_fer2013,
    read_identity_folders,
    subject_of,
)


def test_fer2013_splits_have_the_published_sizes(data_root):
    fer = data_root / "fer2013"
    assert len(read_fer2013(fer, "train")) == 28709
    assert len(read_fer2013(fer, "PrivateTest")) == 3589
    assert len(read_fer2013(fer, "PublicTest")) == 3589
    assert len(read_fer2013(fer, "test")) == 7178
    labels = {EXPRESSION_LABELS[r.label] for r in read_fer2013(fer, "PrivateTest")}
    assert labels == set(EXPRESSION_LABELS)


def test_ckplus48_drops_contempt_and_parses_subjects(data_root):
    records = read_ckplus48(data_root / "ckplus48")
    labels = Counter(EXPRESSION_LABELS[r.label] for r in records)
    assert set(labels) == {"anger", "disgust", "fear", "happy", "sadness", "surprise"}
    assert all(r.group.startswith("S") for r in records)
    assert 100 <= len({r.group for r in records}) <= 123


def test_lfw_identity_folders_with_include_and_min_images(data_root):
    records, names = read_identity_folders(data_root / "lfw" / "images", include={"Abel_Pacheco", "Aaron_Peirsol"}, min_images=2)
    assert names == ["Aaron_Peirsol", "Abel_Pacheco"]
    assert Counter(r.group for r in records) == {"Aaron_Peirsol": 4, "Abel_Pacheco": 4}


def test_subject_of_ckplus_names():
    assert subject_of("S010_004_00000017.png") == "S010"
    assert subject_of("Training_123.jpg") == ""


def test_fer2013_bad_split_and_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="PrivateTest"):
        read_fer2013(tmp_path, "validation")
    with pytest.raises(DatasetLayoutError, match=r"does not exist.*ROOT/<emotion>"):
        read_fer2013(tmp_path / "nope", "train")


def test_expression_folders_without_known_emotions_say_the_layout(tmp_path):
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "a.jpg").write_bytes(b"x")
    with pytest.raises(DatasetLayoutError, match="angry"):
        read_expression_folders(tmp_path)


def test_image_tree_lists_every_image_unlabelled_and_names_an_empty_folder(tmp_path):
    from facelivenet.edge_runtime.errors import DatasetLayoutError
    from facelivenet.training.data.readers import UNLABELLED, read_image_tree

    (tmp_path / "x" / "deep").mkdir(parents=True)
    for name in ("x/b.jpg", "x/deep/a.png", "x/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    records = read_image_tree(tmp_path / "x")
    assert [r.path for r in records] == [str(tmp_path / "x/b.jpg"), str(tmp_path / "x/deep/a.png")]
    assert {r.label for r in records} == {UNLABELLED}
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="holds no images"):
        read_image_tree(tmp_path / "empty")
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        read_image_tree(tmp_path / "missing")
