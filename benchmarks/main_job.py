"""The README's main job (`make run`): what the toolkit does end to end, on the embedded defaults.

1. the model's facts (parameters, FLOPs);
2. the shipped default model evaluated on quick subsets of the paper's protocols
   (LFW unseen fold, FER2013, CK+48, JAFFE authentication) when $FACELIVE_DATA
   points at the face data; without a shipped model, a short two-stage training
   run on real faces instead;
3. the shipped model exported to every format x precision (ONNX, TFLite, CoreML;
   fp32, fp16, int8) with the parity gates measured on real faces, and the table.
   A failed gate is shown in the table (FAIL) rather than stopping the job;
4. the simulated presentation-attack suite (quick) against the shipped bundle;
5. ``facelive-bench --quick`` on the shipped default bundle: latency, parity,
   peers and the per-frame pipeline, ending with its table (reports in
   ``reports/main_job/``).
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

log = logging.getLogger("facelivenet.main_job")
REPORTS = Path("reports/main_job")


def _run_json(main, argv: list[str]) -> tuple[int, dict]:
    buf = StringIO()
    with redirect_stdout(buf):
        code = main(argv)
    text = buf.getvalue().strip()
    return code, (json.loads(text.splitlines()[-1]) if text else {})


def _evaluation_table(result: dict) -> list[str]:
    rows = []
    lfw, fer, ck, auth = (result.get(k, {}) for k in ("lfw", "fer2013", "ckplus48", "authentication_jaffe"))
    if "accuracy" in lfw:
        rows.append(f"LFW (unseen folds {lfw['folds']})  accuracy {lfw['accuracy']:.4f}  TAR@FAR=1e-3 {lfw['tar_at_far_1e-3']:.4f}")
    if "accuracy" in fer:
        rows.append(f"FER2013 test                 accuracy {fer['accuracy']:.4f}  (PrivateTest {fer['private_test_accuracy']:.4f})")
    if "accuracy" in ck:
        rows.append(f"CK+48 subject-CV             accuracy {ck['accuracy']:.4f} +- {ck['accuracy_std']:.4f}")
    if "acc_g" in auth:
        rows.append(f"JAFFE authentication         Acc_g {auth['acc_g']:.4f}  Acc_verif {auth['acc_verif']:.4f}  "
                    f"Acc_expre {auth['acc_expre']:.4f}  ({auth['pairs']} pairs)")
    for key, value in result.items():
        if isinstance(value, dict) and "skipped" in value:
            rows.append(f"{key}: skipped ({value['skipped']})")
    return rows


def _smoke_training(train_main, root: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="facelive-smoke-") as tmp:
        out = Path(tmp) / "run"
        print(f"== two-stage smoke training on real faces from {root} (config: smoke) ==", flush=True)
        code = train_main(["fit", "--config", "smoke", "--data", str(root), "--out", str(out), "--quiet"])
        if code:
            return code
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for stage in sorted({r["stage"] for r in records}):
        rows = [r for r in records if r["stage"] == stage]
        print(f"stage {stage}: loss {rows[0]['loss']:.3f} -> {rows[-1]['loss']:.3f} over {rows[-1]['step']} steps")
    return 0


def main() -> int:
    """The main job, with the libraries' known banners kept off the console (:mod:`.banners`)."""
    from .banners import filtered_native_stderr, quiet_loggers

    with filtered_native_stderr():
        quiet_loggers()
        return _main()


def _main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    from facelivenet.training.checkpoint import DEFAULT_CHECKPOINT
    from facelivenet.training.cli import main as train_main
    from facelivenet.training.data.sources import data_root

    print("== FaceLiveNet ==", flush=True)
    train_main(["model-info"])
    root = data_root()
    if root is None or not root.is_dir():
        print("FACELIVE_DATA does not point at the face data: nothing more to show without real faces.")
        return 0
    if not DEFAULT_CHECKPOINT.is_file():
        return _smoke_training(train_main, root)
    print(f"== the shipped default model ({DEFAULT_CHECKPOINT.name}) on quick subsets of the paper's protocols ==", flush=True)
    with tempfile.TemporaryDirectory(prefix="facelive-eval-") as tmp:
        code, result = _run_json(train_main, ["evaluate", "--data", str(root), "--quick", "--json", "--quiet", "--out", tmp])
    if code:
        return code
    print("\n".join(_evaluation_table(result)))
    print("(quick subsets; the full numbers: facelive-train evaluate --json, and the README's results table)")
    code = _export(root)
    if code:
        return code
    code = _attacks(root)
    if code:
        return code
    return _bench(root)


def _attacks(root: Path) -> int:
    from facelivenet.benchmarks.attacks.cli import main as attacks_main

    print("== simulated presentation attacks on JAFFE (quick), the shipped bundle's default file ==", flush=True)
    return attacks_main(["--quick", "--data", str(root), "--out", str(REPORTS / "attacks")])


def _bench(root: Path) -> int:
    from facelivenet.benchmarks.cli import main as bench_main

    print("== facelive-bench --quick on the shipped default bundle (1 thread) ==", flush=True)
    return bench_main(["--quick", "--data", str(root), "--threads", "1", "--out", str(REPORTS / "bench")])


def _export(root: Path) -> int:
    try:
        from facelivenet.export.cli import main as export_main
    except ImportError as exc:
        print(f"export skipped: {exc} (pip install 'facelivenet[export]')")
        return 0
    print("== export: every format x precision, parity-gated on real faces ==", flush=True)
    with tempfile.TemporaryDirectory(prefix="facelive-bundle-") as tmp:
        # --allow-parity-failure: the table shows every gate, passed or not, instead of stopping at the first
        return export_main(["--out", str(Path(tmp) / "bundle"), "--calib", str(root / "lfw" / "images"), "-q",
                            "--allow-parity-failure"])


if __name__ == "__main__":
    sys.exit(main())
