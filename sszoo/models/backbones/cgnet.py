"""CGNet (Wu et al., "CGNet: A Light-weight Context Guided Network for Semantic Segmentation", TIP 2020).

A 3-conv stem (1/2), then two levels of context-guided (CG) blocks (1/4 and 1/8). A CG block joins a local
depthwise 3x3 conv and a dilated ("surrounding") depthwise 3x3 conv, normalises them with one BatchNorm +
PReLU and reweights the channels with a squeeze-and-excitation style global context (two FC layers). The
first block of each level downsamples (3x3 stride-2 conv in, 1x1 conv out) and has no skip connection.

The image itself is injected: 3x3 stride-2 average pooling (zero padding counted) of the input is
concatenated to the stem's output (1/2) and, pooled twice, to level 1's (1/4), where the level's first
block output is also concatenated; level 2's output is concatenated with its first block's. Every
BatchNorm has ``eps = 1e-3`` (the published configs' ``norm_cfg``). Returns the three concatenated maps
(1/2, 1/4, 1/8), under MMSegmentation's key names.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._conv import ConvNormAct


@dataclass(frozen=True)
class CGNetConfig:
    """Constructor arguments of :class:`CGNet` (MMSegmentation's names)."""

    num_channels: tuple[int, int, int] = (32, 64, 128)
    num_blocks: tuple[int, int] = (3, 21)
    dilations: tuple[int, int] = (2, 4)
    reductions: tuple[int, int] = (8, 16)
    norm_eps: float = 1e-3
    kind: str = "cgnet"

    @property
    def output_stride(self) -> int:
        """The deepest map's stride (level 2): 8."""
        return 8


class GlobalContextExtractor(nn.Module):
    """Channel reweighting by the global mean through FC -> ReLU -> FC -> sigmoid (keys ``fc.0``, ``fc.2``)."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        if not 1 <= reduction <= channels:
            raise ValueError(f"reduction {reduction} must lie in [1, {channels}]")
        self.fc = nn.Sequential(nn.Linear(channels, channels // reduction), nn.ReLU(inplace=True),
                                nn.Linear(channels // reduction, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.fc(x.mean(dim=(2, 3)))
        return x * w[:, :, None, None]


class ContextGuidedBlock(nn.Module):
    """conv (1x1, or 3x3 stride 2 when downsampling) -> [local dw 3x3 | dilated dw 3x3] -> BN + PReLU
    (-> 1x1 conv when downsampling) -> global context, plus the input when the block keeps the shape."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int, reduction: int, *, downsample: bool,
                 eps: float = 1e-3) -> None:
        super().__init__()
        channels = out_channels if downsample else out_channels // 2
        k = 3 if downsample else 1
        self.conv1x1 = ConvNormAct(in_channels, channels, k, stride=2 if downsample else 1, padding=(k - 1) // 2,
                                   eps=eps, act=nn.PReLU(channels))
        self.f_loc = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.f_sur = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(2 * channels, eps=eps)
        self.activate = nn.PReLU(2 * channels)
        self.downsample = downsample
        if downsample:
            self.bottleneck = nn.Conv2d(2 * channels, out_channels, 1, bias=False)
        self.skip_connect = not downsample
        self.f_glo = GlobalContextExtractor(out_channels, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x)
        joint = self.activate(self.bn(torch.cat([self.f_loc(out), self.f_sur(out)], dim=1)))
        if self.downsample:
            joint = self.bottleneck(joint)
        out = self.f_glo(joint)
        return x + out if self.skip_connect else out


class InputInjection(nn.Module):
    """``num_downsampling`` times 3x3 stride-2 average pooling (padding 1, counted in the mean): the same
    ceil(n / 2) size as the stride-2 convs, so the image concatenates at any input size."""

    def __init__(self, num_downsampling: int) -> None:
        super().__init__()
        self.pool = nn.ModuleList(nn.AvgPool2d(3, stride=2, padding=1) for _ in range(num_downsampling))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for pool in self.pool:
            x = pool(x)
        return x


def _norm_prelu(channels: int, eps: float) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(channels, eps=eps), nn.PReLU(channels))


class CGNet(nn.Module):
    """CGNet returning the stem, level-1 and level-2 maps (1/2, 1/4, 1/8)."""

    def __init__(self, *, num_channels=(32, 64, 128), num_blocks=(3, 21), dilations=(2, 4), reductions=(8, 16),
                 norm_eps: float = 1e-3) -> None:
        super().__init__()
        c0, c1, c2 = num_channels
        eps = norm_eps
        self.stem = nn.ModuleList(ConvNormAct(3 if i == 0 else c0, c0, 3, stride=2 if i == 0 else 1, padding=1,
                                              eps=eps, act=nn.PReLU(c0)) for i in range(3))
        self.inject_2x = InputInjection(1)
        self.inject_4x = InputInjection(2)
        self.norm_prelu_0 = _norm_prelu(c0 + 3, eps)
        self.level1 = nn.ModuleList(
            ContextGuidedBlock(c0 + 3 if i == 0 else c1, c1, dilations[0], reductions[0], downsample=i == 0, eps=eps)
            for i in range(num_blocks[0]))
        self.norm_prelu_1 = _norm_prelu(2 * c1 + 3, eps)
        self.level2 = nn.ModuleList(
            ContextGuidedBlock(2 * c1 + 3 if i == 0 else c2, c2, dilations[1], reductions[1], downsample=i == 0,
                               eps=eps)
            for i in range(num_blocks[1]))
        self.norm_prelu_2 = _norm_prelu(2 * c2, eps)
        self.out_channels = [c0 + 3, 2 * c1 + 3, 2 * c2]

    @classmethod
    def from_config(cls, cfg: CGNetConfig) -> "CGNet":
        return cls(num_channels=cfg.num_channels, num_blocks=cfg.num_blocks, dilations=cfg.dilations,
                   reductions=cfg.reductions, norm_eps=cfg.norm_eps)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        inp_2x, inp_4x = self.inject_2x(x), self.inject_4x(x)
        for layer in self.stem:
            x = layer(x)
        x = self.norm_prelu_0(torch.cat([x, inp_2x], dim=1))
        outs = [x]
        x = down1 = self.level1[0](x)
        for layer in self.level1[1:]:
            x = layer(x)
        x = self.norm_prelu_1(torch.cat([x, down1, inp_4x], dim=1))
        outs.append(x)
        x = down2 = self.level2[0](x)
        for layer in self.level2[1:]:
            x = layer(x)
        outs.append(self.norm_prelu_2(torch.cat([down2, x], dim=1)))  # note: first block first, as the reference
        return outs
