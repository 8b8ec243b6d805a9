"""DistributedDataParallel on CPU: torchrun with two gloo processes."""

import json
import os
import subprocess
import sys

from facelivenet.training import checkpoint as ckpt_io
from facelivenet.training.config import save_config


def test_torchrun_two_cpu_ranks_end_with_identical_weights(tiny_train_config, tmp_path):
    cfg_path = tmp_path / "tiny.yaml"
    save_config(tiny_train_config, cfg_path)
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "facelivenet.training.cli", "fit", "--config", str(cfg_path), "--out", str(out), "--quiet", "--json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    digests = json.loads((out / "rank_digests.json").read_text())
    assert len(digests) == 2
    assert digests[0] == digests[1]
    ckpt = ckpt_io.load(out / "model.pt")
    assert ckpt["world_size"] == 2 and ckpt["completed_stages"] == [1, 2]
    # 32 images, batch 8 per rank, 2 ranks: 2 steps per epoch, 2 epochs per stage
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 4
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["checkpoint"].endswith("model.pt")
