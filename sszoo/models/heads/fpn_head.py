"""Semantic FPN's decode head (Kirillov et al., "Panoptic Feature Pyramid Networks", CVPR 2019).

Each pyramid level goes through 3x3 ConvBNReLUs, each followed by a 2x bilinear upsampling, until it reaches
the finest level's stride; the levels are summed and classified.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import ClassifierHead, ConvBNReLU, resize


@dataclass(frozen=True)
class FPNHeadConfig:
    in_channels: tuple[int, ...] = (256, 256, 256, 256)
    channels: int = 128
    in_index: tuple[int, ...] = (0, 1, 2, 3)
    feature_strides: tuple[int, ...] = (4, 8, 16, 32)
    dropout: float = 0.1
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    kind: str = "fpn_head"


class Upsample2x(nn.Module):
    """Bilinear upsampling to exactly twice the input's height and width (no parameters)."""

    def __init__(self, align_corners: bool) -> None:
        super().__init__()
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # an explicit size (2h, 2w), as the reference computes it, rather than scale_factor
        return F.interpolate(x, size=(2 * x.shape[2], 2 * x.shape[3]), mode="bilinear",
                             align_corners=self.align_corners)


class FPNHead(ClassifierHead):
    """``scale_heads[i]``: max(1, log2(stride_i / stride_0)) x [ConvBNReLU 3x3 (+ 2x upsampling unless level 0)]."""

    def __init__(self, in_channels: tuple[int, ...], channels: int, num_classes: int, *,
                 in_index: tuple[int, ...] = (0, 1, 2, 3), feature_strides: tuple[int, ...] = (4, 8, 16, 32),
                 dropout: float = 0.1, align_corners: bool = False) -> None:
        super().__init__()
        if not len(in_channels) == len(in_index) == len(feature_strides):
            raise ValueError("in_channels, in_index and feature_strides must have the same length")
        if min(feature_strides) != feature_strides[0]:
            raise ValueError("the first feature stride must be the smallest")
        # The classifier is registered first, as in the reference, so parameters enumerate in the same order.
        self._init_classifier(channels, num_classes, dropout)
        self.in_index = tuple(in_index)
        self.align_corners = align_corners
        self.scale_heads = nn.ModuleList()
        for c, stride in zip(in_channels, feature_strides):
            length = max(1, int(math.log2(stride) - math.log2(feature_strides[0])))
            layers: list[nn.Module] = []
            for k in range(length):
                layers.append(ConvBNReLU(c if k == 0 else channels, channels, 3, padding=1))
                if stride != feature_strides[0]:
                    layers.append(Upsample2x(align_corners))
            self.scale_heads.append(nn.Sequential(*layers))

    @classmethod
    def from_config(cls, cfg: FPNHeadConfig, num_classes: int, align_corners: bool) -> "FPNHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index,
                   feature_strides=cfg.feature_strides, dropout=cfg.dropout, align_corners=align_corners)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        inputs = [features[i] for i in self.in_index]
        out = self.scale_heads[0](inputs[0])
        for head, x in zip(self.scale_heads[1:], inputs[1:]):
            # 2^k upsampling of an odd-sized map can miss the finest size by a pixel: resize to it
            out = out + resize(head(x), out.shape[2:], self.align_corners)
        return self.cls_seg(out)
