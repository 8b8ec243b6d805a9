"""`facelive-train evaluate`: every paper metric of one checkpoint, as one JSON object.

Tasks (``--tasks``, any subset, default all) and their JSON keys:

=========  ========================  =================================================
task       JSON key                  protocol (module)
=========  ========================  =================================================
lfw        ``lfw``                   LFW View 2, unseen folds only (:mod:`.lfw_eval`)
fer2013    ``fer2013``               test split and PrivateTest (:mod:`.fer2013_eval`)
ckplus48   ``ckplus48``              10-fold subject CV, Stage 2 per fold (:mod:`.ckplus_eval`)
auth       ``authentication_jaffe``  paper eq. 8 on JAFFE (:mod:`.auth_eval`)
=========  ========================  =================================================

Behaviour
---------
- The checkpoint is ``--checkpoint`` or the shipped default model; with
  ``--config`` / ``--set model.KEY=VALUE`` the expected model configuration is
  stated and a checkpoint that differs is refused, naming the differing keys.
- Data sets are read from ``--data`` (or ``$FACELIVE_DATA``): ``lfw/``,
  ``fer2013/``, ``ckplus48/``, ``jaffe/``. A task whose data set (or, for
  LFW and JAFFE, the YuNet detector) is missing is skipped with a logged reason
  and appears as ``{"skipped": reason}`` (so is LFW when every fold holds
  people the checkpoint trained on); when no requested task can run the
  command fails with one line naming the reasons.
- Everything is decided before any image is read: the checkpoint, the task
  list, the LFW folds (an overlapping fold is refused).
- ``--out`` (default ``reports/eval/<name>/``, ``<name>`` the checkpoint's file
  stem, prefixed by its folder for generic stems like ``model``) receives
  ``evaluation.json`` (the object ``--json`` prints), ``evaluation_args.json``
  (the resolved arguments, the checkpoint's configs and environment), the PNGs
  (``lfw_roc.png``, ``fer2013_confusion.png``, ``ckplus48_confusion.png``) and
  ``auth_pairs.csv``.
- ``--quick`` evaluates small deterministic subsets (see each task module) and
  says so: ``"quick": true`` at the top and a ``quick_subset`` line per task.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from facelivenet.edge_runtime.constants import DATA_ENV
from facelivenet.edge_runtime.detection import resolve_detector_path
from facelivenet.edge_runtime.errors import DetectorNotFoundError, FaceLiveError

from ..config import ModelConfig, load_config, to_dict
from ..data.sources import data_root
from . import auth_eval, ckplus_eval, fer2013_eval, lfw_eval
from .runner import EvalContext, LoadedCheckpoint, load_checkpoint

log = logging.getLogger(__name__)

TASKS: tuple[str, ...] = ("lfw", "fer2013", "ckplus48", "auth")
JSON_KEYS = {"lfw": "lfw", "fer2013": "fer2013", "ckplus48": "ckplus48", "auth": "authentication_jaffe"}
DATA_FOLDERS = {"lfw": "lfw", "fer2013": "fer2013", "ckplus48": "ckplus48", "auth": "jaffe"}
DATA_LAYOUTS = {
    "lfw": "LFW View 2: pairs.txt, people.txt, images/<Name>/<Name>_NNNN.jpg",
    "fer2013": "FER2013: test/<emotion>/{PublicTest,PrivateTest}_*.jpg",
    "ckplus48": "CK+48: <emotion>/S<subject>_<seq>_<frame>.png",
    "auth": "JAFFE: <SUBJ>.<EXPR><n>.<id>.tiff",
}
REQUIRED = {"lfw": lfw_eval.required_files, "fer2013": fer2013_eval.required_files,
            "ckplus48": ckplus_eval.required_files, "auth": auth_eval.required_files}
NEEDS_DETECTOR = {"lfw", "auth"}
GENERIC_STEMS = {"model", "last", "checkpoint", "best", "final"}


class EvaluationError(FaceLiveError):
    """The evaluation cannot run as asked (no data, no task left, bad arguments)."""


@dataclass
class EvalOptions:
    """The resolved arguments of one evaluation (also written to ``evaluation_args.json``)."""

    checkpoint: str | None = None
    data: str | None = None
    tasks: tuple[str, ...] = TASKS
    out: str | None = None
    quick: bool = False
    lfw_folds: tuple[int, ...] | None = None
    expect_model: ModelConfig | None = None
    detector: str | None = None
    cache_dir: str | None = None
    device: str = "auto"
    batch_size: int = 64
    threads: int | None = None
    seed: int = 0
    auth_expression_threshold: float | None = None
    progress: bool = True


def parse_tasks(text: str | None) -> tuple[str, ...]:
    """``lfw,fer2013,ckplus48,auth`` (any subset, any order; ``all``) -> tasks in canonical order."""
    if not text or text.strip() == "all":
        return TASKS
    asked = [t.strip() for t in text.split(",") if t.strip()]
    aliases = {"authentication_jaffe": "auth", "jaffe": "auth", "ckplus": "ckplus48", "fer": "fer2013"}
    asked = [aliases.get(t, t) for t in asked]
    unknown = [t for t in asked if t not in TASKS]
    if unknown or not asked:
        raise EvaluationError(f"unknown task(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(TASKS)}")
    return tuple(t for t in TASKS if t in asked)


def parse_folds(text: str | None) -> tuple[int, ...] | None:
    """``1,3`` -> (1, 3); None when not given."""
    if not text:
        return None
    try:
        return tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        raise EvaluationError(f"--lfw-folds must be comma-separated fold numbers 1..10, got {text!r}") from None


def expected_model_config(config_path: str | None, overrides: Sequence[str] | None) -> ModelConfig | None:
    """The model configuration the user states (``--config`` / ``--set model.*``), or None."""
    overrides = list(overrides or [])
    if not config_path and not overrides:
        return None
    bad = [o for o in overrides if not o.split("=", 1)[0].strip().startswith("model.")]
    if bad:
        raise EvaluationError(f"evaluate takes only model.* overrides (the rest comes from the checkpoint): {bad[0]}")
    return load_config(config_path, overrides).model


def default_out_dir(checkpoint: Path) -> Path:
    """``reports/eval/<stem>`` (``<folder>-<stem>`` for generic stems such as ``model``)."""
    stem = checkpoint.stem
    if stem in GENERIC_STEMS and checkpoint.parent.name:
        stem = f"{checkpoint.resolve().parent.name}-{stem}"
    return Path("reports") / "eval" / stem


def missing_reason(task: str, root: Path, detector: str | None) -> str | None:
    """Why ``task`` cannot run on ``root`` (None when it can)."""
    folder = root / DATA_FOLDERS[task]
    for path in REQUIRED[task](folder):
        if not path.exists():
            return (f"{task} skipped: {path} not found (expected {DATA_LAYOUTS[task]}); "
                    f"add the data set there or leave {task} out of --tasks")
    if task in NEEDS_DETECTOR:
        try:
            resolve_detector_path(detector)
        except DetectorNotFoundError as exc:
            return f"{task} skipped: it needs the face detector. {exc}"
    return None


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _args_record(opts: EvalOptions, ckpt: LoadedCheckpoint, root: Path, out: Path, device: torch.device) -> dict:
    record = asdict(opts)
    record["expect_model"] = to_dict(opts.expect_model) if opts.expect_model else None
    record.update(
        data=str(root), out=str(out), device=str(device), threads=torch.get_num_threads(),
        checkpoint_resolved=str(ckpt.path), checkpoint_sha256=ckpt.sha256,
        checkpoint_config=ckpt.blob["config"], trained_on=ckpt.trained_on,
        torch=torch.__version__, python=platform.python_version(),
    )
    return record


def _data_folder(explicit: str | Path | None) -> Path:
    root = data_root(explicit)
    if root is None:
        raise EvaluationError("no data folder: pass --data DIR (holding lfw/, fer2013/, ckplus48/, jaffe/) "
                              f"or set ${DATA_ENV}")
    if not root.is_dir():
        raise EvaluationError(f"data folder {root} does not exist")
    return root


def run_evaluation(opts: EvalOptions) -> dict[str, Any]:
    """Run the requested tasks and write the report folder; returns the evaluation JSON object."""
    root = _data_folder(opts.data)
    import cv2

    threads = torch.get_num_threads(), cv2.getNumThreads()
    if opts.threads:
        torch.set_num_threads(opts.threads)
        cv2.setNumThreads(opts.threads)
    try:
        return _run(opts, root)
    finally:  # a library caller keeps its own thread settings
        torch.set_num_threads(threads[0])
        cv2.setNumThreads(threads[1])


def _run(opts: EvalOptions, root: Path) -> dict[str, Any]:
    ckpt = load_checkpoint(opts.checkpoint, expect=opts.expect_model)
    log.info("evaluating %s (sha256 %s...)", ckpt.path, ckpt.sha256[:12])

    skipped = {t: r for t in opts.tasks if (r := missing_reason(t, root, opts.detector))}
    if opts.lfw_folds and ("lfw" not in opts.tasks or "lfw" in skipped):
        log.warning("--lfw-folds is ignored: the lfw task does not run")
    lfw_plan = None
    if "lfw" in opts.tasks and "lfw" not in skipped:  # refuse an overlapping fold before any image is read
        lfw_plan = lfw_eval.plan_lfw(ckpt.trained_on, root / "lfw", opts.lfw_folds, opts.quick)
        if not lfw_plan.report:
            per_fold = ", ".join(f"fold {f}: {n}" for f, n in lfw_plan.excluded.items())
            skipped["lfw"] = (f"lfw skipped: every LFW fold holds people the checkpoint trained on "
                              f"({per_fold}); no fold can be reported")
    for reason in skipped.values():
        log.warning(reason)
    if all(t in skipped for t in opts.tasks):
        raise EvaluationError("no requested task can run: " + " | ".join(skipped[t] for t in opts.tasks))

    out = Path(opts.out) if opts.out else default_out_dir(ckpt.path)
    out.mkdir(parents=True, exist_ok=True)
    device = _device(opts.device)
    ctx = EvalContext(ckpt, out, opts.detector, opts.cache_dir, device, opts.batch_size, opts.quick, opts.seed,
                      opts.progress)
    (out / "evaluation_args.json").write_text(
        json.dumps(_args_record(opts, ckpt, root, out, device), indent=2, default=str) + "\n", encoding="utf-8")

    result: dict[str, Any] = {"checkpoint": ckpt.summary(), "data": str(root), "tasks": list(opts.tasks),
                              "quick": opts.quick, "out": str(out)}
    seconds: dict[str, float] = {}
    for task in opts.tasks:
        key = JSON_KEYS[task]
        if task in skipped:
            result[key] = {"skipped": skipped[task]}
            continue
        t0 = time.perf_counter()
        log.info("task %s ...", task)
        if task == "lfw":
            result[key] = lfw_eval.evaluate_lfw(ctx, lfw_plan)
        elif task == "fer2013":
            result[key] = fer2013_eval.evaluate_fer2013(ctx, root / "fer2013")
        elif task == "ckplus48":
            result[key] = ckplus_eval.evaluate_ckplus(ctx, root / "ckplus48")
        else:
            result[key] = auth_eval.evaluate_auth(ctx, root / "jaffe", opts.auth_expression_threshold)
        seconds[task] = round(time.perf_counter() - t0, 2)
        log.info("task %s done in %.1f s", task, seconds[task])
    result["seconds"] = seconds
    (out / "evaluation.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %s", out / "evaluation.json")
    return result


def summary_lines(result: dict[str, Any]) -> list[str]:
    """A short human-readable summary of an evaluation object."""
    lines = [f"checkpoint {result['checkpoint']['path']}" + (" (quick subsets)" if result.get("quick") else "")]
    for task in TASKS:
        r = result.get(JSON_KEYS[task])
        if r is None:
            continue
        if "skipped" in r:
            lines.append(f"{task}: {r['skipped']}")
        elif task == "lfw":
            lines.append(f"lfw: accuracy {r['accuracy']:.4f} +- {r['accuracy_std']:.4f} on folds {r['folds']}, "
                         f"TAR@FAR=1e-3 {r['tar_at_far_1e-3']:.4f} ({r['tar_at_far_1e-3_impostor_pairs']} "
                         "impostor pairs)")
        elif task == "fer2013":
            private = r["private_test_accuracy"]
            lines.append(f"fer2013: accuracy {r['accuracy']:.4f} on {r['images']} test images, PrivateTest "
                         + (f"{private:.4f}" if private is not None else "n/a"))
        elif task == "ckplus48":
            lines.append(f"ckplus48: accuracy {r['accuracy']:.4f} +- {r['accuracy_std']:.4f} over folds "
                         f"{r['folds_evaluated']}")
        else:
            lines.append(f"auth (JAFFE, {r['pairs']} pairs): Acc_verif {r['acc_verif']:.4f}, Acc_expre "
                         f"{r['acc_expre']:.4f}, Acc_live {r['acc_live']:.4f}, Acc_g {r['acc_g']:.4f}")
            if ap := r.get("all_pairs_verification"):
                lines.append(f"JAFFE all pairs ({ap['genuine_pairs']} same-subject, {ap['impostor_pairs']} "
                             f"different): ROC AUC {ap['roc_auc']:.4f}, TAR@FAR=1e-2 {ap['tar_at_far']['1e-2']['tar']:.4f}, "
                             f"TAR@FAR=1e-3 {ap['tar_at_far']['1e-3']['tar']:.4f}")
    lines.append(f"report: {result['out']}")
    return lines


def run_branch2_ablation(opts: EvalOptions, variants: str | None = None) -> dict[str, Any]:
    """The Table I ablation (:mod:`.ablation`) of ``opts.checkpoint`` on ``<data>/ckplus48``."""
    from .ablation import parse_variants, run_ablation

    chosen = parse_variants(variants)
    root = _data_folder(opts.data)
    reason = missing_reason("ckplus48", root, opts.detector)
    if reason:
        raise EvaluationError(reason.replace("ckplus48 skipped", "the ablation needs CK+48"))
    ckpt = load_checkpoint(opts.checkpoint, expect=opts.expect_model)
    default = default_out_dir(ckpt.path)
    out = Path(opts.out) if opts.out else default.with_name(default.name + "-ablation")
    out.mkdir(parents=True, exist_ok=True)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    ctx = EvalContext(ckpt, out, opts.detector, opts.cache_dir, _device(opts.device), opts.batch_size, opts.quick,
                      opts.seed, opts.progress)
    return run_ablation(ctx, root / "ckplus48", chosen)
