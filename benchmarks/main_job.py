"""The README's main job (`make run`): what the toolkit does end to end, on the embedded defaults.

Today: the model's facts, then a short two-stage training run on real faces
(when $FACELIVE_DATA points at the data) with its falling losses. Export and the
benchmark table join as their issues land.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path

log = logging.getLogger("facelivenet.main_job")


def _loss_summary(metrics_path: Path) -> dict[str, dict[str, float]]:
    records = [json.loads(line) for line in metrics_path.read_text().splitlines()]
    out = {}
    for stage in sorted({r["stage"] for r in records}):
        rows = [r for r in records if r["stage"] == stage]
        out[f"stage{stage}"] = {"first_loss": rows[0]["loss"], "last_loss": rows[-1]["loss"],
                                "last_accuracy": rows[-1]["accuracy"], "steps": rows[-1]["step"]}
    return out


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    from facelivenet.training.cli import main as train_main
    from facelivenet.training.data.sources import data_root

    print("== FaceLiveNet model ==", flush=True)
    train_main(["model-info"])
    root = data_root()
    if root is None or not (root / "lfw").is_dir():
        print("FACELIVE_DATA is not set to the face data: skipping the training demo.")
        return 0
    with tempfile.TemporaryDirectory(prefix="facelive-smoke-") as tmp:
        out = Path(tmp) / "run"
        print(f"== two-stage smoke training on real faces from {root} (config: smoke) ==", flush=True)
        code = train_main(["fit", "--config", "smoke", "--data", str(root), "--out", str(out)])
        if code != 0:
            return code
        summary = _loss_summary(out / "metrics.jsonl")
    for stage, s in summary.items():
        print(f"{stage}: loss {s['first_loss']:.3f} -> {s['last_loss']:.3f} over {s['steps']} steps, "
              f"batch accuracy {s['last_accuracy']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
