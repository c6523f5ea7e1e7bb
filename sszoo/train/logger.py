"""Training logs: console lines, JSON lines in the work dir and TensorBoard when it is installed.

Only rank 0 of a distributed run writes; other ranks get a logger that prints nothing.
"""
from __future__ import annotations

import json
import math
import os
import resource
import sys
import time
from typing import Any, Optional, TextIO

import torch


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory: CUDA allocator peak on a GPU, else the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 2**20  # KiB on Linux, bytes on macOS


def format_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class TrainLogger:
    """Writes ``log.jsonl`` (one JSON object per line) and optionally TensorBoard scalars."""

    def __init__(self, work_dir: Optional[str], *, enabled: bool = True, tensorboard: bool = True,
                 stream: TextIO = sys.stdout) -> None:
        self.enabled = enabled
        self.stream = stream
        self._jsonl = None
        self._tb = None
        if enabled and work_dir:
            os.makedirs(work_dir, exist_ok=True)
            self._jsonl = open(os.path.join(work_dir, "log.jsonl"), "a", buffering=1)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
                    self._tb = SummaryWriter(os.path.join(work_dir, "tb"))
                except Exception:
                    self._tb = None  # TensorBoard is optional

    def info(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)

    def record(self, kind: str, iteration: int, values: dict[str, Any]) -> None:
        """One JSON line ``{"kind": ..., "iter": ..., **values}`` and the numeric values to TensorBoard."""
        if not self.enabled:
            return
        if self._jsonl is not None:
            self._jsonl.write(json.dumps({"kind": kind, "iter": iteration, "time": round(time.time(), 3), **values})
                              + "\n")
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(f"{kind}/{k}", v, iteration)

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
