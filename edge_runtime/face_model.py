"""One verified model file of a bundle and its preprocessing: aligned crops in, embeddings and expression
probabilities out, in ONE forward pass."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backends import BackendUnavailableError, ModelBackend, open_backend, parity_self_check
from .bundle import resolve_bundle_dir
from .constants import DEFAULT_FORMAT
from .errors import ManifestError
from .manifest import Manifest, ModelFile, load_manifest, sha256_file, verify_file
from .preprocess import PreprocessConfig, normalize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelOutputs:
    """Per face: a unit-length identity embedding and the expression probabilities (canonical label order)."""

    embeddings: np.ndarray  # (N, D) float32, L2-normalised
    probabilities: np.ndarray  # (N, 7) float32, rows sum to 1


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


class FaceModel:
    """A bundle's model file opened on a backend, after its sha256 matched the manifest."""

    def __init__(self, bundle: str | Path | None = None, fmt: str | None = None, precision: str | None = None,
                 threads: int = 1, public_key: str | Path | None = None, variant: str | None = None) -> None:
        """``fmt`` / ``precision`` / ``variant`` None: the bundle chooses (:meth:`Manifest.select`)."""
        self.bundle_dir = resolve_bundle_dir(bundle)
        # public_key (else $FACELIVE_BUNDLE_PUBLIC_KEY): the manifest must be signed by it (signing.py)
        self.manifest: Manifest = load_manifest(self.bundle_dir, verify_files=False, public_key=public_key)
        try:
            self._load(self.manifest.select(fmt, precision, variant), threads)
        except BackendUnavailableError as exc:
            fallback = self._fallback(fmt)
            if fallback is None:
                raise
            # The bundle chose the format and its runtime is missing here (LiteRT has no wheel for every
            # platform): run the same precision in another format rather than refuse.
            log.warning("%s; running %s instead", exc, fallback.path)
            self._load(fallback, threads)
        log.info("model %s (%s) on %s, %d thread(s), loaded in %.0f ms", self.file.path, self.file.parity_key,
                 self.backend.name, self.backend.threads, self.backend.load_ms)

    def _load(self, file: ModelFile, threads: int) -> None:
        """Run ``file``: its sha256 checked, the preprocessing in its layout, its backend opened."""
        path = verify_file(self.bundle_dir, file)  # never run a file the manifest does not vouch for
        self.file: ModelFile = file
        self.preprocess: PreprocessConfig = dataclasses.replace(self.manifest.preprocess, layout=file.layout)
        self.backend: ModelBackend = open_backend(file.format, path, threads, self_check=self._self_check)

    def _fallback(self, fmt: str | None) -> ModelFile | None:
        """Only when the format was the bundle's choice: its file of the same precision (and variant) in
        ``DEFAULT_FORMAT``, else None."""
        if fmt is not None or self.file.format == DEFAULT_FORMAT:
            return None
        try:
            return self.manifest.select(DEFAULT_FORMAT, self.file.precision, self.file.variant)
        except ManifestError:
            return None

    @property
    def fingerprint(self) -> str:
        """What a template is tied to: the checkpoint the bundle was exported from (same for every file)."""
        return f"{self.manifest.model_name}:{self.manifest.checkpoint_sha256}"

    @property
    def description(self) -> str:
        return f"{self.manifest.model_name} {self.manifest.model_version} {self.file.parity_key}"

    def _self_check(self, backend: ModelBackend) -> dict[str, float]:
        ref = (self.manifest.provenance or {}).get("self_check") or (self.manifest.parity or {}).get("self_check")
        if not ref:
            raise ManifestError("the bundle carries no self-check reference outputs; install ai-edge-litert")
        path = self.bundle_dir / ref["path"]
        if not path.is_file() or sha256_file(path) != ref.get("sha256"):
            raise ManifestError(f"the bundle's self-check file {ref['path']} is missing or does not match its sha256")
        data = np.load(path)
        inputs = normalize(data["pixels"], self.preprocess)  # in this file's own layout (NCHW or NHWC)
        return parity_self_check(backend, inputs, data["embedding"], data["expression_logits"])

    def infer(self, crops: np.ndarray) -> ModelOutputs:
        """uint8 aligned crops (N, S, S, 3) or (S, S, 3) in the model's colour mode -> ModelOutputs."""
        emb, logits = self.backend.run(normalize(crops, self.preprocess))
        emb = emb if self.manifest.outputs.embedding_normalized else l2_normalize(emb)
        probs = logits if self.manifest.outputs.expression_softmax_inside else softmax(logits)
        return ModelOutputs(l2_normalize(np.asarray(emb, np.float32)), np.asarray(probs, np.float32))
