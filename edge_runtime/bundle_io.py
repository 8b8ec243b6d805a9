"""Writing a bundle folder atomically: build it under a temporary name beside its destination, verify it,
then swap it into place. An existing bundle is replaced only by a complete, verified one, and is put back
if the swap fails; a failed or interrupted write leaves no half-written folder.

``facelive calibrate`` and the exporter's ``BundleWriter.publish`` both swap through :func:`publish_folder`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .errors import FaceLiveError


def staging_dir(out: Path) -> Path:
    """A new, empty temporary folder beside ``out`` (on the same file system, so the swap is a rename)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as exc:
        raise FaceLiveError(f"cannot write next to {out}: {exc}") from exc
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a bundle is for sharing
    return tmp


def publish_folder(staged: Path, out: Path) -> Path:
    """Move the complete folder ``staged`` to ``out``; an existing ``out`` is moved aside first, restored if
    the move fails, and deleted only once the new folder is in place."""
    old = None
    if out.exists() or out.is_symlink():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    try:
        os.replace(staged, out)
    except OSError:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out
