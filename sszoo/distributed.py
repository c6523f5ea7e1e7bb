"""Small torch.distributed helpers shared by the evaluator and the trainer (torchrun-friendly)."""
from __future__ import annotations

import os
from typing import Optional

import torch
import torch.distributed as dist


def world_size() -> int:
    """Number of processes (1 without torch.distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without torch.distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """True on rank 0: the process that prints and writes files."""
    return rank() == 0


def init_from_env(device: Optional[str] = None) -> tuple[int, int, torch.device]:
    """Join the process group torchrun describes in the environment (WORLD_SIZE, RANK, LOCAL_RANK).

    Uses NCCL when the device is CUDA and gloo otherwise. Without torchrun (WORLD_SIZE unset or 1)
    nothing is initialised. Returns (rank, world_size, device) where a CUDA device is this process's GPU.
    """
    ws = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local if ws > 1 else torch.cuda.current_device())
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if ws > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return rank(), world_size(), dev


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


def cleanup() -> None:
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
