"""DDRNet (Hong et al., "Deep Dual-resolution Networks for Real-time and Accurate Semantic Segmentation of
Road Scenes", 2021): a shared stem to 1/8, then two branches run side by side, a high-resolution *spatial*
branch that stays at 1/8 and a low-resolution *context* branch (1/16, 1/32, 1/64), exchanging features twice
(bilateral fusion), and a Deep Aggregation Pyramid Pooling Module (DAPPM) on the context branch.

State-dict keys are MMSegmentation 1.2.2's (``stem``, ``context_branch_layers``, ``compression_1``,
``down_1``, ``compression_2``, ``down_2``, ``spatial_branch_layers``, ``spp``), so its checkpoints load
strictly. The blocks here (MMSegmentation's ``BasicBlock`` / ``Bottleneck`` with expansion 2, the
``ConvModule`` key layout, DAPPM and PIDNet's PAPPM) are shared with :mod:`.pidnet`.

Input sides must be multiples of 8: the spatial branch is ``ceil(H / 8)`` pixels high but the context
features are resized to ``H // 8`` before being added to it, so the reference fails on other sizes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import adaptive_avg_pool2d, resize


class ConvNorm(nn.Module):
    """MMCV's ``ConvModule`` in its default order: Conv2d (no bias) -> BatchNorm2d (-> ReLU if ``act``).

    Keys ``conv`` and ``bn``, as in MMSegmentation's checkpoints.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, *, stride: int = 1,
                 padding: int = 0, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.ReLU(inplace=True) if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return self.activate(x) if self.activate is not None else x


class NormActConv(nn.Module):
    """``ConvModule`` with ``order=('norm', 'act', 'conv')``: BatchNorm2d over the *input* channels -> ReLU ->
    Conv2d (no bias). The conv is registered first (as MMCV does), so parameters enumerate conv, then bn."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, *, padding: int = 0,
                 groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(in_channels)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.activate(self.bn(x)))


class BasicBlock(nn.Module):
    """MMSegmentation's ``BasicBlock``: two 3x3 ConvNorms (ReLU between), a shortcut, an optional final ReLU."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None,
                 act_out: bool = True) -> None:
        super().__init__()
        self.conv1 = ConvNorm(in_channels, channels, 3, stride=stride, padding=1)
        self.conv2 = ConvNorm(channels, channels, 3, padding=1, act=False)
        self.downsample = downsample
        self.act = nn.ReLU(inplace=True) if act_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv2(self.conv1(x)) + identity
        return self.act(out) if self.act is not None else out


class Bottleneck(nn.Module):
    """MMSegmentation's ``Bottleneck`` (expansion 2, not ResNet's 4; stride on the 3x3 conv)."""

    expansion = 2

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None,
                 act_out: bool = False) -> None:
        super().__init__()
        self.conv1 = ConvNorm(in_channels, channels, 1)
        self.conv2 = ConvNorm(channels, channels, 3, stride=stride, padding=1)
        self.conv3 = ConvNorm(channels, channels * self.expansion, 1, act=False)
        self.act = nn.ReLU(inplace=True) if act_out else None
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv3(self.conv2(self.conv1(x))) + identity
        return self.act(out) if self.act is not None else out


def make_layer(block: type, in_channels: int, channels: int, num_blocks: int, stride: int = 1, *,
               conv_module_downsample: bool) -> nn.Sequential:
    """A stage of ``num_blocks`` blocks, as the reference's ``_make_layer``.

    The first block keeps its class's default final activation (ReLU for BasicBlock, none for Bottleneck);
    later blocks end with ReLU except the last, which has none. DDRNet's shortcut projection is a
    ``Sequential(conv, bn)`` (keys ``downsample.0/1``), PIDNet's a ConvModule (``downsample.conv/bn``).
    """
    out = channels * block.expansion
    downsample = None
    if stride != 1 or in_channels != out:
        if conv_module_downsample:
            downsample = ConvNorm(in_channels, out, 1, stride=stride, act=False)
        else:
            downsample = nn.Sequential(nn.Conv2d(in_channels, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
    layers = [block(in_channels, channels, stride, downsample)]
    for i in range(1, num_blocks):
        layers.append(block(out, channels, 1, None, act_out=i != num_blocks - 1))
    return nn.Sequential(*layers)


class DAPPM(nn.Module):
    """Deep Aggregation Pyramid Pooling Module (DDRNet; PIDNet-L).

    Scale 0 is a 1x1 conv of the input; scales 1..n-2 average-pool (kernels 5/9/17, strides 2/4/8) and
    scale n-1 pools globally, each followed by a 1x1 conv. Each pooled scale is upsampled, added to the
    previous scale's output and refined by a 3x3 conv (hierarchical fusion); the concatenation is compressed
    by a 1x1 conv and added to a 1x1 shortcut. Every conv is pre-activated (BN -> ReLU -> conv).
    """

    def __init__(self, in_channels: int, branch_channels: int, out_channels: int, num_scales: int = 5,
                 kernel_sizes: tuple[int, ...] = (5, 9, 17), strides: tuple[int, ...] = (2, 4, 8),
                 paddings: tuple[int, ...] = (2, 4, 8)) -> None:
        super().__init__()
        self.num_scales = num_scales
        self.pools = [(k, s, p) for k, s, p in zip(kernel_sizes, strides, paddings)][:num_scales - 2]
        # scales.0 is a bare ConvModule; scales.i (i > 0) are Sequential(pool, ConvModule) -> keys scales.i.1.*
        scales: list[nn.Module] = [NormActConv(in_channels, branch_channels, 1)]
        for k, s, p in self.pools:
            scales.append(nn.Sequential(nn.AvgPool2d(k, s, p), NormActConv(in_channels, branch_channels, 1)))
        scales.append(nn.Sequential(_GlobalAvgPool(), NormActConv(in_channels, branch_channels, 1)))
        self.scales = nn.ModuleList(scales)
        self.processes = self._processes(branch_channels, num_scales)
        self.compression = NormActConv(branch_channels * num_scales, out_channels, 1)
        self.shortcut = NormActConv(in_channels, out_channels, 1)

    def _processes(self, branch_channels: int, num_scales: int) -> nn.Module:
        return nn.ModuleList([NormActConv(branch_channels, branch_channels, 3, padding=1)
                              for _ in range(num_scales - 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [self.scales[0](x)]
        for i in range(1, self.num_scales):
            up = F.interpolate(self.scales[i](x), size=x.shape[2:], mode="bilinear", align_corners=False)
            feats.append(self.processes[i - 1](up + feats[i - 1]))
        return self.compression(torch.cat(feats, dim=1)) + self.shortcut(x)


class PAPPM(DAPPM):
    """PIDNet's Parallel Aggregation PPM: every upsampled pooled scale is added to scale 0 and all are
    refined together by one grouped 3x3 conv (one group per scale) instead of hierarchically."""

    def _processes(self, branch_channels: int, num_scales: int) -> nn.Module:
        c = branch_channels * (num_scales - 1)
        return NormActConv(c, c, 3, padding=1, groups=num_scales - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.scales[0](x)
        feats = [F.interpolate(self.scales[i](x), size=x.shape[2:], mode="bilinear", align_corners=False) + x0
                 for i in range(1, self.num_scales)]
        return self.compression(torch.cat([x0, self.processes(torch.cat(feats, dim=1))], dim=1)) + self.shortcut(x)


class _GlobalAvgPool(nn.Module):
    """``AdaptiveAvgPool2d((1, 1))`` through sszoo's export-safe pooling."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return adaptive_avg_pool2d(x, 1)


def check_multiple_of_8(x: torch.Tensor, name: str) -> None:
    """Both branch-fusing networks add features of ``ceil(side / 8)`` and ``side // 8`` pixels, which only
    agree for multiples of 8; fail with a clear message (the reference fails with a shape mismatch)."""
    h, w = x.shape[-2:]
    tracing = torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()
    if not tracing and (h % 8 or w % 8):  # (an exported graph is checked at export time instead)
        raise ValueError(f"{name} needs input sides that are multiples of 8, got {h} x {w}")


@dataclass(frozen=True)
class DDRNetConfig:
    """Constructor arguments of :class:`DDRNet` (DDRNet-23-slim: channels 32; DDRNet-23: channels 64)."""

    channels: int = 32
    ppm_channels: int = 128
    in_channels: int = 3
    align_corners: bool = False
    kind: str = "ddrnet"

    @property
    def output_stride(self) -> int:
        """The stride of the features the head reads (the spatial branch)."""
        return 8

    @property
    def size_divisor(self) -> int:
        """Input sides must be multiples of this (see the module docstring)."""
        return 8


class DDRNet(nn.Module):
    """DDRNet-23(-slim). In eval mode returns ``[features]`` (1/8, ``4 * channels``); in training mode
    ``[stage-3 spatial features (2 * channels), features]``: DDRHead's auxiliary loss reads the first."""

    def __init__(self, channels: int = 32, ppm_channels: int = 128, in_channels: int = 3,
                 align_corners: bool = False) -> None:
        super().__init__()
        c = channels
        self.align_corners = align_corners
        self.out_channels = [2 * c, 4 * c]

        def layer(block, cin, cout, n, stride=1):
            return make_layer(block, cin, cout, n, stride, conv_module_downsample=False)

        self.stem = nn.Sequential(
            ConvNorm(in_channels, c, 3, stride=2, padding=1), ConvNorm(c, c, 3, stride=2, padding=1),
            layer(BasicBlock, c, c, 2), nn.ReLU(), layer(BasicBlock, c, 2 * c, 2, stride=2), nn.ReLU())
        self.relu = nn.ReLU()
        # context branch: 2c -> 4c (1/16), 4c -> 8c (1/32), 8c -> 16c (Bottleneck, 1/64)
        self.context_branch_layers = nn.ModuleList([
            layer(BasicBlock, 2 * c, 4 * c, 2, stride=2), layer(BasicBlock, 4 * c, 8 * c, 2, stride=2),
            layer(Bottleneck, 8 * c, 8 * c, 1, stride=2)])
        # bilateral fusion: compression (context -> spatial, 1x1 then upsampled), down (spatial -> context)
        self.compression_1 = ConvNorm(4 * c, 2 * c, 1, act=False)
        self.down_1 = ConvNorm(2 * c, 4 * c, 3, stride=2, padding=1, act=False)
        self.compression_2 = ConvNorm(8 * c, 2 * c, 1, act=False)
        self.down_2 = nn.Sequential(ConvNorm(2 * c, 4 * c, 3, stride=2, padding=1),
                                    ConvNorm(4 * c, 8 * c, 3, stride=2, padding=1, act=False))
        # spatial branch stays at 1/8: 2c, 2c, then a Bottleneck to 4c
        self.spatial_branch_layers = nn.ModuleList([
            layer(BasicBlock, 2 * c, 2 * c, 2), layer(BasicBlock, 2 * c, 2 * c, 2), layer(Bottleneck, 2 * c, 2 * c, 1)])
        self.spp = DAPPM(16 * c, ppm_channels, 4 * c, num_scales=5)

    @classmethod
    def from_config(cls, cfg: DDRNetConfig) -> "DDRNet":
        return cls(cfg.channels, cfg.ppm_channels, cfg.in_channels, cfg.align_corners)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_multiple_of_8(x, "DDRNet")
        out_size = (x.shape[-2] // 8, x.shape[-1] // 8)
        x = self.stem(x)
        # stage 3
        x_c = self.context_branch_layers[0](x)
        x_s = self.spatial_branch_layers[0](x)
        comp_c = self.compression_1(self.relu(x_c))
        x_c = x_c + self.down_1(self.relu(x_s))
        x_s = x_s + resize(comp_c, out_size, self.align_corners)
        stage3 = x_s
        # stage 4
        x_c = self.context_branch_layers[1](self.relu(x_c))
        x_s = self.spatial_branch_layers[1](self.relu(x_s))
        comp_c = self.compression_2(self.relu(x_c))
        x_c = x_c + self.down_2(self.relu(x_s))
        x_s = x_s + resize(comp_c, out_size, self.align_corners)
        # stage 5
        x_s = self.spatial_branch_layers[2](self.relu(x_s))
        x_c = self.spp(self.context_branch_layers[2](self.relu(x_c)))
        out = x_s + resize(x_c, out_size, self.align_corners)
        return [stage3, out] if self.training else [out]
