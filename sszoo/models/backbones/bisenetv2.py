"""BiSeNetV2 (Yu et al., "BiSeNet V2: Bilateral Network with Guided Aggregation for Real-time Semantic
Segmentation", IJCV 2021), as MMSegmentation 1.2.2 builds it.

- *Detail branch*: three stages of 3x3 ConvBNReLUs (the first of each stride 2): wide, shallow, stride 8.
- *Semantic branch*: a stem block (a strided conv path beside a max pool, concatenated and fused; stride 4),
  gather-and-expansion (GE) layers (3x3 conv, depthwise expansion by ``exp_ratio``, 1x1 projection, with
  an identity or depthwise-separable shortcut) down to stride 32, and a context embedding (CE) block
  (globally pooled, BN'ed context added back to the map).
- *Bilateral guided aggregation* (BGA): each branch gates the other (sigmoid), at stride 8 and at stride 32,
  and the two results are summed at stride 8.

The backbone returns ``[bga, stem, stage2, stage3, stage4]`` (picked by ``out_indices``; the CE block's
output only feeds the BGA): the decode head reads the first, the four auxiliary FCN heads ("booster") the
semantic stages.

Module names give MMSegmentation's state-dict keys (``detail.detail_branch.0.1.*``,
``semantic.stage4_CEBlock.gap.1.*``, ``bga.detail_dwconv.0.pointwise_conv.conv.bias``, ...) and
parameters are registered in its order.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import Conv, resize


@dataclass(frozen=True)
class BiSeNetV2Config:
    """Constructor arguments of :class:`BiSeNetV2`, as stored in the zoo registry."""

    detail_channels: tuple[int, ...] = (64, 64, 128)
    semantic_channels: tuple[int, ...] = (16, 32, 64, 128)
    semantic_expansion_ratio: int = 6
    bga_channels: int = 128
    out_indices: tuple[int, ...] = (0, 1, 2, 3, 4)
    align_corners: bool = False
    kind: str = "bisenetv2"

    @property
    def output_stride(self) -> int:
        """The stride of the coarsest map: the semantic branch's last stage (stem 4, then three halvings)."""
        return 4 * 2 ** (len(self.semantic_channels) - 1)


class ConvBNAct(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> optional ReLU: MMCV's ConvModule under its keys ``conv``, ``bn``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, *, stride: int = 1,
                 groups: int = 1, relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
                              groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class DepthwiseSeparable(nn.Module):
    """Depthwise 3x3 ConvBN (no activation), then a pointwise 1x1 conv: ConvBN, or a plain biased conv
    where the reference gives the pointwise conv no norm (BGA)."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1, pointwise_bn: bool = True) -> None:
        super().__init__()
        self.depthwise_conv = ConvBNAct(in_channels, in_channels, 3, stride=stride, groups=in_channels, relu=False)
        self.pointwise_conv = (ConvBNAct(in_channels, out_channels, relu=False) if pointwise_bn
                               else Conv(in_channels, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class DetailBranch(nn.Module):
    """Stages of 3x3 ConvBNReLUs (2 in the first stage, 3 after), each starting with a stride-2 conv."""

    def __init__(self, channels: tuple[int, ...] = (64, 64, 128), in_channels: int = 3) -> None:
        super().__init__()
        stages = []
        for i, c in enumerate(channels):
            prev = in_channels if i == 0 else channels[i - 1]
            convs = [ConvBNAct(prev, c, 3, stride=2)] + [ConvBNAct(c, c, 3) for _ in range(1 if i == 0 else 2)]
            stages.append(nn.Sequential(*convs))
        self.detail_branch = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.detail_branch:
            x = stage(x)
        return x


class StemBlock(nn.Module):
    """3x3 s2 conv, then (1x1 conv to half the channels, 3x3 s2 conv) beside a 3x3 s2 max pool, concatenated
    and fused by a 3x3 conv: stride 4."""

    def __init__(self, in_channels: int = 3, out_channels: int = 16) -> None:
        super().__init__()
        self.conv_first = ConvBNAct(in_channels, out_channels, 3, stride=2)
        self.convs = nn.Sequential(ConvBNAct(out_channels, out_channels // 2),
                                   ConvBNAct(out_channels // 2, out_channels, 3, stride=2))
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.fuse_last = ConvBNAct(out_channels * 2, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_first(x)
        return self.fuse_last(torch.cat([self.convs(x), self.pool(x)], dim=1))


class GELayer(nn.Module):
    """Gather-and-expansion layer: 3x3 ConvBNReLU, depthwise 3x3 expansion to ``in x exp_ratio`` channels
    (at stride 2: a strided depthwise ConvBN then a second depthwise ConvBNReLU), 1x1 ConvBN projection,
    plus the input (stride 1) or its depthwise-separable projection (stride 2), then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, exp_ratio: int = 6, stride: int = 1) -> None:
        super().__init__()
        mid = in_channels * exp_ratio
        self.conv1 = ConvBNAct(in_channels, in_channels, 3)
        if stride == 1:
            self.dwconv = nn.Sequential(ConvBNAct(in_channels, mid, 3, groups=in_channels))
            self.shortcut = None
        else:
            self.dwconv = nn.Sequential(ConvBNAct(in_channels, mid, 3, stride=stride, groups=in_channels, relu=False),
                                        ConvBNAct(mid, mid, 3, groups=mid))
            # registered before conv2, as the reference (parameter order)
            self.shortcut = nn.Sequential(DepthwiseSeparable(in_channels, out_channels, stride=stride))
        self.conv2 = nn.Sequential(ConvBNAct(mid, out_channels, relu=False))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.dwconv(self.conv1(x)))
        return self.act(out + (x if self.shortcut is None else self.shortcut(x)))


class CEBlock(nn.Module):
    """Context embedding: BN(global average) -> 1x1 ConvBNReLU, added to the map, then a 3x3 ConvBNReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.gap = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.BatchNorm2d(in_channels))
        self.conv_gap = ConvBNAct(in_channels, out_channels)
        # the paper's last conv is a plain conv; the reference's a ConvBNReLU
        self.conv_last = ConvBNAct(out_channels, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_last(x + self.conv_gap(self.gap(x)))


class SemanticBranch(nn.Module):
    """Stem block, GE stages (2 layers each, 4 in the last; the first of each at stride 2) and a CE block;
    returns every stage's output."""

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 128), in_channels: int = 3,
                 exp_ratio: int = 6) -> None:
        super().__init__()
        self.stage_names: list[str] = []
        for i, c in enumerate(channels):
            if i == 0:
                stage = StemBlock(in_channels, c)
            else:
                repeats = 3 if i == len(channels) - 1 else 1
                stage = nn.Sequential(GELayer(channels[i - 1], c, exp_ratio, 2),
                                      *[GELayer(c, c, exp_ratio, 1) for _ in range(repeats)])
            self.add_module(f"stage{i + 1}", stage)
            self.stage_names.append(f"stage{i + 1}")
        name = f"stage{len(channels)}_CEBlock"
        self.add_module(name, CEBlock(channels[-1], channels[-1]))
        self.stage_names.append(name)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for name in self.stage_names:
            x = getattr(self, name)(x)
            outs.append(x)
        return outs


class BGALayer(nn.Module):
    """Bilateral guided aggregation of the detail (stride 8) and semantic (stride 32) maps."""

    def __init__(self, channels: int = 128, align_corners: bool = False) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.detail_dwconv = nn.Sequential(DepthwiseSeparable(channels, channels, pointwise_bn=False))
        self.detail_down = nn.Sequential(ConvBNAct(channels, channels, 3, stride=2, relu=False),
                                         nn.AvgPool2d(kernel_size=3, stride=2, padding=1))
        self.semantic_conv = nn.Sequential(ConvBNAct(channels, channels, 3, relu=False))
        self.semantic_dwconv = nn.Sequential(DepthwiseSeparable(channels, channels, pointwise_bn=False))
        self.conv = ConvBNAct(channels, channels, 3)

    def forward(self, x_detail: torch.Tensor, x_semantic: torch.Tensor) -> torch.Tensor:
        detail = self.detail_dwconv(x_detail)
        detail_down = self.detail_down(x_detail)
        semantic = resize(self.semantic_conv(x_semantic), detail.shape[2:], self.align_corners)
        # the stride-32 gating multiplies maps of equal size at any input size: the detail map's two
        # further halvings round up exactly as the semantic branch's do
        fuse_high = detail_down * torch.sigmoid(self.semantic_dwconv(x_semantic))
        fuse = detail * torch.sigmoid(semantic) + resize(fuse_high, detail.shape[2:], self.align_corners)
        return self.conv(fuse)


class BiSeNetV2(nn.Module):
    """Detail branch + semantic branch + BGA; returns ``[bga, stem, stage2, stage3, stage4][out_indices]``."""

    def __init__(self, *, detail_channels=(64, 64, 128), semantic_channels=(16, 32, 64, 128),
                 semantic_expansion_ratio: int = 6, bga_channels: int = 128, out_indices=(0, 1, 2, 3, 4),
                 align_corners: bool = False) -> None:
        super().__init__()
        if detail_channels[-1] != bga_channels or semantic_channels[-1] != bga_channels:
            raise ValueError("BiSeNetV2's BGA needs detail_channels[-1] == semantic_channels[-1] == bga_channels")
        self.out_indices = tuple(out_indices)
        self.detail = DetailBranch(tuple(detail_channels), 3)
        self.semantic = SemanticBranch(tuple(semantic_channels), 3, semantic_expansion_ratio)
        self.bga = BGALayer(bga_channels, align_corners)
        # the outputs are [bga, stem, stage2, ..., last GE stage]: the CE block's output only feeds the BGA
        all_channels = [bga_channels, *semantic_channels]
        self.out_channels = [all_channels[i] for i in self.out_indices]

    @classmethod
    def from_config(cls, cfg: BiSeNetV2Config) -> "BiSeNetV2":
        return cls(detail_channels=cfg.detail_channels, semantic_channels=cfg.semantic_channels,
                   semantic_expansion_ratio=cfg.semantic_expansion_ratio, bga_channels=cfg.bga_channels,
                   out_indices=cfg.out_indices, align_corners=cfg.align_corners)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        detail = self.detail(x)
        semantic = self.semantic(x)
        outs = [self.bga(detail, semantic[-1])] + semantic[:-1]
        return [outs[i] for i in self.out_indices]
