"""ResNeSt backbone (Zhang et al., "ResNeSt: Split-Attention Networks", 2020), as MMSegmentation builds it.

A ResNetV1d (deep 3x3 stem of ``stem_channels``, average-pool shortcut downsampling) whose bottlenecks
replace the 3x3 conv by a *split-attention* conv: the conv produces ``radix`` groups of feature maps, a
small MLP on their pooled sum gives per-channel softmax weights across the groups, and the block's
output is the weighted sum. A strided block runs its 3x3 conv at stride 1 and downsamples afterwards with
a 3x3 average pool ("avd", ``avg_down_stride``).

Module names give MMSegmentation's state-dict keys (``layerN.M.conv2.{conv,bn0,fc1,bn1,fc2}``,
``downsample.{1,2}``), and parameters are registered in its order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from .resnet import _stage_dilations

_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3), 200: (3, 24, 36, 3)}


@dataclass(frozen=True)
class ResNeStConfig:
    """Constructor arguments of :class:`ResNeSt`, as stored in the zoo registry."""

    depth: int = 101
    stem_channels: int = 128
    strides: tuple[int, int, int, int] = (1, 2, 1, 1)
    dilations: tuple[int, int, int, int] = (1, 1, 2, 4)
    contract_dilation: bool = True
    multi_grid: tuple[int, ...] | None = None
    groups: int = 1
    base_width: int = 4
    radix: int = 2
    reduction_factor: int = 4
    avg_down_stride: bool = True
    kind: str = "resnest"


class SplitAttentionConv2d(nn.Module):
    """k x k conv to ``radix`` splits, then a softmax across the splits (per channel) weighting their sum."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int = 3, *, stride: int = 1, padding: int = 1,
                 dilation: int = 1, groups: int = 1, radix: int = 2, reduction_factor: int = 4) -> None:
        super().__init__()
        inter_channels = max(in_channels * radix // reduction_factor, 32)
        self.radix = radix
        self.groups = groups
        self.conv = nn.Conv2d(in_channels, channels * radix, kernel_size, stride=stride, padding=padding,
                              dilation=dilation, groups=groups * radix, bias=False)
        self.bn0 = nn.BatchNorm2d(channels * radix)
        self.relu = nn.ReLU(inplace=True)
        # the attention MLP's 1x1 convs carry biases (no norm follows fc2)
        self.fc1 = nn.Conv2d(channels, inter_channels, 1, groups=groups)
        self.bn1 = nn.BatchNorm2d(inter_channels)
        self.fc2 = nn.Conv2d(inter_channels, channels * radix, 1, groups=groups)

    def _attention(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-channel weights of each split: softmax across the splits (sigmoid when radix is 1)."""
        n = logits.shape[0]
        if self.radix == 1:
            return torch.sigmoid(logits)
        # channels are laid out (group, radix, c); the weights are returned laid out (radix, group, c)
        weights = logits.view(n, self.groups, self.radix, -1).transpose(1, 2).softmax(dim=1)
        return weights.reshape(n, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn0(self.conv(x)))
        n = x.shape[0]
        splits = x.view(n, self.radix, -1, *x.shape[2:]) if self.radix > 1 else x
        pooled = F.adaptive_avg_pool2d(splits.sum(dim=1) if self.radix > 1 else x, 1)
        weights = self._attention(self.fc2(self.relu(self.bn1(self.fc1(pooled)))))
        if self.radix == 1:
            return weights * x
        weights = weights.view(n, self.radix, -1, 1, 1)
        return (weights * splits).sum(dim=1).contiguous()


class ResNeStBottleneck(nn.Module):
    """1x1 conv -> split-attention 3x3 conv (-> 3x3 average pool when strided) -> 1x1 conv, plus shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None, *, groups: int = 1, base_width: int = 4,
                 radix: int = 2, reduction_factor: int = 4, avg_down_stride: bool = True) -> None:
        super().__init__()
        width = planes if groups == 1 else math.floor(planes * base_width / 64) * groups
        self.avg_down_stride = avg_down_stride and stride > 1
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = SplitAttentionConv2d(width, width, 3, stride=1 if self.avg_down_stride else stride,
                                          padding=dilation, dilation=dilation, groups=groups, radix=radix,
                                          reduction_factor=reduction_factor)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.avd_layer = nn.AvgPool2d(3, stride, padding=1) if self.avg_down_stride else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.conv2(out)  # split attention ends in a weighted sum: no norm or ReLU after it
        if self.avd_layer is not None:
            out = self.avd_layer(out)
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _downsample(inplanes: int, outplanes: int, stride: int) -> nn.Sequential:
    """ResNetV1d shortcut: average pool for the stride (an identity at stride 1, kept for the key layout),
    then a 1x1 conv and BN."""
    return nn.Sequential(nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False),
                         nn.Conv2d(inplanes, outplanes, 1, bias=False), nn.BatchNorm2d(outplanes))


class ResNeSt(nn.Module):
    """ResNeSt returning the outputs of its four stages (strides 4, 8, 8|16, 8|16|32)."""

    def __init__(self, depth: int = 101, *, stem_channels: int = 128, strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4),
                 contract_dilation: bool = True, multi_grid: tuple[int, ...] | None = None, groups: int = 1,
                 base_width: int = 4, radix: int = 2, reduction_factor: int = 4, avg_down_stride: bool = True) -> None:
        super().__init__()
        if depth not in _BLOCKS:
            raise ValueError(f"ResNeSt depth must be one of {sorted(_BLOCKS)}, got {depth}")
        half = stem_channels // 2
        self.stem = nn.Sequential(
            nn.Conv2d(3, half, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            nn.Conv2d(half, half, 3, padding=1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            nn.Conv2d(half, stem_channels, 3, padding=1, bias=False), nn.BatchNorm2d(stem_channels),
            nn.ReLU(inplace=True),
        )
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        block_args = dict(groups=groups, base_width=base_width, radix=radix, reduction_factor=reduction_factor,
                          avg_down_stride=avg_down_stride)
        expansion = ResNeStBottleneck.expansion
        inplanes = stem_channels
        self.out_channels: list[int] = []
        for i, (n, s, d) in enumerate(zip(_BLOCKS[depth], strides, dilations)):
            planes = 64 * 2 ** i
            rates = _stage_dilations(n, d, contract_dilation, multi_grid if i == 3 else None)
            downsample = None
            if s != 1 or inplanes != planes * expansion:
                downsample = _downsample(inplanes, planes * expansion, s)
            layers = [ResNeStBottleneck(inplanes, planes, s, rates[0], downsample, **block_args)]
            inplanes = planes * expansion
            layers += [ResNeStBottleneck(inplanes, planes, 1, r, **block_args) for r in rates[1:]]
            self.add_module(f"layer{i + 1}", nn.Sequential(*layers))
            self.out_channels.append(inplanes)

    @classmethod
    def from_config(cls, cfg: ResNeStConfig) -> "ResNeSt":
        return cls(cfg.depth, stem_channels=cfg.stem_channels, strides=cfg.strides, dilations=cfg.dilations,
                   contract_dilation=cfg.contract_dilation, multi_grid=cfg.multi_grid, groups=cfg.groups,
                   base_width=cfg.base_width, radix=cfg.radix, reduction_factor=cfg.reduction_factor,
                   avg_down_stride=cfg.avg_down_stride)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.stem(x))
        outs = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            outs.append(x)
        return outs
