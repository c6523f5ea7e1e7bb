"""DMNet's dynamic multi-scale filter head (He et al., "Dynamic Multi-scale Filters for Semantic Segmentation",
ICCV 2019)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import ClassifierHead, ConvBNReLU, adaptive_avg_pool2d


@dataclass(frozen=True)
class DMHeadConfig:
    in_channels: int = 2048
    channels: int = 512
    in_index: int = 3
    filter_sizes: tuple[int, ...] = (1, 3, 5, 7)
    fusion: bool = False  # a final 1x1 ConvBNReLU in every dynamic convolution module
    dropout: float = 0.1
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    kind: str = "dm"


class DynamicConvModule(nn.Module):
    """One DMNet branch (DCM): a depthwise ``filter_size`` x ``filter_size`` convolution whose filters are
    generated per image (and per channel) from the input average-pooled to ``filter_size`` x ``filter_size``."""

    def __init__(self, filter_size: int, in_channels: int, channels: int, fusion: bool) -> None:
        super().__init__()
        self.filter_size = filter_size
        # creation order = the reference's parameter order
        self.filter_gen_conv = nn.Conv2d(in_channels, channels, 1)
        self.input_redu_conv = ConvBNReLU(in_channels, channels, 1)
        self.norm = nn.BatchNorm2d(channels)
        self.activate = nn.ReLU(inplace=True)
        self.fusion_conv = ConvBNReLU(channels, channels, 1) if fusion else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.filter_size
        filters = self.filter_gen_conv(adaptive_avg_pool2d(x, k))  # N x C x k x k
        x = self.input_redu_conv(x)
        n, c, h, w = x.shape
        # an even filter size pads one more on the top/left, so the output keeps the input's size
        pad = (k - 1) // 2
        extra = (k - 1) % 2
        x = F.pad(x, (pad + extra, pad, pad + extra, pad))
        # each image has its own filters: fold the batch into the channels of one grouped convolution
        out = F.conv2d(x.reshape(1, n * c, *x.shape[2:]), filters.reshape(n * c, 1, k, k), groups=n * c)
        out = self.activate(self.norm(out.reshape(n, c, h, w)))
        return self.fusion_conv(out) if self.fusion_conv is not None else out


class DMHead(ClassifierHead):
    """The input concatenated with one dynamic convolution branch per filter size, fused by a 3x3 ConvBNReLU."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *, in_index: int = 3,
                 filter_sizes: tuple[int, ...] = (1, 3, 5, 7), fusion: bool = False, dropout: float = 0.1,
                 align_corners: bool = False) -> None:
        super().__init__()
        # The classifier is registered first, as in the reference, so parameters enumerate in the same order.
        self._init_classifier(channels, num_classes, dropout)
        self.in_index = in_index
        self.align_corners = align_corners
        self.dcm_modules = nn.ModuleList(
            DynamicConvModule(k, in_channels, channels, fusion) for k in filter_sizes)
        self.bottleneck = ConvBNReLU(in_channels + len(filter_sizes) * channels, channels, 3, padding=1)

    @classmethod
    def from_config(cls, cfg: DMHeadConfig, num_classes: int, align_corners: bool) -> "DMHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, filter_sizes=cfg.filter_sizes,
                   fusion=cfg.fusion, dropout=cfg.dropout, align_corners=align_corners)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[self.in_index]
        outs = [x] + [dcm(x) for dcm in self.dcm_modules]
        return self.cls_seg(self.bottleneck(torch.cat(outs, dim=1)))
