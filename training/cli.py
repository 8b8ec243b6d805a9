"""`facelive-train`: model facts, two-stage training (and, later, evaluation)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from facelivenet.edge_runtime.errors import FaceLiveError

CONFIG_DIR = Path(__file__).parent / "configs"

EPILOG = """examples:
  facelive-train model-info --json
  facelive-train fit --config smoke --data ../shared/data --out runs/smoke
  facelive-train fit --config default --out runs/default --set stage1.epochs=40
  torchrun --nproc_per_node=4 -m facelivenet.training.cli fit --config default --out runs/ddp
  facelive-train fit --config default --out runs/default --resume
"""


def _config_path(name: str | None) -> str | None:
    """A YAML path, or the name of a shipped config (default, smoke)."""
    if not name:
        return None
    if Path(name).is_file():
        return name
    shipped = CONFIG_DIR / f"{name}.yaml"
    if shipped.is_file():
        return str(shipped)
    names = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    raise FaceLiveError(f"config {name!r} is neither a file nor a shipped config ({names})")


def _cmd_model_info(args: argparse.Namespace) -> int:
    from facelivenet.edge_runtime.labels import EXPRESSION_LABELS

    from .config import load_config
    from .flops import count_flops
    from .model import build_model, count_parameters

    overrides = list(args.set or [])
    if args.input_size:
        overrides += [f"model.input_size={args.input_size}", f"preprocess.input_size={args.input_size}"]
    cfg = load_config(_config_path(args.config), overrides)
    model = build_model(cfg.model)
    info = {
        "params": count_parameters(model),
        "flops": count_flops(model, cfg.model.input_size, cfg.model.in_channels),
        "input_size": cfg.model.input_size,
        "embedding_dim": cfg.model.embedding_dim,
        "expression_labels": list(EXPRESSION_LABELS),
    }
    if args.json:
        print(json.dumps(info))
    else:
        print(f"FaceLiveNet: {info['params'] / 1e6:.3f} M parameters, {info['flops'] / 1e6:.1f} MFLOPs "
              f"at {info['input_size']}x{info['input_size']}, {info['embedding_dim']}-d embedding, "
              f"expressions: {', '.join(info['expression_labels'])}")
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    from .config import load_config
    from .distributed import teardown
    from .trainer import Trainer

    overrides = list(args.set or [])
    if args.stages:
        overrides.append(f"stages=[{args.stages}]")
    cfg = load_config(_config_path(args.config), overrides)
    trainer = Trainer(cfg, args.out, data_dir=args.data, progress=not args.quiet)
    try:
        path = trainer.fit(resume=args.resume, stop_after_steps=args.stop_after_steps)
    finally:
        teardown()
    result = {"checkpoint": str(path) if path else None, "out": str(args.out), "stopped_early": path is None}
    if args.json and trainer.env.is_main:
        print(json.dumps(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facelive-train",
        description="Train FaceLiveNet (the paper's two stages) and report the model's size and cost.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("model-info", help="parameters, FLOPs, input size, embedding size, labels")
    info.add_argument("--config", help="YAML file or shipped config name (default: built-in defaults)")
    info.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. model.c_width=64")
    info.add_argument("--input-size", type=int, help="input side in pixels (e.g. 160 as in the paper)")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=_cmd_model_info)

    fit = sub.add_parser(
        "fit",
        help="Stage 1 (stem + identity branch) then Stage 2 (expression branch)",
        description="Algorithm 1 of the paper. Stage 1 trains the stem and Branch 1 on identities with "
        "softmax + class-wise triplet loss; Stage 2 freezes them, initialises Branch 2 from Branch 1 "
        "and trains it on expressions. Launch under torchrun for DistributedDataParallel.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fit.add_argument("--config", default="default", help="YAML file or shipped config: default, smoke (default: default)")
    fit.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. stage1.epochs=5")
    fit.add_argument("--data", help="folder holding lfw/, fer2013/ ... (default: $FACELIVE_DATA)")
    fit.add_argument("--out", required=True, help="run folder for checkpoints, config and logs")
    fit.add_argument("--stages", help="comma list of stages to run, e.g. 1 or 1,2")
    fit.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    fit.add_argument("--stop-after-steps", type=int, help="stop (resumably) after N optimiser steps in this call")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    fit.add_argument("--json", action="store_true", help="print one JSON object with the checkpoint path")
    fit.set_defaults(func=_cmd_fit)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (FaceLiveError, ValueError, FileNotFoundError, FloatingPointError) as exc:
        print(f"facelive-train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
