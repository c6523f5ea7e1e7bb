"""Fast-SCNN's decode head: an FCN head whose convs are depthwise-separable (MMSegmentation's
``DepthwiseSeparableFCNHead``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..backbones._conv import DepthwiseSeparableConv
from ..layers import ClassifierHead
from ..losses import PixelSampler


@dataclass(frozen=True)
class DSFCNHeadConfig:
    in_channels: int = 128
    channels: int = 128
    in_index: int = -1
    num_convs: int = 2
    concat_input: bool = True
    kernel_size: int = 3
    dropout: float = 0.1
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    losses: tuple = ()  # LossSpecs when the loss is not one plain cross-entropy (Fast-SCNN: sigmoid cross-entropy)
    sampler: Optional[PixelSampler] = None  # OHEM pixel selection (the reference's OHEMPixelSampler)
    kind: str = "dsfcn"


class DSFCNHead(ClassifierHead):
    """``num_convs`` depthwise-separable convs (depthwise ConvBN without activation, pointwise ConvBNReLU),
    optionally concatenated with the input and fused by one more; then the 1x1 classifier."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *, in_index: int = -1, num_convs: int = 2,
                 concat_input: bool = True, kernel_size: int = 3, dropout: float = 0.1,
                 align_corners: bool = False) -> None:
        super().__init__()
        if num_convs < 1:
            raise ValueError("a depthwise-separable FCN head needs at least one conv")
        self._init_classifier(channels, num_classes, dropout)  # registered first, as in the reference
        self.in_index = in_index
        self.align_corners = align_corners
        pad = kernel_size // 2
        self.convs = nn.Sequential(*[DepthwiseSeparableConv(in_channels if i == 0 else channels, channels,
                                                            kernel_size, padding=pad) for i in range(num_convs)])
        self.conv_cat = (DepthwiseSeparableConv(in_channels + channels, channels, kernel_size, padding=pad)
                         if concat_input else None)

    @classmethod
    def from_config(cls, cfg: DSFCNHeadConfig, num_classes: int, align_corners: bool) -> "DSFCNHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, num_convs=cfg.num_convs,
                   concat_input=cfg.concat_input, kernel_size=cfg.kernel_size, dropout=cfg.dropout,
                   align_corners=align_corners)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[self.in_index]
        out = self.convs(x)
        if self.conv_cat is not None:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return self.cls_seg(out)
