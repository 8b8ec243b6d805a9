"""Opening a model bundle in one pass, in one direction: resolve the folder (``--bundle``, ``$FACELIVE_BUNDLE``,
or the shipped default), verify its manifest (schema, signature), then the detector it holds; the model
file is selected and opened from there (:class:`.face_model.FaceModel`, :mod:`.file_ranking`), its sha256
checked as it is opened."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .constants import BUNDLE_ENV
from .errors import BundleNotFoundError
from .manifest import MANIFEST_NAME, Manifest, load_manifest, verify_detector

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


@dataclass(frozen=True)
class Bundle:
    """A bundle resolved and verified: its folder and its validated (and, with a key, signature-checked)
    manifest."""

    dir: Path
    manifest: Manifest

    def detector(self, explicit: str | Path | None = None) -> Path:
        """The face detector file (``explicit``, ``$FACELIVE_DETECTOR``, else the bundle's own), the bundle's own
        checked against the manifest's sha256; DetectorNotFoundError / ManifestError say what is wrong."""
        from .detection import resolve_detector_path

        path = resolve_detector_path(explicit, bundle_dir=self.dir)
        if path.resolve().is_relative_to(self.dir.resolve()):
            verify_detector(self.dir, self.manifest)
        return path


def open_bundle(explicit: str | Path | None = None, public_key: str | Path | None = None) -> Bundle:
    """Resolve the bundle folder, then read and validate its manifest (given a public key, or
    ``$FACELIVE_BUNDLE_PUBLIC_KEY``, it must be signed by it). The model files are verified when opened."""
    path = resolve_bundle_dir(explicit)
    return Bundle(path, load_manifest(path, verify_files=False, public_key=public_key))
