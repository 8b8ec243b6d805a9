"""What differs between the paper's two training stages, built once per stage (Algorithm 1).

Stage 1 trains the stem and Branch 1 on identities (softmax + class-wise triplet loss, the triplet
centres moving after every step); Stage 2 freezes them, starts Branch 2 from Branch 1 and trains it on
expressions. A :class:`StagePlan` holds the stage's pieces (the data, the trainable modules, the
training graph, the loss, what a resumable checkpoint keeps), so ``Trainer`` runs one loop that never
asks which stage it is in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import StageConfig, TrainConfig
from .data.sources import StageData, expression_data, identity_data
from .distributed import all_reduce_sum
from .features import TrunkFeatureDataset, identity_features, trunk_features
from .identity_head import head_state, initial_head
from .losses import ExpressionLoss, Stage1Loss
from .model import FaceLiveNet

log = logging.getLogger(__name__)


class IdentityNet(nn.Module):
    """Stage 1 graph: trunk + Branch 1 + the identity softmax classifier (training only)."""

    def __init__(self, model: FaceLiveNet, num_classes: int):
        super().__init__()
        self.model = model
        self.classifier = nn.Linear(model.cfg.embedding_dim, num_classes, bias=False)
        nn.init.xavier_uniform_(self.classifier.weight)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        prelogits = self.model.features(x, identity=True, expression=False).prelogits
        return self.classifier(prelogits), prelogits


class ExpressionNet(nn.Module):
    """Stage 2 graph: the frozen trunk (no gradient) feeding Branch 2.

    With ``from_trunk`` the inputs already are trunk features (``frozen_trunk_cache``).
    """

    def __init__(self, model: FaceLiveNet, from_trunk: bool = False):
        super().__init__()
        self.model = model
        self.from_trunk = from_trunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.from_trunk:
            with torch.no_grad():
                x = self.model.trunk(x)
        return self.model.features_from_trunk_expression(x)


class JointNet(nn.Module):
    """Stage 2 with a trainable shared stem: one pass through the trunk and both branches; (expression logits,
    Branch 1's prelogits), the second held to its value before the stage by ``ExpressionLoss``. Branch 1
    runs without dropout: the keep term compares the embedding inference gives, not a dropped-out one."""

    def __init__(self, model: FaceLiveNet):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.model.trunk(x)
        return self.model.features_from_trunk_expression(t), self.model.prelogits_from_trunk(t, dropout=False)


def set_trainable(modules, flag: bool) -> None:
    """Switch ``requires_grad`` of every parameter of ``modules``."""
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(flag)


@dataclass(frozen=True)
class StageSetup:
    """What building a stage's plan needs from the run: the model, the config, the device, and state."""

    model: FaceLiveNet
    cfg: TrainConfig
    device: torch.device
    resuming: bool  # this stage continues from a resumable checkpoint
    reinit_stage2: bool  # the init checkpoint already went through Stage 2 (its expression head is reset)
    progress: bool  # show progress bars (rank 0 only)
    kept_heads: dict[str, Any] | None = None  # classifier heads the init checkpoint kept (``heads`` of last.pt)


class StagePlan:
    """One stage's pieces; subclasses build them (:meth:`build`) and say what their checkpoint keeps."""

    stage: ClassVar[int]
    build_data: ClassVar[Callable[..., StageData]]
    trained: ClassVar[str]  # the FaceLiveNet method listing the modules this stage trains ...
    frozen_during: ClassVar[str]  # ... and the one listing those it leaves as they are

    def __init__(self, config: StageConfig, data: StageData, net: nn.Module, loss_fn: Stage1Loss | None,
                 frozen: tuple[nn.Module, ...] = ()):
        self.config = config
        self.data = data
        self.net = net
        self.loss_fn = loss_fn
        self.frozen = frozen  # modules kept in eval mode while training (their BatchNorm statistics stay)
        self.head_summary: dict[str, Any] | None = None  # where a fine-tune's classifier started, if set
        self.shared_params: list[nn.Parameter] = []  # trained at the stage's shared_lr_scale (Stage 2 joint)

    @classmethod
    def stage_config(cls, cfg: TrainConfig) -> StageConfig:
        return getattr(cfg, f"stage{cls.stage}")

    @classmethod
    def build(cls, setup: StageSetup, data: StageData) -> "StagePlan":
        raise NotImplementedError

    @classmethod
    def train_only_own_modules(cls, model: FaceLiveNet) -> None:
        """Gradients for the modules this stage trains, none for the others."""
        set_trainable(getattr(model, cls.frozen_during)(), False)
        set_trainable(getattr(model, cls.trained)(), True)

    def recorded_classes(self) -> list[str] | None:
        """The class names a checkpoint records for this stage (identities; None for expressions)."""
        return None

    def optimizer_groups(self) -> list[dict[str, Any]]:
        """The parameter groups the optimiser steps (``lr_scale``: a group's share of the stage's lr)."""
        return [{"params": list(self.net.parameters()), "lr_scale": 1.0}]

    def train_mode(self) -> None:
        """Training mode for the graph, evaluation mode for the frozen modules."""
        self.net.train()
        for m in self.frozen:
            m.eval()

    def after_step(self, feats: torch.Tensor | None, labels: torch.Tensor, reduce) -> None:
        """Work after each optimiser step (Stage 1: move the triplet loss's class centres)."""

    def checkpoint_state(self) -> dict[str, Any]:
        """The stage's own tensors a resumable checkpoint keeps, beside the optimiser's."""
        return {}

    def kept_head(self) -> dict[str, Any] | None:
        """What a finished stage leaves in ``last.pt`` for a later fine-tune (Stage 1: its classifier)."""
        return None

    def load_checkpoint_state(self, blob: dict[str, Any]) -> None:
        """Restore :meth:`checkpoint_state` from a resumable checkpoint."""


class Stage1Plan(StagePlan):
    """Identities: the stem and Branch 1 train, with a softmax classifier and the class-wise triplet loss."""

    stage = 1
    build_data = staticmethod(identity_data)
    trained, frozen_during = "identity_modules", "expression_modules"

    @classmethod
    def build(cls, setup: StageSetup, data: StageData) -> "Stage1Plan":
        cfg = setup.cfg
        cls.train_only_own_modules(setup.model)
        net = IdentityNet(setup.model, len(data.class_names)).to(setup.device)
        targets = data.dataset.targets
        if targets is not None and targets.shape[-1] != cfg.model.embedding_dim:
            raise ValueError(f"teacher targets have {targets.shape[-1]} dimensions, the embedding "
                             f"{cfg.model.embedding_dim}: set data.teacher_target_dim={cfg.model.embedding_dim}")
        loss_fn = Stage1Loss(len(data.class_names), cfg.model.embedding_dim, cfg.loss.alpha, cfg.loss.beta,
                             cfg.loss.theta, cfg.loss.centre_rate, cfg.loss.label_smoothing,
                             cfg.loss.teacher_weight if cfg.data.teacher else 0.0,
                             cfg.loss.relation_weight if cfg.data.teacher else 0.0).to(setup.device)
        plan = cls(cls.stage_config(cfg), data, net, loss_fn)
        if cfg.init_checkpoint and not setup.resuming and cfg.init_head != "random":
            plan.start_head_from(setup)
        return plan

    def start_head_from(self, setup: StageSetup) -> None:
        """A fine-tune's classifier rows and triplet centres: kept by the init checkpoint, else imprinted."""
        kept = (setup.kept_heads or {}).get("stage1") if setup.cfg.init_head == "auto" else None
        ds = self.data.dataset
        weight, centres, assigned, self.head_summary = initial_head(
            setup.model, ds.crops, ds.labels, self.data.class_names, setup.cfg.preprocess, kept, setup.device,
            seed=setup.cfg.seed, progress=setup.progress)
        with torch.no_grad():
            self.net.classifier.weight[assigned] = weight[assigned].to(setup.device)
            self.loss_fn.triplet.centres[assigned] = centres[assigned].to(setup.device)

    def recorded_classes(self) -> list[str] | None:
        return self.data.class_names

    def kept_head(self) -> dict[str, Any] | None:
        return head_state(self.data.class_names, self.net.classifier.weight, self.loss_fn.triplet.centres)

    def after_step(self, feats: torch.Tensor | None, labels: torch.Tensor, reduce) -> None:
        self.loss_fn.triplet.update_centres(feats, labels, reduce=reduce)

    def checkpoint_state(self) -> dict[str, Any]:
        return {"classifier": self.net.classifier.state_dict(), "loss": self.loss_fn.state_dict()}

    def load_checkpoint_state(self, blob: dict[str, Any]) -> None:
        self.net.classifier.load_state_dict(blob["classifier"])
        self.loss_fn.load_state_dict(blob["loss"])


class Stage2Plan(StagePlan):
    """Expressions: Branch 2 (started from Branch 1) trains on the frozen stem; cross-entropy."""

    stage = 2
    build_data = staticmethod(expression_data)
    trained, frozen_during = "expression_modules", "identity_modules"

    @classmethod
    def build(cls, setup: StageSetup, data: StageData) -> "Stage2Plan":
        model, cfg = setup.model, setup.cfg
        scfg = cls.stage_config(cfg)
        if not setup.resuming:
            copied = model.init_expression_branch_from_identity()
            log.info("stage 2: Branch 2 initialised from Branch 1 (%d tensors copied)", copied)
            if setup.reinit_stage2:
                reset_expression_head(model, cfg)
        cls.train_only_own_modules(model)
        if scfg.tune_shared:
            return cls.build_joint(setup, data)
        net = ExpressionNet(model, from_trunk=scfg.frozen_trunk_cache).to(setup.device)
        if scfg.frozen_trunk_cache:
            data.dataset = trunk_dataset(model, data, cfg, setup.device, setup.progress, cls.stage)
        return cls(scfg, data, net, None, frozen=tuple(model.identity_modules()))

    @classmethod
    def build_joint(cls, setup: StageSetup, data: StageData) -> "Stage2Plan":
        """``stage2.tune_shared``: Branch 2 trains with the shared B blocks and Branch 1 (at ``shared_lr_scale``),
        every face's Branch 1 embedding (plain and mirrored, measured now) held in place by the keep term.
        BatchNorm statistics outside Branch 2 stay Stage 1's (those modules run in eval mode)."""
        model, cfg = setup.model, setup.cfg
        scfg = cls.stage_config(cfg)
        if scfg.frozen_trunk_cache:
            raise ValueError("stage2.tune_shared trains the shared stem, so stage2.frozen_trunk_cache must be false")
        if cfg.loss.identity_keep_weight <= 0:
            raise ValueError("stage2.tune_shared needs loss.identity_keep_weight > 0: without it nothing holds "
                             "Branch 1's embedding while the shared stem moves")
        shared = model.shared_modules(scfg.tune_shared) + model.identity_branch_modules()
        set_trainable(shared, True)
        if not setup.resuming:  # a resumed stage takes the reference it started with from its checkpoint
            data.dataset.targets = identity_reference(model, data, cfg, setup.device, setup.progress)
        # the reference is of the plain and the mirrored crop, so no shifted crops: a shift moves the embedding
        # (1 - cos ~0.05 at 8 px) and the keep term would fight it (the frozen-stem cache has no shifts either)
        data.dataset.pad = 0
        net = JointNet(model).to(setup.device)
        plan = cls(scfg, data, net, ExpressionLoss(cfg.loss.identity_keep_weight), frozen=tuple(model.identity_modules()))
        plan.shared_params = [p for m in shared for p in m.parameters()]
        log.info("stage 2: Branch 2 with the shared %s and Branch 1 (lr x %g, identity kept at weight %g)",
                 scfg.tune_shared, scfg.shared_lr_scale, cfg.loss.identity_keep_weight)
        return plan

    def optimizer_groups(self) -> list[dict[str, Any]]:
        if not self.shared_params:
            return super().optimizer_groups()
        ids = {id(p) for p in self.shared_params}
        own = [p for p in self.net.parameters() if id(p) not in ids]
        return [{"params": own, "lr_scale": 1.0}, {"params": self.shared_params, "lr_scale": self.config.shared_lr_scale}]

    def checkpoint_state(self) -> dict[str, Any]:
        targets = self.data.dataset.targets if self.shared_params else None
        return {} if targets is None else {"identity_reference": torch.from_numpy(np.asarray(targets))}

    def load_checkpoint_state(self, blob: dict[str, Any]) -> None:
        if self.shared_params:
            if "identity_reference" not in blob:
                raise ValueError("--resume: this Stage 2 trains the shared stem but its checkpoint holds no "
                                 "identity reference (it was started with another stage2.tune_shared)")
            self.data.dataset.targets = blob["identity_reference"].numpy()


PLANS: dict[int, type[StagePlan]] = {plan.stage: plan for plan in (Stage1Plan, Stage2Plan)}


def reset_expression_head(model: FaceLiveNet, cfg: TrainConfig) -> None:
    """Stage 2 again on a model that already went through it (``init_checkpoint``): the old expression
    head was fitted to the old Branch 2, so it goes back to the initialisation a fresh run with this seed
    starts Stage 2 from (Stage 1 never touches the head)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        fresh = FaceLiveNet(cfg.model)
    model.expression_head.load_state_dict(fresh.expression_head.state_dict())
    log.info("stage 2: expression head re-initialised (seed %d); the init checkpoint had trained one", cfg.seed)


def identity_reference(model: FaceLiveNet, data: StageData, cfg: TrainConfig, device: torch.device,
                       progress: bool) -> np.ndarray:
    """Branch 1's unit embedding of every crop, plain and mirrored, (N, 2, D): what the keep term holds.
    Under torchrun each process embeds every world-th crop and the shares are summed."""
    crops = data.dataset.crops
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    rank, world = (torch.distributed.get_rank(), torch.distributed.get_world_size()) if distributed else (0, 1)
    index = np.arange(rank, len(crops), world)
    out = torch.zeros(len(crops), 2, cfg.model.embedding_dim)
    for view, flip in enumerate((False, True)):
        label = ("identity reference" + (" (mirrored)" if flip else "")) if progress else None
        out[index, view] = F.normalize(identity_features(model, crops, cfg.preprocess, device, index=index, flip=flip,
                                                         progress=label), dim=1)
    if world > 1:
        out = all_reduce_sum(out.to(device)).cpu()
    return out.numpy().astype(np.float32)


def trunk_dataset(model: FaceLiveNet, data: StageData, cfg: TrainConfig, device: torch.device, progress: bool,
                  stage: int) -> TrunkFeatureDataset:
    """Frozen-stem features of the stage's crops, plain and mirrored (computed once per run)."""
    ds = data.dataset
    show = "trunk features" if progress else None
    plain = trunk_features(model, ds.crops, cfg.preprocess, device, progress=show, dtype=torch.float16)
    mirrored = trunk_features(model, ds.crops, cfg.preprocess, device, flip=True, progress=show, dtype=torch.float16)
    log.info("stage %d: cached frozen-stem features %s for %d images (+ mirrored)", stage, tuple(plain.shape[1:]),
             len(ds))
    return TrunkFeatureDataset(plain, mirrored, ds.labels, seed=cfg.seed + stage)
