"""SETR's multi-level feature aggregation (MMSegmentation's ``MLANeck``; Zheng et al., CVPR 2021).

Four ViT maps (layers 6, 12, 18, 24 of ViT-L), each layer-normalised per token (``norm.{i}``), projected by a 1x1
ConvBNReLU (``mla.channel_proj``), summed top-down from the deepest (p5, p5 + p4, p5 + p4 + p3, ...: all maps
have the same size) and refined by a 3x3 ConvBNReLU (``mla.feat_extract``). Output ``i`` is the sum that ends at
input ``3 - i``'s level, as the reference orders it (its first output is the deepest map's alone).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..heads.setr import token_layer_norm
from ..layers import ConvBNReLU


@dataclass(frozen=True)
class MLANeckConfig:
    in_channels: tuple[int, ...] = (1024, 1024, 1024, 1024)
    out_channels: int = 256
    norm_eps: float = 1e-6  # the input LayerNorms'
    kind: str = "mla"


class MLAModule(nn.Module):
    """``channel_proj`` (1x1) and ``feat_extract`` (3x3) ConvBNReLUs around the top-down cumulative sum."""

    def __init__(self, in_channels: tuple[int, ...], out_channels: int) -> None:
        super().__init__()
        self.channel_proj = nn.ModuleList(ConvBNReLU(c, out_channels, 1) for c in in_channels)
        self.feat_extract = nn.ModuleList(ConvBNReLU(out_channels, out_channels, 3, padding=1) for _ in in_channels)

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        feats = [conv(x) for conv, x in zip(self.channel_proj, inputs)][::-1]
        sums = [feats[0]]
        for f in feats[1:]:
            sums.append(sums[-1] + f)
        return [conv(m) for conv, m in zip(self.feat_extract, sums)]


class MLANeck(nn.Module):
    """Per-token LayerNorm of each input, then :class:`MLAModule`."""

    def __init__(self, in_channels: tuple[int, ...], out_channels: int, *, norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.in_channels = tuple(in_channels)
        self.norm = nn.ModuleList(nn.LayerNorm(c, eps=norm_eps) for c in in_channels)
        self.mla = MLAModule(self.in_channels, out_channels)

    @classmethod
    def from_config(cls, cfg: MLANeckConfig) -> "MLANeck":
        return cls(cfg.in_channels, cfg.out_channels, norm_eps=cfg.norm_eps)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(features) != len(self.in_channels):
            raise ValueError(f"expected {len(self.in_channels)} feature maps, got {len(features)}")
        return self.mla([token_layer_norm(norm, x) for norm, x in zip(self.norm, features)])
