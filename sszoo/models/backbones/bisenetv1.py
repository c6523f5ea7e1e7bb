"""BiSeNetV1 (Yu et al., "BiSeNet: Bilateral Segmentation Network for Real-time Semantic Segmentation",
ECCV 2018), as MMSegmentation 1.2.2 builds it.

Two paths over the image:

- the *spatial path*: four ConvBNReLUs (7x7 s2, 3x3 s2, 3x3 s2, 1x1) keeping a wide map at stride 8;
- the *context path*: a ResNet (``backbone_cfg``) whose stride-16 and stride-32 outputs are refined by
  attention refinement modules (ARM: conv, then channel attention from the globally pooled map), the
  stride-32 one plus a global-context vector, each upsampled (nearest) to the next finer stage and
  smoothed by a 3x3 ConvBNReLU.

A feature fusion module (FFM) joins the spatial path with the context path's stride-8 map. The backbone
returns ``[ffm, context_8, context_16]`` (picked by ``out_indices``): the decode head reads the first, the
two auxiliary FCN heads the others.

Module names give MMSegmentation's state-dict keys (``context_path.backbone.*``, ``context_path.arm16.*``,
``spatial_path.layer1.*``, ``ffm.conv_atten.0.*``, ...) and parameters are registered in its order.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import ConvBN, ConvBNReLU
from .resnet import ResNet, ResNetConfig


@dataclass(frozen=True)
class BiSeNetV1Config:
    """Constructor arguments of :class:`BiSeNetV1`, as stored in the zoo registry."""

    backbone_cfg: ResNetConfig = field(default_factory=lambda: ResNetConfig(
        depth=18, deep_stem=False, strides=(1, 2, 2, 2), dilations=(1, 1, 1, 1)))
    spatial_channels: tuple[int, int, int, int] = (64, 64, 64, 128)
    context_channels: tuple[int, int, int] = (128, 256, 512)
    out_channels: int = 256
    out_indices: tuple[int, ...] = (0, 1, 2)
    kind: str = "bisenetv1"

    def __post_init__(self) -> None:
        # read back from zoo.json the context backbone is a plain dict (lists for tuples)
        if isinstance(self.backbone_cfg, dict):
            names = {f.name for f in fields(ResNetConfig)}
            unknown = set(self.backbone_cfg) - names
            if unknown or self.backbone_cfg.get("kind", "resnet") != "resnet":
                raise ValueError(f"BiSeNetV1's context backbone must be a ResNet config, got {self.backbone_cfg}")
            cfg = ResNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.backbone_cfg.items()})
            object.__setattr__(self, "backbone_cfg", cfg)

    @property
    def depth(self) -> int:
        """The context ResNet's depth (what the zoo's listings sort and describe backbones by)."""
        return self.backbone_cfg.depth

    @property
    def output_stride(self) -> int:
        """The stride of the coarsest map (the context ResNet's last stage)."""
        return self.backbone_cfg.output_stride


class SpatialPath(nn.Module):
    """7x7 s2, 3x3 s2, 3x3 s2 and 1x1 ConvBNReLUs: a stride-8 map with wide channels."""

    def __init__(self, in_channels: int = 3, channels: tuple[int, int, int, int] = (64, 64, 64, 128)) -> None:
        super().__init__()
        self.layer1 = ConvBNReLU(in_channels, channels[0], 7, stride=2, padding=3)
        self.layer2 = ConvBNReLU(channels[0], channels[1], 3, stride=2, padding=1)
        self.layer3 = ConvBNReLU(channels[1], channels[2], 3, stride=2, padding=1)
        self.layer4 = ConvBNReLU(channels[2], channels[3], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class AttentionRefinementModule(nn.Module):
    """3x3 ConvBNReLU, then a per-channel gate: sigmoid(BN(1x1 conv(global average)))."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_layer = ConvBNReLU(in_channels, out_channels, 3, padding=1)
        self.atten_conv_layer = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), ConvBN(out_channels, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_layer(x)
        return x * torch.sigmoid(self.atten_conv_layer(x))


class ContextPath(nn.Module):
    """The ResNet with ARMs on its stride-16/32 stages and a global-context vector; returns the refined
    stride-8 and stride-16 maps."""

    def __init__(self, backbone_cfg: ResNetConfig, context_channels: tuple[int, int, int]) -> None:
        super().__init__()
        c0, c1, c2 = context_channels
        self.backbone = ResNet.from_config(backbone_cfg)
        self.arm16 = AttentionRefinementModule(c1, c0)
        self.arm32 = AttentionRefinementModule(c2, c0)
        self.conv_head32 = ConvBNReLU(c0, c0, 3, padding=1)
        self.conv_head16 = ConvBNReLU(c0, c0, 3, padding=1)
        self.gap_conv = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), ConvBNReLU(c2, c0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, x8, x16, x32 = self.backbone(x)
        x32 = self.arm32(x32) + self.gap_conv(x32)
        # nearest-neighbour upsampling (not bilinear), as the reference
        up32 = self.conv_head32(F.interpolate(x32, size=x16.shape[2:], mode="nearest"))
        x16 = self.arm16(x16) + up32
        up16 = self.conv_head16(F.interpolate(x16, size=x8.shape[2:], mode="nearest"))
        return up16, up32


class FeatureFusionModule(nn.Module):
    """1x1 ConvBNReLU of the concatenated paths, re-weighted per channel: ``f + f * gate(f)``.

    Unlike the paper the gate is one 1x1 ConvBNReLU (BN and ReLU before the sigmoid), as the reference."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(in_channels, out_channels)
        self.gap = nn.AdaptiveAvgPool2d((1, 1))
        self.conv_atten = nn.Sequential(ConvBNReLU(out_channels, out_channels))

    def forward(self, x_spatial: torch.Tensor, x_context: torch.Tensor) -> torch.Tensor:
        fuse = self.conv1(torch.cat([x_spatial, x_context], dim=1))
        gate = torch.sigmoid(self.conv_atten(self.gap(fuse)))
        return fuse * gate + fuse


class BiSeNetV1(nn.Module):
    """Spatial path + context path + FFM; returns ``[ffm, context_8, context_16][out_indices]``."""

    def __init__(self, backbone_cfg: ResNetConfig, *, spatial_channels=(64, 64, 64, 128),
                 context_channels=(128, 256, 512), out_channels: int = 256, out_indices=(0, 1, 2)) -> None:
        super().__init__()
        if len(spatial_channels) != 4 or len(context_channels) != 3:
            raise ValueError("BiSeNetV1 needs 4 spatial-path and 3 context-path channel counts")
        if spatial_channels[3] + context_channels[0] != context_channels[1]:
            raise ValueError(f"BiSeNetV1's FFM reads the concatenated paths as context_channels[1] = "
                             f"{context_channels[1]} channels, but they carry spatial_channels[3] + "
                             f"context_channels[0] = {spatial_channels[3] + context_channels[0]}")
        self.out_indices = tuple(out_indices)
        self.context_path = ContextPath(backbone_cfg, tuple(context_channels))
        self.spatial_path = SpatialPath(3, tuple(spatial_channels))
        # the FFM's input is the spatial path's and the context path's maps concatenated: the reference
        # sizes it by context_channels[1], which the configs set to spatial_channels[3] + context_channels[0]
        self.ffm = FeatureFusionModule(context_channels[1], out_channels)
        all_channels = [out_channels, context_channels[0], context_channels[0]]
        self.out_channels = [all_channels[i] for i in self.out_indices]

    @classmethod
    def from_config(cls, cfg: BiSeNetV1Config) -> "BiSeNetV1":
        return cls(cfg.backbone_cfg, spatial_channels=cfg.spatial_channels, context_channels=cfg.context_channels,
                   out_channels=cfg.out_channels, out_indices=cfg.out_indices)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        context8, context16 = self.context_path(x)
        fused = self.ffm(self.spatial_path(x), context8)
        outs = [fused, context8, context16]
        return [outs[i] for i in self.out_indices]
