"""Locate the real LFW / JAFFE folders (``$FACELIVE_DATA`` or ``../shared/data``), skipping when absent."""

from __future__ import annotations

from pathlib import Path

import pytest


def _dataset(data_root: Path, name: str, marker: str) -> Path:
    path = data_root / name
    if not (path / marker).exists():
        pytest.skip(f"{name} absent: {path / marker} not found (set FACELIVE_DATA)")
    return path


@pytest.fixture(scope="session")
def lfw_root(data_root: Path) -> Path:
    return _dataset(data_root, "lfw", "pairs.txt")


@pytest.fixture(scope="session")
def jaffe_root(data_root: Path) -> Path:
    return _dataset(data_root, "jaffe", "KA.NE1.26.tiff")
