"""Rebuild the oracle's seeded weights inside sszoo, so parity tests need no MMSegmentation.

This is the procedure of ../shared/tools/mmseg_oracle_dump.py written again for sszoo models: the
parameters are drawn in registration order (sszoo registers modules in the reference's order), then
BatchNorm statistics are measured on one seeded calibration batch. If sszoo's parameter order or any
layer differed from the reference, the regenerated network would not reproduce the golden logits.
"""
from __future__ import annotations

import json
import os

import torch
from torch import nn

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "parity")


def randomise_like_oracle(model: nn.Module, seed: int, calib_shape: tuple[int, int, int, int]) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / p[0].numel()) ** 0.5)
            elif name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                m.momentum = None
        model.train()
        model(torch.randn(calib_shape, generator=g))  # backbone + decode head, as the oracle's encode_decode
        model.eval()
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = 0.1


def load_case(case: str) -> tuple[torch.Tensor, torch.Tensor, dict]:
    d = torch.load(os.path.join(GOLDEN, case + ".pt"), weights_only=True)
    return d["input"], d["logits"], json.loads(d["info"])


def cases(prefix: str = "") -> list[str]:
    return sorted(f[:-3] for f in os.listdir(GOLDEN) if f.endswith(".pt") and f.startswith(prefix))


def oracle_checkpoint(case: str, path: str) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Write the case's weights in MMSegmentation's published layout to ``path``; return input, logits, info."""
    from sszoo.models import build_model
    from sszoo.registry import get_entry

    x, logits, info = load_case(case)
    entry = get_entry(info["config"])
    model = build_model(entry.arch.with_num_classes(info["num_classes"]))
    randomise_like_oracle(model, info["seed"], tuple(info["calib_shape"]))
    torch.save({"state_dict": model.state_dict(), "meta": {"config": info["config"], "CLASSES": None}}, path)
    return x, logits, info
