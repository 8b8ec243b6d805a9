"""DistributedDataParallel on CPU: torchrun with two gloo processes."""

import json
import os
import subprocess
import sys

import pytest

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


@pytest.mark.slow  # three torchrun launches; a fresh-clone CI run once saw a gloo abort at exit here (see teardown)
def test_torchrun_joint_stage2_shares_the_identity_reference_between_ranks(tiny_train_config, tmp_path):
    """Stage 2 with the shared stem trainable, two ranks: each embeds half the faces for the keep term's
    reference and the halves are summed, so the reference is the one a single process computes."""
    import dataclasses

    import numpy as np
    import torch

    from facelivenet.training.data.sources import expression_data
    from facelivenet.training.features import identity_features

    cfg = dataclasses.replace(tiny_train_config, stage2=dataclasses.replace(tiny_train_config.stage2, tune_shared="blocks_b"),
                              loss=dataclasses.replace(tiny_train_config.loss, identity_keep_weight=8.0))
    cfg_path = tmp_path / "tiny.yaml"
    save_config(cfg, cfg_path)
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "facelivenet.training.cli", "fit", "--config", str(cfg_path), "--out", str(out), "--quiet"]

    def run(*extra: str) -> None:
        proc = subprocess.run(base + list(extra), env=env, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stderr[-3000:]

    run("--stop-after-steps", "4")  # Stage 1's last step (2 epochs x 2 steps): its final weights
    stage1 = ckpt_io.load(out / "last.pt")
    assert (stage1["state"]["stage"], stage1["state"]["step"]) == (1, 4)
    run("--resume", "--stop-after-steps", "1")  # Stage 1 closes, Stage 2 computes its reference, one step
    reference = ckpt_io.load(out / "last.pt")["identity_reference"].numpy()
    model = ckpt_io.model_from_checkpoint(stage1)
    crops = expression_data(cfg.data, cfg.preprocess, None, progress=False).dataset.crops
    single = [torch.nn.functional.normalize(identity_features(model, crops, cfg.preprocess, flip=f), dim=1).numpy()
              for f in (False, True)]
    assert reference.shape == (len(crops), 2, cfg.model.embedding_dim)
    np.testing.assert_allclose(reference, np.stack(single, axis=1), atol=1e-4)
    run("--resume")
    digests = json.loads((out / "rank_digests.json").read_text())
    assert digests[0] == digests[1]
