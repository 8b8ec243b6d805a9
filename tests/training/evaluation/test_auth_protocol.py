"""The JAFFE face-authentication pair list: balanced, deterministic, neutral references."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from facelivenet.training.evaluation.auth_protocol import (
    AuthPair,
    LabelledImage,
    build_auth_pairs,
    cell_counts,
    jaffe_auth_pairs,
    list_jaffe_images,
    parse_jaffe_name,
)
from facelivenet.training.evaluation.errors import ProtocolFileError
from facelivenet.edge_runtime.metrics import CELLS

CODES = {
    "AN": "anger", "DI": "disgust", "FE": "fear", "HA": "happy", "NE": "neutral", "SA": "sadness", "SU": "surprise",
}


def synthetic_jaffe(subjects=("AA", "BB", "CC"), per_expr=3) -> list[LabelledImage]:
    images, n = [], 0
    for s in subjects:
        for code, label in CODES.items():
            for i in range(1, per_expr + 1):
                n += 1
                images.append(LabelledImage(f"{s}.{code}{i}.{n}.tiff", s, label))
    return images


def check_pairs(pairs: list[AuthPair], images: list[LabelledImage]) -> None:
    info = {im.path: im for im in images}
    counts = cell_counts(pairs)
    assert len(set(counts.values())) == 1 and counts[CELLS[0]] > 0, counts
    first_neutral = {}
    for im in sorted(images, key=lambda im: im.path):
        if im.label == "neutral":
            first_neutral.setdefault(im.subject, im.path)
    for p in pairs:
        ref, probe = info[p.reference], info[p.probe]
        assert ref.label == "neutral" and p.reference == first_neutral[ref.subject]
        assert p.probe != p.reference
        assert p.id_true == (ref.subject == probe.subject)
        assert p.ex_true == (probe.label == p.asked_expression)
        assert p.probe_expression == probe.label
        assert p.asked_expression in ("happy", "surprise")
    keys = Counter((p.cell, p.reference, p.asked_expression, p.probe) for p in pairs)
    assert max(keys.values()) == 1  # no probe twice for the same reference, challenge and cell
    neutral_probes = [p for p in pairs if p.cell == "ID-True/Ex-False" and p.probe_expression == "neutral"]
    assert neutral_probes


def test_parse_jaffe_name():
    assert parse_jaffe_name("KA.HA1.29.tiff") == ("KA", "happy")
    assert parse_jaffe_name(Path("/x/y/YM.SU3.60.tiff")) == ("YM", "surprise")
    assert parse_jaffe_name("NM.NE2.130.tif") == ("NM", "neutral")
    for bad in ("KA.XX1.29.tiff", "KA.tiff", "photo.jpg", ".HA1.2.tiff"):
        with pytest.raises(ProtocolFileError, match="expected"):
            parse_jaffe_name(bad)


def test_synthetic_pairs_balanced_and_deterministic():
    images = synthetic_jaffe()
    pairs = build_auth_pairs(images, seed=3)
    check_pairs(pairs, images)
    assert cell_counts(pairs)["ID-True/Ex-True"] == 3 * 2 * 3  # subjects x asked x images per expression
    assert build_auth_pairs(list(reversed(images)), seed=3) == pairs  # input order does not matter
    assert build_auth_pairs(images, seed=4) != pairs  # the seed picks the negatives
    genuine = [p for p in pairs if p.cell == "ID-True/Ex-True"]
    assert genuine == [p for p in build_auth_pairs(images, seed=4) if p.cell == "ID-True/Ex-True"]


def test_subject_without_neutral_is_left_out():
    images = [im for im in synthetic_jaffe() if not (im.subject == "CC" and im.label == "neutral")]
    pairs = build_auth_pairs(images)
    check_pairs(pairs, images)
    assert not any(p.reference.startswith("CC.") for p in pairs)


def test_small_pools_truncate_every_cell_alike():
    images = synthetic_jaffe(subjects=("AA", "BB"), per_expr=1)
    images = [im for im in images if im.subject == "AA" or im.label == "neutral"]  # BB: neutral only
    pairs = build_auth_pairs(images)
    # AA's happy/surprise probes have no ID-False/Ex-True partner (BB shows neither): those groups vanish;
    # BB has no happy/surprise image at all.
    assert pairs == []


def test_asked_must_be_a_non_neutral_label():
    with pytest.raises(ValueError):
        build_auth_pairs(synthetic_jaffe(), asked=("neutral",))
    with pytest.raises(ValueError):
        build_auth_pairs(synthetic_jaffe(), asked=("smile",))


def test_real_jaffe_pairs(jaffe_root: Path):
    images = list_jaffe_images(jaffe_root)
    assert len(images) == 213 and len({im.subject for im in images}) == 10
    pairs = jaffe_auth_pairs(jaffe_root)
    check_pairs(pairs, images)
    assert cell_counts(pairs) == dict.fromkeys(CELLS, 61)
    assert jaffe_auth_pairs(jaffe_root) == pairs
    assert all((jaffe_root / p.probe).is_file() and (jaffe_root / p.reference).is_file() for p in pairs)


def test_missing_jaffe_folder(tmp_path: Path):
    with pytest.raises(ProtocolFileError, match="does not exist"):
        list_jaffe_images(tmp_path / "nope")
    with pytest.raises(ProtocolFileError, match="no .tiff images"):
        list_jaffe_images(tmp_path)
