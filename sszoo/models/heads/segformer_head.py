"""SegFormer's all-MLP decode head (Xie et al., "SegFormer: Simple and Efficient Design for Semantic
Segmentation with Transformers", NeurIPS 2021), as MMSegmentation 1.2.2's ``SegformerHead``.

Each input level goes through its own 1x1 ConvBNReLU to ``channels`` and is resized (bilinear) to the first
level's size, the first level included (a same-size bilinear resize, as the reference does); the levels are
concatenated in input order, fused by a 1x1 ConvBNReLU and classified.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import ClassifierHead, ConvBNReLU, resize


@dataclass(frozen=True)
class SegformerHeadConfig:
    in_channels: tuple[int, ...] = (64, 128, 320, 512)
    channels: int = 256
    in_index: tuple[int, ...] = (0, 1, 2, 3)
    dropout: float = 0.1
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    kind: str = "segformer_head"


class SegformerHead(ClassifierHead):
    """``convs[i]``: 1x1 ConvBNReLU per level; ``fusion_conv``: 1x1 ConvBNReLU over the concatenated levels."""

    def __init__(self, in_channels: tuple[int, ...], channels: int, num_classes: int, *,
                 in_index: tuple[int, ...] = (0, 1, 2, 3), dropout: float = 0.1, align_corners: bool = False) -> None:
        super().__init__()
        if len(in_channels) != len(in_index):
            raise ValueError("in_channels and in_index must have the same length")
        # The classifier is registered first, as in the reference, so parameters enumerate in the same order.
        self._init_classifier(channels, num_classes, dropout)
        self.in_index = tuple(in_index)
        self.align_corners = align_corners
        self.convs = nn.ModuleList(ConvBNReLU(c, channels, 1) for c in in_channels)
        self.fusion_conv = ConvBNReLU(channels * len(in_channels), channels, 1)

    @classmethod
    def from_config(cls, cfg: SegformerHeadConfig, num_classes: int, align_corners: bool) -> "SegformerHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, dropout=cfg.dropout,
                   align_corners=align_corners)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        inputs = [features[i] for i in self.in_index]
        size = inputs[0].shape[2:]
        outs = [resize(conv(x), size, self.align_corners) for conv, x in zip(self.convs, inputs)]
        return self.cls_seg(self.fusion_conv(torch.cat(outs, dim=1)))
