"""The whole export: checkpoint -> faces -> one converter per format -> parity gates -> bundle.

:func:`export_bundle` is what ``facelive-export`` runs. Order matters for the
bad-input rules: everything cheap (formats, precisions, converters installed,
output folder, checkpoint, calibration folder) is checked before anything slow,
and all files go to a temporary folder that becomes the bundle only when every
gate passed (or ``allow_parity_failure``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from facelivenet.edge_runtime.constants import DATA_ENV, FORMAT_TABLE, FORMATS, PRECISIONS, model_file_name
from facelivenet.edge_runtime.manifest import Manifest, Outputs, sha256_file

from . import parity as parity_mod
from .bundle import BundleWriter, size_bytes
from .calibration import (DEFAULT_EXPRESSION_FACES, DEFAULT_PARITY_FACES, MIN_CALIB_FACES, MIN_PARITY_FACES, FaceSet,
                          collect_expression_faces, collect_faces, merge_sets)
from .errors import REQUIREMENTS, ExportError, ParityGateError, check_format_available, require
from .formats import FORMAT_BUILDS
from .int8_source import Int8Sources
from .metadata import key_fields
from .parity import SIZE_GATED, max_int8_bytes
from .progress import Progress, human_size, summary_table
from .source import CheckpointSource, load_source, resolve_thresholds
from . import cpu_check
from .cpu_check import passes_everywhere
from .static_int8 import VARIANT as STATIC, StaticInt8Config
from .task_gates import DEFAULT_FER_FACES, TASK_GATED, TaskGateConfig

log = logging.getLogger(__name__)

MODEL_NAME = "facelivenet"
# formats that get a static int8 file beside the weight-only one; formats timed side by side (they run here)
# Formats that predict on every OS and CPU: static int8 files, timed side by side, checked on each CPU family.
STATIC_FORMATS = TIMED_FORMATS = CPU_CHECKED = tuple(f for f in FORMATS if FORMAT_TABLE[f].runs_anywhere)


def parse_choices(text: str | Sequence[str], valid: Sequence[str], what: str) -> tuple[str, ...]:
    """``"onnx,tflite"`` -> ("onnx", "tflite") in canonical order; ExportError listing the valid ones."""
    items = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text)]
    items = [t for t in items if t]
    if not items:
        raise ExportError(f"no {what} given; valid: {', '.join(valid)}")
    unknown = [t for t in items if t not in valid]
    if unknown:
        raise ExportError(f"unknown {what} {', '.join(repr(u) for u in unknown)}; valid: {', '.join(valid)}")
    return tuple(v for v in valid if v in items)


@dataclass
class ExportOptions:
    out: Path
    checkpoint: Path | None = None
    formats: tuple[str, ...] = FORMATS
    precisions: tuple[str, ...] = PRECISIONS
    calib: Path | None = None
    parity_data: Path | None = None
    expression_data: Path | None = None  # FER2013-style already-cropped faces (train/ -> calibration, test/ -> parity)
    expression_count: int = DEFAULT_EXPRESSION_FACES
    detector: Path | None = None  # copied into the bundle when given
    calib_count: int = MIN_CALIB_FACES
    min_calib: int = MIN_CALIB_FACES
    parity_count: int = DEFAULT_PARITY_FACES
    min_parity: int = MIN_PARITY_FACES
    tflite_layout: str | None = None  # None: the checkpoint's preprocessing layout
    opset: int = 18
    simplify: bool = True
    onnx_calibration: str = "percentile"  # static int8 ONNX activation ranges (static_int8.py: why)
    allow_parity_failure: bool = False
    force: bool = False
    thresholds: Path | None = None
    evaluation: Path | None = None
    cache_dir: Path | None = None
    seed: int = 0
    threads: int = 0
    max_int8_bytes: int | None = None  # None: scaled with the model's parameters (parity.max_int8_bytes)
    task_data: Path | None = None  # labelled faces for the task gates (lfw, fer2013, jaffe); None: $FACELIVE_DATA
    task_gates: bool = True
    task_fer_faces: int = DEFAULT_FER_FACES
    task_two_sided: bool = False  # task gates: |delta| <= 0.5 instead of "no loss beyond 0.5 points"
    static_int8: bool = True  # also build static int8 files; kept only when they pass every gate
    speed_rounds: int = 100  # interleaved timing rounds per file that picks the default file
    # CPU families each ONNX/TFLite file is checked on (cpu_check.py): "auto" every family this machine can
    # reach (emulated ones need qemu-user and, for arm64, the aarch64 environment), "native", or "off"
    cpu_check: str = "auto"
    cpu_check_faces: int = 24
    progress: bool = True
    verbose: bool = False


@dataclass
class FileResult:
    rel: str
    fmt: str
    precision: str
    layout: str
    parity: dict[str, Any] = field(default_factory=dict)
    variant: str = ""

    @property
    def key(self) -> str:
        return f"{self.fmt}/{self.precision}" + (f"/{self.variant}" if self.variant else "")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    converters = (dist for fmt in FORMATS for _, dist in REQUIREMENTS[fmt])
    for dist in dict.fromkeys(("facelivenet", "torch", *converters)):
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            pass
    return out


def _default_calib() -> Path:
    root = os.environ.get(DATA_ENV)
    if root and (Path(root) / "lfw" / "images").is_dir():
        return Path(root) / "lfw" / "images"
    raise ExportError(f"no --calib DIR given (a folder of face images) and ${DATA_ENV}/lfw/images does not exist")


def default_task_data() -> Path | None:
    """``$FACELIVE_DATA`` when set (the task gates measure whichever of lfw, fer2013, jaffe it holds)."""
    root = os.environ.get(DATA_ENV)
    return Path(root) if root and Path(root).is_dir() else None


def default_expression_data() -> Path | None:
    """``$FACELIVE_DATA/fer2013`` when it exists (FER2013: train/ and test/), else None."""
    root = os.environ.get(DATA_ENV)
    path = Path(root) / "fer2013" if root else None
    return path if path is not None and (path / "train").is_dir() and (path / "test").is_dir() else None


class _Exporter:
    """State shared by the per-format steps of one export."""

    def __init__(self, opts: ExportOptions, source: CheckpointSource, calib: FaceSet, parity_faces: FaceSet,
                 writer: BundleWriter, work: Path, progress: Progress, thresholds: Any):
        self.opts = opts
        self.source = source
        self.pre = source.preprocess
        self.calib = calib
        self.parity_faces = parity_faces
        self.writer = writer
        self.work = work
        self.progress = progress
        self.thresholds = thresholds
        self.outputs = Outputs(embedding_dim=source.embedding_dim)
        self.threads = opts.threads or (os.cpu_count() or 1)
        self._ref: tuple[np.ndarray, np.ndarray] | None = None
        self.int8 = Int8Sources(source.model, calib.tensor(self.pre, "NCHW"), progress.step, progress.note)
        self.self_check: tuple[dict[str, np.ndarray], dict[str, Any]] | None = None
        self.results: list[FileResult] = []
        self.static_cfg = StaticInt8Config(calibration=opts.onnx_calibration)
        self.static_attempts: dict[str, dict[str, Any]] = {}
        from .task_runs import TaskRuns

        self.tasks = TaskRuns(opts, source, progress, [p for p in opts.precisions if p in TASK_GATED])

    # ------------------------------------------------------------------ shared pieces

    def size_limit(self) -> int:
        """The int8 size gate in bytes: ``--max-int8-bytes`` when given, else scaled with the parameters."""
        if self.opts.max_int8_bytes is not None:
            return self.opts.max_int8_bytes
        return max_int8_bytes(sum(p.numel() for p in self.source.model.parameters()))

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        if self._ref is None:
            from .wrappers import torch_reference

            self._ref = torch_reference(self.source.model, self.parity_faces.tensor(self.pre, "NCHW"))
        return self._ref

    def write_self_check(self) -> dict[str, Any]:
        """``self_check.npz`` (synthetic inputs + torch outputs) in the bundle; its manifest record."""
        from . import selfcheck

        arrays, record = selfcheck.build(self.source.model, self.pre)
        record = selfcheck.write(self.writer.tmp, arrays, record)
        self.self_check = (arrays, record)
        return record

    def write_parity_reference(self) -> dict[str, Any]:
        """``parity_reference.npz`` (the parity faces' images by hash + torch outputs) in the bundle; its record."""
        from facelivenet.edge_runtime.detection import resolve_detector_path

        from . import parity_reference

        emb, logits = self.reference()
        return parity_reference.write(self.writer.tmp, self.parity_faces, self.pre, emb, logits,
                                      sha256_file(resolve_detector_path(self.opts.detector)))

    def fields(self, fmt: str, precision: str, layout: str, float_layers: list[str] | None = None,
               quantisation: str | None = None) -> dict[str, Any]:
        return key_fields(model_name=MODEL_NAME, model_version=self.source.model_version,
                          checkpoint_sha256=self.source.sha256, fmt=fmt, precision=precision, layout=layout,
                          preprocess=self.pre, outputs=self.outputs, thresholds=self.thresholds,
                          float_layers=float_layers, quantisation=quantisation)

    def measure(self, fmt: str, precision: str, path: Path, layout: str) -> dict[str, Any]:
        """Parity of one file on the held-out faces (and per part of them), the size gate, the self-check."""
        from . import selfcheck
        from .runners import runner_for

        ref_emb, ref_logits = self.reference()
        emb, logits = runner_for(fmt, path, self.threads)(self.parity_faces.tensor(self.pre, layout))
        metrics = parity_mod.measure(ref_emb, ref_logits, emb, logits)
        failures = parity_mod.check(precision, metrics)
        out: dict[str, Any] = {**metrics, "gate": parity_mod.gate_dict(precision)}
        if self.parity_faces.parts:
            out["subsets"] = {name: parity_mod.summary(ref_emb[rows], ref_logits[rows], emb[rows], logits[rows])
                              for name, rows in self.parity_faces.subsets()}
        if (fmt, precision) in SIZE_GATED:
            size, limit = size_bytes(path), self.size_limit()
            out["size_bytes"], out["size_limit_bytes"] = size, limit
            if size > limit:
                failures.append(f"size {human_size(size)} > {human_size(limit)}")
        if self.self_check is not None:
            out["self_check"] = selfcheck.check_file(fmt, path, self.self_check[0], self.pre, layout, self.threads)
            if not out["self_check"]["passed"]:
                failures.append(f"self-check: {out['self_check']['error']}")
        if precision in TASK_GATED:
            out["task_gates"] = self.tasks.gate(runner_for(fmt, path, self.threads), layout)
            failures.extend(out["task_gates"]["failures"])
        return {**out, "passed": not failures, "failures": failures}

    def gated(self, fmt: str, precision: str, layout: str,
              build: Callable[[Any], tuple[Path, dict[str, Any]]]) -> FileResult:
        """Build (and for int8 rebuild at the next level of :data:`INT8_LEVELS`) until the gates pass."""
        from .wrappers import INT8_LEVELS

        levels = list(INT8_LEVELS) if precision == "int8" else [None]
        attempts = []
        for n, level in enumerate(levels):
            path, extra = build(level)
            result = self.measure(fmt, precision, path, layout)
            result.update(extra)
            if level is not None:
                result.setdefault("float_layers", list(level.float_modules))
                result["int8_level"] = level.name
                attempts.append(attempt_summary(level.name, result))
            if result["passed"]:
                break
            if n + 1 < len(levels):
                self.progress.note(f"{fmt} {precision} missed the gate ({'; '.join(result['failures'])}); "
                                   f"retrying: {levels[n + 1].name}")
        if precision == "int8":
            static = self.static_attempts.get(fmt)
            result["attempts"] = ([static] if static else []) + attempts
        return self.finish(fmt, precision, layout, result)

    def static(self, fmt: str, layout: str, build: Callable[[Path], dict[str, Any]]) -> None:
        """Build the static int8 file of ``fmt`` and gate it like any int8 file; it stays in the bundle only
        when it passes every gate, task gates included (measured, not skipped); the attempt is recorded
        either way (first in the weight-only file's ``attempts``)."""
        path = self.writer.path(model_file_name(fmt, "int8", STATIC))
        extra = build(path)
        result = {**self.measure(fmt, "int8", path, layout), **extra}
        if not result["task_gates"]["measured"]:
            result["failures"].append("task gates not measured (no labelled faces): a static file needs them")
            result["passed"] = False
        result["int8_level"] = "static int8"
        self.static_attempts[fmt] = {**attempt_summary("static int8", result), "kept": result["passed"]}
        if result["passed"]:
            self.finish(fmt, "int8", layout, result, STATIC)
        else:
            self.progress.note(f"{fmt} static int8 missed a gate ({'; '.join(result['failures'])}): not kept; "
                               "the weight-only int8 file stays the int8 file")
            path.unlink(missing_ok=True)

    def finish(self, fmt: str, precision: str, layout: str, parity: dict[str, Any], variant: str = "") -> FileResult:
        res = FileResult(model_file_name(fmt, precision, variant), fmt, precision, layout, parity, variant)
        self.results.append(res)
        return res

    def int8_record(self, level: Any, method: str, activations: str) -> dict[str, Any]:
        """The ``quantisation`` entry of an int8 file built at ``level``."""
        return self.int8.record(level, method, activations, len(self.calib))

    def cpu_check(self, results: Sequence[FileResult]) -> dict[str, Any]:
        """Every ONNX / TFLite file on the CPU families :data:`cpu_check.TARGETS` that this machine reaches
        (``native``: this one only), on parity faces evenly spread, gated like the export."""
        from .cpu_check import TARGETS, CheckFile, check_on_cpus

        targets = TARGETS[:1] if self.opts.cpu_check == "native" else TARGETS
        n = len(self.parity_faces)
        rows = np.unique(np.linspace(0, n - 1, min(self.opts.cpu_check_faces, n)).round().astype(int))
        ref_emb, ref_logits = self.reference()
        files = [CheckFile(r.key, r.fmt, self.writer.path(r.rel), r.layout, r.precision)
                 for r in results if r.fmt in CPU_CHECKED]
        arrays = self.self_check[0] if self.self_check is not None else None
        if arrays is None:
            raise ExportError("the CPU check needs the self-check reference (written before the files)")
        return check_on_cpus(files, self.parity_faces.crops[rows], ref_emb[rows], ref_logits[rows], arrays, self.pre,
                             targets)

    def speed(self) -> dict[str, Any]:
        """The ONNX and TFLite files that passed their gates, timed side by side at 1 thread (interleaved
        medians, one process): what picks the bundle's default file."""
        from .speed import SpeedConfig, Timed, side_by_side

        timed = [Timed(r.rel, r.fmt, self.writer.path(r.rel), r.layout, r.precision, r.variant)
                 for r in self.results if r.fmt in TIMED_FORMATS and r.parity.get("passed")]
        if not timed:
            return {"rows": [], "note": "no ONNX or TFLite file passed its gates"}
        out = side_by_side(timed, self.pre.input_size, SpeedConfig(threads=(1,), rounds=self.opts.speed_rounds))
        out["note"] = "timed at export, on the export machine, with whatever else it was running"
        return out


def export_bundle(opts: ExportOptions) -> dict[str, Any]:
    """Run the export; returns the summary (the object ``--json`` prints). Raises ExportError."""
    t_start = time.perf_counter()
    formats = parse_choices(opts.formats, FORMATS, "format")
    precisions = parse_choices(opts.precisions, PRECISIONS, "precision")
    if opts.tflite_layout not in (None, "NCHW", "NHWC"):
        raise ExportError(f"unknown TFLite layout {opts.tflite_layout!r}; valid: NCHW, NHWC")
    for fmt in formats:
        check_format_available(fmt)
    calib_dir = check_face_inputs(opts)

    import cv2

    torch = require("torch", "torch", "loading the checkpoint")
    saved_threads = (torch.get_num_threads(), cv2.getNumThreads())
    if opts.threads:
        torch.set_num_threads(opts.threads)
        cv2.setNumThreads(opts.threads)
    try:
        return _export(opts, formats, precisions, calib_dir, t_start)
    finally:  # a library call must not leave the caller's process single-threaded
        torch.set_num_threads(saved_threads[0])
        cv2.setNumThreads(saved_threads[1])


def check_face_inputs(opts: ExportOptions) -> Path:
    """The calibration folder (``--calib``, else the data root's LFW images), after checking it, the detector
    and the expression data folder exist: cheap checks, before anything slow."""
    calib_dir = Path(opts.calib) if opts.calib else _default_calib()
    if not calib_dir.is_dir():
        raise ExportError(f"calibration folder {calib_dir} does not exist" if not calib_dir.exists()
                          else f"calibration folder {calib_dir} is not a folder")
    if opts.detector is not None and not Path(opts.detector).is_file():
        raise ExportError(f"detector {opts.detector} does not exist")
    if opts.expression_data is not None and not Path(opts.expression_data).is_dir():
        raise ExportError(f"expression data folder {opts.expression_data} does not exist")
    return calib_dir


def gather_faces(opts: ExportOptions, source: CheckpointSource, calib_dir: Path,
                 progress: Progress) -> tuple[FaceSet, FaceSet]:
    """(calibration, held-out parity) faces: ``calib_dir`` faces plus, with ``opts.expression_data``, expression
    faces aligned the way the checkpoint's Stage 2 aligned them. One progress step per source."""
    with progress.step(f"faces: detect + align from {calib_dir}"):
        calib, parity_faces = collect_faces(
            calib_dir, source.preprocess, detector=opts.detector, calib_count=opts.calib_count,
            min_calib=opts.min_calib, parity_count=opts.parity_count, min_parity=opts.min_parity,
            parity_dir=opts.parity_data, cache_dir=opts.cache_dir, seed=opts.seed, progress=False)
        progress.note(f"{len(calib)} calibration faces, {len(parity_faces)} held-out parity faces")
    if opts.expression_data is not None:
        with progress.step(f"expression faces from {opts.expression_data}"):
            data_cfg = source.config.data
            expr_calib, expr_parity = collect_expression_faces(
                opts.expression_data, source.preprocess, opts.expression_count, opts.expression_count,
                align=getattr(data_cfg, "expression_align", "center_crop"),
                upscale_to=getattr(data_cfg, "expression_upscale", 0), detector=opts.detector,
                cache_dir=opts.cache_dir, seed=opts.seed, progress=False)
            calib = merge_sets([calib, expr_calib], "calibration")
            parity_faces = merge_sets([parity_faces, expr_parity], "parity")
            progress.note(f"+{len(expr_calib)} calibration, +{len(expr_parity)} parity faces")
    return calib, parity_faces


def _step_count(formats: Sequence[str], precisions: Sequence[str], expression_faces: bool, tasks: bool = False,
                static: bool = False, cpus: bool = False) -> int:
    """Progress steps: checkpoint, faces (+ expression faces), reference + self-check (+ task gates' faces),
    GPTQ, per format (+ static int8 and its float source), the speed comparison."""
    gptq = "int8" in precisions and any(FORMAT_TABLE[f].gptq for f in formats)
    speed = bool(set(TIMED_FORMATS) & set(formats))
    per_format = sum(FORMAT_BUILDS[f].steps(precisions, static) for f in formats)
    return 3 + expression_faces + tasks + gptq + speed + per_format + cpus


def _export(opts: ExportOptions, formats: tuple[str, ...], precisions: tuple[str, ...], calib_dir: Path,
            t_start: float) -> dict[str, Any]:
    tasks = opts.task_gates and bool(set(TASK_GATED) & set(precisions)) and (
        opts.task_data is not None or default_task_data() is not None)
    # a static int8 file is kept only when its task gates pass: without labelled faces it is not built
    static = opts.static_int8 and tasks and "int8" in precisions and bool(set(STATIC_FORMATS) & set(formats))
    static_record = (StaticInt8Config(calibration=opts.onnx_calibration).record("onnx", 0) | {"built": True}
                     if static else {"built": False, "reason": "--no-static-int8" if not opts.static_int8
                                     else "no labelled faces for the task gates" if not tasks
                                     else "no int8 ONNX or TFLite file asked for"})
    opts = dataclasses.replace(opts, formats=formats, precisions=precisions, static_int8=static)
    steps = _step_count(formats, precisions, opts.expression_data is not None, tasks, static,
                        opts.cpu_check != "off" and bool(set(CPU_CHECKED) & set(formats)))
    progress = Progress(steps, enabled=opts.progress, capture=not opts.verbose)
    with BundleWriter(opts.out, force=opts.force) as writer, tempfile.TemporaryDirectory(prefix="facelive-export-") as work:
        with progress.step("checkpoint"):
            source = load_source(opts.checkpoint)
            thresholds, thresholds_info = resolve_thresholds(source, opts.thresholds, opts.evaluation)
            progress.note(f"{source.path} (sha256 {source.sha256[:12]}..., stages {source.completed_stages}); "
                          f"thresholds: {thresholds_info['source']}")
        calib, parity_faces = gather_faces(opts, source, calib_dir, progress)
        ex = _Exporter(opts, source, calib, parity_faces, writer, Path(work), progress, thresholds)
        with progress.step("torch reference on the parity faces; self-check reference"):
            ex.reference()
            self_check = ex.write_self_check()
            parity_reference = ex.write_parity_reference()
        if ex.tasks.wanted:
            with progress.step("task gates: labelled faces (LFW, FER2013, JAFFE) + the torch model on them"):
                ex.tasks.load()
        for fmt in formats:
            FORMAT_BUILDS[fmt](ex).run(precisions)
        speed = None
        if set(TIMED_FORMATS) & set(formats):
            with progress.step("speed: the files side by side (1 thread, interleaved medians)"):
                speed = ex.speed()
        results = order_results(ex.results, speed)
        cpus = None
        if opts.cpu_check != "off" and any(r.fmt in CPU_CHECKED for r in results):
            with progress.step("CPU check: every file on each CPU family this machine reaches (emulated ones too)"):
                cpus = ex.cpu_check(results)
                progress.note(", ".join(f"{n}: {'checked' if t.get('checked') else 'not checked (' + t['why'] + ')'}"
                                        for n, t in cpus["targets"].items()))
        detector_record = writer.copy_detector(opts.detector) if opts.detector else None
        files = tuple(writer.entry(r.rel, r.fmt, r.precision, r.layout, r.variant) for r in results)
        manifest = Manifest(
            model_name=MODEL_NAME,
            model_version=source.model_version,
            checkpoint_sha256=source.sha256,
            files=files,
            preprocess=source.preprocess,
            outputs=ex.outputs,
            thresholds=thresholds,
            provenance={
                "datasets": source.training_provenance()["datasets"],
                "training": source.training_provenance(),
                "checkpoint": {"file": source.path.name, "sha256": source.sha256,
                               "completed_stages": source.completed_stages},
                "model": source.model_facts(),
                "calibration_faces": calib.record(),
                "parity_faces": parity_faces.record(),
                "self_check": self_check,
                "parity_reference": parity_reference,
                "thresholds": thresholds_info,
                "speed": speed,
                "static_int8": {k: v for k, v in static_record.items() if k not in ("calibration_faces", "io")},
                "cpu_checks": cpu_check.provenance(cpus, f"--cpu-check {opts.cpu_check}"),
                "exporter": _versions(),
                "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            },
            parity={r.key: {"path": r.rel, **r.parity, **cpu_check.file_record(cpus, r.key)} for r in results},
            detector=detector_record,
            default_file=default_file([r for r in results if cpus is None or passes_everywhere(cpus, r.key)
                                       or r.fmt not in CPU_CHECKED], speed),
        )
        rows = [{"path": f.path, "format": f.format, "precision": f.precision, "variant": f.variant,
                 "layout": f.layout, "size_bytes": f.size_bytes, "sha256": f.sha256,
                 "parity": manifest.parity[f.parity_key]} for f in files]
        failed = [r for r in rows if r["parity"].get("passed") is False]
        table = summary_table(rows)
        if failed and not opts.allow_parity_failure:
            detail = " | ".join(f"{r['path']}: {'; '.join(r['parity']['failures'])}" for r in failed)
            raise ParityGateError(f"parity gate failed, no bundle written ({detail}); "
                                  "pass --allow-parity-failure to write it anyway", table)
        writer.publish(manifest)
    summary = {
        "bundle": str(Path(opts.out)),
        "manifest": str(Path(opts.out) / "manifest.json"),
        "checkpoint": {"path": str(source.path), "sha256": source.sha256, "completed_stages": source.completed_stages},
        "model_version": source.model_version,
        "files": [{k: v for k, v in r.items() if k != "parity"} | {"parity": _short(r["parity"])} for r in rows],
        "gates_passed": not failed,
        "thresholds": manifest.to_dict()["thresholds"],
        "calibration_faces": len(calib),
        "parity_faces": len(parity_faces),
        "detector": detector_record,
        "default_file": manifest.default_file,
        "speed": speed,
        "seconds": round(time.perf_counter() - t_start, 1),
        "table": table,
    }
    return summary


def _short(p: dict[str, Any]) -> dict[str, Any]:
    keys = ("passed", "cosine_mean", "cosine_min", "expression_top1_agreement", "expression_top1_agreement_decisive",
            "decisive_margin", "faces", "failures", "float_layers", "int8_level", "measured", "reason", "spec_check")
    out = {k: p[k] for k in keys if k in p}
    if p.get("task_gates", {}).get("tasks"):
        out["task_deltas_points"] = {k: {"delta": t["delta_points"], "ci": t["ci_points"]}
                                     for k, t in p["task_gates"]["tasks"].items()}
    return out


def attempt_summary(level: str, result: dict[str, Any]) -> dict[str, Any]:
    """One int8 attempt as the manifest records it: the gated numbers and why it failed, if it did."""
    keys = ("float_layers", "cosine_mean", "cosine_min", "expression_top1_agreement",
            "expression_top1_agreement_decisive", "failures")
    out = {"level": level, **{k: result[k] for k in keys if k in result}}
    tasks = (result.get("task_gates") or {}).get("tasks") or {}
    if tasks:
        out["task_deltas_points"] = {k: t["delta_points"] for k, t in tasks.items()}
    return out


def order_results(results: Sequence[FileResult], speed: dict[str, Any] | None) -> list[FileResult]:
    """The results with, per format and precision, the fastest file first (at 1 thread, from ``speed``):
    the runtime runs the first file listed for a format and precision. Files that failed a gate go last."""
    from .speed import fastest

    out = list(results)
    for r in results:
        group = [x for x in out if (x.fmt, x.precision) == (r.fmt, r.precision) and x.parity.get("passed")]
        if len(group) < 2 or speed is None:
            continue
        best = fastest(speed, [x.rel for x in group])
        if best is not None:
            first = out.index(group[0])
            chosen = next(x for x in group if x.rel == best)
            out.remove(chosen)
            out.insert(first, chosen)
    return out


def default_file(results: Sequence[FileResult], speed: dict[str, Any] | None) -> str | None:
    """The fastest file (1 thread) among those that passed every gate; None without a speed comparison."""
    from .speed import fastest

    if speed is None:
        return None
    return fastest(speed, [r.rel for r in results if r.parity.get("passed")])
