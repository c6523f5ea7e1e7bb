"""FastFCN's Joint Pyramid Upsampling neck (Wu et al., "FastFCN: Rethinking Dilated Convolution in the
Backbone for Semantic Segmentation", 2019), as MMSegmentation builds it.

The backbone runs at output stride 32 without dilation; JPU projects its last stages to ``mid_channels``,
upsamples them to the resolution of the first one (stride 8), concatenates them and runs several dilated
depthwise-separable convs in parallel, whose concatenation replaces the dilated backbone's last feature map.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import ConvBNReLU, resize


@dataclass(frozen=True)
class JPUConfig:
    """Constructor arguments of :class:`JPU`, as stored in the zoo registry."""

    in_channels: tuple[int, ...] = (512, 1024, 2048)
    mid_channels: int = 512
    start_level: int = 0
    end_level: int = -1  # exclusive; -1: up to the last input
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    align_corners: bool = False
    kind: str = "jpu"


class _SeparableConv(nn.Module):
    """Depthwise dilated 3x3 conv + BN (no activation), then pointwise 1x1 ConvBNReLU (MMCV's
    DepthwiseSeparableConvModule with ``dw_act_cfg=None``)."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__()
        self.depthwise_conv = nn.Sequential()
        self.depthwise_conv.add_module("conv", nn.Conv2d(in_channels, in_channels, 3, padding=dilation,
                                                         dilation=dilation, groups=in_channels, bias=False))
        self.depthwise_conv.add_module("bn", nn.BatchNorm2d(in_channels))
        self.pointwise_conv = ConvBNReLU(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class JPU(nn.Module):
    """Joint Pyramid Upsampling over the backbone's last ``len(in_channels)`` stage outputs.

    Returns the inputs ``start_level .. end_level - 2`` unchanged (for auxiliary heads) followed by the JPU
    feature map (``len(dilations) * mid_channels`` channels at the first input's resolution), as the reference,
    so the heads' ``in_index`` values carry over.
    """

    def __init__(self, in_channels: tuple[int, ...] = (512, 1024, 2048), mid_channels: int = 512, *,
                 start_level: int = 0, end_level: int = -1, dilations: tuple[int, ...] = (1, 2, 4, 8),
                 align_corners: bool = False) -> None:
        super().__init__()
        self.in_channels = tuple(in_channels)
        self.start_level = start_level
        self.end_level = len(self.in_channels) if end_level == -1 else end_level
        self.align_corners = align_corners
        levels = range(self.start_level, self.end_level)
        # each projection sits in a one-element Sequential in the reference (keys conv_layers.i.0.*)
        self.conv_layers = nn.ModuleList(
            nn.Sequential(ConvBNReLU(self.in_channels[i], mid_channels, 3, padding=1)) for i in levels)
        fused = len(levels) * mid_channels
        self.dilation_layers = nn.ModuleList(nn.Sequential(_SeparableConv(fused, mid_channels, d)) for d in dilations)

    @classmethod
    def from_config(cls, cfg: JPUConfig) -> "JPU":
        return cls(cfg.in_channels, cfg.mid_channels, start_level=cfg.start_level, end_level=cfg.end_level,
                   dilations=cfg.dilations, align_corners=cfg.align_corners)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        # The reference's backbone returns only the stages JPU reads (out_indices (1, 2, 3)); sszoo's backbones
        # return every stage, so JPU takes the last len(in_channels) of them.
        inputs = list(features)[len(features) - len(self.in_channels):]
        feats = [conv(inputs[i]) for conv, i in zip(self.conv_layers, range(self.start_level, self.end_level))]
        size = feats[0].shape[2:]
        feats = [feats[0]] + [resize(f, size, self.align_corners) for f in feats[1:]]
        fused = torch.cat(feats, dim=1)
        out = torch.cat([layer(fused) for layer in self.dilation_layers], dim=1)
        return inputs[self.start_level:self.end_level - 1] + [out]
