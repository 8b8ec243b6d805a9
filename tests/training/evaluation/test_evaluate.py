"""`facelive-train evaluate`: the CI smoke run on real data subsets, and every refusal.

The smoke run evaluates a tiny random checkpoint with ``--quick`` on the real
data (skipped when ``$FACELIVE_DATA`` / ``../shared/data`` or the detector is
absent) and must finish in under two minutes. The checkpoint says it trained on
the people of LFW fold 2, so fold 2 must never be reported and asking for it is
refused. The refusal tests need no data at all.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import time
from pathlib import Path

import pytest
import torch
import yaml

from facelivenet.training.checkpoint import inference_checkpoint, save_atomic
from facelivenet.edge_runtime.constants import EXIT_FAILURE
from facelivenet.training.cli import main
from facelivenet.training.config import TrainConfig, to_dict
from facelivenet.training.evaluation import runner
from facelivenet.training.model import FaceLiveNet

from ..conftest import TINY_MODEL, TINY_PRE

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMOKE_BUDGET_S = 120.0


def make_checkpoint(path: Path, classes: list[str], lfw_folds: list[int], teacher: str = "") -> Path:
    torch.manual_seed(0)
    cfg = TrainConfig(model=TINY_MODEL, preprocess=TINY_PRE)
    provenance = {"dataset": "LFW", "lfw_folds": lfw_folds, **({"teacher": {"name": teacher}} if teacher else {})}
    trained_on = {"stage1": {"classes": classes, "provenance": provenance},
                  "stage2": {"classes": None, "provenance": {"dataset": "FER2013"}}}
    meta = {"trained_on": trained_on, "completed_stages": [1, 2]}
    return save_atomic(inference_checkpoint(FaceLiveNet(cfg.model), cfg, meta), path)


def _json_error(stdout: str, stderr: str) -> bool:
    """--json on a failure: ONE JSON error object on stdout, its message on stderr (the CLI convention)."""
    lines = stdout.strip().splitlines()
    return len(lines) == 1 and set(json.loads(lines[0])) == {"error", "error_type"} and \
        json.loads(lines[0])["error"] in stderr


def run_cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def fold2_people(data_root: Path) -> list[str]:
    from facelivenet.training.evaluation.lfw_protocol import fold_people

    if not (data_root / "lfw" / "people.txt").is_file():
        pytest.skip("LFW absent")
    return sorted(fold_people(data_root / "lfw")[1])


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory, fold2_people) -> Path:
    # Trained "on" fold 2: a few names listed as classes, the fold itself in the provenance.
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", fold2_people[:50], [2], teacher="some_teacher")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("face-cache")


@pytest.fixture(scope="module")
def smoke(tiny_ckpt, data_root, detector_path, cache_dir, tmp_path_factory):
    """One `evaluate --quick --json` run of all four tasks: (exit code, JSON, stderr, out dir, seconds)."""
    out = tmp_path_factory.mktemp("eval")
    t0 = time.perf_counter()
    code, stdout, stderr = run_cli([
        "evaluate", "--checkpoint", str(tiny_ckpt), "--data", str(data_root), "--detector", str(detector_path),
        "--tasks", "lfw,fer2013,ckplus48,auth", "--quick", "--json", "--out", str(out),
        "--cache-dir", str(cache_dir), "--threads", "1", "--quiet",
    ])
    seconds = time.perf_counter() - t0
    assert code == 0, stderr
    return json.loads(stdout), out, seconds


def _unit(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and 0.0 <= x <= 1.0


def test_smoke_quick_run_json_shape(smoke):
    result, _, seconds = smoke
    assert seconds < SMOKE_BUDGET_S
    assert result["quick"] is True
    assert result["tasks"] == ["lfw", "fer2013", "ckplus48", "auth"]

    lfw = result["lfw"]
    assert {"accuracy", "accuracy_std", "tar_at_far_1e-3", "folds"} <= set(lfw)
    assert lfw["folds"] == [1]  # quick: the first unseen fold; fold 2 is never reported
    assert lfw["excluded_folds"].keys() == {"2"}
    assert all(_unit(lfw[k]) for k in ("accuracy", "tar_at_far_1e-3", "roc_auc"))
    assert lfw["accuracy_std"] == 0.0
    assert lfw["tar_at_far_1e-3_impostor_pairs"] == lfw["pairs_reported"] // 2
    assert lfw["faces"]["detected"] + lfw["faces"]["center_fallback"] == lfw["faces"]["images"]
    assert "some_teacher" in lfw["teacher_caveat"]  # distilled Stage 1: the teacher's data is not checked

    fer = result["fer2013"]
    assert _unit(fer["accuracy"]) and _unit(fer["private_test_accuracy"])
    assert fer["images"] == 300 and 0 < fer["private_test_images"] < 300
    assert sum(map(sum, fer["confusion_matrix"])) == 300

    ck = result["ckplus48"]
    assert _unit(ck["accuracy"]) and ck["accuracy_std"] >= 0.0
    assert ck["folds_evaluated"] == [1, 2, 3] and len(ck["fold_accuracies"]) == 3
    assert ck["labels"] == ["anger", "disgust", "fear", "happy", "sadness", "surprise"]
    assert ck["recipe"]["epochs"] == 3

    auth = result["authentication_jaffe"]
    assert all(_unit(auth[k]) for k in ("acc_verif", "acc_expre", "acc_live", "acc_g"))
    assert auth["pairs"] == 244
    assert set(auth["cell_counts"].values()) == {61}
    assert len(auth["verification_thresholds"]) == 10
    every = auth["all_pairs_verification"]  # every JAFFE pair, same subject across expressions vs different
    assert every["images"] == 213
    assert every["genuine_pairs"] + every["impostor_pairs"] == 213 * 212 // 2
    assert every["genuine_pairs"] == 2166 and every["impostor_pairs"] == 20412
    assert _unit(every["roc_auc"]) and set(every["tar_at_far"]) == {"1e-2", "1e-3"}
    assert every["tar_at_far"]["1e-3"]["far"] <= 1e-3 and every["tar_at_far"]["1e-2"]["far"] <= 1e-2
    assert every["tar_at_far"]["1e-3"]["tar"] <= every["tar_at_far"]["1e-2"]["tar"]


def test_smoke_writes_report_folder(smoke):
    result, out, _ = smoke
    assert json.loads((out / "evaluation.json").read_text()) == result
    for name in ("lfw_roc.png", "fer2013_confusion.png", "ckplus48_confusion.png"):
        png = out / name
        assert png.stat().st_size > 1000 and png.read_bytes()[:8] == PNG_MAGIC, name
    rows = (out / "auth_pairs.csv").read_text().splitlines()
    assert len(rows) == 1 + 244 and rows[0].startswith("reference,probe,asked_expression")
    args = json.loads((out / "evaluation_args.json").read_text())
    assert args["quick"] is True and args["checkpoint_sha256"] == result["checkpoint"]["sha256"]


def test_overlapping_lfw_fold_is_refused(tiny_ckpt, data_root, tmp_path):
    code, stdout, stderr = run_cli(["evaluate", "--checkpoint", str(tiny_ckpt), "--data", str(data_root),
                                    "--tasks", "lfw", "--lfw-folds", "1,2", "--out", str(tmp_path), "--json"])
    assert code == EXIT_FAILURE and _json_error(stdout, stderr)
    assert "fold 2 contains" in stderr and "trained on" in stderr and "fold 1 " not in stderr
    assert not (tmp_path / "evaluation.json").exists()


def test_checkpoint_trained_on_every_fold_reports_no_lfw(data_root, tmp_path):
    ckpt = make_checkpoint(tmp_path / "all.pt", [], list(range(1, 11)))
    code, stdout, stderr = run_cli(["evaluate", "--checkpoint", str(ckpt), "--data", str(data_root),
                                    "--tasks", "lfw", "--json", "--out", str(tmp_path / "out")])
    assert code == EXIT_FAILURE and _json_error(stdout, stderr)
    assert "every LFW fold holds people the checkpoint trained on" in stderr and "fold 10:" in stderr


def test_missing_data_set_is_skipped_with_reason(tiny_ckpt, data_root, cache_dir, tmp_path, caplog):
    data = tmp_path / "data"
    data.mkdir()
    os.symlink(data_root / "fer2013", data / "fer2013")  # only FER2013 is there
    code, stdout, stderr = run_cli([
        "evaluate", "--checkpoint", str(tiny_ckpt), "--data", str(data), "--tasks", "lfw,fer2013", "--quick",
        "--json", "--out", str(tmp_path / "out"), "--cache-dir", str(cache_dir), "--threads", "1", "--quiet",
    ])
    assert code == 0, stderr
    result = json.loads(stdout)
    reason = result["lfw"]["skipped"]
    assert "lfw skipped" in reason and str(data / "lfw") in reason and "--tasks" in reason
    assert any(reason in r.getMessage() for r in caplog.records)  # logged too
    assert _unit(result["fer2013"]["accuracy"])
    assert "ckplus48" not in result and "authentication_jaffe" not in result


# ------------------------------------------------------------- no real data needed

@pytest.fixture()
def bare_ckpt(tmp_path) -> Path:
    return make_checkpoint(tmp_path / "bare.pt", ["Someone_Else"], [])


def test_all_requested_data_missing_fails_in_one_line(bare_ckpt, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, stdout, stderr = run_cli(["evaluate", "--checkpoint", str(bare_ckpt), "--data", str(empty),
                                    "--tasks", "fer2013,auth", "--json"])
    assert code == EXIT_FAILURE and _json_error(stdout, stderr)
    line = [ln for ln in stderr.splitlines() if ln.startswith("facelive-train: error:")]
    assert len(line) == 1 and "no requested task can run" in line[0]
    assert "fer2013 skipped" in line[0] and "auth skipped" in line[0]


def test_checkpoint_of_another_model_configuration_is_refused(bare_ckpt, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    other = dict(to_dict(TINY_MODEL), c_width=12)
    cfg = tmp_path / "other.yaml"
    cfg.write_text(yaml.safe_dump({"model": other}))
    code, _, stderr = run_cli(["evaluate", "--checkpoint", str(bare_ckpt), "--data", str(empty), "--config", str(cfg)])
    assert code == EXIT_FAILURE
    assert "differs from the requested one in: c_width" in stderr
    # The same configuration passes the check (and then stops at the empty data folder).
    cfg.write_text(yaml.safe_dump({"model": to_dict(TINY_MODEL)}))
    code, _, stderr = run_cli(["evaluate", "--checkpoint", str(bare_ckpt), "--data", str(empty), "--config", str(cfg)])
    assert code == EXIT_FAILURE and "no requested task can run" in stderr
    code, _, stderr = run_cli(["evaluate", "--checkpoint", str(bare_ckpt), "--data", str(empty),
                               "--set", "model.embedding_dim=128"])
    assert code == EXIT_FAILURE and "embedding_dim" in stderr


def test_non_model_override_is_refused(bare_ckpt, tmp_path):
    code, _, stderr = run_cli(["evaluate", "--checkpoint", str(bare_ckpt), "--data", str(tmp_path),
                               "--set", "preprocess.input_size=64"])
    assert code == EXIT_FAILURE and "only model.* overrides" in stderr


def test_missing_default_model_says_pass_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "DEFAULT_CHECKPOINT", tmp_path / "default_model" / "model.pt")
    code, _, stderr = run_cli(["evaluate", "--data", str(tmp_path)])
    assert code == EXIT_FAILURE
    assert "no default model shipped" in stderr and "--checkpoint" in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_unknown_task_is_refused(bare_ckpt, tmp_path):
    code, _, stderr = run_cli(["evaluate", "--checkpoint", str(bare_ckpt), "--data", str(tmp_path), "--tasks", "lfw,imagenet"])
    assert code == EXIT_FAILURE and "imagenet" in stderr and "lfw, fer2013, ckplus48, auth" in stderr
