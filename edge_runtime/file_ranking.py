"""Which of a bundle's model files runs on THIS device: the fastest one that computes correctly here.

The manifest's ``default_file`` is the fastest file that passed every gate on the export machine. Another
CPU can disagree on both counts: a static int8 file may compute wrongly on a CPU whose integer kernels
differ (it then fails its self-check), and the int8 file that was fastest there may be slower than fp32
here (x86 without VNNI). So the runtime tries the candidate files on the device itself:

1. each candidate's sha256 is checked (a mismatch is an error, never a reason to fall back);
2. it is opened and run on the bundle's self-check inputs (``self_check.npz``: synthetic faces with
   reference outputs from the torch model); a file that disagrees, or whose runtime is not installed,
   is out, with its reason;
3. the passing files are timed on one face (a few warm-up calls, then the median of a few more);
4. the fastest wins; a file within :data:`TIE_FRACTION` of the fastest that the bundle prefers (its
   ``default_file``, then the manifest's order) wins the tie, so noise does not flip the choice.

The ranking is cached per bundle (the manifest's sha256), CPU (:func:`.cpu_features.cpu_key`), thread
count and runtime versions, in ``$FACELIVE_CACHE/device_ranking`` (default ``~/.cache/facelivenet``); a
cached ranking made for anything else is ignored and rebuilt, a corrupt one is rebuilt with a warning,
and ``--rerank`` (``RuntimeOptions.rerank``) measures again. Whatever the cache says, the file that is
opened passes its self-check before it runs. No passing file: :class:`NoUsableFileError` lists every
file's failure.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .backends import BackendError, BackendUnavailableError, ModelBackend
from .constants import CACHE_ENV, FORMAT_TABLE
from .cpu_features import cpu_identity, cpu_key
from .manifest import MANIFEST_NAME, Manifest, ModelFile, sha256_file

log = logging.getLogger(__name__)

RANKING_VERSION = 1
TIE_FRACTION = 0.05  # within 5 % of the fastest, the bundle's preferred file keeps the place
WARMUP_CALLS = 3
TIMED_CALLS = 12


class NoUsableFileError(BackendError):
    """No model file of the bundle (of those asked for) computes correctly on this device."""


@dataclass(frozen=True)
class FileTrial:
    """One model file tried on this device."""

    path: str
    key: str  # the file's parity key, e.g. onnx/int8/static
    passed: bool
    reason: str = ""  # why it is out (empty when it passed)
    median_ms: float | None = None  # one face, batch 1, at the ranking's thread count
    runtime: str = ""
    self_check: dict[str, float] | None = None


@dataclass(frozen=True)
class DeviceRanking:
    """The files tried on this device, fastest passing first, and the one chosen."""

    chosen: str  # path of the file that runs
    why: str
    trials: tuple[FileTrial, ...]
    cpu: dict[str, Any]
    threads: int
    cached: bool = False
    cache_file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"chosen": self.chosen, "why": self.why, "cpu": self.cpu, "threads": self.threads,
                "cached": self.cached, "cache_file": self.cache_file,
                "files": [asdict(t) for t in self.trials]}


def candidate_files(manifest: Manifest, fmt: str | None, precision: str | None, variant: str | None) -> list[ModelFile]:
    """The files the runtime may run for a request, the bundle's preference first (:meth:`Manifest.select`,
    then the manifest's order). With nothing asked: every file that passed its export gates."""
    first = manifest.select(fmt, precision, variant)  # ManifestError listing what exists when nothing matches
    wanted = [f for f in manifest.files if fmt in (None, f.format) and precision in (None, f.precision)
              and variant in (None, f.variant)]
    if fmt is None and precision is None and variant is None:
        wanted = [f for f in wanted if f is first or (manifest.parity.get(f.parity_key) or {}).get("passed", True)]
    return [first] + [f for f in wanted if f is not first]


def cache_dir() -> Path:
    """Where device rankings are cached: ``$FACELIVE_CACHE/device_ranking`` or ``~/.cache/facelivenet/...``."""
    root = os.environ.get(CACHE_ENV) or str(Path.home() / ".cache" / "facelivenet")
    return Path(root) / "device_ranking"


def _runtime_versions() -> dict[str, str]:
    out = {}
    modules = [spec.runtime for spec in FORMAT_TABLE.values()] + [("tflite_runtime", "tflite-runtime")]  # + legacy
    for name, dist in modules:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            continue
        try:
            from importlib import metadata

            out[name] = metadata.version(dist)
        except Exception:  # noqa: BLE001 - a version we cannot read is still part of the key
            out[name] = "?"
    return out


class RankingCache:
    """One JSON file per (bundle, CPU, threads); written atomically; validated on every read."""

    def __init__(self, bundle_dir: Path, threads: int, candidates: Sequence[ModelFile], folder: Path | None = None):
        self.bundle_sha256 = sha256_file(Path(bundle_dir) / MANIFEST_NAME)
        self.key = {"version": RANKING_VERSION, "bundle_manifest_sha256": self.bundle_sha256, "cpu": cpu_identity(),
                    "threads": int(threads), "runtimes": _runtime_versions(),
                    "candidates": [f.path for f in candidates]}
        self.path = (folder or cache_dir()) / f"{self.bundle_sha256[:16]}-{cpu_key()}-t{int(threads)}.json"

    def load(self) -> list[FileTrial] | None:
        """The cached trials, or None when there is none, it was made for something else, or it is corrupt."""
        if not self.path.is_file():
            return None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            if {k: data.get(k) for k in self.key} != self.key:
                log.info("device ranking %s was made for another bundle, CPU or runtime: ranking again", self.path.name)
                return None
            return [FileTrial(**t) for t in data["trials"]]
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("device ranking cache %s is corrupt (%s): ranking again", self.path, exc)
            return None

    def save(self, trials: Sequence[FileTrial]) -> bool:
        """Write the trials (atomically); False when the cache folder is not writable."""
        data = {**self.key, "made_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "trials": [asdict(t) for t in trials]}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".ranking-", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1)
            os.replace(tmp, self.path)
            return True
        except OSError as exc:
            log.info("device ranking not cached (%s): it is measured again next time", exc)
            return False


Opener = Callable[[ModelFile], ModelBackend]
Checker = Callable[[ModelFile, ModelBackend], "dict[str, float] | None"]


def try_file(file: ModelFile, open_file: Opener, check: Checker, probe: np.ndarray | None) -> tuple[FileTrial, ModelBackend | None]:
    """Open, self-check and (given a ``probe`` input) time one file; (its trial, the open backend when it passed)."""
    try:
        backend = open_file(file)
    except BackendUnavailableError as exc:
        return FileTrial(file.path, file.parity_key, False, f"runtime not installed: {exc}"), None
    except BackendError as exc:
        return FileTrial(file.path, file.parity_key, False, f"cannot load: {exc}"), None
    try:
        result = check(file, backend)
    except BackendError as exc:
        return FileTrial(file.path, file.parity_key, False, f"self-check failed: {exc}", runtime=backend.name), None
    ms = None if probe is None else _median_ms(backend, probe)
    return FileTrial(file.path, file.parity_key, True, "", ms, backend.name, result), backend


def _median_ms(backend: ModelBackend, probe: np.ndarray) -> float:
    for _ in range(WARMUP_CALLS):
        backend.run(probe)
    times = []
    for _ in range(TIMED_CALLS):
        start = time.perf_counter()
        backend.run(probe)
        times.append((time.perf_counter() - start) * 1000.0)
    return round(float(np.median(times)), 4)


def pick(trials: Sequence[FileTrial], preference: Sequence[str]) -> FileTrial | None:
    """The fastest passing trial; one the bundle prefers wins when within :data:`TIE_FRACTION` of it."""
    passing = [t for t in trials if t.passed and t.median_ms is not None]
    if not passing:
        return None
    best = min(t.median_ms for t in passing)
    order = {p: i for i, p in enumerate(preference)}
    close = [t for t in passing if t.median_ms <= best * (1.0 + TIE_FRACTION)]
    return min(close, key=lambda t: (order.get(t.path, len(order)), t.median_ms))


def explain(chosen: FileTrial, preferred: str, trials: Sequence[FileTrial]) -> str:
    """Why ``chosen`` runs, in one sentence."""
    failed = {t.path: t.reason for t in trials if not t.passed}
    ms = {t.path: t.median_ms for t in trials if t.passed}
    if chosen.path == preferred:
        return f"the bundle's choice {preferred} passed its self-check here and is the fastest file here " \
               f"({chosen.median_ms:.2f} ms)" if len(ms) > 1 else f"the bundle's choice {preferred} passed its self-check here"
    if preferred in failed:
        return f"the bundle's choice {preferred} is out on this device ({failed[preferred]}); {chosen.path} is " \
               f"the fastest file that passed ({chosen.median_ms:.2f} ms)"
    return f"{chosen.path} is faster on this device ({chosen.median_ms:.2f} ms) than the bundle's choice " \
           f"{preferred} ({ms.get(preferred, float('nan')):.2f} ms)"


def no_usable_file(trials: Sequence[FileTrial]) -> BackendError:
    """The error when no trial passed, listing each file's failure: BackendUnavailableError when every
    file's runtime is missing, else NoUsableFileError."""
    lines = "; ".join(f"{t.path}: {t.reason}" for t in trials)
    if all(t.reason.startswith("runtime not installed") for t in trials):
        return BackendUnavailableError(f"no runtime on this machine runs the files asked for ({lines})")
    return NoUsableFileError(f"no model file of the bundle runs correctly on this device ({lines})")
