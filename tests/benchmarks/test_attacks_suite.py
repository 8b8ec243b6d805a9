"""The attack suite on real JAFFE faces with the real detector and model (skipped without the data).

A three-person JAFFE-shaped subset keeps the default run short; the slow test
runs ``--quick`` on the whole of JAFFE.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from facelivenet.benchmarks.attacks import cli
from facelivenet.benchmarks.attacks.calibration import enroll_subjects
from facelivenet.benchmarks.attacks.data import load_subjects
from facelivenet.benchmarks.attacks.memo import MemoDetector, MemoModel
from facelivenet.benchmarks.attacks.render import Renderer
from facelivenet.benchmarks.attacks.scenarios import ATTACK_TYPES, plan_sessions
from facelivenet.benchmarks.attacks.simulate import SuiteSetup, run_once
from facelivenet.edge_runtime.challenge import ChallengeConfig
from facelivenet.edge_runtime.face_model import FaceModel
from facelivenet.edge_runtime.face_pipeline import FacePipeline
from facelivenet.edge_runtime.store import TemplateStore

SUBSET = ("KA", "KL", "YM")
CODES = ("NE", "HA", "SU")


@pytest.fixture(scope="module")
def jaffe_subset(data_root: Path, tmp_path_factory) -> Path:
    """Links to the NE/HA/SU images of three JAFFE subjects: a JAFFE-shaped folder of ~27 images."""
    src = data_root / "jaffe"
    if not src.is_dir():
        pytest.skip(f"{src} is absent")
    dst = tmp_path_factory.mktemp("jaffe_subset") / "jaffe"
    dst.mkdir()
    for path in sorted(src.iterdir()):
        parts = path.name.split(".")
        if parts[0] in SUBSET and parts[1][:2] in CODES:
            (dst / path.name).symlink_to(path)
    return dst


def test_cached_pipeline_decides_exactly_like_the_plain_one(jaffe_subset, detector_path, tmp_path):
    """The detector/model caches change nothing: the same sessions through an uncached FacePipeline."""
    ccfg = ChallengeConfig()
    subjects = load_subjects(jaffe_subset, ccfg.expressions)
    model = FaceModel(threads=1)
    plain = FacePipeline(model, detector_path=str(detector_path))
    cached = FacePipeline(MemoModel(model), detector=MemoDetector(plain.detector))
    renderer = Renderer()
    with TemplateStore(tmp_path / "t.db") as store:
        templates, _ = enroll_subjects(cached, renderer, store, subjects)
    thresholds = {s.name: 0.0 for s in subjects}
    results = {}
    for name, pipeline in (("plain", plain), ("cached", cached)):
        setup = SuiteSetup(pipeline, renderer, {s.name: s for s in subjects}, templates, thresholds, ccfg,
                           expression_threshold=0.3, variants=2, step_timeout_s=1.0)
        plans = [plan_sessions(kind, 2, subjects, ccfg, seed=7)[1] for kind in ("bona_fide", "swap", "two_faces",
                                                                                "track_jump")]
        results[name] = [run_once(setup, plan, thresholds[plan.subject])[0] for plan in plans]
    for a, b in zip(results["plain"], results["cached"]):
        assert (a.decision, a.reasons, a.frames, a.analysed_frames) == (b.decision, b.reasons, b.frames,
                                                                         b.analysed_frames)
        assert np.array_equal(a.identity_scores, b.identity_scores)
    assert cached.detector.computed < cached.detector.calls  # the cache was used


def test_attack_suite_cli_end_to_end(jaffe_subset, detector_path, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACELIVE_DETECTOR", str(detector_path))
    out = tmp_path / "report"
    code = cli.main(["--data", str(jaffe_subset), "--sessions", "3", "--variants", "2", "--seed", "1",
                     "--out", str(out), "--json"])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["sessions_per_type"] == 3 and summary["quick"] is False
    assert set(summary["apcer"]) == set(ATTACK_TYPES) and 0.0 <= summary["bpcer"] <= 1.0
    assert summary["challenge_orders"] == 2 and summary["derivation_mismatches"] == 0
    assert set(summary["reasons"]) == {"bona_fide", *ATTACK_TYPES}
    assert summary["apcer"]["two_faces"] == 0.0 and "MULTIPLE_FACES" in summary["reasons"]["two_faces"]
    assert summary["apcer"]["track_jump"] == 0.0
    assert summary["split"]["subjects"] == 3 and summary["split"]["shared_neutral_subjects"] == []
    assert summary["thresholds"]["verification"]["per_subject"].keys() == set(SUBSET)
    files = summary["files"]
    assert Path(files["det.png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads(Path(files["config.json"]).read_text())
    assert config["seed"] == 1 and config["variants"] == 2 and config["detector"] == str(detector_path)
    assert len(Path(files["sessions.jsonl"]).read_text().splitlines()) == 3 * (1 + len(ATTACK_TYPES))
    table = Path(files["table.txt"]).read_text()
    assert "APCER" in table and "session model: smooth" in table and "identity: the bundle model" in table
    assert summary["session_model"]["name"] == "smooth" and summary["identity"]["name"] == "model"
    assert set(summary["thresholds"]["ranges"]) == {"aggregate", "floor", "continuity", "margin"}
    assert summary["bpcer_target"] == 0.20


@pytest.mark.slow
def test_quick_run_on_all_of_jaffe(data_root, detector_path, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACELIVE_DETECTOR", str(detector_path))
    start = time.perf_counter()
    code = cli.main(["--data", str(data_root), "--quick", "--out", str(tmp_path / "quick"), "--json"])
    elapsed = time.perf_counter() - start
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["quick"] is True and "--quick" in summary["note"] and summary["sessions_per_type"] == 20
    assert summary["split"]["subjects"] == 10 and summary["derivation_mismatches"] == 0
    assert elapsed < 180, f"--quick took {elapsed:.0f} s (target < 90 s on one free core)"


def test_frontier_points_decide_like_standalone_runs(jaffe_subset, detector_path, tmp_path, monkeypatch, capsys):
    """Operating points share one enrollment and cache; each decides exactly as its own run would."""
    monkeypatch.setenv("FACELIVE_DETECTOR", str(detector_path))
    common = ["--data", str(jaffe_subset), "--sessions", "2", "--variants", "2", "--types", "swap,impostor"]
    code = cli.main([*common, "--far", "0.005", "--continuity-far", "0.2,0.01", "--out", str(tmp_path / "f"),
                     "--json"])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    frontier = json.loads(stdout)
    assert [(p["target_far"], p["continuity_far"]) for p in frontier["points"]] == [(0.005, 0.2), (0.005, 0.01)]
    assert Path(frontier["files"]["frontier.png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 0.005 | 0.01 | 0." in Path(frontier["files"]["frontier.md"]).read_text()
    loose, tight = (json.loads((Path(p["report"]) / "summary.json").read_text()) for p in frontier["points"])
    for subject, rule in tight["thresholds"]["per_subject"].items():  # a lower rate, a higher threshold
        assert rule["continuity"]["threshold"] >= loose["thresholds"]["per_subject"][subject]["continuity"]["threshold"]
    assert cli.main([*common, "--far", "0.005", "--continuity-far", "0.01", "--out", str(tmp_path / "alone"),
                     "--json"]) == 0
    alone = json.loads(capsys.readouterr()[0])
    shared = (Path(frontier["points"][1]["report"]) / "sessions.jsonl").read_text().splitlines()
    own = Path(alone["files"]["sessions.jsonl"]).read_text().splitlines()
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k not in ("elapsed_s",)}  # noqa: E731
    assert [strip(l) for l in shared] == [strip(l) for l in own]
    assert alone["thresholds"]["per_subject"] == tight["thresholds"]["per_subject"]
