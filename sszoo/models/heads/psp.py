"""PSPNet's pyramid pooling head (Zhao et al., "Pyramid Scene Parsing Network", CVPR 2017)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import ClassifierHead, ConvBNReLU, resize


@dataclass(frozen=True)
class PSPHeadConfig:
    in_channels: int = 2048
    channels: int = 512
    in_index: int = 3
    pool_scales: tuple[int, ...] = (1, 2, 3, 6)
    dropout: float = 0.1
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    kind: str = "psp"


class PSPHead(ClassifierHead):
    """Average-pools the input to each of ``pool_scales`` bins, projects, upsamples, concatenates, fuses."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *, in_index: int = 3,
                 pool_scales: tuple[int, ...] = (1, 2, 3, 6), dropout: float = 0.1, align_corners: bool = False) -> None:
        super().__init__()
        # The classifier is registered first, as in the reference, so parameters enumerate in the same order.
        self._init_classifier(channels, num_classes, dropout)
        self.in_index = in_index
        self.align_corners = align_corners
        self.pool_scales = tuple(pool_scales)
        self.psp_modules = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvBNReLU(in_channels, channels, 1)) for s in pool_scales)
        self.bottleneck = ConvBNReLU(in_channels + len(pool_scales) * channels, channels, 3, padding=1)

    @classmethod
    def from_config(cls, cfg: PSPHeadConfig, num_classes: int, align_corners: bool) -> "PSPHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, pool_scales=cfg.pool_scales,
                   dropout=cfg.dropout, align_corners=align_corners)

    def forward_feature(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The features before the classifier (K-Net's kernel generator reads them)."""
        x = features[self.in_index]
        size = x.shape[2:]
        outs = [x] + [resize(branch(x), size, self.align_corners) for branch in self.psp_modules]
        return self.bottleneck(torch.cat(outs, dim=1))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.cls_seg(self.forward_feature(features))
