"""The paper's Algorithm 1: Stage 1 (stem + Branch 1, identities) then Stage 2 (Branch 2, expressions).

Runs on CPU, one GPU (AMP) or many GPUs/processes with DistributedDataParallel
under ``torchrun``. A run folder holds ``last.pt`` (resumable), ``model.pt``
(the inference checkpoint), ``config.yaml``, ``metrics.jsonl`` and
``provenance.json``. A killed run resumed with ``--resume`` continues at the
same step and reaches the same weights as an uninterrupted one.

A stage is set up once (``_setup_stage``: its :class:`~.stages.StagePlan` with the data, trainable modules,
graph and loss, then the optimiser, scaler, resumed state and batch schedule), then run by one loop
(``_loop``, one ``_step`` per batch) that is the same for both stages.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from . import checkpoint as ckpt_io
from . import distributed as D
from .config import StageConfig, TrainConfig, diff_configs, from_dict, save_config, to_dict
from .data.datasets import EpochBatchSampler, already_batched
from .data.sources import StageData, data_root
from .identity_head import INIT_HEAD_CHOICES
from .model import FaceLiveNet
from .stages import PLANS, ExpressionNet, IdentityNet, StagePlan, StageSetup, set_trainable  # noqa: F401 - re-exported

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lr_at(stage: StageConfig, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """Learning rate for an optimiser step: linear warm-up, then step (x0.1 at epochs) or cosine."""
    if stage.warmup_steps and step < stage.warmup_steps:
        return stage.lr * (step + 1) / stage.warmup_steps
    if stage.schedule == "cosine":
        return 0.5 * stage.lr * (1.0 + math.cos(math.pi * min(step, total_steps) / max(1, total_steps)))
    epoch = step // max(1, steps_per_epoch)
    return stage.lr * 0.1 ** sum(epoch >= e for e in stage.step_epochs)


def make_optimizer(groups: list[dict[str, Any]], stage: StageConfig) -> torch.optim.Optimizer:
    """SGD or AdamW over the trainable parameters of each param group (an ``lr_scale`` key scales the group's
    learning rate at every step)."""
    params = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in groups]
    if stage.optimizer == "sgd":
        return torch.optim.SGD(params, lr=stage.lr, momentum=stage.momentum, weight_decay=stage.weight_decay)
    return torch.optim.AdamW(params, lr=stage.lr, weight_decay=stage.weight_decay)


@dataclass(frozen=True)
class StepContext:
    """How one optimiser step runs: which stage, on which device, with which autocast and memory format."""

    stage: int
    device: torch.device
    autocast_dtype: torch.dtype | None  # None: full precision
    channels_last: bool = False


def step_context(cfg: TrainConfig, stage: int, device: torch.device) -> StepContext:
    """The step settings ``cfg`` asks for on ``device`` (AMP on CUDA, optional bf16 autocast on CPU)."""
    if device.type == "cuda":
        dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cfg.amp else None
    else:
        dtype = torch.bfloat16 if cfg.cpu_bf16 else None
    return StepContext(stage, device, dtype, cfg.channels_last)


def train_step(ctx: StepContext, net: nn.Module, loss_fn: nn.Module | None, opt: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, batch, timings: dict[str, float] | None = None) -> tuple[dict[str, float], torch.Tensor | None, torch.Tensor, int]:
    """One optimiser step on ``batch``; returns (loss parts, Stage 1 features, labels, batch size).

    With ``timings`` the seconds spent in forward, loss, backward and the optimiser are added to
    it (synchronous on CPU; the profile of ``facelive-train throughput``).
    """
    clock = time.perf_counter
    t = clock()
    x, y = batch[0].to(ctx.device, non_blocking=True), batch[1].to(ctx.device, non_blocking=True)
    if ctx.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    teacher = batch[2].to(ctx.device, non_blocking=True) if len(batch) > 2 else None
    with torch.autocast(device_type=ctx.device.type, dtype=ctx.autocast_dtype or torch.float32,
                        enabled=ctx.autocast_dtype is not None):
        if loss_fn is not None:  # Stage 1, or Stage 2 with a trainable shared stem: (logits, Branch 1 features)
            logits, feats = net(x)
        else:
            logits, feats = net(x), None
    t_fwd = clock()
    if loss_fn is not None:
        loss, parts = loss_fn(logits, feats, y, teacher)
    else:
        loss = F.cross_entropy(logits.float(), y)
        parts = {"loss": float(loss.detach())}
    labelled = y >= 0  # Stage 1's teacher-only rows have no class
    parts["accuracy"] = float((logits.argmax(1) == y)[labelled].float().mean()) if labelled.any() else 0.0
    t_loss = clock()
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    t_bwd = clock()
    scaler.step(opt)
    scaler.update()
    if timings is not None:
        for key, dt in (("forward", t_fwd - t), ("loss", t_loss - t_fwd), ("backward", t_bwd - t_loss),
                        ("optimizer", clock() - t_bwd)):
            timings[key] = timings.get(key, 0.0) + dt
    return parts, feats, y, len(x)


@dataclass
class StageRun:
    """A stage in progress: its plan, how a step runs, the optimiser, the batch schedule, the step reached,
    and the running means logged every ``log_every`` steps."""

    plan: StagePlan
    step_ctx: StepContext
    ddp: nn.Module  # the plan's graph, wrapped in DistributedDataParallel when distributed
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    reduce: Callable | None  # the all-reduce of the centre update when distributed
    steps_per_epoch: int
    total: int
    step: int
    bar: Any = None
    window: dict[str, float] = field(default_factory=dict)
    window_n: int = 0
    seen: int = 0
    started: float = field(default_factory=time.perf_counter)

    def record(self, parts: dict[str, float], images: int) -> float:
        """Add a step's loss parts to the window; returns the images per second since the stage (re)started."""
        self.seen += images
        for k, v in parts.items():
            self.window[k] = self.window.get(k, 0.0) + v
        self.window_n += 1
        return self.seen / max(1e-9, time.perf_counter() - self.started)

    def take_window(self) -> dict[str, float]:
        """The means of the window, which starts again."""
        means = {k: v / self.window_n for k, v in self.window.items()}
        self.window, self.window_n = {}, 0
        return means

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()


def make_loader(dataset, sampler, num_workers: int, pin_memory: bool, seed: int) -> DataLoader:
    """A DataLoader over ``sampler``'s batches; datasets that build whole batches skip collation."""
    batched = hasattr(dataset, "__getitems__")
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(seed), persistent_workers=False,
                      collate_fn=already_batched if batched else None)


class Trainer:
    """Runs the stages listed in ``cfg.stages`` into ``out_dir``."""

    def __init__(self, cfg: TrainConfig, out_dir: str | Path, data_dir: str | Path | None = None, progress: bool = True):
        if cfg.init_head not in INIT_HEAD_CHOICES:
            raise ValueError(f"init_head {cfg.init_head!r} is not one of {', '.join(INIT_HEAD_CHOICES)}")
        self.cfg = cfg
        self.out = Path(out_dir)
        self.root = data_root(data_dir)
        self.progress = progress
        self.env = D.setup()
        if cfg.threads and self.env.device.type == "cpu":
            torch.set_num_threads(cfg.threads)
        self.model = FaceLiveNet(cfg.model).to(self.env.device)
        self.state: dict[str, Any] = {"completed_stages": [], "stage": None, "step": 0}
        self.trained_on: dict[str, Any] = {}
        self.heads: dict[str, Any] = {}  # what finished stages keep for a later fine-tune (identity_head.py)
        self.init_heads: dict[str, Any] = {}  # ... and those the init checkpoint kept
        self._resume_blob: dict[str, Any] | None = None

    # ---- resume -------------------------------------------------------------------------
    def _load_resume(self) -> None:
        last = self.out / "last.pt"
        if not last.is_file():
            raise ckpt_io.CheckpointError(f"--resume: no {last} to resume from (start without --resume)")
        blob = ckpt_io.load(last)
        # through the dataclasses first, so keys added since the run started count as their defaults
        differing = diff_configs(to_dict(from_dict(TrainConfig, blob["config"])), to_dict(self.cfg))
        if differing:
            raise ckpt_io.CheckpointError(
                f"--resume: the run in {self.out} used a different config; differing keys: {', '.join(differing)}"
            )
        self.model.load_state_dict(blob["model"])
        self.state = blob["state"]
        self.trained_on = blob.get("trained_on", {})
        self.heads = blob.get("heads", {})  # a resumed stage takes its classifier from the checkpoint, not init_heads
        torch.set_rng_state(blob["torch_rng"])
        self._resume_blob = blob
        self._truncate_metrics()
        log.info("resuming %s at stage %s step %d", self.out, self.state["stage"], self.state["step"])

    def _truncate_metrics(self) -> None:
        """Drop log lines written after the checkpoint we resume from (they will be written again)."""
        path = self.out / "metrics.jsonl"
        if not (self.env.is_main and path.is_file()):
            return
        done, stage, step = set(self.state["completed_stages"]), self.state["stage"], self.state["step"]
        keep = [line for line in path.read_text(encoding="utf-8").splitlines()
                if (r := json.loads(line))["stage"] in done or (r["stage"] == stage and r["step"] <= step)]
        path.write_text("".join(line + "\n" for line in keep), encoding="utf-8")

    def _init_from(self, path: str) -> None:
        """Start from another run's weights; its completed stages and training data carry over."""
        blob = ckpt_io.load(path)
        self.model.load_state_dict(ckpt_io.model_from_checkpoint(blob, expect=self.cfg.model).state_dict())
        self.trained_on = dict(blob.get("trained_on", {}))
        self.init_heads = dict(blob.get("heads", {}))
        self.heads = dict(self.init_heads)
        done = blob.get("completed_stages", blob.get("state", {}).get("completed_stages", []))
        self.state["init_completed_stages"] = list(done)
        log.info("initialised from %s (stages %s done there)", path, self.state["init_completed_stages"])

    def _save_last(self, extra: dict[str, Any]) -> None:
        if not self.env.is_main:
            return
        blob = {"format": ckpt_io.CHECKPOINT_FORMAT, "model": self.model.state_dict(), "config": to_dict(self.cfg),
                "state": dict(self.state), "trained_on": self.trained_on, "heads": self.heads,
                "torch_rng": torch.get_rng_state(), **extra}
        ckpt_io.save_atomic(blob, self.out / "last.pt")

    # ---- main entry -----------------------------------------------------------------------
    def fit(self, resume: bool = False, stop_after_steps: int | None = None) -> Path | None:
        """Train every configured stage; returns the inference checkpoint path (None if stopped early)."""
        if self.env.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        D.barrier(self.env)
        if resume:
            self._load_resume()
        else:
            if (self.out / "last.pt").exists():
                raise ckpt_io.CheckpointError(f"{self.out} already holds a run; pass --resume or choose another --out")
            seed_everything(self.cfg.seed)
            self.model = FaceLiveNet(self.cfg.model).to(self.env.device)
            if self.cfg.init_checkpoint:
                self._init_from(self.cfg.init_checkpoint)
        if self.env.is_main:
            save_config(self.cfg, self.out / "config.yaml")
        self._steps_this_call = 0
        for stage in self.cfg.stages:
            if stage in self.state["completed_stages"]:
                continue
            finished = self._run_stage(stage, stop_after_steps)
            if not finished:
                return None
        return self._finish()

    def _stage_data(self, plan: type[StagePlan]) -> StageData:
        kwargs = dict(seed=self.cfg.seed + plan.stage, progress=self.progress and self.env.is_main)
        if self.env.is_main:  # rank 0 fills the face cache; the others then read it
            data = plan.build_data(self.cfg.data, self.cfg.preprocess, self.root, **kwargs)
        D.barrier(self.env)
        if not self.env.is_main:
            data = plan.build_data(self.cfg.data, self.cfg.preprocess, self.root, **kwargs)
        return data

    def _run_stage(self, stage: int, stop_after_steps: int | None) -> bool:
        """Set the stage up, then run its steps; False when stopped early (resumably)."""
        run = self._setup_stage(stage)
        return self._loop(run, stop_after_steps)

    def _setup_stage(self, stage: int) -> StageRun:
        """The stage's data and plan, optimiser, scaler, resumed state and batch schedule."""
        cfg, env = self.cfg, self.env
        plan_type = PLANS[stage]
        data = self._stage_data(plan_type)
        resuming = self.state["stage"] == stage
        if resuming:
            self._check_same_data(stage, data)
        setup = StageSetup(self.model, cfg, env.device, resuming,
                           reinit_stage2=2 in self.state.get("init_completed_stages", []),
                           progress=self.progress and env.is_main, kept_heads=self.init_heads)
        plan = plan_type.build(setup, data)
        before = self.trained_on.get(f"stage{stage}") if resuming else None
        self.trained_on[f"stage{stage}"] = {
            "classes": plan.recorded_classes(),
            "num_images": len(data.images),
            "images_sha256": hashlib.sha256("\n".join(data.images).encode()).hexdigest(),
            "provenance": data.provenance,
        }
        head_summary = plan.head_summary or (before or {}).get("init_head")
        if head_summary:  # where a fine-tune's classifier started
            self.trained_on[f"stage{stage}"]["init_head"] = head_summary
        if env.is_main:
            (self.out / f"stage{stage}_images.txt").write_text("\n".join(data.images) + "\n", encoding="utf-8")
            if data.target_map is not None:  # how teacher descriptors became targets, for held-out measures
                data.target_map.save(self.out / f"stage{stage}_teacher_target_map.npz")
        scfg = plan.config

        opt = make_optimizer(plan.optimizer_groups(), scfg)
        cuda = env.device.type == "cuda"
        step_ctx = step_context(cfg, stage, env.device)
        if step_ctx.channels_last:
            plan.net.to(memory_format=torch.channels_last)
        scaler = torch.amp.GradScaler("cuda", enabled=cuda and step_ctx.autocast_dtype == torch.float16)

        step = 0
        if resuming and self._resume_blob is not None:
            blob = self._resume_blob
            plan.load_checkpoint_state(blob)
            opt.load_state_dict(blob["optimizer"])
            if "scaler" in blob:
                scaler.load_state_dict(blob["scaler"])
            step = self.state["step"]
        self.state.update(stage=stage, step=step)

        net = plan.net
        ddp = DistributedDataParallel(net, device_ids=[env.device.index] if cuda else None) if env.distributed else net
        spe, total = self._schedule(plan)
        return StageRun(plan, step_ctx, ddp, opt, scaler, D.all_reduce_sum if env.distributed else None,
                        spe, total, step, self._bar(stage, total, step))

    def _schedule(self, plan: StagePlan) -> tuple[int, int]:
        """Optimiser steps per epoch on this rank, and in the whole stage (``epochs``, capped by ``max_steps``)."""
        scfg, env, n = plan.config, self.env, len(plan.data.dataset)
        probe = EpochBatchSampler(n, scfg.batch_size, self.cfg.seed + plan.stage, 0, env.rank, env.world)
        spe = probe.batches_per_epoch()
        if spe == 0:
            raise ValueError(f"stage {plan.stage}: {n} images are fewer than one batch of {scfg.batch_size} x "
                             f"{env.world} ranks")
        total = scfg.epochs * spe
        return spe, min(total, scfg.max_steps) if scfg.max_steps else total

    def _loop(self, run: StageRun, stop_after_steps: int | None) -> bool:
        """Every remaining step of the stage, epoch by epoch; False when stopped early (resumably)."""
        cfg, env, plan = self.cfg, self.env, run.plan
        while run.step < run.total:
            epoch, start = divmod(run.step, run.steps_per_epoch)
            plan.train_mode()
            plan.data.dataset.set_epoch(epoch)
            sampler = EpochBatchSampler(len(plan.data.dataset), plan.config.batch_size, cfg.seed + plan.stage, epoch,
                                        env.rank, env.world, start)
            loader = make_loader(plan.data.dataset, sampler, cfg.data.num_workers, env.device.type == "cuda",
                                 cfg.seed + epoch)
            for batch in loader:
                if run.step >= run.total:
                    break
                if self._step(run, epoch, batch, stop_after_steps):
                    run.close_bar()
                    log.info("stopping after %d steps as asked (resume with --resume)", self._steps_this_call)
                    return False
        run.close_bar()
        D.broadcast_buffers(self.model, env)
        self.state["completed_stages"] = sorted(set(self.state["completed_stages"]) | {plan.stage})
        self.state.update(stage=None, step=0)
        kept = plan.kept_head()
        if kept is not None:
            self.heads[f"stage{plan.stage}"] = kept
        self._checkpoint(run, finished=True)
        return True

    def _step(self, run: StageRun, epoch: int, batch, stop_after_steps: int | None) -> bool:
        """One optimiser step with its bookkeeping (log, progress, checkpoint); True when asked to stop now."""
        cfg, plan = self.cfg, run.plan
        lr = lr_at(plan.config, run.step, run.steps_per_epoch, run.total)
        for g in run.opt.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        parts, feats, y, batch_n = train_step(run.step_ctx, run.ddp, plan.loss_fn, run.opt, run.scaler, batch)
        plan.after_step(feats, y, run.reduce)
        if not math.isfinite(parts["loss"]):
            raise FloatingPointError(f"stage {plan.stage} step {run.step}: loss is {parts['loss']}; lower the learning rate")
        run.step += 1
        self.state["step"] = run.step
        self._steps_this_call += 1
        ips = run.record(parts, batch_n * self.env.world)
        if run.bar is not None:
            run.bar.update(1)
            run.bar.set_postfix(loss=f"{parts['loss']:.3f}", img_s=f"{ips:.0f}", lr=f"{lr:.2g}")
        if run.step % cfg.log_every == 0 or run.step == run.total:
            self._log({"stage": plan.stage, "epoch": epoch, "step": run.step, "lr": lr, **run.take_window(),
                       "images_per_s": round(ips, 1)})
        stop_now = stop_after_steps is not None and self._steps_this_call >= stop_after_steps
        if run.step % cfg.checkpoint_every == 0 or stop_now:
            self._checkpoint(run)
        return stop_now

    def _check_same_data(self, stage: int, data: StageData) -> None:
        """A resumed stage must see the image list it started on (the batches and classes depend on it)."""
        before = self.trained_on.get(f"stage{stage}")
        if not before:
            return
        listed = self.out / f"stage{stage}_images.txt"
        old_images = listed.read_text(encoding="utf-8").split() if listed.is_file() else None
        digest = hashlib.sha256("\n".join(data.images).encode()).hexdigest()
        if digest == before.get("images_sha256"):
            return
        detail = f"{before.get('num_images')} images then, {len(data.images)} now"
        if old_images is not None:
            gone, new = sorted(set(old_images) - set(data.images)), sorted(set(data.images) - set(old_images))
            detail += f"; {len(gone)} gone (e.g. {gone[:3]}), {len(new)} new (e.g. {new[:3]})"
        raise ckpt_io.CheckpointError(f"--resume: stage {stage} of the run in {self.out} was trained on a different "
                                      f"image list ({detail}); start a new run or restore the data")

    def _checkpoint(self, run: StageRun, finished: bool = False) -> None:
        """``last.pt``: mid-stage with the optimiser, scaler and the stage's own state; bare when finished."""
        extra: dict[str, Any] = {}
        if not finished:
            extra = {"optimizer": run.opt.state_dict(), "scaler": run.scaler.state_dict(),
                     **run.plan.checkpoint_state()}
        self._save_last(extra)
        D.barrier(self.env)

    def _finish(self) -> Path:
        env = self.env
        digests = D.gather_digests(self.model, env)
        path = self.out / "model.pt"
        if env.is_main:
            meta = {"trained_on": self.trained_on, "completed_stages": self.state["completed_stages"],
                    "world_size": env.world, "rank_digests": digests}
            ckpt_io.save_atomic(ckpt_io.inference_checkpoint(self.model.cpu(), self.cfg, meta), path)
            self.model.to(env.device)
            prov = {k: v["provenance"] for k, v in self.trained_on.items()}
            (self.out / "provenance.json").write_text(json.dumps(prov, indent=2) + "\n", encoding="utf-8")
            (self.out / "rank_digests.json").write_text(json.dumps(digests) + "\n", encoding="utf-8")
            log.info("wrote %s", path)
        D.barrier(env)
        return path

    def _log(self, record: dict[str, Any]) -> None:
        if not self.env.is_main:
            return
        record = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in record.items()}
        with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        log.info("stage %(stage)s step %(step)s loss %(loss).4f", record)

    def _bar(self, stage: int, total: int, initial: int):
        if not (self.progress and self.env.is_main):
            return None
        try:
            from tqdm import tqdm
        except ImportError:
            return None
        return tqdm(total=total, initial=initial, desc=f"stage {stage}", unit="step", mininterval=1.0)
