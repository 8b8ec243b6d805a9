"""A training process killed with SIGKILL resumes from its last checkpoint to the same weights."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import torch

from facelivenet.training import checkpoint as ckpt_io
from facelivenet.training.config import save_config


def _fit(cfg_path, out, *extra):
    cmd = [sys.executable, "-m", "facelivenet.training.cli", "fit", "--config", str(cfg_path), "--out", str(out), "--quiet", *extra]
    return cmd


def test_sigkill_mid_run_then_resume_matches_uninterrupted(tiny_train_config, tmp_path):
    cfg = dataclasses.replace(tiny_train_config, checkpoint_every=3,
                              stage1=dataclasses.replace(tiny_train_config.stage1, epochs=12, step_epochs=(8,)))
    cfg_path = tmp_path / "cfg.yaml"
    save_config(cfg, cfg_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    victim = subprocess.Popen(_fit(cfg_path, tmp_path / "killed"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and victim.poll() is None:
        if metrics.is_file() and sum(1 for _ in metrics.open()) >= 7 and (tmp_path / "killed" / "last.pt").is_file():
            break
        time.sleep(0.05)
    assert victim.poll() is None, "training finished before it could be killed"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    state = ckpt_io.load(tmp_path / "killed" / "last.pt")["state"]
    assert state["stage"] == 1 and 0 < state["step"] < 48, state
    assert not (tmp_path / "killed" / "model.pt").exists()

    resumed = subprocess.run(_fit(cfg_path, tmp_path / "killed", "--resume"), env=env, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    straight = subprocess.run(_fit(cfg_path, tmp_path / "straight"), env=env, capture_output=True, text=True, timeout=240)
    assert straight.returncode == 0, straight.stderr[-2000:]
    a = ckpt_io.load(tmp_path / "straight" / "model.pt")["model"]
    b = ckpt_io.load(tmp_path / "killed" / "model.pt")["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the log holds each step once: lines written after the last checkpoint were dropped on resume
    records = [(r["stage"], r["step"]) for r in map(json.loads, metrics.read_text().splitlines())]
    assert records == [(1, s) for s in range(1, 49)] + [(2, s) for s in range(1, 9)]
