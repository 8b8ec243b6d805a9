"""The checkpoint an export starts from: model, configs, sha256, provenance and thresholds.

Thresholds are never invented. They come, in this order, from ``--thresholds
FILE`` (a JSON object with the four manifest fields), ``--evaluation FILE`` or
an ``evaluation.json`` next to the checkpoint (the object ``facelive-train
evaluate`` writes, for THIS checkpoint: its sha256 is checked). Without any of
them the manifest gets fail-closed placeholders and says so in
``thresholds.calibrated_on`` ("uncalibrated: ...").
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facelivenet.edge_runtime.manifest import Thresholds, sha256_file
from facelivenet.edge_runtime.preprocess import PreprocessConfig

from .errors import ExportError, require

log = logging.getLogger(__name__)

EVALUATION_NAME = "evaluation.json"
# Fail-closed placeholders, used only when no evaluation exists. A cosine
# threshold of 1.0 accepts no pair at all: an uncalibrated bundle can never
# authenticate anyone by accident. The expression rule P(asked) >= 0.5 is a
# rule (the asked expression holds the majority of the probability), not a
# calibration; DEFAULT_TARGET_FAR is the FAR the calibration is meant to reach.
PLACEHOLDER_VERIFICATION_COSINE = 1.0
PLACEHOLDER_EXPRESSION_PROBABILITY = 0.5
DEFAULT_TARGET_FAR = 1e-3
UNCALIBRATED = "uncalibrated"


def default_checkpoint() -> Path:
    """``training/default_model/model.pt`` inside the installed training package."""
    from facelivenet.training.checkpoint import DEFAULT_CHECKPOINT

    return DEFAULT_CHECKPOINT


def resolve_checkpoint(path: str | Path | None) -> Path:
    if path is None:
        default = default_checkpoint()
        if not default.is_file():
            raise ExportError(
                f"no default model shipped at {default}; pass --checkpoint PATH (e.g. runs/<run>/model.pt)"
            )
        return default
    p = Path(path)
    if not p.is_file():
        raise ExportError(f"checkpoint {p} does not exist" + (" (it is a folder)" if p.is_dir() else ""))
    return p


@dataclass
class CheckpointSource:
    """A loaded checkpoint and everything the manifest takes from it."""

    path: Path
    sha256: str
    blob: dict[str, Any]
    config: Any  # training.config.TrainConfig
    model: Any  # training.model.FaceLiveNet, eval mode, CPU
    thresholds: Thresholds | None = None
    thresholds_source: dict[str, Any] = field(default_factory=dict)

    def model_facts(self) -> dict[str, Any]:
        """Parameters and FLOPs of one batch-1 forward pass (multiply and add counted apart), for the manifest:
        an edge-only benchmark on a device computes its achieved GFLOP/s from them without torch."""
        from facelivenet.training.flops import count_flops
        from facelivenet.training.model import count_parameters

        cfg = self.model.cfg
        return {"params": count_parameters(self.model), "flops": count_flops(self.model, cfg.input_size, cfg.in_channels),
                "input_size": cfg.input_size, "flops_counted_by": "torch.utils.flop_counter (multiply-add = 2)"}

    @property
    def preprocess(self) -> PreprocessConfig:
        return self.config.preprocess

    @property
    def embedding_dim(self) -> int:
        return int(self.config.model.embedding_dim)

    @property
    def completed_stages(self) -> list[int]:
        return [int(s) for s in self.blob.get("completed_stages", [])]

    @property
    def model_version(self) -> str:
        version = self.blob.get("model_version")
        return str(version) if version else f"ckpt-{self.sha256[:12]}"

    def training_provenance(self) -> dict[str, Any]:
        """What the checkpoint was trained on, per stage, and the data sets with their terms."""
        stages: dict[str, Any] = {}
        datasets: list[dict[str, str]] = []
        for stage, info in sorted((self.blob.get("trained_on") or {}).items()):
            if not isinstance(info, dict):
                continue
            prov = dict(info.get("provenance") or {})
            entry = {k: v for k, v in prov.items() if k != "root"}  # local paths stay out of the bundle
            for key in ("num_images", "images_sha256"):
                if key in info:
                    entry[key] = info[key]
            if info.get("classes"):  # Stage 1 only; Stage 2's classes are the expression labels
                entry["num_classes"] = len(info["classes"])
            stages[stage] = entry
            name, terms = prov.get("dataset"), prov.get("terms")
            if name and not any(d["name"] == name for d in datasets):
                datasets.append({"name": str(name), "licence": str(terms or "unknown"), "used_for": stage})
        return {"stages": stages, "datasets": datasets, "completed_stages": self.completed_stages}


def load_source(path: str | Path | None) -> CheckpointSource:
    """Load a checkpoint (default: the shipped model) on the CPU, in eval mode."""
    resolved = resolve_checkpoint(path)
    require("torch", "torch", "reading the checkpoint")
    from facelivenet.training import checkpoint as ckpt_io
    from facelivenet.training.config import TrainConfig, from_dict

    blob = ckpt_io.load(resolved)
    try:
        config = from_dict(TrainConfig, blob["config"])
        model = ckpt_io.model_from_checkpoint(blob)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ExportError(f"checkpoint {resolved} does not hold a usable FaceLiveNet model: {exc}") from exc
    return CheckpointSource(resolved, sha256_file(resolved), blob, config, model.eval())


# --------------------------------------------------------------------------- thresholds


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ExportError(f"cannot read {what} {path}: {exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"{what} {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ExportError(f"{what} {path} must hold a JSON object")
    return data


def thresholds_from_file(path: Path) -> tuple[Thresholds, dict[str, Any]]:
    """A JSON object with verification_cosine, target_far, expression_probability, calibrated_on."""
    data = _read_json(path, "thresholds file")
    data = data.get("thresholds", data)
    try:
        t = Thresholds(**{k: data[k] for k in Thresholds.__dataclass_fields__})
    except KeyError as exc:
        raise ExportError(f"thresholds file {path} lacks field {exc.args[0]!r} "
                          f"(needs {', '.join(Thresholds.__dataclass_fields__)})") from exc
    for name in ("verification_cosine", "target_far", "expression_probability"):
        if _number(getattr(t, name)) is None:
            raise ExportError(f"thresholds file {path}: {name} must be a number")
    if not isinstance(t.calibrated_on, str) or not t.calibrated_on.strip():
        raise ExportError(f"thresholds file {path}: calibrated_on must name the data the thresholds come from")
    return t, {"source": "thresholds file", "file": path.name}


def thresholds_from_evaluation(data: dict[str, Any], path: Path, checkpoint_sha256: str) -> tuple[Thresholds, dict[str, Any]]:
    """Thresholds from a ``facelive-train evaluate`` result made for this checkpoint."""
    made_for = (data.get("checkpoint") or {}).get("sha256") if isinstance(data.get("checkpoint"), dict) else None
    if made_for and made_for != checkpoint_sha256:
        raise ExportError(
            f"{path} was made for another checkpoint (sha256 {made_for[:12]}..., this one {checkpoint_sha256[:12]}...): "
            "re-run facelive-train evaluate on this checkpoint or pass --evaluation/--thresholds"
        )
    if isinstance(data.get("thresholds"), dict):  # an explicit section wins
        explicit = data["thresholds"]
        if all(k in explicit for k in Thresholds.__dataclass_fields__):
            return Thresholds(**{k: explicit[k] for k in Thresholds.__dataclass_fields__}), {
                "source": "evaluation thresholds section", "file": path.name}
    quick = " (quick subsets)" if data.get("quick") else ""
    info: dict[str, Any] = {"source": "evaluation", "file": path.name, "quick": bool(data.get("quick"))}
    notes: list[str] = []

    lfw = data.get("lfw") if isinstance(data.get("lfw"), dict) else {}
    detail = lfw.get("tar_at_far_1e-3_detail") if isinstance(lfw.get("tar_at_far_1e-3_detail"), dict) else {}
    cosine, far = _number(detail.get("threshold")), _number(detail.get("target_far"))
    if cosine is not None and far is not None:
        verification_calibrated = True
        info["verification"] = {"task": "lfw", "folds": lfw.get("folds"), "pairs": lfw.get("pairs_reported"),
                                "impostor_pairs": detail.get("n_impostor"), "far_reached": detail.get("far"),
                                "tar": detail.get("tar")}
        notes.append(f"verification: LFW View 2 folds {lfw.get('folds')} ({lfw.get('pairs_reported')} pairs, "
                     f"{detail.get('n_impostor')} impostor) TAR@FAR={far:g} threshold{quick}")
    else:
        verification_calibrated = False
        cosine, far = PLACEHOLDER_VERIFICATION_COSINE, DEFAULT_TARGET_FAR
        reason = lfw.get("skipped") or "no LFW TAR@FAR result"
        info["verification"] = {"placeholder": True, "reason": reason}
        notes.append(f"verification: fail-closed placeholder {cosine} ({reason})")

    auth = data.get("authentication_jaffe") if isinstance(data.get("authentication_jaffe"), dict) else {}
    expr = _number(auth.get("expression_threshold"))
    if expr is not None:
        info["expression"] = {"task": "authentication_jaffe", "pairs": auth.get("pairs")}
        notes.append(f"expression: JAFFE authentication threshold{quick}")
    else:
        expr = PLACEHOLDER_EXPRESSION_PROBABILITY
        info["expression"] = {"placeholder": True, "rule": "P(asked) >= 0.5"}
        notes.append(f"expression_probability {expr} is an uncalibrated rule (the evaluation used "
                     f"{auth.get('expression_rule', 'no expression threshold')})")
    prefix = "" if verification_calibrated else f"{UNCALIBRATED}: "
    return Thresholds(cosine, far, expr, prefix + f"{path.name}: " + "; ".join(notes)), info


def placeholder_thresholds(reason: str) -> tuple[Thresholds, dict[str, Any]]:
    text = (f"{UNCALIBRATED}: {reason}; verification_cosine {PLACEHOLDER_VERIFICATION_COSINE} is a fail-closed "
            f"placeholder (no pair matches) and expression_probability {PLACEHOLDER_EXPRESSION_PROBABILITY} a rule; "
            "run facelive-train evaluate and re-export, or pass --thresholds")
    return (Thresholds(PLACEHOLDER_VERIFICATION_COSINE, DEFAULT_TARGET_FAR, PLACEHOLDER_EXPRESSION_PROBABILITY, text),
            {"source": "placeholder", "reason": reason})


def resolve_thresholds(source: CheckpointSource, thresholds_file: str | Path | None = None,
                       evaluation_file: str | Path | None = None) -> tuple[Thresholds, dict[str, Any]]:
    """The manifest thresholds for this checkpoint, with where they came from."""
    if thresholds_file:
        p = Path(thresholds_file)
        if not p.is_file():
            raise ExportError(f"thresholds file {p} does not exist")
        return thresholds_from_file(p)
    if evaluation_file:
        p = Path(evaluation_file)
        if not p.is_file():
            raise ExportError(f"evaluation file {p} does not exist")
        return thresholds_from_evaluation(_read_json(p, "evaluation file"), p, source.sha256)
    beside = source.path.parent / EVALUATION_NAME
    if beside.is_file():
        return thresholds_from_evaluation(_read_json(beside, "evaluation file"), beside, source.sha256)
    return placeholder_thresholds(f"no {EVALUATION_NAME} next to the checkpoint {source.path.name}")
