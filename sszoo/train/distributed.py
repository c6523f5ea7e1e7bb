"""torch.distributed set-up for ``torchrun`` launches (NCCL on GPUs, gloo on CPU)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: Optional[str]) -> tuple[DistInfo, torch.device]:
    """Join the process group when started by torchrun (``WORLD_SIZE`` > 1) and pick this process's device.

    ``device=None`` means the GPU of this local rank when CUDA is available, else the CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"--device {device} asked for, but CUDA is not available; use --device cpu")
        if dev.index is None:
            dev = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    return DistInfo(rank=rank, world_size=world, local_rank=local), dev


def convert_batchnorm(model: nn.Module, info: DistInfo, device: torch.device, log) -> nn.Module:
    """SyncBatchNorm across processes on CUDA; on CPU (gloo) SyncBatchNorm cannot run, so plain BN stays."""
    if not info.enabled:
        return model
    if device.type == "cuda":
        log("distributed: BatchNorm converted to SyncBatchNorm across %d processes" % info.world_size)
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    log("distributed: running on CPU with gloo; SyncBatchNorm needs CUDA, so each process keeps plain "
        "BatchNorm (statistics over each process's %d-way share of the batch)" % info.world_size)
    return model


def all_reduce_mean(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= info.world_size
    return t


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
