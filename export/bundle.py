"""The bundle folder: written under a temporary name next to ``--out``, renamed when complete.

A failed or interrupted export never leaves a half-written bundle: the
temporary folder is removed, and an existing bundle (with ``--force``) is only
replaced by a complete, verified one.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from facelivenet.edge_runtime.bundle_io import publish_folder
from facelivenet.edge_runtime.manifest import Manifest, ModelFile, load_manifest, save_manifest, sha256_file

from .errors import ExportError

log = logging.getLogger(__name__)

DETECTOR_DIR = "detector"
LICENCE_NAMES = ("LICENSE", "LICENSE.txt", "LICENCE", "LICENSE.md", "COPYING")


def size_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


class BundleWriter:
    """``with BundleWriter(out) as bw: ...; bw.publish(manifest)`` (discarded on any exception)."""

    def __init__(self, out: str | Path, force: bool = False):
        self.out = Path(out)
        self.force = force
        if self.out.exists() or self.out.is_symlink():
            if not force:
                raise ExportError(f"output {self.out} already exists; pass --force to replace it")
            if not self.out.is_dir() or (any(self.out.iterdir()) and not (self.out / "manifest.json").is_file()):
                raise ExportError(f"refusing to replace {self.out}: it is not a bundle (no manifest.json)")
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=self.out.parent))
        except OSError as exc:
            raise ExportError(f"cannot write next to {self.out}: {exc}") from exc
        self.published = False

    def __enter__(self) -> "BundleWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.published:
            self.discard()

    def path(self, rel: str) -> Path:
        return self.tmp / rel

    def entry(self, rel: str, fmt: str, precision: str, layout: str, variant: str = "") -> ModelFile:
        p = self.path(rel)
        return ModelFile(path=rel, format=fmt, precision=precision, sha256=sha256_file(p),
                         size_bytes=size_bytes(p), layout=layout, variant=variant)

    def copy_detector(self, src: str | Path) -> dict[str, Any]:
        """Copy the YuNet file (and the licence beside it) into ``detector/``; the manifest record."""
        src = Path(src)
        if not src.is_file():
            raise ExportError(f"detector {src} does not exist")
        dst_dir = self.path(DETECTOR_DIR)
        dst_dir.mkdir(exist_ok=True)
        shutil.copyfile(src, dst_dir / src.name)
        record: dict[str, Any] = {
            "name": "YuNet face detector (OpenCV model zoo)",
            "path": f"{DETECTOR_DIR}/{src.name}",
            "sha256": sha256_file(dst_dir / src.name),
            "size_bytes": (dst_dir / src.name).stat().st_size,
        }
        licence = next((src.parent / n for n in LICENCE_NAMES if (src.parent / n).is_file()), None)
        if licence is not None:
            shutil.copyfile(licence, dst_dir / "LICENSE")
            text = licence.read_text(encoding="utf-8", errors="replace")
            record["licence"] = ("Apache-2.0" if "Apache License" in text and "2.0" in text
                                 else "MIT" if "MIT License" in text or "Permission is hereby granted" in text
                                 else "see detector/LICENSE")
            record["licence_file"] = f"{DETECTOR_DIR}/LICENSE"
            record["licence_sha256"] = sha256_file(dst_dir / "LICENSE")
        else:
            record["licence"] = f"unknown: no licence file next to {src.name}"
        return record

    def publish(self, manifest: Manifest) -> Path:
        """Write and re-verify the manifest, then move the folder into place."""
        save_manifest(manifest, self.tmp)
        load_manifest(self.tmp, verify_files=True)  # the same check the runtime makes
        self._readable()
        publish_folder(self.tmp, self.out)
        self.published = True
        log.info("bundle written to %s", self.out)
        return self.out

    def _readable(self) -> None:
        """mkdtemp and temp files are private (0700/0600); a bundle is for sharing: 0755 folders, 0644 files."""
        for root, dirs, files in os.walk(self.tmp):
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
