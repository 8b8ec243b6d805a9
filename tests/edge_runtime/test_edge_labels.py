"""Expression labels: one canonical order and the data sets' names mapped onto it."""

from __future__ import annotations

from pathlib import Path

import pytest

from facelivenet.edge_runtime.labels import EXPRESSION_LABELS, NUM_EXPRESSIONS, canonical_label, label_index


def test_canonical_order_is_exact():
    assert EXPRESSION_LABELS == ("neutral", "anger", "disgust", "fear", "happy", "sadness", "surprise")
    assert NUM_EXPRESSIONS == 7
    assert [label_index(name) for name in EXPRESSION_LABELS] == list(range(7))


@pytest.mark.parametrize(
    "name, expected",
    [  # FER2013 folder names
        ("angry", "anger"), ("disgust", "disgust"), ("fear", "fear"), ("happy", "happy"),
        ("neutral", "neutral"), ("sad", "sadness"), ("surprise", "surprise"),
    ],
)
def test_fer2013_names(name, expected):
    assert canonical_label(name) == expected


@pytest.mark.parametrize(
    "code, expected",
    [("AN", "anger"), ("DI", "disgust"), ("FE", "fear"), ("HA", "happy"), ("NE", "neutral"),
     ("SA", "sadness"), ("SU", "surprise")],
)
def test_jaffe_codes(code, expected):
    assert canonical_label(code) == expected


@pytest.mark.parametrize(
    "name, expected",
    [("anger", "anger"), ("disgust", "disgust"), ("fear", "fear"), ("happy", "happy"),
     ("sadness", "sadness"), ("surprise", "surprise"), ("contempt", None)],
)
def test_ckplus_names(name, expected):
    assert canonical_label(name) == expected


@pytest.mark.parametrize("name", ["Happy", " HAPPY ", "happiness", "ha"])
def test_case_and_whitespace_do_not_matter(name):
    assert canonical_label(name) == "happy"


@pytest.mark.parametrize("name", ["contempt", "CONTEMPT", "bored", "", "xx"])
def test_unknown_names_map_to_none(name):
    assert canonical_label(name) is None


def test_label_index_aliases_and_unknown():
    assert label_index("SU") == 6
    assert label_index("angry") == 1
    with pytest.raises(ValueError, match="contempt.*neutral, anger"):
        label_index("contempt")


def test_real_data_set_names_map(data_root: Path):
    """Every folder / file code in the real data sets maps, except CK+ contempt."""
    for ds in ("fer2013/train", "fer2013/test", "ckplus48"):
        folder = data_root / ds
        if not folder.is_dir():
            continue
        for sub in folder.iterdir():
            if sub.is_dir():
                expected_none = sub.name == "contempt"
                assert (canonical_label(sub.name) is None) == expected_none, f"{ds}/{sub.name}"
    jaffe = data_root / "jaffe"
    if jaffe.is_dir():
        codes = {p.name.split(".")[1][:2] for p in jaffe.glob("*.tiff")}
        assert codes and all(canonical_label(c) is not None for c in codes), codes
