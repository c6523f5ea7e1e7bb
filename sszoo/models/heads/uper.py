"""UPerNet's decode head (Xiao et al., "Unified Perceptual Parsing for Scene Understanding", ECCV 2018).

A pyramid pooling module on the deepest backbone map, then an FPN top-down pathway over all four maps whose
outputs are upsampled to the finest one, concatenated and fused before the classifier.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import ClassifierHead, ConvBNReLU, resize


@dataclass(frozen=True)
class UPerHeadConfig:
    in_channels: tuple[int, ...] = (256, 512, 1024, 2048)
    channels: int = 512
    in_index: tuple[int, ...] = (0, 1, 2, 3)
    pool_scales: tuple[int, ...] = (1, 2, 3, 6)
    dropout: float = 0.1
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    kind: str = "uper"


class UPerHead(ClassifierHead):
    """PPM on the last input (``psp_modules`` + ``bottleneck``), lateral 1x1 and output 3x3 convs on the others
    (``lateral_convs``, ``fpn_convs``), and a 3x3 fusion of all levels at the finest size (``fpn_bottleneck``)."""

    def __init__(self, in_channels: tuple[int, ...], channels: int, num_classes: int, *,
                 in_index: tuple[int, ...] = (0, 1, 2, 3), pool_scales: tuple[int, ...] = (1, 2, 3, 6),
                 dropout: float = 0.1, align_corners: bool = False) -> None:
        super().__init__()
        if len(in_channels) != len(in_index):
            raise ValueError("in_channels and in_index must have the same length")
        # The classifier is registered first, as in the reference, so parameters enumerate in the same order.
        self._init_classifier(channels, num_classes, dropout)
        self.in_index = tuple(in_index)
        self.align_corners = align_corners
        top = in_channels[-1]
        self.psp_modules = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvBNReLU(top, channels, 1)) for s in pool_scales)
        self.bottleneck = ConvBNReLU(top + len(pool_scales) * channels, channels, 3, padding=1)
        self.lateral_convs = nn.ModuleList(ConvBNReLU(c, channels, 1) for c in in_channels[:-1])
        self.fpn_convs = nn.ModuleList(ConvBNReLU(channels, channels, 3, padding=1) for _ in in_channels[:-1])
        self.fpn_bottleneck = ConvBNReLU(len(in_channels) * channels, channels, 3, padding=1)

    @classmethod
    def from_config(cls, cfg: UPerHeadConfig, num_classes: int, align_corners: bool) -> "UPerHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, pool_scales=cfg.pool_scales,
                   dropout=cfg.dropout, align_corners=align_corners)

    def _ppm(self, x: torch.Tensor) -> torch.Tensor:
        outs = [x] + [resize(branch(x), x.shape[2:], self.align_corners) for branch in self.psp_modules]
        return self.bottleneck(torch.cat(outs, dim=1))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.cls_seg(self.forward_feature(features))

    def forward_feature(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The features before the classifier (K-Net's kernel generator reads them)."""
        inputs = [features[i] for i in self.in_index]
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, inputs)] + [self._ppm(inputs[-1])]
        # top-down: each level adds the (upsampled) sum of the coarser ones
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + resize(laterals[i], laterals[i - 1].shape[2:], self.align_corners)
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals)] + [laterals[-1]]
        size = outs[0].shape[2:]
        outs = [outs[0]] + [resize(x, size, self.align_corners) for x in outs[1:]]
        return self.fpn_bottleneck(torch.cat(outs, dim=1))
