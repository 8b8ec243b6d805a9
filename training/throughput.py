"""Stage 1 training throughput on this machine: images per second for each way of running a step.

``facelive-train throughput`` builds Stage 1's real data (the face and teacher caches of
``--config``) and times real optimiser steps of the Stage 1 graph (trunk + Branch 1 +
identity classifier + softmax, class-wise triplet and teacher losses, SGD, centre update)
for each setting below, in one run, so the rows compare under the same load. Every
setting runs ``rounds`` times, interleaved with the others (A B C .. A B C ..), and its
best round is kept: on a shared machine a slow round means another process took the
cores, not a slower setting.

The profile splits each timed step into data (building the batch), forward, loss,
backward, optimiser and centre update, so it says where the time goes.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import TrainConfig
from .data.datasets import EpochBatchSampler, FaceCropDataset
from .data.sources import StageData, data_root, identity_data
from .losses import Stage1Loss
from .model import FaceLiveNet

log = logging.getLogger(__name__)

PHASES = ("data", "forward", "loss", "backward", "optimizer", "centres")


@dataclass(frozen=True)
class Setting:
    """One way of running Stage 1 steps."""

    name: str
    loader: str = "batch"  # "per_image": __getitem__ + default collate (the loader before); "batch": __getitems__
    bf16: bool = False
    channels_last: bool = False
    threads: int = 1
    processes: int = 1  # >1: DistributedDataParallel (gloo) over that many processes, `threads` each
    memmap: bool = False  # crops read from the cache file (grey, one channel) instead of RAM
    compile: bool = False


SETTINGS = (
    Setting("fp32, per-image loader (before)", loader="per_image"),
    Setting("fp32, batch loader"),
    Setting("fp32, batch loader, memmap'd cache", memmap=True),
    Setting("channels_last", channels_last=True),
    Setting("bf16 autocast", bf16=True),
    Setting("bf16 + channels_last", bf16=True, channels_last=True),
    Setting("bf16 + channels_last, 2 threads", bf16=True, channels_last=True, threads=2),
    Setting("bf16 + channels_last, 2 processes x 1 thread (DDP)", bf16=True, channels_last=True, processes=2),
    Setting("bf16 + channels_last, torch.compile", bf16=True, channels_last=True, compile=True),
)


def _memmap_dataset(ds: FaceCropDataset, folder: Path) -> FaceCropDataset:
    """The same dataset with its crops in a one-channel .npy read through a memmap."""
    path = folder / "crops.npy"
    if not path.is_file():
        np.save(path, np.ascontiguousarray(ds.crops[..., :1]))
    crops = np.load(path, mmap_mode="r")
    return FaceCropDataset(crops, ds.labels, ds.cfg, ds.augment, ds.pad, ds.flip, ds.seed, ds.targets)


class _PerImage(torch.utils.data.Dataset):
    """A dataset seen one image at a time (hides ``__getitems__``, so the loader collates item by item)."""

    def __init__(self, dataset: FaceCropDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return self.dataset[i]


def _steps(cfg: TrainConfig, data: StageData, setting: Setting, steps: int, warmup: int, rank: int = 0,
           world: int = 1) -> dict[str, Any]:
    """Time ``steps`` Stage 1 steps after ``warmup`` ones; returns images/s and the per-phase seconds."""
    from .stages import IdentityNet, set_trainable
    from .trainer import make_loader, make_optimizer, step_context, train_step

    torch.set_num_threads(setting.threads)
    torch.manual_seed(cfg.seed)
    run_cfg = replace(cfg, cpu_bf16=setting.bf16, channels_last=setting.channels_last)
    device = torch.device("cpu")
    model = FaceLiveNet(cfg.model)
    set_trainable(model.expression_modules(), False)  # Stage 1 trains the stem and Branch 1 only
    net: torch.nn.Module = IdentityNet(model, len(data.class_names))
    loss_fn = Stage1Loss(len(data.class_names), cfg.model.embedding_dim, cfg.loss.alpha, cfg.loss.beta,
                         cfg.loss.theta, cfg.loss.centre_rate, cfg.loss.label_smoothing,
                         cfg.loss.teacher_weight if cfg.data.teacher else 0.0)
    ctx = step_context(run_cfg, 1, device)
    if ctx.channels_last:
        net.to(memory_format=torch.channels_last)
    opt = make_optimizer([{"params": list(net.parameters())}], cfg.stage1)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    reduce = None
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        from .distributed import all_reduce_sum

        net = DistributedDataParallel(net)
        reduce = all_reduce_sum
    if setting.compile:
        net = torch.compile(net)
    batch = cfg.stage1.batch_size // world
    sampler = EpochBatchSampler(len(data.dataset), batch, cfg.seed + 1, 0, rank, world)
    if setting.loader == "per_image":
        loader = torch.utils.data.DataLoader(_PerImage(data.dataset), batch_sampler=sampler, num_workers=0)
    else:
        loader = make_loader(data.dataset, sampler, 0, False, cfg.seed)
    it = iter(loader)
    timings: dict[str, float] = {}
    images, started = 0, 0.0
    for i in range(warmup + steps):
        if i == warmup:
            timings, images, started = {}, 0, time.perf_counter()
        t0 = time.perf_counter()
        b = next(it)
        timings["data"] = timings.get("data", 0.0) + time.perf_counter() - t0
        _, feats, y, n = train_step(ctx, net, loss_fn, opt, scaler, b, timings)
        t1 = time.perf_counter()
        loss_fn.triplet.update_centres(feats, y, reduce=reduce)
        timings["centres"] = timings.get("centres", 0.0) + time.perf_counter() - t1
        images += n
    seconds = time.perf_counter() - started
    return {"images": images * world, "seconds": seconds, "phases": timings}


def _ddp_worker(rank: int, world: int, port: int, cfg: TrainConfig, root: str | None, setting: Setting, steps: int,
                warmup: int, out_dir: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        data = identity_data(cfg.data, cfg.preprocess, Path(root) if root else None, seed=cfg.seed + 1, progress=False)
        dist.barrier()
        result = _steps(cfg, data, setting, steps, warmup, rank, world)
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def _measure_processes(cfg: TrainConfig, root: Path | None, setting: Setting, steps: int, warmup: int) -> dict[str, Any]:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        mp.start_processes(_ddp_worker, args=(setting.processes, port, cfg, str(root) if root else None, setting,
                                              steps, warmup, tmp), nprocs=setting.processes, start_method="spawn")
        ranks = [json.loads(Path(tmp, f"rank{r}.json").read_text()) for r in range(setting.processes)]
    slowest = max(ranks, key=lambda r: r["seconds"])
    return {"images": ranks[0]["images"], "seconds": slowest["seconds"], "phases": slowest["phases"]}


def measure(cfg: TrainConfig, data_dir: str | Path | None = None, settings: tuple[Setting, ...] = SETTINGS,
            steps: int = 8, warmup: int = 3, rounds: int = 2, progress: bool = True) -> dict[str, Any]:
    """Images/s of Stage 1 for each setting (best of ``rounds`` interleaved rounds), with the profile."""
    root = data_root(data_dir)
    threads_before = torch.get_num_threads()
    data = identity_data(cfg.data, cfg.preprocess, root, seed=cfg.seed + 1, progress=progress)
    best: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        mapped = None
        for r in range(rounds):
            for s in settings:
                if s.name in errors:
                    continue
                log.info("throughput round %d/%d: %s", r + 1, rounds, s.name)
                try:
                    if s.processes > 1:
                        result = _measure_processes(cfg, root, s, steps, warmup)
                    else:
                        run_data = data
                        if s.memmap:
                            mapped = mapped or _memmap_dataset(data.dataset, Path(tmp))
                            run_data = copy.copy(data)
                            run_data.dataset = mapped
                        result = _steps(cfg, run_data, s, steps, warmup)
                except Exception as exc:  # a setting this torch build cannot run is reported, not fatal
                    log.warning("%s failed: %s", s.name, exc)
                    errors[s.name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                    continue
                result["images_per_s"] = result["images"] / result["seconds"]
                if s.name not in best or result["images_per_s"] > best[s.name]["images_per_s"]:
                    best[s.name] = result
    torch.set_num_threads(threads_before)
    rows = []
    base = best.get(settings[0].name, {}).get("images_per_s")
    for s in settings:
        row: dict[str, Any] = {"setting": s.name, **{k: v for k, v in asdict(s).items() if k != "name"}}
        if s.name in errors:
            row["error"] = errors[s.name]
        elif s.name in best:
            b = best[s.name]
            total = sum(b["phases"].values())
            row.update(images_per_s=round(b["images_per_s"], 1),
                       speedup=round(b["images_per_s"] / base, 2) if base else None,
                       profile={k: round(b["phases"].get(k, 0.0) / total, 3) for k in PHASES})
        rows.append(row)
    return {"batch_size": cfg.stage1.batch_size, "images": len(data.dataset), "classes": len(data.class_names),
            "steps": steps, "warmup": warmup, "rounds": rounds, "torch": torch.__version__,
            "cpu_threads_available": os.cpu_count(), "rows": rows}


def markdown(result: dict[str, Any]) -> str:
    """The throughput table (and profile) as Markdown."""
    lines = [f"Stage 1, batch {result['batch_size']}, {result['classes']} classes; best of {result['rounds']} "
             f"interleaved rounds of {result['steps']} steps (torch {result['torch']}).", "",
             "| setting | img/s | x before | " + " | ".join(PHASES) + " |",
             "|---|---|---|" + "---|" * len(PHASES)]
    for row in result["rows"]:
        if "error" in row:
            lines.append(f"| {row['setting']} | failed: {row['error']} |  |" + " |" * len(PHASES))
            continue
        prof = " | ".join(f"{100 * row['profile'][k]:.0f} %" for k in PHASES)
        ratio = "-" if row["speedup"] is None else f"{row['speedup']:.2f}"
        lines.append(f"| {row['setting']} | {row['images_per_s']:.1f} | {ratio} | {prof} |")
    return "\n".join(lines) + "\n"
