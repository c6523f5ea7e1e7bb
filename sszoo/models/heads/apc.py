"""APCNet's adaptive context head (He et al., "Adaptive Pyramid Context Network for Semantic Segmentation",
CVPR 2019)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import ClassifierHead, ConvBNReLU, adaptive_avg_pool2d


@dataclass(frozen=True)
class APCHeadConfig:
    in_channels: int = 2048
    channels: int = 512
    in_index: int = 3
    pool_scales: tuple[int, ...] = (1, 2, 3, 6)
    fusion: bool = True  # a final 1x1 ConvBNReLU in every context module
    dropout: float = 0.1
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    kind: str = "apc"


class AdaptiveContextModule(nn.Module):
    """One pyramid level of APCNet (ACM): every pixel attends to the ``pool_scale`` x ``pool_scale`` pooled
    regions with sigmoid affinities predicted from its own feature plus the global average feature."""

    def __init__(self, pool_scale: int, in_channels: int, channels: int, fusion: bool) -> None:
        super().__init__()
        self.pool_scale = pool_scale
        # creation order = the reference's parameter order
        self.pooled_redu_conv = ConvBNReLU(in_channels, channels, 1)
        self.input_redu_conv = ConvBNReLU(in_channels, channels, 1)
        self.global_info = ConvBNReLU(channels, channels, 1)
        self.gla = nn.Conv2d(channels, pool_scale ** 2, 1)
        self.residual_conv = ConvBNReLU(channels, channels, 1)
        self.fusion_conv = ConvBNReLU(channels, channels, 1) if fusion else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        # region features: N x s*s x C
        regions = self.pooled_redu_conv(adaptive_avg_pool2d(x, self.pool_scale)).flatten(2).transpose(1, 2)
        x = self.input_redu_conv(x)
        h, w = x.shape[2:]
        # the 1x1 global feature is broadcast over the map (the reference's nearest upsampling of a 1x1 map)
        glob = self.global_info(adaptive_avg_pool2d(x, 1))
        affinity = torch.sigmoid(self.gla(x + glob)).flatten(2).transpose(1, 2)  # N x h*w x s*s
        context = torch.bmm(affinity, regions).transpose(1, 2).reshape(n, -1, h, w)
        out = F.relu(self.residual_conv(context) + x)
        return self.fusion_conv(out) if self.fusion_conv is not None else out


class APCHead(ClassifierHead):
    """The input concatenated with one adaptive context module per pool scale, fused by a 3x3 ConvBNReLU."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *, in_index: int = 3,
                 pool_scales: tuple[int, ...] = (1, 2, 3, 6), fusion: bool = True, dropout: float = 0.1,
                 align_corners: bool = False) -> None:
        super().__init__()
        # The classifier is registered first, as in the reference, so parameters enumerate in the same order.
        self._init_classifier(channels, num_classes, dropout)
        self.in_index = in_index
        self.align_corners = align_corners
        self.acm_modules = nn.ModuleList(
            AdaptiveContextModule(s, in_channels, channels, fusion) for s in pool_scales)
        self.bottleneck = ConvBNReLU(in_channels + len(pool_scales) * channels, channels, 3, padding=1)

    @classmethod
    def from_config(cls, cfg: APCHeadConfig, num_classes: int, align_corners: bool) -> "APCHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, pool_scales=cfg.pool_scales,
                   fusion=cfg.fusion, dropout=cfg.dropout, align_corners=align_corners)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[self.in_index]
        outs = [x] + [acm(x) for acm in self.acm_modules]
        return self.cls_seg(self.bottleneck(torch.cat(outs, dim=1)))
