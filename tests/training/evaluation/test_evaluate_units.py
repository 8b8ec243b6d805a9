"""The decisions inside `evaluate`, on synthetic inputs: fold selection, CK+ folds, JAFFE thresholds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facelivenet.training.evaluation.ckplus_eval import CKPLUS_INDEX, CKPLUS_LABELS, subject_folds
from facelivenet.training.evaluation.auth_eval import loso_thresholds
from facelivenet.training.evaluation.evaluate import EvaluationError, default_out_dir, parse_folds, parse_tasks
from facelivenet.training.evaluation.fer2013_eval import evenly_spaced
from facelivenet.training.evaluation.lfw_eval import (FoldOverlapError, fold_overlaps, plan_lfw, select_folds,
                                                      trained_people)
from facelivenet.training.evaluation.lfw_protocol import lfw_pairs


def write_mini_lfw(root: Path) -> Path:
    """Two folds: fold 1 = Ann, Bob (+ Cid in a mismatched pair); fold 2 = Dan, Eve."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pairs.txt").write_text("2 1\nAnn 1 2\nBob 1 Cid 1\nDan 1 2\nDan 1 Eve 1\n")
    (root / "people.txt").write_text("2\n3\nAnn 2\nBob 1\nCid 1\n2\nDan 2\nEve 1\n")
    return root


def test_trained_people_from_classes_and_provenance_folds(tmp_path):
    lfw = write_mini_lfw(tmp_path / "lfw")
    names, known = trained_people({"stage1": {"classes": ["Bob"], "provenance": {}}}, lfw)
    assert names == {"Bob"} and known
    names, known = trained_people({"stage1": {"classes": [], "provenance": {"lfw_folds": [2]}}}, lfw)
    assert names == {"Dan", "Eve"} and known
    names, known = trained_people({}, lfw)
    assert names == set() and not known
    # several identity sources: classes are "<source>/<person>", LFW folds sit in the source's record
    multi = {"stage1": {"classes": ["lfw/Ann", "idfaces/celeba-7"],
                        "provenance": {"sources": [{"lfw_folds": [2]}, {"identity_root": "idfaces/images"}]}}}
    names, known = trained_people(multi, lfw)
    assert names == {"Ann", "celeba-7", "Dan", "Eve"} and known


def test_fold_overlap_and_selection(tmp_path):
    lfw = write_mini_lfw(tmp_path / "lfw")
    overlaps = fold_overlaps(lfw_pairs(lfw), {"Cid", "Zed"})
    assert overlaps == {1: 1, 2: 0}  # Cid only appears in a mismatched pair: still counts
    assert select_folds(overlaps, None, quick=False) == [2]
    assert select_folds(overlaps, [2], quick=False) == [2]
    with pytest.raises(FoldOverlapError, match=r"fold 1 contains 1 people .* reportable \(unseen\) folds: \[2\]"):
        select_folds(overlaps, [1, 2], quick=False)
    with pytest.raises(ValueError, match="out of range"):
        select_folds(overlaps, [3], quick=False)
    assert select_folds({1: 0, 2: 0, 3: 5}, None, quick=True) == [1]


def test_plan_refuses_before_reading_images(tmp_path):
    lfw = write_mini_lfw(tmp_path / "lfw")  # no images/ at all: planning must not need them
    plan = plan_lfw({"stage1": {"classes": ["Ann"]}}, lfw, None, quick=False)
    assert plan.report == (2,) and plan.excluded == {"1": 1}
    with pytest.raises(FoldOverlapError):
        plan_lfw({"stage1": {"classes": ["Ann"]}}, lfw, [1], quick=False)
    every = plan_lfw({"stage1": {"classes": ["Ann", "Dan"]}}, lfw, None, quick=False)
    assert every.report == ()


def test_ckplus_subject_folds_are_disjoint_and_deterministic():
    subjects = [f"S{i:03d}" for i in range(118)]
    folds = subject_folds(list(reversed(subjects)) * 3, 10)
    assert folds == subject_folds(subjects, 10)
    assert sorted(set(folds.values())) == list(range(1, 11))
    sizes = np.bincount(list(folds.values()))[1:]
    assert sizes.max() - sizes.min() <= 1
    assert CKPLUS_LABELS == ("anger", "disgust", "fear", "happy", "sadness", "surprise")
    assert CKPLUS_INDEX == [1, 2, 3, 4, 5, 6]  # neutral (0) is never predicted on CK+


def test_loso_threshold_never_sees_the_subject():
    # Subject A's pairs have scores that would move the threshold a lot; they must not affect A's threshold.
    ref = np.array(["A", "A", "B", "B", "C", "C"])
    probe = np.array(["A", "B", "B", "C", "C", "A"])
    same = ref == probe
    scores = np.array([0.1, 0.05, 0.9, 0.2, 0.8, 0.3])
    t = loso_thresholds(scores, same, ref, probe)
    # A: only pairs without A: (B,B)=0.9 same, (B,C)=0.2 diff, (C,C)=0.8 same -> midpoint 0.5
    assert t["A"] == pytest.approx(0.5)
    assert set(t) == {"A", "B", "C"}
    with pytest.raises(ValueError, match="no pair without subject"):
        loso_thresholds(scores[:1], same[:1], ref[:1], probe[:1])


def test_task_and_fold_parsing_and_out_dir():
    assert parse_tasks(None) == ("lfw", "fer2013", "ckplus48", "auth")
    assert parse_tasks("auth,lfw") == ("lfw", "auth")
    assert parse_tasks("authentication_jaffe") == ("auth",)
    with pytest.raises(EvaluationError, match="unknown task"):
        parse_tasks("lfw,cifar")
    assert parse_folds("3,1,3") == (1, 3) and parse_folds(None) is None
    with pytest.raises(EvaluationError):
        parse_folds("one")
    assert default_out_dir(Path("runs/default-v1/model.pt")) == Path("reports/eval/default-v1-model")
    assert default_out_dir(Path("/x/facelive_small.pt")) == Path("reports/eval/facelive_small")


def test_evenly_spaced_subset():
    idx = evenly_spaced(7178, 300)
    assert len(idx) == 300 and idx[0] == 0 and idx[-1] == 7177
    assert list(evenly_spaced(5, 300)) == [0, 1, 2, 3, 4]
