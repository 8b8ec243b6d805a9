"""Plots write real PNGs; the evaluation modules import with torch blocked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facelivenet.edge_runtime.metrics import confusion_matrix, roc_curve
from facelivenet.training.evaluation.plots import plot_confusion, plot_roc

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_roc_writes_png(tmp_path: Path):
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(0.6, 0.2, 100), rng.normal(0.1, 0.2, 100)])
    fpr, tpr, _ = roc_curve(scores, np.arange(200) < 100)
    for log_fpr in (False, True):
        out = plot_roc(fpr, tpr, tmp_path / f"sub/roc_{log_fpr}.png", "LFW ROC", log_fpr=log_fpr)
        assert out.stat().st_size > 1000 and out.read_bytes()[:8] == PNG_MAGIC


def test_plot_confusion_writes_png(tmp_path: Path):
    labels = ["neutral", "anger", "happy"]
    m = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    out = plot_confusion(m, labels, tmp_path / "cm.png", "FER2013")
    assert out.stat().st_size > 1000 and out.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="2x2 for 2 labels"):
        plot_confusion(m, labels[:2], tmp_path / "bad.png")


def test_modules_import_without_torch():
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "import facelivenet.edge_runtime.metrics, facelivenet.training.evaluation.lfw_protocol\n"
        "import facelivenet.training.evaluation.auth_protocol, facelivenet.training.evaluation.plots\n"
        "assert 'matplotlib' not in sys.modules, 'plots must import matplotlib lazily'\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
