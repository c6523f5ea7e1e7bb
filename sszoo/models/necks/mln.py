"""MMSegmentation's ``MultiLevelNeck``: the neck that turns a plain ViT's single-resolution maps into a pyramid
(used by its ViT/DeiT + UPerNet configs).

Each input goes through a 1x1 lateral conv, is rescaled bilinearly by its ``scales`` entry (4, 2, 1, 0.5: strides
4 to 32 from the ViT's 16) and goes through a 3x3 conv. Convs have a bias and neither norm nor activation (no
published config sets them). The rescale passes the *scale factor* to ``F.interpolate``, as the reference: the
sampling grid then uses that factor, not the in/out size ratio, which differs at odd sizes (0.5 of 5 tokens is 2
pixels sampled at 2x strides, not at 5/2).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import Conv


@dataclass(frozen=True)
class MultiLevelNeckConfig:
    in_channels: tuple[int, ...] = (768, 768, 768, 768)
    out_channels: int = 768
    scales: tuple[float, ...] = (0.5, 1, 2, 4)
    kind: str = "mln"


class MultiLevelNeck(nn.Module):
    """``lateral_convs`` (1x1), a bilinear rescale per output, ``convs`` (3x3); one input feeds every output."""

    def __init__(self, in_channels: tuple[int, ...], out_channels: int,
                 scales: tuple[float, ...] = (0.5, 1, 2, 4)) -> None:
        super().__init__()
        if len(in_channels) not in (1, len(scales)):
            raise ValueError(f"{len(in_channels)} inputs for {len(scales)} scales: give one input or one per scale")
        self.in_channels = tuple(in_channels)
        self.scales = tuple(float(s) for s in scales)
        # all laterals are registered before all output convs, as in the reference
        self.lateral_convs = nn.ModuleList(Conv(c, out_channels, 1) for c in in_channels)
        self.convs = nn.ModuleList(Conv(out_channels, out_channels, 3, padding=1) for _ in scales)

    @classmethod
    def from_config(cls, cfg: MultiLevelNeckConfig) -> "MultiLevelNeck":
        return cls(cfg.in_channels, cfg.out_channels, cfg.scales)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(features) != len(self.in_channels):
            raise ValueError(f"expected {len(self.in_channels)} feature maps, got {len(features)}")
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, features)]
        if len(laterals) == 1:
            laterals = laterals * len(self.scales)
        return [conv(F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False))
                for conv, x, s in zip(self.convs, laterals, self.scales)]
