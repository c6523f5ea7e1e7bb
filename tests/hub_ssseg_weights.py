"""Seeded weights in sssegmentation's key layout, rebuilt from a recorded key/shape list.

tools/make_ssseg_golden.py fills a real sssegmentation model with these weights and records its
logits; the hub tests rebuild the same state dict from the recorded keys (no sssegmentation needed),
convert it with sszoo.hub and compare logits. Pure torch, so both environments share this file.
"""
from __future__ import annotations

import zlib

import torch


def seeded_state_dict(keys_and_shapes: list[tuple[str, tuple[int, ...]]], seed: int) -> dict[str, torch.Tensor]:
    """One tensor per key, drawn from a generator seeded by (seed, key) so the order of keys does not matter."""
    out: dict[str, torch.Tensor] = {}
    for key, shape in keys_and_shapes:
        g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
        shape = tuple(shape)
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(0, dtype=torch.long)
        elif key.endswith("running_var"):
            out[key] = 0.5 + torch.rand(shape, generator=g)
        elif key.endswith("running_mean"):
            out[key] = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) > 1:
            fan_in = 1
            for d in shape[1:]:
                fan_in *= d
            out[key] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
        elif key.endswith("weight"):
            out[key] = 1.0 + 0.1 * torch.randn(shape, generator=g)
        else:
            out[key] = 0.1 * torch.randn(shape, generator=g)
    return out
