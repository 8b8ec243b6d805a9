"""Fixtures shared by every test folder: where the real data and the face detector live.

Real data and the detector are never part of the repository: they come from
``$FACELIVE_DATA`` / ``$FACELIVE_DETECTOR`` or, failing that, from ``../shared``
next to the repository root (as CI sets them). Tests that need them are
skipped, with the reason, when they are absent. Nothing is ever downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_ROOT = REPO_ROOT.parent / "shared"
DETECTOR_NAME = "yunet_s_640_640.onnx"


def find_data_root() -> Path | None:
    """``$FACELIVE_DATA`` if set, else ``../shared/data``; None when that folder is absent."""
    env = os.environ.get("FACELIVE_DATA")
    path = Path(env) if env else SHARED_ROOT / "data"
    return path if path.is_dir() else None


def find_detector() -> Path | None:
    """``$FACELIVE_DETECTOR`` (a file or a folder holding the YuNet file) if set, else the shared copy."""
    env = os.environ.get("FACELIVE_DETECTOR")
    path = Path(env) if env else SHARED_ROOT / "models" / "yunet" / DETECTOR_NAME
    if path.is_dir():
        path = path / DETECTOR_NAME
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def data_root() -> Path:
    path = find_data_root()
    if path is None:
        pytest.skip("real data absent: set FACELIVE_DATA or provide ../shared/data")
    return path


@pytest.fixture(scope="session")
def jaffe(data_root: Path) -> Path:
    """The JAFFE folder of the real data (skips without it)."""
    root = data_root / "jaffe"
    if not (root / "KL.NE1.155.tiff").is_file():
        pytest.skip("JAFFE is not in the data folder")
    return root


@pytest.fixture(scope="session")
def detector_path() -> Path:
    path = find_detector()
    if path is None:
        pytest.skip(f"YuNet detector absent: set FACELIVE_DETECTOR or provide ../shared/models/yunet/{DETECTOR_NAME}")
    return path
