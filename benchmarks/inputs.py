"""Batch-1 timing inputs written as .npy files for the measuring processes: a real face or a synthetic one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .faces import synthetic_input


class InputStore:
    """Writes each distinct input once into ``folder`` and hands out its path."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._paths: dict[str, str] = {}

    def save(self, name: str, array: np.ndarray) -> str:
        """Path of ``array`` saved as ``<name>.npy`` (the first array saved under a name wins)."""
        if name not in self._paths:
            path = self.folder / f"{name}.npy"
            np.save(path, np.ascontiguousarray(array))
            self._paths[name] = str(path)
        return self._paths[name]

    def model_input(self, tag: str, size: int, layout: str, face_set: Any = None, cfg: Any = None) -> str:
        """A batch-1 model input: the first face of ``face_set`` normalised with ``cfg``, else synthetic."""
        name = f"{tag}-{size}-{layout}"
        if face_set is not None and len(face_set):
            return self.save(name, face_set.tensor(cfg, layout)[:1])
        return self.save(name, synthetic_input(size, layout))
