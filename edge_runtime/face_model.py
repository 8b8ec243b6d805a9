"""One verified model file of a bundle and its preprocessing: aligned crops in, embeddings and expression
probabilities out, in ONE forward pass."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backends import BackendError, ModelBackend, open_backend, parity_self_check
from .bundle import Bundle, open_bundle
from .cpu_features import cpu_identity
from .errors import ManifestError
from .file_ranking import DeviceRanking, FileTrial, RankingCache, candidate_files, explain, no_usable_file, pick, try_file
from .manifest import Manifest, ModelFile, sha256_file, verify_file
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
    """A bundle's model file opened on a backend, after its sha256 matched the manifest and it passed its
    self-check on this device (:mod:`.file_ranking` picks which file)."""

    def __init__(self, bundle: Bundle | str | Path | None = None, fmt: str | None = None,
                 precision: str | None = None, threads: int = 1, public_key: str | Path | None = None,
                 variant: str | None = None, rerank: bool = False) -> None:
        """``bundle``: an opened :class:`.bundle.Bundle`, or where to open one (``public_key``, else
        $FACELIVE_BUNDLE_PUBLIC_KEY: the manifest must be signed by it). ``fmt`` / ``precision`` / ``variant``
        None: any file the bundle offers, the fastest correct one on this device; ``rerank``: measure the
        device ranking again instead of reading its cache."""
        opened = bundle if isinstance(bundle, Bundle) else open_bundle(bundle, public_key)
        self.bundle_dir: Path = opened.dir
        self.manifest: Manifest = opened.manifest
        self._self_check_data: dict[str, np.ndarray] | None | bool = False  # False: not read yet
        candidates = candidate_files(self.manifest, fmt, precision, variant)
        self.ranking: DeviceRanking = self._choose(candidates, threads, rerank)
        log.info("model %s (%s) on %s, %d thread(s), loaded in %.0f ms: %s", self.file.path, self.file.parity_key,
                 self.backend.name, self.backend.threads, self.backend.load_ms, self.ranking.why)

    # ------------------------------------------------------------------ choosing the file

    def _open(self, file: ModelFile, threads: int) -> ModelBackend:
        path = verify_file(self.bundle_dir, file)  # never run a file the manifest does not vouch for
        return open_backend(file.format, path, threads, self_check=lambda b: self._check(file, b))

    def _check(self, file: ModelFile, backend: ModelBackend) -> dict[str, float] | None:
        """The bundle's self-check on ``backend`` (BackendError when it disagrees); None: no reference."""
        data = self._reference()
        if data is None:
            return None
        inputs = normalize(data["pixels"], self._preprocess(file))  # in this file's own layout (NCHW or NHWC)
        return parity_self_check(backend, inputs, data["embedding"], data["expression_logits"])

    def _probe(self, file: ModelFile) -> np.ndarray:
        """One face in the file's layout, for timing."""
        data = self._reference()
        size = self.manifest.preprocess.input_size
        pixels = data["pixels"][:1] if data is not None else np.full((1, size, size, 3), 128, np.uint8)
        return normalize(pixels, self._preprocess(file))

    def _choose(self, candidates: list[ModelFile], threads: int, rerank: bool) -> DeviceRanking:
        preferred = candidates[0]
        if len(candidates) == 1:  # the request names one file: check it, nothing to rank
            trial, backend = try_file(preferred, lambda f: self._open(f, threads), self._check, None)
            if backend is None:
                raise no_usable_file([trial])
            self._set(preferred, backend)
            return DeviceRanking(preferred.path, "the only file matching the request; it passed its self-check here",
                                 (trial,), cpu_identity(), threads)
        by_path = {f.path: f for f in candidates}
        preference = [f.path for f in candidates]
        cache = RankingCache(self.bundle_dir, threads, candidates)
        trials = None if rerank else cache.load()
        if trials is not None and (best := pick(trials, preference)) is not None:
            file = by_path[best.path]
            try:
                backend = self._open(file, threads)
                self._check(file, backend)
            except BackendError as exc:
                log.warning("the cached choice %s fails on this device now (%s): ranking again", file.path, exc)
            else:
                self._warn_if_out(preferred, trials, file)
                self._set(file, backend)
                return DeviceRanking(file.path, explain(best, preferred.path, trials), tuple(trials), cpu_identity(),
                                     threads, cached=True, cache_file=str(cache.path))
        trials, backends = [], {}
        for file in candidates:
            trial, backend = try_file(file, lambda f: self._open(f, threads), self._check, self._probe(file))
            trials.append(trial)
            if backend is not None:
                backends[file.path] = backend
        best = pick(trials, preference)
        if best is None:
            raise no_usable_file(trials)
        saved = cache.save(trials)
        why = explain(best, preferred.path, trials)
        self._warn_if_out(preferred, trials, by_path[best.path])
        self._set(by_path[best.path], backends[best.path])
        return DeviceRanking(best.path, why, tuple(trials), cpu_identity(), threads,
                             cache_file=str(cache.path) if saved else None)

    @staticmethod
    def _warn_if_out(preferred: ModelFile, trials: list[FileTrial], chosen: ModelFile) -> None:
        """One warning, on every load, when the bundle's choice does not run on this device."""
        failed = next((t for t in trials if t.path == preferred.path and not t.passed), None)
        if failed is not None:
            log.warning("%s is out on this device (%s); running %s instead", preferred.path, failed.reason, chosen.path)

    def _set(self, file: ModelFile, backend: ModelBackend) -> None:
        """Run ``file`` on ``backend``, with the preprocessing in its layout."""
        self.file: ModelFile = file
        self.preprocess: PreprocessConfig = self._preprocess(file)
        self.backend: ModelBackend = backend

    def _preprocess(self, file: ModelFile) -> PreprocessConfig:
        return dataclasses.replace(self.manifest.preprocess, layout=file.layout)

    def _reference(self) -> dict[str, np.ndarray] | None:
        """The bundle's self-check inputs and torch outputs (read once); None when the bundle has none."""
        if self._self_check_data is False:
            ref = (self.manifest.provenance or {}).get("self_check") or (self.manifest.parity or {}).get("self_check")
            if not ref:
                log.warning("the bundle carries no self-check reference: its files cannot be checked on this device")
                self._self_check_data = None
            else:
                path = self.bundle_dir / ref["path"]
                if not path.is_file() or sha256_file(path) != ref.get("sha256"):
                    raise ManifestError(f"the bundle's self-check file {ref['path']} is missing or does not match "
                                        "its sha256")
                with np.load(path) as data:
                    self._self_check_data = {k: data[k] for k in ("pixels", "embedding", "expression_logits")}
        return self._self_check_data  # type: ignore[return-value]

    @property
    def fingerprint(self) -> str:
        """What a template is tied to: the checkpoint the bundle was exported from (same for every file)."""
        return f"{self.manifest.model_name}:{self.manifest.checkpoint_sha256}"

    @property
    def description(self) -> str:
        return f"{self.manifest.model_name} {self.manifest.model_version} {self.file.parity_key}"

    def infer(self, crops: np.ndarray) -> ModelOutputs:
        """uint8 aligned crops (N, S, S, 3) or (S, S, 3) in the model's colour mode -> ModelOutputs."""
        emb, logits = self.backend.run(normalize(crops, self.preprocess))
        emb = emb if self.manifest.outputs.embedding_normalized else l2_normalize(emb)
        probs = logits if self.manifest.outputs.expression_softmax_inside else softmax(logits)
        return ModelOutputs(l2_normalize(np.asarray(emb, np.float32)), np.asarray(probs, np.float32))
