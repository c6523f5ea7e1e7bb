"""DeepLabV3's ASPP head (Chen et al., "Rethinking Atrous Convolution for Semantic Image Segmentation", 2017)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..layers import ClassifierHead, ConvBNReLU, resize
from ..losses import PixelSampler


@dataclass(frozen=True)
class ASPPHeadConfig:
    in_channels: int = 2048
    channels: int = 512
    in_index: int = 3
    dilations: tuple[int, ...] = (1, 12, 24, 36)
    dropout: float = 0.1
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    losses: tuple = ()         # LossSpecs when the loss is not one plain cross-entropy (sszoo.models.losses)
    sampler: Optional[PixelSampler] = None  # OHEM pixel selection (the reference's OHEMPixelSampler)
    kind: str = "aspp"


class ASPPHead(ClassifierHead):
    """Image pooling branch + one 1x1 and several dilated 3x3 branches, concatenated and fused by a 3x3 conv."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *, in_index: int = 3,
                 dilations: tuple[int, ...] = (1, 12, 24, 36), dropout: float = 0.1, align_corners: bool = False) -> None:
        super().__init__()
        # The classifier is registered first, as in the reference, so parameters enumerate in the same order.
        self._init_classifier(channels, num_classes, dropout)
        self.in_index = in_index
        self.align_corners = align_corners
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvBNReLU(in_channels, channels, 1))
        self.aspp_modules = nn.ModuleList(self._branch(in_channels, channels, d) for d in dilations)
        self.bottleneck = ConvBNReLU((len(dilations) + 1) * channels, channels, 3, padding=1)

    @staticmethod
    def _branch(in_channels: int, channels: int, dilation: int) -> nn.Module:
        if dilation == 1:
            return ConvBNReLU(in_channels, channels, 1)
        return ConvBNReLU(in_channels, channels, 3, padding=dilation, dilation=dilation)

    @classmethod
    def from_config(cls, cfg: ASPPHeadConfig, num_classes: int, align_corners: bool) -> "ASPPHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, dilations=cfg.dilations,
                   dropout=cfg.dropout, align_corners=align_corners)

    def aspp(self, x: torch.Tensor) -> torch.Tensor:
        """The fused ASPP features (before the classifier); DeepLabV3+ builds on this."""
        outs = [resize(self.image_pool(x), x.shape[2:], self.align_corners)]
        outs += [branch(x) for branch in self.aspp_modules]
        return self.bottleneck(torch.cat(outs, dim=1))

    def forward_feature(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The features before the classifier (K-Net's kernel generator reads them)."""
        return self.aspp(features[self.in_index])

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.cls_seg(self.forward_feature(features))
