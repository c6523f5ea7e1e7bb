"""torch.distributed helpers shared by the evaluator and the trainer (``torchrun`` launches).

NCCL on GPUs, gloo on CPU. Without torchrun (``WORLD_SIZE`` unset or 1) nothing is initialised and
every helper is a no-op, so the same code runs in one process.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Optional

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a torchrun launch."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def world_size() -> int:
    """Number of processes (1 without torch.distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without torch.distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """True on rank 0: the process that prints and writes files."""
    return rank() == 0


def init_distributed(device: Optional[str] = None) -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun describes in the environment and pick this process's device.

    ``device=None`` means this local rank's GPU when CUDA is available, else the CPU.
    """
    ws = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} asked for, but CUDA is not available; use --device cpu")
        if dev.index is None:
            dev = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    if ws > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo", timeout=timedelta(minutes=30))
    return DistInfo(rank=rank(), world_size=world_size(), local_rank=local), dev


def init_from_env(device: Optional[str] = None) -> tuple[int, int, torch.device]:
    """:func:`init_distributed`, returning (rank, world_size, device)."""
    info, dev = init_distributed(device)
    return info.rank, info.world_size, dev


def shard(n: int, rank_: Optional[int] = None, world: Optional[int] = None) -> list[int]:
    """Indices 0..n-1 of this process: every index exactly once over all processes (no padding)."""
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    return list(range(r, n, w))


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over processes in place (no-op in a single process); returns it."""
    if world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """The mean of ``t`` over processes, as a new tensor (``t`` itself in a single process)."""
    if world_size() > 1:
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= world_size()
    return t


def barrier() -> None:
    """Wait for every process (no-op in a single process)."""
    if world_size() > 1:
        dist.barrier()


def convert_batchnorm(model: nn.Module, device: torch.device, log: Callable[[str], None]) -> nn.Module:
    """SyncBatchNorm across processes on CUDA; on CPU (gloo) SyncBatchNorm cannot run, so plain BN stays."""
    if world_size() <= 1:
        return model
    if device.type == "cuda":
        log(f"distributed: BatchNorm converted to SyncBatchNorm across {world_size()} processes")
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    log("distributed: running on CPU with gloo; SyncBatchNorm needs CUDA, so each process keeps plain "
        f"BatchNorm (statistics over each process's {world_size()}-way share of the batch)")
    return model


def cleanup() -> None:
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
