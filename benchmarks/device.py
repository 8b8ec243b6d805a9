"""``facelive-bench device``: latency and parity of a bundle on a board that has only the ``edge`` extra.

A Raspberry Pi or a phone-class board has numpy, OpenCV, onnxruntime and
LiteRT, but no torch, onnx or converters. This benchmark needs nothing else:

- every model file of the bundle is sha256-verified, opened by the runtime's own
  backend and timed in a child process of its own (load ms, median / p95 / p99,
  RSS, threads), exactly as in the full benchmark;
- parity is measured ON THIS DEVICE against the torch outputs the export saved
  in the bundle, with the export's gates per precision: with ``--data`` on the
  export's held-out real faces, re-read and re-aligned here
  (``parity_reference.npz``, :mod:`.device_faces`), and always on the
  synthetic self-check inputs (``self_check.npz``); a file that fails makes
  the command exit non-zero. No faces are shipped in the bundle;
- the parity each file reached at export is carried over from the manifest
  next to it (``export_parity``);
- achieved GFLOP/s uses the FLOP count the export recorded in the manifest
  (``provenance.model.flops``), against the GEMM peak measured in this run
  through numpy and the runtimes that time the rows (:mod:`.machine`);
- with ``--data`` (a JAFFE or LFW folder copied over), the per-frame pipeline
  of ``facelive auth`` at 640x480 is timed too.

Nothing here imports torch; a test runs it with torch, onnx and the converters
made unimportable.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facelivenet.edge_runtime.backends import SELF_CHECK_MIN_AGREEMENT, SELF_CHECK_MIN_COSINE, open_backend
from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.edge_runtime.manifest import Manifest, load_manifest

from .bundle_rows import file_rows
from .config import TimedRuns, timed_config_dict
from .device_faces import ReferenceFaces, load_reference_faces
from .errors import BenchError
from .faces import synthetic_input
from .int8_forms import int8_forms, row_form
from .machine import engines_for, fold_row_peaks, machine_section, remeasure, row_achieved
from .pipeline import pipeline_section, runtime_frame
from .worker import run_isolated

log = logging.getLogger(__name__)

MODE_NOTE = ("edge-only run (no torch): parity is measured on this device against the torch outputs the export saved "
             "in the bundle (parity_reference.npz: real faces re-aligned from --data; self_check.npz: synthetic "
             "inputs); the export's own parity is carried over from the manifest")
NO_DATA_NOTE = ("no --data: parity on the bundle's synthetic self-check inputs only; pass --data DIR holding the "
                "export's parity folders (lfw/images, fer2013/test) for real-face parity")
NO_REFERENCE_NOTE = ("the bundle has no parity_reference.npz (exported before it was written): parity on the "
                     "synthetic self-check inputs only")
DECISIVE_NOTE = ("real-face parity: cosines gated on every face; top-1 agreement gated on the faces whose torch "
                 "top-2 expression logit margin is >= the export's decisive margin (near ties are reported, not gated)")
NO_FLOPS_NOTE = ("the manifest records no FLOP count (bundle exported before it was recorded): achieved GFLOP/s "
                 "not computed; re-export to record it")


@dataclass(frozen=True)
class DeviceConfig(TimedRuns):
    """What ``facelive-bench device`` measures (saved as ``config.json`` next to the report)."""

    bundle: Path
    threads: tuple[int, ...] = (1,)
    quick: bool = False
    runs: int | None = None
    warmup: int | None = None
    data: Path | None = None
    detector: str | None = None
    out: Path | None = None
    faces: int | None = None  # at most this many reference faces (evenly spread); None: all
    gemm_n: int | None = None  # GEMM size of the peak; None: the default

    def to_dict(self) -> dict[str, Any]:
        return timed_config_dict(self)


def _self_check(bundle: Path, manifest: Manifest) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The bundle's reference arrays (sha256-checked) and their manifest record."""
    from facelivenet.edge_runtime.manifest import sha256_file

    record = (manifest.provenance or {}).get("self_check") or {}
    path = bundle / record.get("path", "self_check.npz")
    if not record or not path.is_file():
        raise BenchError(f"{bundle} holds no self_check.npz reference outputs: re-export the bundle with "
                         "facelive-export (it writes them) to measure parity on a device without torch")
    if record.get("sha256") and sha256_file(path) != record["sha256"]:
        raise BenchError(f"{path} does not match the sha256 in the manifest: the reference outputs were altered")
    with np.load(path) as data:
        arrays = {k: data[k] for k in ("inputs", "embedding", "expression_logits")}
    return arrays, record


def _inputs_in_layout(x_nchw: np.ndarray, layout: str) -> np.ndarray:
    return np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1) if layout == "NHWC" else x_nchw)


def device_parity(backend, precision: str, layout: str, reference: dict[str, np.ndarray]) -> dict[str, Any]:
    """Parity of one file on the self-check inputs vs the saved torch outputs: the export's gate for its
    precision, and at every precision the floor the runtime applies before trusting a legacy interpreter."""
    from facelivenet.export import parity as parity_mod  # numpy only

    emb, logits = backend.run(_inputs_in_layout(reference["inputs"], layout))
    out = parity_mod.gated(precision, reference["embedding"], reference["expression_logits"], emb, logits)
    failures = list(out.get("failures", []))
    if out["cosine_min"] < SELF_CHECK_MIN_COSINE:
        failures.append(f"self-check cosine min {out['cosine_min']:.6f} < {SELF_CHECK_MIN_COSINE}")
    if out["expression_top1_agreement"] < SELF_CHECK_MIN_AGREEMENT:
        failures.append(f"self-check expression agreement {out['expression_top1_agreement']:.4f} < "
                        f"{SELF_CHECK_MIN_AGREEMENT}")
    out.update(expression_agreement=out["expression_top1_agreement"], reference="self_check.npz",
               runtime=backend.name, passed=not failures, failures=failures)
    return out


def real_face_parity(backend, precision: str, layout: str, faces: ReferenceFaces, pre) -> dict[str, Any]:
    """Parity of one file on the re-aligned reference faces vs the torch outputs saved at export, gated like
    the export (per precision), with one summary per data folder."""
    import dataclasses

    from facelivenet.edge_runtime.preprocess import normalize
    from facelivenet.export import parity as parity_mod

    x = np.ascontiguousarray(normalize(faces.crops, dataclasses.replace(pre, layout=layout)), np.float32)
    embs, logits = zip(*(backend.run(x[i:i + 64]) for i in range(0, len(x), 64)))
    emb, logit = np.concatenate(embs), np.concatenate(logits)
    out = parity_mod.gated(precision, faces.embedding, faces.expression_logits, emb, logit)
    out.update(decisive_agreement(precision, out, faces.expression_logits, logit))
    folders = np.asarray(faces.folders)
    parts = {f: folders == f for f in dict.fromkeys(faces.folders)}
    out["subsets"] = {f: parity_mod.summary(faces.embedding[m], faces.expression_logits[m], emb[m], logit[m])
                      for f, m in parts.items()}
    # the model on the export's exact crops, and on crops this device's alignment moved in their last bits
    out["by_crop"] = {name: parity_mod.summary(faces.embedding[m], faces.expression_logits[m], emb[m], logit[m])
                      if m.any() else None
                      for name, m in (("identical", faces.identical), ("differing", ~faces.identical))}
    out.update(expression_agreement=out["expression_top1_agreement"],
               reference="parity_reference.npz (real faces re-aligned on this device)", runtime=backend.name)
    return out


def decisive_agreement(precision: str, metrics: dict[str, Any], ref_logits: np.ndarray,
                        logits: np.ndarray) -> dict[str, Any]:
    """The agreement gate judged on the faces whose torch top-2 logit margin reaches the export's
    ``DECISIVE_MARGIN`` (ARCHITECTURE.md, "Metrics": near-tie faces alone do not fail a file; the same rule as the
    export's gate), the overall agreement still reported; the cosine gates stay on every face."""
    from facelivenet.export import parity as parity_mod

    decisive = parity_mod.top2_margin(ref_logits) >= parity_mod.DECISIVE_MARGIN
    agree = np.argmax(ref_logits, axis=1) == np.argmax(logits, axis=1)
    decisive_agreement = float(agree[decisive].mean()) if decisive.any() else 1.0
    out: dict[str, Any] = {"decisive_margin": parity_mod.DECISIVE_MARGIN, "decisive_faces": int(decisive.sum()),
                           "expression_top1_agreement_decisive": decisive_agreement,
                           "near_tie_disagreements": int((~agree & ~decisive).sum())}
    if precision in parity_mod.GATES:
        failures = parity_mod.check(precision, {**metrics, "expression_top1_agreement_decisive": decisive_agreement})
        out.update(failures=failures, passed=not failures)
    return out


def _export_parity(manifest: Manifest, path: str) -> dict[str, Any]:
    """The export's gates of the bundle file ``path`` (task gates included), from the manifest."""
    f = next(f for f in manifest.files if f.path == path)
    rec = (manifest.parity or {}).get(f.parity_key) or {}
    keep = ("cosine_mean", "cosine_min", "expression_top1_agreement", "expression_top1_agreement_decisive", "faces",
            "passed", "subsets", "task_gates")
    return {k: rec[k] for k in keep if k in rec}


def run_device_benchmark(cfg: DeviceConfig) -> dict[str, Any]:
    """Measure the bundle on this machine with the edge runtime only; the result object."""
    start = time.perf_counter()
    notes = [MODE_NOTE]
    if cfg.quick:
        notes.append(f"QUICK run: {cfg.timed_runs} timed runs after {cfg.warmup_runs} warm-up per row")
    t = time.perf_counter()
    manifest = load_manifest(cfg.bundle)  # schema and every file's sha256
    verify_ms = (time.perf_counter() - t) * 1000.0
    reference, record = _self_check(cfg.bundle, manifest)
    facts = dict((manifest.provenance or {}).get("model") or {})
    if not facts.get("flops"):
        notes.append(NO_FLOPS_NOTE)
    machine = machine_section(cfg.threads, cfg.quick, cfg.gemm_n, engines_for([f.format for f in manifest.files]))
    size = manifest.preprocess.input_size
    with tempfile.TemporaryDirectory(prefix="facelive-bench-device-") as tmp:
        saved: dict[str, str] = {}

        def input_for(layout: str) -> str:
            if layout not in saved:
                x = _inputs_in_layout(reference["inputs"][:1], layout) if len(reference["inputs"]) else \
                    synthetic_input(size, layout)
                saved[layout] = str(Path(tmp) / f"input-{layout}.npy")
                np.save(saved[layout], x)
            return saved[layout]

        rows, skipped = file_rows(cfg.bundle, manifest, cfg.threads, cfg.timed_runs, cfg.warmup_runs, input_for,
                                  run_isolated, machine["gemm"]["n"])
    forms = int8_forms(cfg.bundle, manifest, cfg.threads, cfg.timed_runs, cfg.warmup_runs)
    faces, real_info = None, None
    if cfg.data is not None:
        faces = load_reference_faces(cfg.bundle, manifest, cfg.data, cfg.detector, cfg.faces)
        if faces is None:
            notes.append(NO_REFERENCE_NOTE)
        elif not len(faces.crops):
            folders = ", ".join(manifest.provenance["parity_reference"]["folders"])
            notes.append(f"none of the bundle's reference faces are under {cfg.data} (copy its {folders} folders "
                         "there): parity on the synthetic self-check inputs only")
            real_info, faces = faces.info, None
    else:
        notes.append(NO_DATA_NOTE)
    if faces is not None:
        notes.append(DECISIVE_NOTE)
    done: dict[tuple[str, str, str], tuple[dict[str, Any], dict[str, Any] | None]] = {}
    for row in rows:
        key = (row["format"], row["precision"], row["path"])
        if key not in done:
            try:
                backend = open_backend(row["format"], cfg.bundle / row["path"], max(cfg.threads))
                done[key] = (device_parity(backend, row["precision"], row["layout"], reference),
                             real_face_parity(backend, row["precision"], row["layout"], faces, manifest.preprocess)
                             if faces is not None else None)
            except FaceLiveError as exc:
                done[key] = ({"skipped": str(exc), "passed": False}, None)
        row["self_check"], real = done[key]
        row["parity"] = real if real is not None else row["self_check"]
        row["export_parity"] = _export_parity(manifest, row["path"])
        row["accuracy"] = {}
    remeasure(machine)
    fold_row_peaks(machine, rows)
    for row in rows:
        row["achieved"] = row_achieved(row, facts["flops"], machine) if facts.get("flops") else {}
    stages = runtime_frame(cfg.bundle, cfg.threads[0], cfg.data, cfg.detector) if cfg.data is not None else None
    failed = [f"{r['format']} {row_form(r)}" for r in rows
              if r["parity"].get("passed") is False or r["self_check"].get("passed") is False]
    from facelivenet.edge_runtime.face_model import FaceModel

    try:  # what the runtime runs here, and why
        choice = FaceModel(cfg.bundle, threads=cfg.threads[0]).ranking.to_dict()
    except FaceLiveError as exc:  # no file passes here: the rows above say which and why
        choice = {"error": str(exc)}
    return {
        "mode": "edge",
        "runtime_choice": choice,
        "quick": cfg.quick,
        "machine": machine,
        "bundle": {"path": str(cfg.bundle), "model_version": manifest.model_version,
                   "checkpoint_sha256": manifest.checkpoint_sha256, "files": len(manifest.files),
                   "sha256_verified": True, "verify_ms": round(verify_ms, 1)},
        "model": {"params": facts.get("params"), "flops": facts.get("flops"), "input_size": size},
        "reference": {"file": record.get("path", "self_check.npz"), "count": int(len(reference["inputs"])),
                      "inputs": record.get("inputs")},
        "real_faces": faces.info if faces is not None else real_info,
        "timing_input": "the first self_check.npz input (a synthetic pattern; latency does not depend on pixels)",
        "rows": rows,
        "int8_forms": forms,
        "skipped": skipped,
        "pipeline": pipeline_section(stages, cfg.timed_runs, cfg.warmup_runs, cfg.threads[0]),
        "peers": [],
        "targets": [],
        "parity_failed": failed,
        "notes": notes + ["peers need the full benchmark on a machine with torch and onnx (facelive-bench)"],
        "config": cfg.to_dict(),
        "seconds": round(time.perf_counter() - start, 1),
    }
