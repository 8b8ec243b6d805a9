"""LFW View 2 parsers: the real protocol files, and clear errors on broken ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from facelivenet.training.evaluation.errors import ProtocolFileError
from facelivenet.training.evaluation.lfw_protocol import (
    Pair,
    fold_people,
    lfw_pairs,
    parse_pairs,
    parse_people,
    pairs_people,
)


def test_real_pairs_ten_folds_of_600(lfw_root: Path):
    folds = lfw_pairs(lfw_root)
    assert len(folds) == 10
    for k, fold in enumerate(folds, start=1):
        assert len(fold) == 600
        assert sum(p.same for p in fold) == 300
        assert all(p.fold == k for p in fold)
        assert all(p.same == (Path(p.path1).parent == Path(p.path2).parent) for p in fold)
    first = folds[0][0]
    abel = "images/Abel_Pacheco/Abel_Pacheco_"
    assert first == Pair(abel + "0001.jpg", abel + "0004.jpg", True, 1)


def test_real_pair_images_exist(lfw_root: Path):
    paths = {p for fold in lfw_pairs(lfw_root) for pair in fold for p in (pair.path1, pair.path2)}
    missing = [p for p in paths if not (lfw_root / p).is_file()]
    assert not missing, missing[:5]


def test_real_people_folds_disjoint_and_cover_pairs(lfw_root: Path):
    people = fold_people(lfw_root)
    assert len(people) == 10
    assert sum(len(p) for p in people) == len(set().union(*people))  # identity-disjoint
    for k, fold in enumerate(lfw_pairs(lfw_root)):
        used = pairs_people(fold)
        assert used <= people[k], sorted(used - people[k])[:5]


def test_real_view1_files_parse_as_one_fold(lfw_root: Path):
    if not (lfw_root / "pairsDevTrain.txt").is_file():
        pytest.skip("pairsDevTrain.txt absent")
    (train,) = parse_pairs(lfw_root / "pairsDevTrain.txt")
    assert len(train) == 2200 and sum(p.same for p in train) == 1100
    (people,) = parse_people(lfw_root / "peopleDevTrain.txt")
    assert len(people) == 4038


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_small_files_parse(tmp_path: Path):
    pairs = _write(tmp_path, "pairs.txt", "2\t1\nA\t1\t2\nA\t1\tB\t3\nC 2 4\nC 1 D 1\n")
    folds = parse_pairs(pairs)
    assert [len(f) for f in folds] == [2, 2]
    assert folds[1][1] == Pair("images/C/C_0001.jpg", "images/D/D_0001.jpg", False, 2)
    assert pairs_people(folds[0]) == {"A", "B"}
    _write(tmp_path, "people.txt", "2\n1\nA 2\n2\nB 1\nC 4\n")
    assert fold_people(tmp_path) == [{"A"}, {"B", "C"}]


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty file"),
        ("ten 300\n", "not an integer"),
        ("1 1 1\n", "header"),
        ("1 1\nA 1 2\n", "1 pair lines, header promises 2"),
        ("1 1\nA 1 B 2\nA 1 B 2\n", "matched 'name n1 n2'"),
        ("1 1\nA 1 2\nA 1 2\n", "mismatched"),
        ("1 1\nA x 2\nA 1 B 2\n", "'x' is not an integer"),
    ],
)
def test_malformed_pairs_name_file_and_layout(tmp_path: Path, text: str, match: str):
    path = _write(tmp_path, "pairs.txt", text)
    with pytest.raises(ProtocolFileError, match=match) as info:
        parse_pairs(path)
    assert str(path) in str(info.value) and "expected layout" in str(info.value)


@pytest.mark.parametrize(
    "text, match",
    [
        ("2\n1\nA 1\n", "ends after 1 of 2 folds"),
        ("1\n2\nA 1\n", "lists 1 distinct people, its count line says 2"),
        ("1\n1\nA 1\nB 1\n", "extra lines"),
        ("2\n1\nA 1\nB 1\n", "fold 2 must start with a count line"),
    ],
)
def test_malformed_people(tmp_path: Path, text: str, match: str):
    path = _write(tmp_path, "people.txt", text)
    with pytest.raises(ProtocolFileError, match=match) as info:
        parse_people(path)
    assert str(path) in str(info.value)


def test_missing_files_say_what_is_expected(tmp_path: Path):
    with pytest.raises(ProtocolFileError, match="pairs.txt: file does not exist; expected LFW layout"):
        lfw_pairs(tmp_path)
    with pytest.raises(ProtocolFileError, match="people.txt: file does not exist"):
        fold_people(tmp_path)
