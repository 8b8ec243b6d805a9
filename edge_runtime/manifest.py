"""The bundle manifest: the schema every exporter writes and every runtime checks.

A bundle is a folder holding model files and ``manifest.json``. The runtime
validates the manifest and each file's sha256 before running anything, and
takes preprocessing from here, never from tensor shapes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from .constants import DEFAULT_FORMAT, DEFAULT_PRECISION, FORMATS, PRECISIONS
from .errors import FileChoiceError, ManifestError
from .labels import EXPRESSION_LABELS
from .preprocess import PreprocessConfig

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file (or of every file under a folder, e.g. an .mlpackage, in path order)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            # name, NUL, size: unambiguous boundaries between files; posix paths hash alike on every OS
            digest.update(f.relative_to(path).as_posix().encode() + b"\0" + str(f.stat().st_size).encode() + b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelFile:
    path: str  # relative to the bundle folder
    format: str
    precision: str
    sha256: str
    size_bytes: int
    layout: str = "NCHW"
    # Several files may share a format and precision (int8: "static" integer compute beside the
    # weight-only fallback, variant ""); Manifest.select picks the one the runtime runs.
    variant: str = ""

    @property
    def parity_key(self) -> str:
        """This file's key in ``Manifest.parity``: ``onnx/int8``, or ``onnx/int8/static`` for a variant."""
        return f"{self.format}/{self.precision}" + (f"/{self.variant}" if self.variant else "")


@dataclass(frozen=True)
class Outputs:
    embedding: str = "embedding"
    expression_logits: str = "expression_logits"
    embedding_dim: int = 128
    embedding_normalized: bool = True
    expression_labels: tuple[str, ...] = EXPRESSION_LABELS
    expression_softmax_inside: bool = False


@dataclass(frozen=True)
class Thresholds:
    verification_cosine: float
    target_far: float
    expression_probability: float
    calibrated_on: str


@dataclass(frozen=True)
class Manifest:
    model_name: str
    model_version: str
    checkpoint_sha256: str
    files: tuple[ModelFile, ...]
    preprocess: PreprocessConfig
    outputs: Outputs
    thresholds: Thresholds
    provenance: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    detector: dict[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION
    default_file: str | None = None  # the fastest file that passed every gate at export (its path)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["preprocess"] = self.preprocess.to_dict()
        d["outputs"]["expression_labels"] = list(self.outputs.expression_labels)
        d["files"] = [asdict(f) for f in self.files]
        return d

    def select(self, fmt: str | None = None, precision: str | None = None, variant: str | None = None) -> ModelFile:
        """The file the runtime runs for a request; ``None`` leaves that choice to the bundle.

        Among the files matching what was asked, the bundle's ``default_file`` when it is one of them (with
        nothing asked: the fastest file that passed every gate at export), else the first listed one closest to
        it: the default file's format, then its precision (``DEFAULT_FORMAT`` / ``DEFAULT_PRECISION`` for a
        bundle that names none). ``variant``: ``"static"`` or ``""`` (weight-only int8, and every float file).
        ManifestError listing what exists when nothing matches."""
        wanted = [f for f in self.files if fmt in (None, f.format) and precision in (None, f.precision)
                  and variant in (None, f.variant)]
        if not wanted:
            asked = " ".join(x for x in (fmt, precision, {"": "weight-only"}.get(variant, variant)) if x)
            have = ", ".join(f.parity_key for f in self.files) or "none"
            raise FileChoiceError(f"bundle has no {asked} model (it has: {have})")
        default = next((f for f in self.files if f.path == self.default_file), None)
        if default in wanted:
            return default
        fmt0, precision0 = (default.format, default.precision) if default else (DEFAULT_FORMAT, DEFAULT_PRECISION)
        return min(wanted, key=lambda f: (f.format != fmt0, f.precision != precision0))

    def file_for(self, fmt: str, precision: str) -> ModelFile:
        """The model file of a format and precision; ManifestError listing what exists otherwise."""
        for f in self.files:
            if f.format == fmt and f.precision == precision:
                return f
        have = ", ".join(f"{f.format}/{f.precision}" for f in self.files) or "none"
        raise FileChoiceError(f"bundle has no {fmt} {precision} model (it has: {have})")


def _require(d: dict, key: str, kind: type | tuple, where: str) -> Any:
    if key not in d:
        raise ManifestError(f"manifest: missing field {where}{key}")
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int subclass in Python, but `true` is never a valid count or size
    if not isinstance(d[key], kinds) or (isinstance(d[key], bool) and bool not in kinds):
        raise ManifestError(f"manifest: field {where}{key} has type {type(d[key]).__name__}")
    return d[key]


_NUMBER = (int, float)
# Fields the runtime must never guess: required (no silent defaults) with their JSON types.
_PREPROCESS_FIELDS = {"input_size": int, "colour": str, "mean": list, "std": list, "layout": str,
                      "template": list, "crop_fraction": _NUMBER}
_OUTPUTS_FIELDS = {"embedding": str, "expression_logits": str, "embedding_dim": int,
                   "embedding_normalized": bool, "expression_labels": list, "expression_softmax_inside": bool}
_THRESHOLDS_FIELDS = {"verification_cosine": _NUMBER, "target_far": _NUMBER,
                      "expression_probability": _NUMBER, "calibrated_on": str}


def _require_section(d: dict, key: str, fields: dict[str, type | tuple]) -> dict:
    section = _require(d, key, dict, "")
    for name, kind in fields.items():
        _require(section, name, kind, f"{key}.")
    return section


def _escapes_bundle(path: str) -> bool:
    """True for an empty, absolute or ``..`` path, read the POSIX and the Windows way."""
    if path in ("", "."):
        return True
    for p in (PurePosixPath(path), PureWindowsPath(path)):
        if p.is_absolute() or p.anchor or ".." in p.parts:
            return True
    return False


def manifest_from_dict(d: dict[str, Any]) -> Manifest:
    """Validate a parsed manifest and build a :class:`Manifest`; ManifestError names the bad field."""
    if not isinstance(d, dict):
        raise ManifestError("manifest: top level must be a JSON object")
    version = _require(d, "schema_version", int, "")
    if version != SCHEMA_VERSION:
        raise ManifestError(f"manifest: schema_version {version} is not supported (this runtime reads {SCHEMA_VERSION})")
    files = []
    for i, f in enumerate(_require(d, "files", list, "")):
        if not isinstance(f, dict):
            raise ManifestError(f"manifest: files[{i}] must be an object")
        for key, kind in (("path", str), ("format", str), ("precision", str), ("sha256", str), ("size_bytes", int)):
            _require(f, key, kind, f"files[{i}].")
        if "variant" in f:
            _require(f, "variant", str, f"files[{i}].")
        if f["format"] not in FORMATS or f["precision"] not in PRECISIONS:
            raise ManifestError(f"manifest: files[{i}] has unknown format/precision {f['format']}/{f['precision']}")
        if _escapes_bundle(f["path"]):
            raise ManifestError(f"manifest: files[{i}].path must stay inside the bundle, got {f['path']!r}")
        files.append(ModelFile(**{k: f[k] for k in ModelFile.__dataclass_fields__ if k in f}))
    section = "preprocess"
    try:
        preprocess = PreprocessConfig.from_dict(_require_section(d, section, _PREPROCESS_FIELDS))
        section = "outputs"
        out = dict(_require_section(d, section, _OUTPUTS_FIELDS))
        out["expression_labels"] = tuple(out["expression_labels"])
        outputs = Outputs(**out)
        section = "thresholds"
        thresholds = Thresholds(**_require_section(d, section, _THRESHOLDS_FIELDS))
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"manifest: {section}: {exc}") from exc
    if outputs.expression_labels != EXPRESSION_LABELS:
        raise ManifestError(
            f"manifest: outputs.expression_labels {list(outputs.expression_labels)} differ from the canonical "
            f"{list(EXPRESSION_LABELS)}"
        )
    for key in ("provenance", "parity"):
        if not isinstance(d.get(key, {}), dict):
            raise ManifestError(f"manifest: field {key} must be an object")
    detector = d.get("detector")
    if detector is not None and not (isinstance(detector, dict) and isinstance(detector.get("path"), str)
                                     and isinstance(detector.get("sha256"), str)
                                     and not _escapes_bundle(detector["path"])):
        raise ManifestError("manifest: detector must be an object with a path inside the bundle and a sha256")
    return Manifest(
        model_name=_require(d, "model_name", str, ""),
        model_version=_require(d, "model_version", str, ""),
        checkpoint_sha256=_require(d, "checkpoint_sha256", str, ""),
        files=tuple(files),
        preprocess=preprocess,
        outputs=outputs,
        thresholds=thresholds,
        provenance=d.get("provenance", {}),
        parity=d.get("parity", {}),
        detector=d.get("detector"),
        schema_version=version,
        default_file=_default_file(d.get("default_file"), files),
    )


def _default_file(value: Any, files: list[ModelFile]) -> str | None:
    """``default_file`` must be the path of a listed file (or absent)."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in {f.path for f in files}:
        raise ManifestError(f"manifest: default_file {value!r} is not one of the listed files")
    return value


def load_manifest(bundle_dir: str | Path, verify_files: bool = True, public_key: str | Path | None = None) -> Manifest:
    """Read and validate ``bundle_dir/manifest.json``; with ``verify_files`` check every file's sha256.

    With a public key (``public_key``, else ``$FACELIVE_BUNDLE_PUBLIC_KEY``; ``""``: none) the manifest
    must carry a valid signature by it (:mod:`.signing`), checked on the very bytes that are parsed.
    """
    from . import signing

    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"no {MANIFEST_NAME} in {bundle_dir}: is this a bundle written by facelive-export?")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from exc
    key = signing.resolve_public_key(public_key)
    if key is not None:
        signing.verify_signature(bundle_dir, raw, key)
    elif (bundle_dir / signing.SIGNATURE_NAME).is_file():
        log.info("%s is signed; set --public-key or $%s to enforce the signature", bundle_dir, signing.PUBLIC_KEY_ENV)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path} is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise ManifestError(f"{path} is nested too deeply to be a manifest") from exc
    manifest = manifest_from_dict(data)
    if verify_files:
        for f in manifest.files:
            verify_file(bundle_dir, f)
        verify_detector(bundle_dir, manifest)
    return manifest


def verify_detector(bundle_dir: str | Path, manifest: Manifest) -> Path | None:
    """Check the bundle's detector file (when it lists one) against its sha256; ManifestError on mismatch."""
    if not manifest.detector:
        return None
    path = Path(bundle_dir) / manifest.detector["path"]
    if not path.is_file():
        raise ManifestError(f"bundle detector {manifest.detector['path']} listed in the manifest is missing")
    if sha256_file(path) != manifest.detector["sha256"]:
        raise ManifestError(f"bundle detector {manifest.detector['path']} does not match its manifest sha256: "
                            "the file was modified or corrupted; re-export the bundle")
    return path


def verify_file(bundle_dir: str | Path, f: ModelFile) -> Path:
    """Check one model file against its manifest entry; ManifestError on absence or hash mismatch."""
    path = Path(bundle_dir) / f.path
    if not path.exists():
        raise ManifestError(f"bundle file {f.path} listed in the manifest is missing")
    actual = sha256_file(path)
    if actual != f.sha256:
        raise ManifestError(
            f"bundle file {f.path} does not match its manifest sha256 (expected {f.sha256[:12]}..., got {actual[:12]}...): "
            "the file was modified or corrupted; re-export the bundle"
        )
    return path


def save_manifest(manifest: Manifest, bundle_dir: str | Path) -> Path:
    """Write ``manifest.json`` (validated by a round trip first), atomically: a reader sees the old manifest
    or the new one, never a part."""
    data = manifest.to_dict()
    manifest_from_dict(json.loads(json.dumps(data)))
    path = Path(bundle_dir) / MANIFEST_NAME
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
