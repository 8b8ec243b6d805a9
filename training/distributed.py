"""torch.distributed set-up for `torchrun` launches (NCCL on CUDA, gloo on CPU)."""

from __future__ import annotations

import gc
import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup(prefer_cuda: bool = True) -> DistEnv:
    """Join the process group torchrun describes in the environment; a plain run is rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = prefer_cuda and torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return DistEnv(rank, world, local_rank, device)


def teardown() -> None:
    """Destroy the process group, after collecting what may still hold its work (a DistributedDataParallel
    reducer in a reference cycle): gloo work left alive past the group aborts the process at exit."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all ranks in place (no-op outside a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_buffers(module: torch.nn.Module, env: DistEnv) -> None:
    """Copy rank 0's buffers (BatchNorm statistics) to every rank, so all ranks hold one model."""
    if env.distributed:
        for buf in module.buffers():
            dist.broadcast(buf, src=0)


def state_digest(module: torch.nn.Module) -> str:
    """sha256 over every parameter and buffer, in name order: equal digests = identical weights."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def gather_digests(module: torch.nn.Module, env: DistEnv) -> list[str]:
    """Each rank's :func:`state_digest`, gathered on every rank."""
    digest = state_digest(module)
    if not env.distributed:
        return [digest]
    out: list[str] = [""] * env.world
    dist.all_gather_object(out, digest)
    return out
