"""Feature Pyramid Network neck (Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017),
as MMSegmentation's Semantic FPN and PointRend configs use it: no norm, no activation, nearest upsampling."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F


@dataclass(frozen=True)
class FPNConfig:
    in_channels: tuple[int, ...] = (256, 512, 1024, 2048)
    out_channels: int = 256
    num_outs: int = 4
    start_level: int = 0
    kind: str = "fpn"


class BiasConv(nn.Module):
    """A conv with bias and nothing after it (MMCV's ConvModule without norm and activation: key ``conv.*``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class FPN(nn.Module):
    """1x1 lateral convs, a nearest-upsampling top-down sum, then a 3x3 conv per level; levels beyond the inputs
    (``num_outs`` > inputs) are 1x1 max-pools with stride 2 of the last output."""

    def __init__(self, in_channels: tuple[int, ...], out_channels: int, num_outs: int, *, start_level: int = 0) -> None:
        super().__init__()
        used = tuple(in_channels)[start_level:]
        if num_outs < len(used):
            raise ValueError("num_outs must cover every used input level")
        self.in_channels = tuple(in_channels)
        self.start_level = start_level
        self.num_outs = num_outs
        # all laterals are registered before all output convs, as in the reference
        self.lateral_convs = nn.ModuleList(BiasConv(c, out_channels, 1) for c in used)
        self.fpn_convs = nn.ModuleList(BiasConv(out_channels, out_channels, 3, padding=1) for _ in used)

    @classmethod
    def from_config(cls, cfg: FPNConfig) -> "FPN":
        return cls(cfg.in_channels, cfg.out_channels, cfg.num_outs, start_level=cfg.start_level)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(features) != len(self.in_channels):
            raise ValueError(f"expected {len(self.in_channels)} feature maps, got {len(features)}")
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, features[self.start_level:])]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[2:],
                                                              mode="nearest")
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals)]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return outs
