"""One benchmark run: machine peak, bundle rows, torch row, parity/accuracy, peers, dlib, targets.

:func:`run_benchmark` is what ``facelive-bench`` runs; it returns the result
object (:mod:`report`) and, with ``cfg.out``, writes the report folder.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.edge_runtime.manifest import Manifest, load_manifest, sha256_file

from . import report
from .bundle_rows import file_rows, torch_rows
from .config import BenchConfig
from .faces import real_faces
from .inputs import InputStore
from .int8_forms import int8_forms
from .jobs import run_job
from .machine import engines_for, fold_row_peaks, machine_section, remeasure, row_achieved
from .pipeline import pipeline_section, runtime_frame
from .worker import run_isolated

log = logging.getLogger(__name__)

QUICK_ACCURACY = {("torch", "fp32"), ("onnx", "int8")}
QUICK_ACCURACY_NOTE = "quick: LFW/FER2013 accuracy only for the torch model and the int8 ONNX file (parity for all)"
NO_DATA_NOTE = ("parity and accuracy need --data DIR (or $FACELIVE_DATA) with real faces: latency only, on "
                "synthetic inputs")
NO_DATA_PEERS_NOTE = "int8 peers need real faces (--data) for calibration: only fp32 peers were timed"


class _Model:
    """The checkpoint's torch model in this process (for FLOPs, the parity reference and accuracy)."""

    def __init__(self, checkpoint: Path) -> None:
        from facelivenet.training.checkpoint import load, model_from_checkpoint
        from facelivenet.training.flops import count_flops
        from facelivenet.training.model import count_parameters

        self.path = checkpoint
        self.sha256 = sha256_file(checkpoint)
        blob = load(checkpoint)
        self.trained_on = blob.get("trained_on") or {}
        data_cfg = (blob.get("config") or {}).get("data") or {}
        # FER2013 is aligned the way this checkpoint's Stage 2 was trained (centre crop or landmarks)
        self.expression_align = (data_cfg.get("expression_align", "center_crop"), data_cfg.get("expression_upscale", 0))
        self.net = model_from_checkpoint(blob)
        cfg = self.net.cfg
        self.facts = {"params": count_parameters(self.net), "flops": count_flops(self.net, cfg.input_size,
                                                                                 cfg.in_channels),
                      "input_size": cfg.input_size, "checkpoint": str(checkpoint), "checkpoint_sha256": self.sha256}

    def run(self, batch_nchw):
        from facelivenet.export.wrappers import torch_reference

        return torch_reference(self.net, batch_nchw)


def _resolve_checkpoint(path: Path | None) -> Path:
    from facelivenet.training.checkpoint import CheckpointError
    from facelivenet.training.evaluation.runner import resolve_checkpoint

    resolved = resolve_checkpoint(path)
    if not resolved.is_file():
        raise CheckpointError(f"checkpoint {resolved} does not exist")
    return resolved


def _evaluate(cfg: BenchConfig, manifest: Manifest, rows: list[dict[str, Any]], model: _Model, parity_faces: Any,
              notes: list[str]) -> None:
    """Attach parity and accuracy to each row (computed once per file, whatever the thread count)."""
    import torch

    from facelivenet.export.runners import runner_for

    from .accuracy import add_deltas, load_eval_sets, parity_and_accuracy

    pre = manifest.preprocess
    sets = load_eval_sets(cfg.data, pre, parity_faces, model.trained_on, cfg.detector, cfg.cache_dir, cfg.quick,
                          model.expression_align)
    notes.extend(sets.notes)
    if cfg.quick:
        notes.append(QUICK_ACCURACY_NOTE)
    same_model = manifest.checkpoint_sha256 == model.sha256
    if not same_model:
        notes.append(f"parity and file accuracy skipped: the bundle was exported from checkpoint "
                     f"{manifest.checkpoint_sha256[:12]}, the torch model is {model.sha256[:12]} (pass --checkpoint)")
    saved = torch.get_num_threads()
    torch.set_num_threads(max(cfg.threads))
    try:
        reference = model.run(parity_faces.tensor(pre, "NCHW"))
        done: dict[tuple[str, str, str], tuple[dict, dict]] = {}
        for row in rows:
            key = (row["format"], row["precision"], row["path"])  # two int8 files of a format: static, weights
            if key not in done:
                row_sets = sets if not cfg.quick or key[:2] in QUICK_ACCURACY else sets.parity_only()
                if key[0] == "torch":
                    done[key] = parity_and_accuracy(model.run, "NCHW", None, row_sets, None)
                elif not same_model:
                    done[key] = ({"skipped": "different checkpoint"}, {"skipped": "different checkpoint"})
                else:
                    try:
                        runner = runner_for(row["format"], cfg.bundle / row["path"], max(cfg.threads))
                        done[key] = parity_and_accuracy(runner, row["layout"], row["precision"], row_sets, reference)
                    except FaceLiveError as exc:
                        done[key] = ({"skipped": str(exc)}, {"skipped": str(exc)})
                if row_sets is not sets:
                    done[key][1]["skipped"] = QUICK_ACCURACY_NOTE
                log.info("%s %s %s: parity %s", *key, {k: v for k, v in done[key][0].items() if "cosine" in k})
            row["parity"], row["accuracy"] = done[key]
        torch_accuracy = next((v[1] for k, v in done.items() if k[0] == "torch"), {})
        for key, (_, accuracy) in done.items():
            if key[0] != "torch":
                add_deltas(accuracy, torch_accuracy)
    finally:
        torch.set_num_threads(saved)


def _selected_peers(cfg: BenchConfig) -> tuple[Any, ...]:
    from .peers import PEERS

    return tuple(p for p in PEERS if cfg.peer_names is None or p.name in cfg.peer_names)


def _peer_faces(cfg: BenchConfig) -> tuple[dict[int, Any], dict[int, tuple[Any, Any]]]:
    """Per peer input size: calibration faces (with their NCHW tensor) and (held-out faces, preprocessing)."""
    from facelivenet.edge_runtime.preprocess import PreprocessConfig

    from .peers.compare import Calibration

    calib: dict[int, Any] = {}
    held: dict[int, tuple[Any, Any]] = {}
    for size in sorted({n.input_size for p in _selected_peers(cfg) for n in p.nets}):
        pre = PreprocessConfig(input_size=size, colour="rgb")
        faces, held_out = real_faces(cfg.data, pre, cfg.detector, cfg.cache_dir, seed=cfg.seed)
        calib[size] = Calibration(faces, faces.tensor(pre, "NCHW"))
        held[size] = (held_out, pre)
    return calib, held


def _reference(cfg: BenchConfig, manifest: Manifest, input_for) -> dict[str, Any] | None:
    """Our fused int8 ONNX file as the reference timed alongside each peer (None when the bundle lacks it)."""
    try:
        f = manifest.file_for(*report.OURS)
    except FaceLiveError:
        return None
    return {"format": f.format, "path": str(cfg.bundle / f.path), "input": input_for(f.layout)}


def _peers(cfg: BenchConfig, inputs: InputStore, run, phase: "_Phases", notes: list[str],
           reference: dict[str, Any] | None) -> list[dict[str, Any]]:
    from facelivenet.training.data.face_cache import cache_root

    from .peers.compare import peer_rows
    from .peers.dlib_resnet import dlib_rows

    calib, held = None, {}
    if cfg.data is not None:
        with phase("peer calibration faces"):
            calib, held = _peer_faces(cfg)
    else:
        notes.append(NO_DATA_PEERS_NOTE)

    def input_for(size: int) -> str:
        return inputs.model_input("peer", size, "NCHW", *held.get(size, (None, None)))

    with phase("peer rows"):
        precisions = ("int8",) if cfg.quick and calib else None
        if precisions:
            notes.append("quick: peers timed in int8 only (the targets' precision)")
        rows = peer_rows(cfg.threads, cfg.timed_runs, cfg.warmup_runs, cache_root(cfg.cache_dir) / "bench-peers",
                         cfg.seed, calib, input_for, run, reference, precisions, _selected_peers(cfg))
    if cfg.dlib:
        with phase("dlib"):
            dlib, reason = dlib_rows(cfg.data, cfg.detector, cfg.cache_dir, list(cfg.threads), cfg.timed_runs,
                                     cfg.warmup_runs, cfg.quick, inputs.save, run, reference)
        rows += dlib
        if reason:
            notes.append(f"dlib peer skipped: {reason}")
    return rows


class _Phases:
    """Wall-clock seconds of each phase of the run (reported, and logged at info level)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 1)
            log.info("%s: %.1f s", name, self.seconds[name])


def run_benchmark(cfg: BenchConfig) -> dict[str, Any]:
    """Measure everything ``cfg`` asks for; the result object of :mod:`report`."""
    start = time.perf_counter()
    phase = _Phases()
    notes: list[str] = []
    if cfg.quick:
        notes.append(f"QUICK run: {cfg.timed_runs} timed runs after {cfg.warmup_runs} warm-up per row, "
                     "evaluation subsets; use a full run for numbers to publish")
    t = time.perf_counter()
    manifest = load_manifest(cfg.bundle)  # validates the schema and every file's sha256
    verify_ms = (time.perf_counter() - t) * 1000.0
    checkpoint = _resolve_checkpoint(cfg.checkpoint)
    run = run_isolated if cfg.isolate else run_job
    pre = manifest.preprocess
    with tempfile.TemporaryDirectory(prefix="facelive-bench-") as tmp:
        inputs = InputStore(Path(tmp))
        with phase("machine peak"):
            machine = machine_section(cfg.threads, cfg.quick,
                                      engines=engines_for([*(f.format for f in manifest.files), "torch"]))
        parity_faces = None
        if cfg.data is not None:
            with phase("parity faces"):
                _, parity_faces = real_faces(cfg.data, pre, cfg.detector, cfg.cache_dir, seed=cfg.seed)
        else:
            notes.append(NO_DATA_NOTE)

        def input_for(layout: str) -> str:
            return inputs.model_input("ours", pre.input_size, layout, parity_faces, pre)

        with phase("bundle rows"):
            rows, skipped = file_rows(cfg.bundle, manifest, cfg.threads, cfg.timed_runs, cfg.warmup_runs, input_for,
                                      run, machine["gemm"]["n"])
        with phase("int8 forms side by side"):
            forms = int8_forms(cfg.bundle, manifest, cfg.threads, cfg.timed_runs, cfg.warmup_runs)
        with phase("torch rows"):
            rows += torch_rows(checkpoint, cfg.threads, cfg.timed_runs, cfg.warmup_runs, input_for, run,
                               machine["gemm"]["n"])
            model = _Model(checkpoint)
        if cfg.data is not None and cfg.accuracy:
            with phase("parity and accuracy"):
                _evaluate(cfg, manifest, rows, model, parity_faces, notes)
        peers = []
        if cfg.peers:
            with phase("peers"):
                peers = _peers(cfg, inputs, run, phase, notes, _reference(cfg, manifest, input_for))
        with phase("machine peak again"):
            remeasure(machine)
            fold_row_peaks(machine, rows)
    for row in rows:
        row["achieved"] = row_achieved(row, model.facts["flops"], machine)
    report.add_ratios(peers, report.our_medians(rows))
    stages = runtime_frame(cfg.bundle, cfg.threads[0], cfg.data, cfg.detector)
    return {
        "quick": cfg.quick,
        "machine": machine,
        "bundle": {"path": str(cfg.bundle), "model_version": manifest.model_version,
                   "checkpoint_sha256": manifest.checkpoint_sha256, "files": len(manifest.files),
                   "sha256_verified": True, "verify_ms": round(verify_ms, 1)},
        "model": model.facts,
        "timing_input": "a real aligned face (first held-out parity face)" if parity_faces is not None
        else "synthetic (seeded uniform noise in the normalised range)",
        "rows": rows,
        "int8_forms": forms,
        "skipped": skipped,
        "pipeline": pipeline_section(stages, cfg.timed_runs, cfg.warmup_runs, cfg.threads[0]),
        "peers": peers,
        "ratio_definition": report.RATIO_DEFINITION,
        "targets": report.targets(peers, cfg.threads) if cfg.peers else [],
        "notes": notes,
        "config": cfg.to_dict(),
        "phase_seconds": phase.seconds,
        "seconds": round(time.perf_counter() - start, 1),
    }
