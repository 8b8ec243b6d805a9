"""`facelive-train`: model facts, two-stage training, evaluation, throughput and the Branch 2 ablation.

Runs on the one runner of every facelivenet command line (edge_runtime/cli_runner.py; ARCHITECTURE.md,
"Commands"): ``--json`` prints one JSON object on stdout, a failure is one ``facelive-train: error: ...`` line
on stderr (and ``{"error", "error_type"}`` on stdout with ``--json``), exit codes from ``constants.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from facelivenet.edge_runtime.cli_common import (HelpFormatter, add_data_option, add_detector_option, add_json_flag,
                                                 add_log_options, add_threads_option)
from facelivenet.edge_runtime.cli_runner import run_command
from facelivenet.edge_runtime.constants import CACHE_ENV, DETECTOR_ENV, EXIT_OK
from facelivenet.edge_runtime.errors import FaceLiveError

PROG = "facelive-train"
CONFIG_DIR = Path(__file__).parent / "configs"
# Besides FaceLiveError (and OSError), what a user can fix: a bad config key or override, an LFW fold out of
# range, a data set smaller than one batch, a loss gone non-finite (lower the learning rate).
USER_ERRORS = (ValueError, FloatingPointError)

EPILOG = """examples:
  facelive-train model-info --json
  facelive-train fit --config smoke --data ../shared/data --out runs/smoke
  facelive-train fit --config default --out runs/default --set stage1.epochs=40
  torchrun --nproc_per_node=4 -m facelivenet.training.cli fit --config default --out runs/ddp
  facelive-train fit --config default --out runs/default --resume
  facelive-train evaluate --checkpoint runs/default/model.pt --data ../shared/data --tasks lfw,auth --json
"""

EVALUATE_HELP = """Evaluate a checkpoint with the protocols of ARCHITECTURE.md, "Metrics"; one JSON object with --json.

  lfw       LFW View 2 (pairs.txt). Only folds whose people the checkpoint never trained on
            are reported; each with the cosine threshold of best accuracy on the other nine
            folds. accuracy (mean), accuracy_std (population), TAR at FAR=1e-3 over the
            reported folds' pairs (with its impostor count), ROC PNG. YuNet alignment; an
            image without a detected face gets a centre crop (counted in the JSON).
  fer2013   accuracy on the test split (PublicTest + PrivateTest) and on PrivateTest alone,
            argmax of the 7 expressions; confusion-matrix PNG (% per true class). FER2013 and
            CK+48 faces are aligned like the checkpoint's Stage 2 training images
            (data.expression_align: centre crop, or YuNet landmarks on the upscaled image).
  ckplus48  6 expressions, 10 subject-disjoint folds (sorted subjects dealt round-robin).
            Per fold Stage 2 is retrained on the frozen stem: Branch 2 re-initialised from
            Branch 1, head re-initialised, AdamW (lr 1e-3, wd 1e-4, cosine), 10 epochs,
            batch 64, on the trunk features of the 9 other folds plus their mirrored
            copies; six-way prediction. Mean +- std of per-fold accuracy.
  auth      the paper's face authentication (eq. 8) on JAFFE: reference = a subject's
            neutral image, probe = another image; 4 balanced cells ID x Ex True/False
            (auth_pairs.csv lists them). Verification threshold chosen leave-one-subject-out;
            expression = argmax (or --auth-expression-threshold). Acc_verif, Acc_expre,
            Acc_live, Acc_g.

A task whose data set is missing under --data is skipped with the reason ({"skipped": ...});
the command fails only when no requested task can run. A checkpoint whose model differs from
--config/--set model.* is refused, naming the keys. Writes evaluation.json, the PNGs and the
resolved arguments to --out."""

EVALUATE_EPILOG = """examples:
  facelive-train evaluate --checkpoint runs/default/model.pt --data ../shared/data --json
  facelive-train evaluate --checkpoint runs/default/model.pt --tasks lfw --lfw-folds 1
  facelive-train evaluate --checkpoint C.pt --quick --tasks fer2013,auth --out /tmp/eval
  facelive-train evaluate --checkpoint C.pt --config default    # refuse another model configuration
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


def _progress(args: argparse.Namespace) -> bool:
    """Progress bars unless the command's --quiet (no bars) or the global -q (errors only) asks otherwise."""
    return not (getattr(args, "no_progress", False) or args.quiet)


def _cmd_model_info(args: argparse.Namespace) -> tuple:
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
    text = (f"FaceLiveNet: {info['params'] / 1e6:.3f} M parameters, {info['flops'] / 1e6:.1f} MFLOPs "
            f"at {info['input_size']}x{info['input_size']}, {info['embedding_dim']}-d embedding, "
            f"expressions: {', '.join(info['expression_labels'])}")
    return EXIT_OK, info, text


def _cmd_fit(args: argparse.Namespace) -> tuple | None:
    from .config import load_config
    from .distributed import teardown
    from .trainer import Trainer

    overrides = list(args.set or [])
    if args.stages:
        overrides.append(f"stages=[{args.stages}]")
    cfg = load_config(_config_path(args.config), overrides)
    trainer = Trainer(cfg, args.out, data_dir=args.data, progress=_progress(args))
    try:
        path = trainer.fit(resume=args.resume, stop_after_steps=args.stop_after_steps)
    finally:
        teardown()
    if not trainer.env.is_main:  # under torchrun only rank 0 prints
        return None
    result = {"checkpoint": str(path) if path else None, "out": str(args.out), "stopped_early": path is None}
    return EXIT_OK, result, None  # without --json nothing on stdout: the log says where the run is


def _cmd_throughput(args: argparse.Namespace) -> tuple:
    from .config import load_config, save_config
    from .throughput import SETTINGS, markdown, measure

    cfg = load_config(_config_path(args.config), list(args.set or []))
    settings = SETTINGS
    if args.settings:
        wanted = [int(i) for i in args.settings.split(",")]
        bad = [i for i in wanted if not 0 <= i < len(SETTINGS)]
        if bad:
            raise FaceLiveError(f"--settings {bad}: rows are numbered 0..{len(SETTINGS) - 1}")
        settings = tuple(SETTINGS[i] for i in wanted)
    result = measure(cfg, args.data, settings, steps=args.steps, warmup=args.warmup, rounds=args.rounds,
                     progress=_progress(args))
    table = markdown(result)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "throughput.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        (out / "throughput.md").write_text(table, encoding="utf-8")
        save_config(cfg, out / "config.yaml")
    return EXIT_OK, result, table.rstrip("\n")


def _cmd_evaluate(args: argparse.Namespace) -> tuple:
    from .evaluation.evaluate import (EvalOptions, expected_model_config, parse_folds, parse_tasks,
                                      run_evaluation, summary_lines)

    opts = EvalOptions(
        checkpoint=args.checkpoint, data=args.data, tasks=parse_tasks(args.tasks), out=args.out, quick=args.quick,
        lfw_folds=parse_folds(args.lfw_folds),
        expect_model=expected_model_config(_config_path(args.config), args.set),
        detector=args.detector, cache_dir=args.cache_dir, device=args.device, batch_size=args.batch_size,
        threads=args.threads, seed=args.seed, auth_expression_threshold=args.auth_expression_threshold,
        progress=_progress(args),
    )
    result = run_evaluation(opts)
    return EXIT_OK, result, "\n".join(summary_lines(result))


def _cmd_ablation(args: argparse.Namespace) -> tuple:
    from .evaluation.ablation import markdown
    from .evaluation.evaluate import EvalOptions, run_branch2_ablation

    opts = EvalOptions(checkpoint=args.checkpoint, data=args.data, tasks=("ckplus48",), out=args.out,
                       quick=args.quick, detector=args.detector, cache_dir=args.cache_dir, device=args.device,
                       batch_size=args.batch_size, threads=args.threads, seed=args.seed, progress=_progress(args))
    result = run_branch2_ablation(opts, args.variants)
    return EXIT_OK, result, markdown(result).rstrip("\n")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """Where faces come from and how the evaluation runs (shared by evaluate and ablation)."""
    add_detector_option(p, f"${DETECTOR_ENV}")
    p.add_argument("--cache-dir", help=f"aligned-face cache (default: ${CACHE_ENV} or ~/.cache/facelivenet)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: 64)")
    add_threads_option(p, None, default_text="torch's choice")
    p.add_argument("--seed", type=int, default=0, help="seed of the CK+48 per-fold training (default: 0)")


def _command(sub: argparse._SubParsersAction, name: str, handler, help_: str, description: str | None = None,
             epilog: str | None = None, quiet: str | None = "no progress bars") -> argparse.ArgumentParser:
    """A subcommand's parser with its handler and, for a command with progress bars, its own --quiet (which
    only hides the bars: the global -q before the command quiets the log too)."""
    p = sub.add_parser(name, help=help_, description=description, epilog=epilog, formatter_class=HelpFormatter)
    if quiet:
        p.add_argument("--quiet", dest="no_progress", action="store_true", help=quiet)
    p.set_defaults(handler=handler)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train FaceLiveNet (the paper's two stages) and report the model's size and cost.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    add_log_options(parser)
    sub = parser.add_subparsers(dest="command", required=True)

    info = _command(sub, "model-info", _cmd_model_info, "parameters, FLOPs, input size, embedding size, labels",
                    quiet=None)
    info.add_argument("--config", help="YAML file or shipped config name (default: built-in defaults)")
    info.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. model.c_width=64")
    info.add_argument("--input-size", type=int, help="input side in pixels (e.g. 160 as in the paper)")
    add_json_flag(info)

    fit = _command(
        sub, "fit", _cmd_fit, "Stage 1 (stem + identity branch) then Stage 2 (expression branch)",
        "Algorithm 1 of the paper. Stage 1 trains the stem and Branch 1 on identities with "
        "softmax + class-wise triplet loss; Stage 2 freezes them, initialises Branch 2 from Branch 1 "
        "and trains it on expressions. Launch under torchrun for DistributedDataParallel.",
        EPILOG, quiet="no progress bar (-q before the command: errors only, too)")
    fit.add_argument("--config", default="default", help="YAML file or shipped config: default, smoke (default: default)")
    fit.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. stage1.epochs=5")
    add_data_option(fit, "lfw/, fer2013/ ...")
    fit.add_argument("--out", required=True, help="run folder for checkpoints, config and logs")
    fit.add_argument("--stages", help="comma list of stages to run, e.g. 1 or 1,2")
    fit.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    fit.add_argument("--stop-after-steps", type=int, help="stop (resumably) after N optimiser steps in this call")
    add_json_flag(fit, "the checkpoint path")

    ev = _command(sub, "evaluate", _cmd_evaluate,
                  "the paper's metrics of a checkpoint: LFW, FER2013, CK+48, JAFFE authentication",
                  EVALUATE_HELP, EVALUATE_EPILOG)
    ev.add_argument("--checkpoint", help="checkpoint .pt (default: the shipped model, training/default_model/model.pt)")
    add_data_option(ev, "lfw/, fer2013/, ckplus48/, jaffe/")
    ev.add_argument("--tasks", default="lfw,fer2013,ckplus48,auth",
                    help="comma list of lfw, fer2013, ckplus48, auth (default: all four)")
    add_json_flag(ev)
    ev.add_argument("--out", help="report folder (default: reports/eval/<checkpoint name>/)")
    ev.add_argument("--quick", action="store_true",
                    help="small deterministic subsets (LFW: 15+15 pairs per fold, one unseen fold reported; "
                    "FER2013: 300 test images; CK+48: 3 folds, 3 epochs; JAFFE: the full pair list)")
    ev.add_argument("--lfw-folds", help="LFW folds to report, e.g. 1 or 1,4 (default: every fold the checkpoint "
                    "never trained on; an overlapping fold is refused)")
    ev.add_argument("--config", help="state the expected model configuration (YAML or shipped name); "
                    "a checkpoint that differs is refused")
    ev.add_argument("--set", action="append", metavar="model.KEY=VALUE",
                    help="state an expected model key, e.g. model.embedding_dim=128")
    _add_run_options(ev)
    ev.add_argument("--auth-expression-threshold", type=float, metavar="P",
                    help="JAFFE: the probe shows the asked expression when P(asked) >= P "
                    "(default: when the asked expression is the argmax)")

    tp = _command(
        sub, "throughput", _cmd_throughput,
        "Stage 1 training images/s on this machine for each CPU setting (loader, bf16, channels_last, ...)",
        "Time real Stage 1 optimiser steps (the --config's data, caches and losses) for each setting: "
        "the per-image loader, the batch loader, a memmap'd face cache, channels_last, bf16 autocast, 2 threads, "
        "2 processes (DDP) and torch.compile. Every setting runs --rounds times, interleaved, and its best round "
        "is kept; the profile splits a step into data, forward, loss, backward, optimiser and centre update. "
        "Writes throughput.json, throughput.md and config.yaml to --out.",
        "examples:\n  facelive-train throughput --data ../shared/data --out reports/throughput\n"
        "  facelive-train throughput --settings 0,5 --steps 4 --rounds 1\n"
        "  facelive-train throughput --set data.teacher= --set data.identity_roots=[]")
    tp.add_argument("--config", default="default", help="YAML file or shipped config (default: default)")
    tp.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
    add_data_option(tp, "lfw/, idfaces/ ...")
    tp.add_argument("--settings", help="comma list of row numbers to run (default: all)")
    tp.add_argument("--steps", type=int, default=8, help="timed steps per setting and round (default: 8)")
    tp.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: 3)")
    tp.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best is kept (default: 2)")
    tp.add_argument("--out", help="report folder")
    add_json_flag(tp)

    ab = _command(
        sub, "ablation", _cmd_ablation,
        "the paper's Table I: Branch 2 variants (1 or 2 C blocks, + Reduction-B) on CK+48",
        "Keep the checkpoint's stem and Branch 1, rebuild Branch 2 as each variant, and score it with "
        "the CK+48 protocol of `evaluate` (10 subject folds, Branch 2 initialised from Branch 1 and retrained per "
        "fold). Variants: c1 = one Inception-ResNet-C block; c2 = two (shipped); rb_c2 = its own Reduction-B, "
        "then two C blocks. Writes ablation.json, ablation.md and a confusion PNG per variant to --out.",
        "examples:\n  facelive-train ablation --data ../shared/data --json\n"
        "  facelive-train ablation --checkpoint runs/x/model.pt --variants c1,c2 --quick")
    ab.add_argument("--checkpoint", help="checkpoint .pt (default: the shipped model)")
    add_data_option(ab, "ckplus48/")
    ab.add_argument("--variants", help="comma list of c1, c2, rb_c2 (default: all three)")
    ab.add_argument("--quick", action="store_true", help="3 folds, 3 epochs (a smoke test, not a result)")
    add_json_flag(ab)
    ab.add_argument("--out", help="report folder (default: reports/eval/<checkpoint name>-ablation/)")
    _add_run_options(ab)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``facelive-train``; returns the exit code (ARCHITECTURE.md, "Commands")."""
    return run_command(PROG, build_parser(), argv, user_errors=USER_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
