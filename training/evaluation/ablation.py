"""The paper's Table I ablation: which Branch 2 structure recognises expressions best (on CK+48).

Each variant keeps the checkpoint's stem and Branch 1 (frozen, bit for bit) and
changes only Branch 2; the CK+48 protocol of :mod:`.ckplus_eval` (10 subject
folds, Branch 2 re-initialised from Branch 1 and retrained per fold) scores it.

========  ===========================================================================
variant   Branch 2
========  ===========================================================================
``c1``    one Inception-ResNet-C block
``c2``    two Inception-ResNet-C blocks (the shipped model; the paper's best)
``rb_c2`` its own Reduction-B, then two C blocks ("two plus an earlier block"): the
          branches split before Reduction-B, Branch 2's copy starts from Branch 1's
========  ===========================================================================

For ``rb_c2`` the checkpoint's shared Reduction-B becomes Branch 1's own (the
same weights, so the embedding is unchanged) and the trunk ends one block
earlier. :func:`variant_checkpoint` checks that only Branch 2 changed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..model import FaceLiveNet, count_parameters
from .ckplus_eval import CkplusRecipe, evaluate_ckplus
from .runner import EvalContext, LoadedCheckpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    model_overrides: dict[str, Any]


VARIANTS: tuple[Variant, ...] = (
    Variant("c1", "1 x Inception-ResNet-C", {"expression_c_blocks": 1}),
    Variant("c2", "2 x Inception-ResNet-C (shipped)", {"expression_c_blocks": 2, "expression_branch_split": "block_c"}),
    Variant("rb_c2", "Reduction-B + 2 x Inception-ResNet-C",
            {"expression_c_blocks": 2, "expression_branch_split": "reduction_b"}),
)
VARIANT_NAMES = tuple(v.name for v in VARIANTS)


class AblationError(ValueError):
    """A variant that cannot be built from the checkpoint, or an unknown variant name."""


def parse_variants(text: str | None) -> tuple[Variant, ...]:
    """``"c1,c2"`` -> those variants in table order; all of them for None."""
    if not text:
        return VARIANTS
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in VARIANT_NAMES]
    if unknown or not names:
        raise AblationError(f"unknown Branch 2 variant {', '.join(unknown) or '(none)'}; valid: {', '.join(VARIANT_NAMES)}")
    return tuple(v for v in VARIANTS if v.name in names)


def _mapped_state(state: dict[str, Any], shared_reduction: bool, split_reduction: bool) -> dict[str, Any]:
    """The checkpoint's weights renamed for a model whose Reduction-B moved into the branches."""
    if not (shared_reduction and split_reduction):
        return dict(state)
    out = {}
    for key, value in state.items():
        out["identity_branch.reduction." + key[len("reduction_b."):] if key.startswith("reduction_b.") else key] = value
    return out


def variant_checkpoint(ckpt: LoadedCheckpoint, variant: Variant) -> LoadedCheckpoint:
    """The checkpoint with Branch 2 rebuilt as ``variant`` (stem and Branch 1 weights unchanged)."""
    base = ckpt.config.model
    cfg = dataclasses.replace(base, **variant.model_overrides)
    if base.expression_branch_split == "reduction_b" and cfg.expression_branch_split == "block_c":
        raise AblationError("the checkpoint's branches split before Reduction-B; a shared Reduction-B variant "
                            "would change Branch 1")
    model = FaceLiveNet(cfg)
    state = _mapped_state(ckpt.blob["model"], base.expression_branch_split == "block_c",
                          cfg.expression_branch_split == "reduction_b")
    target = model.state_dict()
    usable = {k: v for k, v in state.items() if k in target and target[k].shape == v.shape}
    missing = [k for k in target if k not in usable]
    if any(not k.startswith("expression_branch.") for k in missing):
        raise AblationError(f"variant {variant.name}: checkpoint weights missing for "
                            f"{[k for k in missing if not k.startswith('expression_branch.')][:3]}")
    model.load_state_dict(usable, strict=False)
    model.init_expression_branch_from_identity()
    blob = dict(ckpt.blob, model=model.state_dict())
    config = dataclasses.replace(ckpt.config, model=cfg)
    return LoadedCheckpoint(ckpt.path, ckpt.sha256, blob, config, model.eval())


def run_ablation(ctx: EvalContext, ck_root: Path, variants: Sequence[Variant] = VARIANTS,
                 recipe: CkplusRecipe | None = None) -> dict[str, Any]:
    """CK+48 accuracy of each Branch 2 variant; writes ``ablation.json`` and ``ablation.md`` to ``ctx.out_dir``."""
    rows = []
    for v in variants:
        vckpt = variant_checkpoint(ctx.ckpt, v)
        out = ctx.out_dir / v.name
        out.mkdir(parents=True, exist_ok=True)
        vctx = dataclasses.replace(ctx, ckpt=vckpt, out_dir=out)
        log.info("Branch 2 variant %s (%s): %d parameters", v.name, v.description, count_parameters(vckpt.model))
        r = evaluate_ckplus(vctx, ck_root, recipe)
        rows.append({"variant": v.name, "branch2": v.description, "params": count_parameters(vckpt.model),
                     "accuracy": r["accuracy"], "accuracy_std": r["accuracy_std"],
                     "fold_accuracies": r["fold_accuracies"], "pooled_accuracy": r["pooled_accuracy"],
                     "folds_evaluated": r["folds_evaluated"], "confusion_png": f"{v.name}/{r['confusion_png']}"})
        log.info("variant %s: CK+48 %.4f +- %.4f", v.name, r["accuracy"], r["accuracy_std"])
    result = {"task": "Table I ablation of Branch 2 on CK+48 (6 expressions, subject-independent folds)",
              "checkpoint": ctx.ckpt.summary(), "quick": ctx.quick, "variants": rows,
              "recipe": dataclasses.asdict(recipe or CkplusRecipe()),
              "paper_table_1": "the paper found two Inception-ResNet-C blocks best"}
    (ctx.out_dir / "ablation.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (ctx.out_dir / "ablation.md").write_text(markdown(result) + "\n", encoding="utf-8")
    return result


def markdown(result: dict[str, Any]) -> str:
    """The ablation as a Markdown table."""
    lines = ["| Branch 2 | parameters (whole model) | CK+48 accuracy (mean +- std over folds) |", "|---|---|---|"]
    for r in result["variants"]:
        lines.append(f"| {r['branch2']} | {r['params']:,} | {100 * r['accuracy']:.2f} % +- {100 * r['accuracy_std']:.2f} |")
    if result.get("quick"):
        lines.append("\n(quick: a subset of folds and epochs)")
    return "\n".join(lines)
