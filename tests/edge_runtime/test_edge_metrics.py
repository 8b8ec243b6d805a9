"""Hand-computed checks of the verification, classification and authentication metrics."""

from __future__ import annotations

import numpy as np
import pytest

from facelivenet.edge_runtime.metrics import (
    accuracy,
    authentication_metrics,
    authentication_metrics_from_decisions,
    best_threshold,
    confusion_matrix,
    expression_decisions,
    kfold_verification_accuracy,
    normalize_rows,
    roc_auc,
    roc_curve,
    tar_at_far,
    verification_accuracy,
)

# Three folds of four pairs (two same, two different), all scores distinct.
KFOLD = [  # (score, same, fold)
    (0.90, True, 1), (0.55, True, 1), (0.65, False, 1), (0.10, False, 1),
    (0.80, True, 2), (0.45, True, 2), (0.35, False, 2), (0.20, False, 2),
    (0.70, True, 3), (0.30, True, 3), (0.50, False, 3), (0.05, False, 3),
]


def _kfold_arrays():
    scores, labels, folds = zip(*KFOLD)
    return np.array(scores), np.array(labels), np.array(folds)


def test_best_threshold_ties_go_to_the_higher_threshold():
    # Sorted: .9S .8S .5D .3S .2D .1D -> 5/6 correct when accepting the top 2 or the top 4.
    t, acc = best_threshold([0.9, 0.8, 0.3, 0.5, 0.2, 0.1], [1, 1, 1, 0, 0, 0])
    assert t == pytest.approx(0.65)
    assert acc == pytest.approx(5 / 6)


def test_best_threshold_degenerate_sets():
    assert best_threshold([0.2, 0.4], [True, True]) == (pytest.approx(-0.8), 1.0)  # accept all: min - 1
    assert best_threshold([0.2, 0.4], [False, False]) == (pytest.approx(1.4), 1.0)  # reject all: max + 1


def test_verification_accuracy_accepts_at_equality():
    assert verification_accuracy([0.5, 0.4], [True, False], 0.5) == 1.0


def test_kfold_hand_computed():
    # Fold 1 tested: train .8S .7S .5D .45S .35D .3S .2D .05D, best 6/8 first at top-2 -> t = (.7+.5)/2 = .6;
    #   fold 1: .9S ok, .55S miss, .65D false accept, .1D ok -> 0.5
    # Fold 2 tested: train .9S .7S .65D .55S .5D .3S .1D .05D, best first at top-2 -> t = .675 -> 3/4
    # Fold 3 tested: train .9S .8S .65D .55S .45S .35D .2D .1D, best 7/8 at top-5 -> t = .40 -> 2/4
    s, y, f = _kfold_arrays()
    res = kfold_verification_accuracy(s, y, f)
    assert res.folds == (1, 2, 3)
    assert res.thresholds == pytest.approx((0.60, 0.675, 0.40))
    assert res.accuracies == pytest.approx((0.5, 0.75, 0.5))
    assert res.mean == pytest.approx(7 / 12)
    assert res.std == pytest.approx(np.std([0.5, 0.75, 0.5]))
    assert res.sem == pytest.approx(np.std([0.5, 0.75, 0.5], ddof=1) / np.sqrt(3))
    assert res.to_dict()["accuracies"] == list(res.accuracies)


def test_kfold_subset_of_test_folds_still_trains_on_all_other_folds():
    s, y, f = _kfold_arrays()
    res = kfold_verification_accuracy(s, y, f, test_folds=[3])
    assert res.folds == (3,)
    assert res.thresholds == pytest.approx((0.40,))
    assert res.accuracies == pytest.approx((0.5,))
    assert res.mean == pytest.approx(0.5) and res.std == 0.0 and res.sem == 0.0


def test_kfold_rejects_bad_input():
    s, y, f = _kfold_arrays()
    with pytest.raises(ValueError, match="not among"):
        kfold_verification_accuracy(s, y, f, test_folds=[4])
    with pytest.raises(ValueError, match="two folds"):
        kfold_verification_accuracy(s, y, np.ones_like(f))
    with pytest.raises(ValueError, match="length"):
        kfold_verification_accuracy(s, y[:-1], f)


IMPOSTORS = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
GENUINE = [0.95, 0.85, 0.75, 0.65, 0.55, 0.45]


def _tar(impostors, genuine, far):
    return tar_at_far(impostors + genuine, [False] * len(impostors) + [True] * len(genuine), far)


@pytest.mark.parametrize(
    "far, threshold, achieved, tar",
    [
        (0.1, 0.9, 0.1, 1 / 6),  # one impostor allowed: threshold = highest impostor
        (0.2, 0.8, 0.2, 2 / 6),
        (0.25, 0.8, 0.2, 2 / 6),  # floor(2.5) = 2 impostors
        (0.5, 0.5, 0.5, 5 / 6),
        (1.0, 0.05, 1.0, 1.0),
    ],
)
def test_tar_at_far_constructed(far, threshold, achieved, tar):
    r = _tar(IMPOSTORS, GENUINE, far)
    assert r.threshold == pytest.approx(threshold)
    assert r.far == pytest.approx(achieved) and r.far <= far
    assert r.tar == pytest.approx(tar)
    assert (r.n_genuine, r.n_impostor) == (6, 10)


def test_tar_at_far_below_one_impostor_rejects_all_impostors():
    r = _tar(IMPOSTORS, GENUINE, 0.05)  # budget floor(0.5) = 0
    assert r.threshold > 0.9 and r.threshold == np.nextafter(0.9, 1.0)
    assert r.far == 0.0 and r.tar == pytest.approx(1 / 6)


def test_tar_at_far_ties_move_above_the_whole_group():
    imp = [0.9, 0.7, 0.7, 0.3, 0.2, 0.1, 0.1, 0.0, 0.0, 0.0]
    r = _tar(imp, [0.8, 0.75, 0.7, 0.4], 0.2)  # accepting 0.7 would accept 3 > 2 impostors
    assert r.threshold == pytest.approx(0.9) and r.far == pytest.approx(0.1) and r.tar == 0.0
    r = _tar([0.9, 0.9] + imp[2:], [0.95], 0.1)  # the top tie alone is over budget
    assert r.far == 0.0 and r.threshold > 0.9 and r.tar == 1.0


def test_tar_at_far_needs_both_classes():
    with pytest.raises(ValueError):
        tar_at_far([0.1, 0.2], [True, True], 0.1)
    with pytest.raises(ValueError):
        tar_at_far([0.1, 0.2], [True, False], 1.5)


def test_roc_curve_and_auc():
    fpr, tpr, thr = roc_curve([0.9, 0.8, 0.7, 0.7], [True, False, True, False])
    assert thr[0] == np.inf and np.allclose(thr[1:], [0.9, 0.8, 0.7])
    assert np.allclose(fpr, [0, 0, 0.5, 1]) and np.allclose(tpr, [0, 0.5, 0.5, 1])
    assert roc_auc(fpr, tpr) == pytest.approx(0.625)  # Mann-Whitney: (1 + 1 + 0 + 0.5) / 4


def test_roc_agrees_with_tar_at_far_on_random_scores():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(0.6, 0.15, 400), rng.normal(0.1, 0.15, 1000)])
    labels = np.arange(scores.size) < 400
    fpr, tpr, _ = roc_curve(scores, labels)
    r = tar_at_far(scores, labels, 1e-2)
    assert r.far <= 1e-2
    assert r.tar <= tpr[fpr <= 1e-2].max() + 1e-12
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def test_confusion_matrix_accuracy_and_rows():
    y_true, y_pred = [0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2]
    m = confusion_matrix(y_true, y_pred, 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    assert np.allclose(normalize_rows(m), [[0.5, 0.5, 0], [0, 1, 0], [1 / 3, 0, 2 / 3]])
    assert normalize_rows([[0, 0], [1, 3]]).tolist() == [[0, 0], [0.25, 0.75]]
    with pytest.raises(ValueError, match="0..2"):
        confusion_matrix([0, 3], [0, 1], 3)


# Two pairs per cell: (id_true, ex_true, verified, expression_ok)
AUTH = [
    (True, True, True, True), (True, True, True, False),
    (True, False, True, False), (True, False, True, True),
    (False, True, False, True), (False, True, True, True),
    (False, False, False, False), (False, False, False, True),
]


def test_authentication_metrics_hand_computed():
    idt, ext, ver, exo = zip(*AUTH)
    m = authentication_metrics_from_decisions(idt, ext, ver, exo)
    assert m.acc_verif == pytest.approx(7 / 8)  # one impostor verified
    assert m.acc_expre == pytest.approx(5 / 8)
    assert m.acc_live == pytest.approx(2 / 4)  # ID-True pairs only: ok, miss, ok, miss
    assert m.acc_g == pytest.approx(5 / 8)  # accept = [T F F T F T F F] vs truth [T T F F F F F F]
    assert m.n_pairs == 8
    assert m.cell_counts == {"ID-True/Ex-True": 2, "ID-True/Ex-False": 2, "ID-False/Ex-True": 2, "ID-False/Ex-False": 2}
    assert m.cell_accept_rate == {
        "ID-True/Ex-True": 0.5, "ID-True/Ex-False": 0.5, "ID-False/Ex-True": 0.5, "ID-False/Ex-False": 0.0,
    }
    assert set(m.to_dict()) >= {"acc_verif", "acc_expre", "acc_live", "acc_g"}


def test_authentication_metrics_from_scores_and_probabilities():
    idt, ext, ver, exo = zip(*AUTH)
    scores = np.where(ver, 0.8, 0.2)
    asked = np.full(8, 1)
    probs = np.where(np.array(exo)[:, None], [[0.3, 0.7]], [[0.6, 0.4]])
    by_argmax = authentication_metrics(idt, ext, scores, 0.5, probs, asked)
    assert by_argmax == authentication_metrics_from_decisions(idt, ext, ver, exo)
    # A probability threshold of 0.35 turns every expression decision into "ok".
    loose = authentication_metrics(idt, ext, scores, 0.5, probs, asked, expression_threshold=0.35)
    assert loose.acc_expre == pytest.approx(0.5) and loose.acc_live == pytest.approx(0.5)


def test_expression_decisions():
    probs = [[0.1, 0.9], [0.6, 0.4]]
    assert expression_decisions(probs, [1, 1]).tolist() == [True, False]
    assert expression_decisions(probs, [1, 1], threshold=0.35).tolist() == [True, True]
    with pytest.raises(ValueError):
        expression_decisions(probs, [2, 0])
