"""STDC networks with their context path (Fan et al., "Rethinking BiSeNet For Real-time Semantic
Segmentation", CVPR 2021), as MMSegmentation builds them (``STDCContextPathNet`` over ``STDCNet``).

STDCNet: two stride-2 3x3 ConvBNReLUs (strides 2 and 4, unused by the heads) and three stages of STDC
modules (strides 8, 16, 32). An STDC module splits its output channels C into ``num_convs`` convs of
C/2, C/4, ..., C/2^(n-1), C/2^(n-1) channels, each reading the previous one, and concatenates them
(``bottleneck_type`` "cat": the first part average-pooled when the module strides) or adds them to the
input (``bottleneck_type`` "add": the input through a strided depthwise + pointwise projection).

The context path: a global-average-pooled 1x1 projection of the stride-32 map, then for the stride-32 and
stride-16 maps an attention refinement module (ARM) plus the context from above, nearest-upsampled to the
next finer map and smoothed by a 3x3 ConvBNReLU. The feature fusion module (FFM) concatenates the
stride-8 map with the refined stride-8 context and reweights its channels.

Outputs, as the reference's: ``[stride-8 STDC map (the STDCHead's detail branch), context at stride 16,
context at stride 8, FFM output (the decode head's input)]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import ConvBN, ConvBNReLU

# Module strides of each of the three STDC stages.
STDC_STAGES = {"STDCNet1": ((2, 1), (2, 1), (2, 1)), "STDCNet2": ((2, 1, 1, 1), (2, 1, 1, 1, 1), (2, 1, 1))}


@dataclass(frozen=True)
class STDCConfig:
    """Constructor arguments of :class:`STDCContextPathNet`, as stored in the zoo registry."""

    stdc_type: str = "STDCNet1"
    channels: tuple[int, ...] = (32, 64, 256, 512, 1024)
    bottleneck_type: str = "cat"
    num_convs: int = 4
    with_final_conv: bool = False
    last_in_channels: tuple[int, int] = (1024, 512)
    out_channels: int = 128
    ffm_in_channels: int = 384
    ffm_out_channels: int = 256
    ffm_scale_factor: int = 4
    kind: str = "stdc"

    @property
    def output_stride(self) -> int:
        return 32  # the context path's coarsest map


class _DepthwiseConvBN(nn.Module):
    """Strided depthwise 3x3 conv + BN without activation (keys ``conv``, ``bn``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class STDCModule(nn.Module):
    """One short-term dense concatenation module (stride 1 or 2)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, *, num_convs: int = 4,
                 fusion_type: str = "add") -> None:
        super().__init__()
        if num_convs < 2:
            raise ValueError(f"an STDC module needs at least 2 convs, got {num_convs}")
        if fusion_type not in ("add", "cat"):
            raise ValueError(f"fusion_type must be 'add' or 'cat', got {fusion_type!r}")
        self.fusion_type = fusion_type
        self.with_downsample = stride == 2
        # Registered first (empty), so its parameters enumerate before ``downsample``'s, as in the reference.
        self.layers = nn.ModuleList()
        conv_0 = ConvBNReLU(in_channels, out_channels // 2, 1)
        if self.with_downsample:
            self.downsample = _DepthwiseConvBN(out_channels // 2)
            if fusion_type == "add":
                # The reference puts the same downsample module inside layers[0] as well: the state dict
                # holds its weights twice (layers.0.1.* and downsample.*), named_parameters() once.
                self.layers.append(nn.Sequential(conv_0, self.downsample))
                skip_dw = _DepthwiseConvBN(in_channels)
                self.skip = nn.Sequential(skip_dw, ConvBN(in_channels, out_channels, 1))
            else:
                self.layers.append(conv_0)
                self.skip = nn.AvgPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.layers.append(conv_0)
        for i in range(1, num_convs):
            out_factor = 2 ** (i + 1) if i != num_convs - 1 else 2 ** i
            self.layers.append(ConvBNReLU(out_channels // 2 ** i, out_channels // out_factor, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fusion_type == "add":
            outs = []
            y = x
            for layer in self.layers:
                y = layer(y)
                outs.append(y)
            return torch.cat(outs, dim=1) + (self.skip(x) if self.with_downsample else x)
        x0 = self.layers[0](x)
        y = self.downsample(x0) if self.with_downsample else x0
        outs = [self.skip(x0) if self.with_downsample else x0]
        for layer in self.layers[1:]:
            y = layer(y)
            outs.append(y)
        return torch.cat(outs, dim=1)


class STDCNet(nn.Module):
    """The STDC backbone: returns its three STDC stages' outputs (strides 8, 16, 32)."""

    def __init__(self, stdc_type: str = "STDCNet1", channels: tuple[int, ...] = (32, 64, 256, 512, 1024), *,
                 bottleneck_type: str = "cat", num_convs: int = 4, with_final_conv: bool = False) -> None:
        super().__init__()
        if stdc_type not in STDC_STAGES:
            raise ValueError(f"stdc_type must be one of {sorted(STDC_STAGES)}, got {stdc_type!r}")
        if len(channels) != 5:
            raise ValueError(f"STDCNet needs 5 channel numbers, got {channels}")
        self.stages = nn.ModuleList([ConvBNReLU(3, channels[0], 3, stride=2, padding=1),
                                     ConvBNReLU(channels[0], channels[1], 3, stride=2, padding=1)])
        self.num_shallow = len(self.stages)
        for strides in STDC_STAGES[stdc_type]:
            idx = len(self.stages) - 1
            cin, cout = channels[idx], channels[idx + 1]
            self.stages.append(nn.Sequential(*[
                STDCModule(cin if i == 0 else cout, cout, s, num_convs=num_convs, fusion_type=bottleneck_type)
                for i, s in enumerate(strides)]))
        self.final_conv = ConvBNReLU(channels[-1], max(1024, channels[-1]), 1) if with_final_conv else None

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        if self.final_conv is not None:
            outs[-1] = self.final_conv(outs[-1])
        return outs[self.num_shallow:]


class AttentionRefinementModule(nn.Module):
    """3x3 ConvBNReLU, then channel reweighting by sigmoid(BN(1x1 conv(global average)))."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_layer = ConvBNReLU(in_channels, out_channels, 3, padding=1)
        self.atten_conv_layer = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvBN(out_channels, out_channels, 1),
                                              nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_layer(x)
        return x * self.atten_conv_layer(x)


class _ConvReLU(nn.Module):
    """A bias-free 1x1 conv (+ ReLU), no norm (MMCV's ConvModule with ``norm_cfg=None, bias=False``)."""

    def __init__(self, in_channels: int, out_channels: int, relu: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.activate = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.conv(x))


class FeatureFusionModule(nn.Module):
    """STDC's FFM: 1x1 ConvBNReLU of the concatenated inputs, plus the same reweighted by a squeeze-excitation
    (two bias-free 1x1 convs without norm, ``out_channels // scale_factor`` channels in between)."""

    def __init__(self, in_channels: int, out_channels: int, scale_factor: int = 4) -> None:
        super().__init__()
        mid = out_channels // scale_factor
        self.conv0 = ConvBNReLU(in_channels, out_channels, 1)
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), _ConvReLU(out_channels, mid, relu=True),
                                       _ConvReLU(mid, out_channels, relu=False), nn.Sigmoid())

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self.conv0(torch.cat([spatial, context], dim=1))
        return x * self.attention(x) + x


def _nearest(x: torch.Tensor, size) -> torch.Tensor:
    # The reference's context path upsamples with mode "nearest" (align_corners None).
    return F.interpolate(x, size=tuple(size), mode="nearest")


class STDCContextPathNet(nn.Module):
    """STDCNet + context path + FFM; returns the four maps the STDC heads read (see the module docstring)."""

    def __init__(self, stdc_type: str = "STDCNet1", channels: tuple[int, ...] = (32, 64, 256, 512, 1024), *,
                 bottleneck_type: str = "cat", num_convs: int = 4, with_final_conv: bool = False,
                 last_in_channels: tuple[int, int] = (1024, 512), out_channels: int = 128,
                 ffm_in_channels: int = 384, ffm_out_channels: int = 256, ffm_scale_factor: int = 4) -> None:
        super().__init__()
        self.backbone = STDCNet(stdc_type, channels, bottleneck_type=bottleneck_type, num_convs=num_convs,
                                with_final_conv=with_final_conv)
        self.arms = nn.ModuleList(AttentionRefinementModule(c, out_channels) for c in last_in_channels)
        self.convs = nn.ModuleList(ConvBNReLU(out_channels, out_channels, 3, padding=1) for _ in last_in_channels)
        self.conv_avg = ConvBNReLU(last_in_channels[0], out_channels, 1)
        self.ffm = FeatureFusionModule(ffm_in_channels, ffm_out_channels, ffm_scale_factor)
        self.out_channels = [channels[2], out_channels, out_channels, ffm_out_channels]

    @classmethod
    def from_config(cls, cfg: STDCConfig) -> "STDCContextPathNet":
        return cls(cfg.stdc_type, cfg.channels, bottleneck_type=cfg.bottleneck_type, num_convs=cfg.num_convs,
                   with_final_conv=cfg.with_final_conv, last_in_channels=cfg.last_in_channels,
                   out_channels=cfg.out_channels, ffm_in_channels=cfg.ffm_in_channels,
                   ffm_out_channels=cfg.ffm_out_channels, ffm_scale_factor=cfg.ffm_scale_factor)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = self.backbone(x)
        context = _nearest(self.conv_avg(F.adaptive_avg_pool2d(outs[-1], 1)), outs[-1].shape[2:])
        refined = []
        for i, (arm, conv) in enumerate(zip(self.arms, self.convs)):
            level = len(outs) - 1 - i  # from the coarsest map down
            context = conv(_nearest(arm(outs[level]) + context, outs[level - 1].shape[2:]))
            refined.append(context)
        return [outs[0], *refined, self.ffm(outs[0], refined[-1])]
