"""Face verification of image pairs and threshold calibration on labelled pairs.

``facelive verify`` scores pairs with the bundle's verification threshold;
``facelive calibrate`` picks the cosine threshold that reaches a target FAR on
the user's own labelled pairs (:func:`metrics.tar_at_far`) and writes it into a
COPY of the bundle (model files untouched, so their hashes still hold).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from . import metrics, reasons
from .errors import FaceLiveError, ImageReadError
from .face_pipeline import FacePipeline
from .imageio import read_image
from .bundle_io import publish_folder, staging_dir
from .manifest import Manifest, load_manifest, save_manifest, sha256_file
from .signing import SIGNATURE_NAME

log = logging.getLogger(__name__)


class PairsError(FaceLiveError):
    """A pairs CSV is missing, malformed or unusable."""


@dataclass(frozen=True)
class Pair:
    img1: Path
    img2: Path
    label: int | None  # 1 same person, 0 different, None unlabelled


def read_pairs_csv(path: str | Path) -> list[Pair]:
    """Read ``img1,img2[,label]`` rows (header required); relative paths are relative to the CSV's folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PairsError(f"cannot read pairs file {path}: {exc}") from exc
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise PairsError(f"pairs file {path} is empty")
    header = [h.strip().lower() for h in rows[0]]
    if header[:2] != ["img1", "img2"] or len(header) > 3 or (len(header) == 3 and header[2] != "label"):
        raise PairsError(f"pairs file {path}: the header must be img1,img2 or img1,img2,label (got {','.join(rows[0])})")
    labelled = len(header) == 3
    pairs = []
    for n, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise PairsError(f"pairs file {path}, line {n}: expected {len(header)} fields, got {len(row)}")
        label = None
        if labelled:
            if row[2].strip() not in ("0", "1"):
                raise PairsError(f"pairs file {path}, line {n}: label must be 1 (same) or 0 (different), got {row[2]!r}")
            label = int(row[2])
        a, b = (Path(c.strip()) for c in row[:2])
        pairs.append(Pair(a if a.is_absolute() else path.parent / a, b if b.is_absolute() else path.parent / b, label))
    if not pairs:
        raise PairsError(f"pairs file {path} has a header but no pairs")
    return pairs


@dataclass(frozen=True)
class VerifyResult:
    """Two faces compared: the cosine of their embeddings against the verification threshold."""

    score: float
    threshold: float

    @property
    def match(self) -> bool:
        return self.score >= self.threshold

    def to_dict(self) -> dict:
        """``{"score", "match", "threshold"}`` (``facelive verify IMG1 IMG2 --json``)."""
        return {"score": round(self.score, 6), "match": self.match, "threshold": self.threshold}


class EmbeddingCache:
    """Embeds each distinct image once; failures are remembered with their reason code."""

    def __init__(self, pipeline: FacePipeline) -> None:
        self.pipeline = pipeline
        self._cache: dict[Path, tuple[np.ndarray | None, str | None]] = {}

    def get(self, path: Path) -> tuple[np.ndarray | None, str | None]:
        if path not in self._cache:
            try:
                image = self.pipeline.check_frame(read_image(path))
            except ImageReadError as exc:
                self._cache[path] = (None, f"{reasons.UNREADABLE}: {exc}")
            except ValueError as exc:
                self._cache[path] = (None, f"{reasons.IMAGE_TOO_LARGE}: {path}: {exc}")
            else:
                a = self.pipeline.analyze_still(image)
                self._cache[path] = (a.embedding, None) if a.analysed else (None, f"{reasons.NO_FACE}: {path}")
        return self._cache[path]


def score_pairs(pipeline: FacePipeline, pairs: Sequence[Pair], progress=None) -> tuple[list[float | None], list[str]]:
    """Cosine score per pair (None where an image has no usable face) and the error lines."""
    cache = EmbeddingCache(pipeline)
    scores: list[float | None] = []
    errors: list[str] = []
    for i, pair in enumerate(pairs):
        e1, err1 = cache.get(pair.img1)
        e2, err2 = cache.get(pair.img2)
        if e1 is None or e2 is None:
            scores.append(None)
            errors.append(err1 or err2)
        else:
            scores.append(float(np.dot(e1, e2)))
        if progress is not None:
            progress(i + 1, len(pairs))
    return scores, errors


def far_key(far: float) -> str:
    """1e-3 -> "1e-3" (the JSON key of a FAR)."""
    mantissa, exp = f"{far:e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exp)}"


def pair_metrics(scores: Sequence[float], labels: Sequence[int], threshold: float,
                 fars: Sequence[float] = (1e-3,)) -> dict:
    """Accuracy at ``threshold`` and TAR at each FAR, on scored, labelled pairs."""
    s, y = np.asarray(scores, np.float64), np.asarray(labels, bool)
    out: dict = {"accuracy": metrics.verification_accuracy(s, y, threshold), "tar_at_far": {}, "far_detail": {}}
    if y.all() or not y.any():
        out["tar_at_far"] = {far_key(f): None for f in fars}
        out["note"] = "TAR at FAR needs both genuine (1) and impostor (0) pairs"
        return out
    for f in fars:
        r = metrics.tar_at_far(s, y, f)
        out["tar_at_far"][far_key(f)] = r.tar
        out["far_detail"][far_key(f)] = r.to_dict()
    return out


def calibrated_manifest(manifest: Manifest, threshold: float, far: float, pairs_csv: Path, n_genuine: int,
                        n_impostor: int, tar: float, expression_threshold: float | None = None) -> Manifest:
    """The manifest with the verification threshold chosen on the user's pairs."""
    thr = manifest.thresholds
    note = (f"facelive calibrate on {pairs_csv.name} (sha256 {sha256_file(pairs_csv)[:16]}): {n_genuine} genuine and "
            f"{n_impostor} impostor pairs, TAR {tar:.4f} at FAR <= {far:g}, "
            f"{_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}")
    if expression_threshold is not None:
        note += f"; expression probability set to {expression_threshold:g} by hand"
    new = dataclasses.replace(thr, verification_cosine=float(threshold), target_far=float(far),
                              expression_probability=float(expression_threshold if expression_threshold is not None
                                                           else thr.expression_probability),
                              calibrated_on=note)
    return dataclasses.replace(manifest, thresholds=new)


def write_calibrated_bundle(src: Path, dst: Path, manifest: Manifest, force: bool = False) -> Path:
    """Copy the bundle ``src`` to ``dst`` with ``manifest``. The copy is built and verified under a temporary
    name first; with ``force`` an existing ``dst`` is replaced only then (never deleted before)."""
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise FaceLiveError("--out must differ from the source bundle and lie outside it (calibration writes a copy)")
    if dst.exists():
        if not force:
            raise FaceLiveError(f"{dst} exists; pass --force to replace it or choose another --out")
        if not (dst / "manifest.json").is_file():
            raise FaceLiveError(f"{dst} exists and is not a bundle: refusing to replace it, choose another --out")
    tmp = staging_dir(dst)
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        stale = tmp / SIGNATURE_NAME
        if stale.exists():  # the new thresholds are a new manifest: the source's signature no longer vouches for it
            stale.unlink()
            log.warning("the calibrated copy is unsigned: sign it with `facelive sign %s --key KEY`", dst)
        save_manifest(manifest, tmp)
        load_manifest(tmp, verify_files=True, public_key="")
        return publish_folder(tmp, dst)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
