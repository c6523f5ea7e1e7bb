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

from sszoo.models import build_model

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "parity")


def draw_parameters(model: nn.Module, g: torch.Generator) -> None:
    """The oracle's seeded parameters (tools/oracle_dump64.py's draw_parameters), in registration order:
    He-scaled weights, norm weights a little off 1, biases a little off 0."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / p[0].numel()) ** 0.5)
            elif name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def randomise_like_oracle(model: nn.Module, seed: int, calib_shape: tuple[int, int, int, int], *,
                          float64: bool = False, buffers: dict[str, torch.Tensor] | None = None) -> None:
    """The oracle's seeded weights. With ``float64`` (tools/oracle_dump64.py's golden files) the BatchNorm
    calibration runs in float64 and its statistics are rounded to float32, as there; the model stays float32.
    ``buffers`` (the golden's state not drawn from the seed, e.g. EMANet's bases) are set before calibrating."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        draw_parameters(model, g)
        if buffers:
            own = dict(model.named_buffers())
            for key, value in buffers.items():
                own[key].copy_(value)
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        calib = torch.randn(calib_shape, generator=g)
        if float64:
            # as the shared oracle: the network in eval mode with only its BN layers measuring statistics
            model.double().eval()
            for m in bns:
                m.train()
            # the oracle seeds the global generator for its calibration forward (SegNeXt's NMF draws from it)
            torch.manual_seed(seed + 3)
            model(calib.double())  # backbone + decode head, as the oracle's encode_decode
            model.float()
        else:
            model.train()
            model(calib)
        model.eval()
        for m in bns:
            m.momentum = 0.1


def load_case(case: str) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Input, reference logits (float64 for tools/oracle_dump64.py's files) and info of a golden case.
    With ``info["logits_stride"]`` n the logits are the reference's at every n-th row and column only."""
    d = torch.load(os.path.join(GOLDEN, case + ".pt"), weights_only=True)
    info = json.loads(d["info"])
    if "input" not in d:  # a strided golden (tools/make_golden.py's STRIDED): the input is regenerated from its seed
        g = torch.Generator().manual_seed(info["seed"] + 1)
        return torch.randn(info["batch"], 3, info["height"], info["width"], generator=g).double(), d["logits"], info
    return d["input"], d["logits"], info


def cases(prefix: str = "") -> list[str]:
    return sorted(f[:-3] for f in os.listdir(GOLDEN) if f.endswith(".pt") and f.startswith(prefix))


def case_arch(info: dict):
    """The architecture of a golden case: its zoo entry's (with the case's class count), or, for a method
    without entries yet, the record tools/oracle_dump64.py derived from MMSegmentation's config."""
    from sszoo.models import ArchConfig
    from sszoo.registry import UnknownModelError, get_entry

    try:
        return get_entry(info["config"]).arch.with_num_classes(info["num_classes"])
    except UnknownModelError:
        return ArchConfig.from_dict(info["arch"])


def oracle_checkpoint(case: str, path: str, dtype: torch.dtype = torch.float32
                      ) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Write the case's weights (float32) in MMSegmentation's published layout to ``path``; return the input
    and the reference logits as ``dtype``, and the info."""
    x, logits, info = load_case(case)
    model = build_model(case_arch(info))
    buffers = torch.load(os.path.join(GOLDEN, case + ".pt"), weights_only=True).get("buffers")
    randomise_like_oracle(model, info["seed"], tuple(info["calib_shape"]), float64=info.get("dtype") == "float64",
                          buffers=buffers)
    torch.save({"state_dict": model.state_dict(), "meta": {"config": info["config"], "CLASSES": None}}, path)
    return x.to(dtype), logits.to(dtype), info
