"""DeepLabV3+ head (Chen et al., "Encoder-Decoder with Atrous Separable Convolution", ECCV 2018)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .aspp import ASPPHead
from ..layers import ConvBNReLU, SeparableConvBNReLU, resize
from ..losses import PixelSampler


@dataclass(frozen=True)
class SepASPPHeadConfig:
    in_channels: int = 2048
    channels: int = 512
    in_index: int = 3
    dilations: tuple[int, ...] = (1, 12, 24, 36)
    c1_in_channels: int = 256
    c1_channels: int = 48
    c1_index: int = 0
    dropout: float = 0.1
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    losses: tuple = ()         # LossSpecs when the loss is not one plain cross-entropy (sszoo.models.losses)
    sampler: Optional[PixelSampler] = None  # OHEM pixel selection (the reference's OHEMPixelSampler)
    kind: str = "sep_aspp"


class SepASPPHead(ASPPHead):
    """ASPP with depthwise-separable dilated branches, plus a decoder that fuses stage-1 features."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *, in_index: int = 3,
                 dilations: tuple[int, ...] = (1, 12, 24, 36), c1_in_channels: int = 256, c1_channels: int = 48,
                 c1_index: int = 0, dropout: float = 0.1, align_corners: bool = False) -> None:
        super().__init__(in_channels, channels, num_classes, in_index=in_index, dilations=dilations, dropout=dropout,
                         align_corners=align_corners)
        self.c1_index = c1_index
        self.c1_bottleneck = ConvBNReLU(c1_in_channels, c1_channels, 1)
        self.sep_bottleneck = nn.Sequential(SeparableConvBNReLU(channels + c1_channels, channels, 3, padding=1),
                                            SeparableConvBNReLU(channels, channels, 3, padding=1))

    @staticmethod
    def _branch(in_channels: int, channels: int, dilation: int) -> nn.Module:
        if dilation == 1:
            return ConvBNReLU(in_channels, channels, 1)
        return SeparableConvBNReLU(in_channels, channels, 3, padding=dilation, dilation=dilation)

    @classmethod
    def from_config(cls, cfg: SepASPPHeadConfig, num_classes: int, align_corners: bool) -> "SepASPPHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, dilations=cfg.dilations,
                   c1_in_channels=cfg.c1_in_channels, c1_channels=cfg.c1_channels, c1_index=cfg.c1_index,
                   dropout=cfg.dropout, align_corners=align_corners)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        out = self.aspp(features[self.in_index])
        c1 = self.c1_bottleneck(features[self.c1_index])
        out = resize(out, c1.shape[2:], self.align_corners)
        return self.cls_seg(self.sep_bottleneck(torch.cat([out, c1], dim=1)))
