"""Measuring tools shared by the benchmarks: timing, FLOP counts, the matmul peak, weights and environment.

Nothing here knows about a particular model zoo; ``benchmarks.peers`` wraps the models.
"""
from __future__ import annotations

import copy
import datetime
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import nn


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """Seconds per call of ``iters`` timed calls (after ``warmup`` untimed ones)."""

    times: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    def to_dict(self) -> dict:
        return {"n": len(self.times), "mean_s": self.mean, "median_s": self.median, "min_s": self.min}


def time_call(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds of one synchronised call: CUDA events on a GPU (no host overhead in the number), else a clock."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_interleaved(fns: dict[str, Callable[[], object]], device: torch.device, *, iters: int,
                     warmup: int) -> dict[str, Timing]:
    """Time several callables round-robin (one call of each per round).

    Interleaving spreads any slow period of a shared machine (other processes, clock changes) over
    all candidates alike, so their ratio stays fair even when the absolute times wander.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    synchronize(device)
    out = {k: Timing() for k in fns}
    for _ in range(iters):
        for k, fn in fns.items():
            out[k].times.append(time_call(fn, device))
    return out


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (a multiply-add counts 2; BN, ReLU, pooling and resizing count 0).

    That is the convention of the published work-per-image numbers (tools/reference/perf_anchors.md).
    Run ``fn`` on meta tensors to count without computing.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def forward_flops(model: nn.Module, shape: tuple[int, int, int, int], forward: Optional[Callable] = None) -> int:
    """FLOPs of one forward of ``model`` on an input of ``shape``, counted on the meta device (no compute)."""
    meta = copy.deepcopy(model).to("meta")
    x = torch.empty(shape, device="meta")
    run = forward or (lambda m, t: m(t))
    with torch.no_grad():
        return count_flops(lambda: run(meta, x))


def matmul_peak(device: torch.device, dtype: torch.dtype, *, n: Optional[int] = None, iters: int = 10) -> float:
    """Measured dense matmul throughput (FLOP/s) of an n x n x n product in ``dtype``: the device's
    practical peak, against which a model's achieved FLOP/s is judged. Best of ``iters`` calls."""
    if n is None:
        n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(3):
        torch.mm(a, b)
    synchronize(device)
    best = min(time_call(lambda: torch.mm(a, b), device) for _ in range(iters))
    return 2.0 * n ** 3 / best


@torch.no_grad()
def sane_init_(model: nn.Module, calibrate: Callable[[nn.Module], object], *, seed: int = 0) -> nn.Module:
    """Seeded He-normal weights and BatchNorm statistics measured on one calibration batch.

    Every layer then outputs values of unit scale, as in a trained network. Untrained default
    initialisations shrink activations layer after layer into denormal floats, which CPUs process
    many times slower and which would make any timing meaningless.
    """
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if p.dim() > 1:
            p.copy_(torch.randn(p.shape, generator=g) * math.sqrt(2.0 / p[0].numel()))
        elif name.endswith("weight"):
            p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
        else:
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the calibration batch
    model.train()
    calibrate(model)
    for m in bns:
        m.momentum = 0.1
    return model.eval()


def environment(device: torch.device) -> dict:
    """Device, versions and date, written into every result file."""
    import sszoo

    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": device.type,
        "device_name": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sszoo": sszoo.__version__,
    }
    if hasattr(os, "getloadavg"):  # other processes on the machine skew absolute times (not the ratios much)
        env["load_average_1min"] = os.getloadavg()[0]
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
    else:
        try:
            with open("/proc/cpuinfo") as f:
                names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
            if names:
                env["device_name"] = names[0]
        except OSError:
            pass
    for mod in ("torchvision", "mmseg", "mmengine", "mmcv"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception:
            env[mod] = None
    return env
