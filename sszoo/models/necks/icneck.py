"""ICNet's neck: two cascade feature fusion (CFF) units joining its three branches (Zhao et al., ECCV 2018),
as MMSegmentation's ``ICNeck``.

A CFF unit upsamples the coarser map bilinearly to the finer one's size, runs a dilated 3x3 ConvBNReLU on
it (dilation 2) and a 1x1 ConvBNReLU on the finer map, and returns ``relu(sum)`` and the processed coarse
map. The latter (not a separate classifier, as in the paper) feeds the cascade-label-guidance auxiliary
heads. Outputs: ``[cff_24's coarse map (stride 16), cff_12's coarse map (stride 8), the fused map (stride 8)]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import ConvBNReLU, resize


@dataclass(frozen=True)
class ICNeckConfig:
    """Constructor arguments of :class:`ICNeck`, as stored in the zoo registry."""

    in_channels: tuple[int, int, int] = (64, 256, 256)
    out_channels: int = 128
    align_corners: bool = False
    kind: str = "icneck"


class CascadeFeatureFusion(nn.Module):
    """One CFF unit: ``(relu(conv_low(up(x_low)) + conv_high(x_high)), conv_low(up(x_low)))``."""

    def __init__(self, low_channels: int, high_channels: int, out_channels: int, align_corners: bool) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.conv_low = ConvBNReLU(low_channels, out_channels, 3, padding=2, dilation=2)
        self.conv_high = ConvBNReLU(high_channels, out_channels, 1)

    def forward(self, x_low: torch.Tensor, x_high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_low = self.conv_low(resize(x_low, x_high.shape[2:], self.align_corners))
        return torch.relu(x_low + self.conv_high(x_high)), x_low


class ICNeck(nn.Module):
    """Fuses ICNet's ``[sub1, sub2, sub4]`` maps, coarse to fine."""

    def __init__(self, in_channels: tuple[int, int, int] = (64, 256, 256), out_channels: int = 128, *,
                 align_corners: bool = False) -> None:
        super().__init__()
        if len(in_channels) != 3:
            raise ValueError(f"ICNeck fuses 3 maps, got in_channels {in_channels}")
        self.cff_24 = CascadeFeatureFusion(in_channels[2], in_channels[1], out_channels, align_corners)
        self.cff_12 = CascadeFeatureFusion(out_channels, in_channels[0], out_channels, align_corners)

    @classmethod
    def from_config(cls, cfg: ICNeckConfig) -> "ICNeck":
        return cls(cfg.in_channels, cfg.out_channels, align_corners=cfg.align_corners)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        sub1, sub2, sub4 = features
        fused_24, low_24 = self.cff_24(sub4, sub2)
        fused_12, low_12 = self.cff_12(fused_24, sub1)
        return [low_24, low_12, fused_12]
