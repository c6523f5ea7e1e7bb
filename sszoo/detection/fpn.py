"""MMDetection's FPN: sszoo's FPN (laterals, nearest top-down sum, 3x3 outputs) plus the extra levels.

``add_extra_convs=None``: extra levels are 1x1 stride-2 max-pools of the last output (P6 of Faster/Mask R-CNN).
``"on_input"``: the first extra level is a stride-2 3x3 conv on the last *used backbone input* (C5), each next
one a stride-2 3x3 conv on the previous extra level, with no ReLU between them (RetinaNet's P6 and P7). The
extra convs are appended to ``fpn_convs`` (keys ``neck.fpn_convs.3``/``.4``), as in MMDetection.
"""
from __future__ import annotations

import torch
from torch import nn

from ..models.necks.fpn import FPN, BiasConv
from .config import DetFPNConfig


class DetFPN(FPN):
    def __init__(self, cfg: DetFPNConfig) -> None:
        super().__init__(cfg.in_channels, cfg.out_channels, cfg.num_outs, start_level=cfg.start_level)
        if cfg.add_extra_convs not in (None, "on_input"):
            raise ValueError(f"add_extra_convs {cfg.add_extra_convs!r} is not supported (None or 'on_input')")
        self.add_extra_convs = cfg.add_extra_convs
        if self.add_extra_convs:
            used = len(cfg.in_channels) - cfg.start_level
            for i in range(cfg.num_outs - used):
                cin = cfg.in_channels[-1] if i == 0 else cfg.out_channels
                extra = BiasConv(cin, cfg.out_channels, 3, padding=1)
                extra.conv.stride = (2, 2)
                self.fpn_convs.append(extra)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        if not self.add_extra_convs:
            return super().forward(features)
        used = len(self.in_channels) - self.start_level
        outs = list(_levels(self, features, used))
        outs.append(self.fpn_convs[used](features[-1]))  # on_input: C5, not P5
        for i in range(used + 1, self.num_outs):
            outs.append(self.fpn_convs[i](outs[-1]))  # no ReLU before P7 (relu_before_extra_convs=False)
        return outs


def _levels(fpn: DetFPN, features: list[torch.Tensor], used: int) -> list[torch.Tensor]:
    """The FPN outputs of the used backbone levels (the parent's forward without its max-pool levels)."""
    num_outs = fpn.num_outs
    fpn.num_outs = used
    try:
        return FPN.forward(fpn, features)
    finally:
        fpn.num_outs = num_outs


class ConvReLU(nn.Module):
    """MMCV's ConvModule with bias and ReLU, no norm (key ``conv.*``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))
