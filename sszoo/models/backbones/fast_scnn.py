"""Fast-SCNN (Poudel et al., "Fast-SCNN: Fast Semantic Segmentation Network", BMVC 2019).

Three parts, each under MMSegmentation's key names:

- ``learning_to_downsample``: a 3x3 stride-2 ConvBNReLU and two stride-2 depthwise-separable convs (1/8);
- ``global_feature_extractor``: three groups of MobileNetV2 inverted residuals (ReLU, not ReLU6) down to 1/32,
  a pyramid pooling module whose pooled maps are concatenated with its input, and a 3x3 ConvBNReLU;
- ``feature_fusion``: the low-resolution branch upsampled to 1/8, a depthwise 3x3 ConvBNReLU and a 1x1 ConvBN,
  added to a 1x1 ConvBN of the 1/8 features, then ReLU.

The backbone returns ``[higher_res (1/8), lower_res (1/32), fused (1/8)]`` picked by ``out_indices``; the
decode head reads the fused map and the two auxiliary FCN heads the others.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import adaptive_avg_pool2d, resize
from ._conv import ConvNormAct, DepthwiseSeparableConv


@dataclass(frozen=True)
class FastSCNNConfig:
    """Constructor arguments of :class:`FastSCNN` (MMSegmentation's names)."""

    downsample_dw_channels: tuple[int, int] = (32, 48)
    global_in_channels: int = 64
    global_block_channels: tuple[int, int, int] = (64, 96, 128)
    global_block_strides: tuple[int, int, int] = (2, 2, 1)
    global_out_channels: int = 128
    higher_in_channels: int = 64
    lower_in_channels: int = 128
    fusion_out_channels: int = 128
    out_indices: tuple[int, ...] = (0, 1, 2)
    align_corners: bool = False
    kind: str = "fast_scnn"

    @property
    def output_stride(self) -> int:
        """The deepest map's stride (the global feature extractor's): 8 x its group strides."""
        return 8 * self.global_block_strides[0] * self.global_block_strides[1] * self.global_block_strides[2]


def _relu() -> nn.Module:
    return nn.ReLU(inplace=True)


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand ConvBNReLU, depthwise 3x3 ConvBNReLU, 1x1 ConvBN (+ identity when the
    shape is kept). Fast-SCNN passes ReLU, where MobileNetV2 itself uses ReLU6."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvNormAct(in_channels, hidden, 1, act=_relu()))
        layers += [ConvNormAct(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, act=_relu()),
                   ConvNormAct(hidden, out_channels, 1)]
        self.conv = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class _PoolBranch(nn.Module):
    """One pyramid-pooling branch: adaptive average pooling to ``scale`` bins, then a 1x1 ConvBNReLU (key
    ``1``, as the reference's ``Sequential(AdaptiveAvgPool2d, ConvModule)``)."""

    def __init__(self, scale: int, in_channels: int, channels: int) -> None:
        super().__init__()
        self.scale = scale
        self.add_module("1", ConvNormAct(in_channels, channels, 1, act=_relu()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # bins that do not divide the 1/32 map (6 bins of a 4 x 5 map at small inputs) overlap, as in PyTorch;
        # sszoo's pooling keeps that exportable to ONNX
        return getattr(self, "1")(adaptive_avg_pool2d(x, self.scale))


class GlobalFeatureExtractor(nn.Module):
    """Inverted-residual groups, pyramid pooling (its maps upsampled and concatenated with its input) and a
    3x3 ConvBNReLU to ``out_channels``."""

    def __init__(self, in_channels: int, block_channels: tuple[int, int, int], out_channels: int,
                 strides: tuple[int, int, int], *, expand_ratio: int = 6, num_blocks: tuple[int, int, int] = (3, 3, 3),
                 pool_scales: tuple[int, ...] = (1, 2, 3, 6), align_corners: bool = False) -> None:
        super().__init__()
        self.align_corners = align_corners
        cin = in_channels
        for i, (c, n, s) in enumerate(zip(block_channels, num_blocks, strides)):
            blocks = [InvertedResidual(cin if j == 0 else c, c, s if j == 0 else 1, expand_ratio) for j in range(n)]
            self.add_module(f"bottleneck{i + 1}", nn.Sequential(*blocks))
            cin = c
        self.ppm = nn.ModuleList(_PoolBranch(s, cin, cin // 4) for s in pool_scales)
        self.out = ConvNormAct(cin * 2, out_channels, 3, padding=1, act=_relu())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bottleneck3(self.bottleneck2(self.bottleneck1(x)))
        pooled = [resize(branch(x), x.shape[2:], self.align_corners) for branch in self.ppm]
        return self.out(torch.cat([x, *pooled], dim=1))


class FeatureFusionModule(nn.Module):
    """Upsample the low-resolution features to the high-resolution map, depthwise 3x3 ConvBNReLU + 1x1 ConvBN,
    add a 1x1 ConvBN of the high-resolution features, ReLU."""

    def __init__(self, higher_in_channels: int, lower_in_channels: int, out_channels: int, *,
                 align_corners: bool = False) -> None:
        super().__init__()
        self.align_corners = align_corners
        # groups=out_channels: the reference's "depthwise" conv assumes lower_in_channels == out_channels
        self.dwconv = ConvNormAct(lower_in_channels, out_channels, 3, padding=1, groups=out_channels, act=_relu())
        self.conv_lower_res = ConvNormAct(out_channels, out_channels, 1)
        self.conv_higher_res = ConvNormAct(higher_in_channels, out_channels, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, higher: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
        lower = resize(lower, higher.shape[2:], self.align_corners)
        lower = self.conv_lower_res(self.dwconv(lower))
        return self.relu(self.conv_higher_res(higher) + lower)


class LearningToDownsample(nn.Module):
    """3x3 stride-2 ConvBNReLU and two stride-2 depthwise-separable convs: 1/8 resolution."""

    def __init__(self, in_channels: int, dw_channels: tuple[int, int], out_channels: int) -> None:
        super().__init__()
        self.conv = ConvNormAct(in_channels, dw_channels[0], 3, stride=2, padding=1, act=_relu())
        self.dsconv1 = DepthwiseSeparableConv(dw_channels[0], dw_channels[1], 3, stride=2, padding=1)
        self.dsconv2 = DepthwiseSeparableConv(dw_channels[1], out_channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dsconv2(self.dsconv1(self.conv(x)))


class FastSCNN(nn.Module):
    """Fast-SCNN returning ``[higher_res, lower_res, fused][i] for i in out_indices``."""

    def __init__(self, *, downsample_dw_channels=(32, 48), global_in_channels: int = 64,
                 global_block_channels=(64, 96, 128), global_block_strides=(2, 2, 1), global_out_channels: int = 128,
                 higher_in_channels: int = 64, lower_in_channels: int = 128, fusion_out_channels: int = 128,
                 out_indices=(0, 1, 2), align_corners: bool = False) -> None:
        super().__init__()
        if global_in_channels != higher_in_channels or global_out_channels != lower_in_channels:
            raise ValueError("Fast-SCNN needs global_in_channels == higher_in_channels and "
                             "global_out_channels == lower_in_channels")
        self.out_indices = tuple(out_indices)
        self.learning_to_downsample = LearningToDownsample(3, tuple(downsample_dw_channels), global_in_channels)
        self.global_feature_extractor = GlobalFeatureExtractor(
            global_in_channels, tuple(global_block_channels), global_out_channels, tuple(global_block_strides),
            align_corners=align_corners)
        self.feature_fusion = FeatureFusionModule(higher_in_channels, lower_in_channels, fusion_out_channels,
                                                  align_corners=align_corners)
        channels = [global_in_channels, global_out_channels, fusion_out_channels]
        self.out_channels = [channels[i] for i in self.out_indices]

    @classmethod
    def from_config(cls, cfg: FastSCNNConfig) -> "FastSCNN":
        return cls(downsample_dw_channels=cfg.downsample_dw_channels, global_in_channels=cfg.global_in_channels,
                   global_block_channels=cfg.global_block_channels, global_block_strides=cfg.global_block_strides,
                   global_out_channels=cfg.global_out_channels, higher_in_channels=cfg.higher_in_channels,
                   lower_in_channels=cfg.lower_in_channels, fusion_out_channels=cfg.fusion_out_channels,
                   out_indices=cfg.out_indices, align_corners=cfg.align_corners)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        higher = self.learning_to_downsample(x)
        lower = self.global_feature_extractor(higher)
        fused = self.feature_fusion(higher, lower)
        outs = [higher, lower, fused]
        return [outs[i] for i in self.out_indices]
