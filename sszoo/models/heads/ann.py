"""ANN's asymmetric non-local head (Zhu et al., "Asymmetric Non-local Neural Networks for Semantic
Segmentation", ICCV 2019).

Non-local attention whose keys and values are pyramid-pooled to a few positions (the "asymmetric"
part: 1 + 9 + 36 + 64 = 110 for the default scales), used twice: the asymmetric fusion block (AFNB)
lets the last stage's map query the previous stage's, then the asymmetric pyramid block (APNB) is
self-attention on the fused map.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import ClassifierHead, ConvBN, ConvBNReLU, adaptive_avg_pool2d
from .self_attention import SelfAttentionBlock


class PyramidPoolConcat(nn.Module):
    """Average-pools N x C x H x W to each ``s x s`` of ``pool_scales`` and concatenates the flattened
    bins: N x C x sum(s^2)."""

    def __init__(self, pool_scales: tuple[int, ...]) -> None:
        super().__init__()
        self.pool_scales = tuple(pool_scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([adaptive_avg_pool2d(x, s).flatten(2) for s in self.pool_scales], dim=2)


def _pyramid_attention(key_in_channels: int, query_in_channels: int, channels: int, out_channels: int, *,
                       share_key_query: bool, query_scale: int, key_pool_scales: tuple[int, ...]) -> SelfAttentionBlock:
    """ANN's attention: ConvBNReLU key/query projections, plain value/out convs, scaled dot products,
    keys and values pyramid-pooled, queries max-pooled by ``query_scale`` when it is above 1."""
    return SelfAttentionBlock(
        key_in_channels, query_in_channels, channels, out_channels, share_key_query=share_key_query,
        query_downsample=nn.MaxPool2d(query_scale) if query_scale > 1 else None,
        key_downsample=PyramidPoolConcat(key_pool_scales), key_query_num_convs=1, key_query_norm=True,
        value_out_num_convs=1, value_out_norm=False, matmul_norm=True, with_out=True)


class AFNB(nn.Module):
    """Asymmetric fusion: the high-level map queries the low-level map (one attention per query scale,
    summed), then a 1x1 ConvBN (no activation) fuses the context with the high-level map."""

    def __init__(self, low_in_channels: int, high_in_channels: int, channels: int, out_channels: int,
                 query_scales: tuple[int, ...], key_pool_scales: tuple[int, ...]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            _pyramid_attention(low_in_channels, high_in_channels, channels, out_channels, share_key_query=False,
                               query_scale=s, key_pool_scales=key_pool_scales) for s in query_scales)
        self.bottleneck = ConvBN(out_channels + high_in_channels, out_channels, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        context = torch.stack([stage(high, low) for stage in self.stages]).sum(dim=0)
        return self.bottleneck(torch.cat([context, high], dim=1))


class APNB(nn.Module):
    """Asymmetric pyramid self-attention (one shared key/query projection per query scale, summed), then a
    1x1 ConvBNReLU fuses the context with the input."""

    def __init__(self, in_channels: int, channels: int, out_channels: int, query_scales: tuple[int, ...],
                 key_pool_scales: tuple[int, ...]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            _pyramid_attention(in_channels, in_channels, channels, out_channels, share_key_query=True,
                               query_scale=s, key_pool_scales=key_pool_scales) for s in query_scales)
        self.bottleneck = ConvBNReLU(2 * in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = torch.stack([stage(x, x) for stage in self.stages]).sum(dim=0)
        return self.bottleneck(torch.cat([context, x], dim=1))


@dataclass(frozen=True)
class ANNHeadConfig:
    in_channels: tuple[int, int] = (1024, 2048)  # (low, high): stage 3 and stage 4 of a ResNet
    channels: int = 512
    in_index: tuple[int, int] = (2, 3)
    project_channels: int = 256
    query_scales: tuple[int, ...] = (1,)
    key_pool_scales: tuple[int, ...] = (1, 3, 6, 8)
    dropout: float = 0.1
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    kind: str = "ann"


class ANNHead(ClassifierHead):
    """AFNB(low, high) -> dropout -> 3x3 ConvBNReLU -> APNB -> classifier (whose dropout applies again)."""

    def __init__(self, in_channels: tuple[int, int], channels: int, num_classes: int, *,
                 in_index: tuple[int, int] = (2, 3), project_channels: int = 256, query_scales: tuple[int, ...] = (1,),
                 key_pool_scales: tuple[int, ...] = (1, 3, 6, 8), dropout: float = 0.1,
                 align_corners: bool = False) -> None:
        super().__init__()
        if len(in_channels) != 2 or len(in_index) != 2:
            raise ValueError("ANNHead reads two maps: in_channels and in_index need (low, high) pairs")
        # The classifier is registered first, as in the reference, so parameters enumerate in the same order.
        self._init_classifier(channels, num_classes, dropout)
        self.in_index = tuple(in_index)
        self.align_corners = align_corners
        low_in, high_in = in_channels
        self.fusion = AFNB(low_in, high_in, project_channels, high_in, tuple(query_scales), tuple(key_pool_scales))
        self.bottleneck = ConvBNReLU(high_in, channels, 3, padding=1)
        self.context = APNB(channels, project_channels, channels, tuple(query_scales), tuple(key_pool_scales))

    @classmethod
    def from_config(cls, cfg: ANNHeadConfig, num_classes: int, align_corners: bool) -> "ANNHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index,
                   project_channels=cfg.project_channels, query_scales=cfg.query_scales,
                   key_pool_scales=cfg.key_pool_scales, dropout=cfg.dropout, align_corners=align_corners)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        low, high = (features[i] for i in self.in_index)
        out = self.dropout(self.fusion(low, high))  # the reference drops out here as well as before conv_seg
        out = self.context(self.bottleneck(out))
        return self.cls_seg(out)
