"""Where the runtime finds its model bundle: ``--bundle``, ``$FACELIVE_BUNDLE``, or the shipped default."""

from __future__ import annotations

import os
from pathlib import Path

from .constants import BUNDLE_ENV
from .errors import BundleNotFoundError, ManifestError
from .manifest import MANIFEST_NAME

DEFAULT_BUNDLE_DIR = Path(__file__).resolve().with_name("default_bundle")


def resolve_bundle_dir(explicit: str | Path | None = None) -> Path:
    """The bundle folder to use; ManifestError naming what was tried when there is none.

    An explicit path that is not a bundle is an error: it is never replaced by the default.
    """
    if explicit:
        source, path = "--bundle", Path(explicit)
    elif os.environ.get(BUNDLE_ENV):
        source, path = f"${BUNDLE_ENV}", Path(os.environ[BUNDLE_ENV])
    else:
        source, path = "the shipped default bundle", DEFAULT_BUNDLE_DIR
    if not path.is_dir():
        raise BundleNotFoundError(f"{source}: {path} is not a folder; pass --bundle PATH to a bundle written by facelive-export")
    if not (path / MANIFEST_NAME).is_file():
        raise BundleNotFoundError(f"{source}: {path} holds no {MANIFEST_NAME}; pass --bundle PATH to a bundle written by "
                            "facelive-export")
    return path


def verify_bundle_detector(detector: Path, bundle_dir: Path, manifest=None) -> None:
    """When the detector file is the bundle's own, check it against the manifest's sha256."""
    from .manifest import load_manifest, verify_detector

    if Path(detector).resolve().is_relative_to(Path(bundle_dir).resolve()):
        verify_detector(bundle_dir, manifest or load_manifest(bundle_dir, verify_files=False))
