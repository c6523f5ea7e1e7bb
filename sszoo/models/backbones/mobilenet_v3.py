"""MobileNetV3 (Howard et al., "Searching for MobileNetV3", ICCV 2019), large and small, dilated to stride 8.

A 3x3 stride-2 stem (``layer0``), the paper's inverted residual blocks (``layer1`` ... with optional
squeeze-excitation and ReLU or hard-swish) and a final 1x1 conv (``layer16`` large, ``layer12`` small).
As MMSegmentation builds it for segmentation, the blocks that would go to strides 16 and 32 keep stride 1
and dilate instead: dilation 2 from ``layer7`` (large) / ``layer4`` (small), 4 from ``layer13`` / ``layer9``.

Two details of the reference that change the logits:
- the convs that stay at stride 2 pad like TensorFlow's "same" (``Conv2dAdaptivePadding``): on an even
  size the extra padding row and column go to the bottom/right, not both sides;
- the squeeze-excitation gate is MMCV's ``HSigmoid(bias=3, divisor=6)``: ``clamp((x + 3) / 6, 0, 1)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from .mobilenet_v2 import ConvBNAct, make_divisible

# per block: kernel size, mid (expanded) channels, out channels, squeeze-excitation, activation, stride
_ARCHS = {
    "small": ((3, 16, 16, True, "relu", 2), (3, 72, 24, False, "relu", 2), (3, 88, 24, False, "relu", 1),
              (5, 96, 40, True, "hswish", 2), (5, 240, 40, True, "hswish", 1), (5, 240, 40, True, "hswish", 1),
              (5, 120, 48, True, "hswish", 1), (5, 144, 48, True, "hswish", 1), (5, 288, 96, True, "hswish", 2),
              (5, 576, 96, True, "hswish", 1), (5, 576, 96, True, "hswish", 1)),
    "large": ((3, 16, 16, False, "relu", 1), (3, 64, 24, False, "relu", 2), (3, 72, 24, False, "relu", 1),
              (5, 72, 40, True, "relu", 2), (5, 120, 40, True, "relu", 1), (5, 120, 40, True, "relu", 1),
              (3, 240, 80, False, "hswish", 2), (3, 200, 80, False, "hswish", 1), (3, 184, 80, False, "hswish", 1),
              (3, 184, 80, False, "hswish", 1), (3, 480, 112, True, "hswish", 1), (3, 672, 112, True, "hswish", 1),
              (5, 672, 160, True, "hswish", 2), (5, 960, 160, True, "hswish", 1), (5, 960, 160, True, "hswish", 1)),
}
# per arch: the first layer dilated by 2 (its stride 2 dropped), the first dilated by 4 (ditto), the channels of
# the last 1x1 conv; and the first block whose channels ``reduction_factor`` divides
_DILATE = {"small": (4, 9, 576, 8), "large": (7, 13, 960, 12)}


def _act(name: str) -> nn.Module:
    return nn.ReLU(inplace=True) if name == "relu" else nn.Hardswish()


@dataclass(frozen=True)
class MobileNetV3Config:
    """Constructor arguments of :class:`MobileNetV3`, as stored in the zoo registry."""

    arch: str = "small"
    out_indices: tuple[int, ...] = (0, 1, 12)
    reduction_factor: int = 1
    norm_eps: float = 1e-5  # the segmentation configs set BatchNorm eps 1e-3
    kind: str = "mobilenet_v3"

    @property
    def output_stride(self) -> int:
        """Always 8: the segmentation variant dilates instead of going to strides 16 and 32."""
        return 8


class SamePadConv2d(nn.Conv2d):
    """A strided Conv2d padded like TensorFlow's "same": ``ceil(n / stride)`` outputs, the padding split with
    the odd pixel at the end (MMCV's ``Conv2dAdaptivePadding``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 2,
                 groups: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for n, k, s, d in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride),
                              reversed(self.dilation)):
            # (ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, written without a float division
            total = max((k - 1) * d - (n - 1) % s, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class HSigmoid(nn.Module):
    """MMCV's hard sigmoid ``clamp((x + bias) / divisor, 0, 1)`` (the squeeze-excitation gate: bias 3, divisor 6)."""

    def __init__(self, bias: float = 3.0, divisor: float = 6.0) -> None:
        super().__init__()
        self.bias, self.divisor = bias, divisor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x + self.bias) / self.divisor).clamp(0.0, 1.0)


class _ConvAct(nn.Module):
    """A biased 1x1 conv and an activation (a ConvModule without norm: key ``conv``)."""

    def __init__(self, in_channels: int, out_channels: int, act: nn.Module) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)
        self.activate = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.conv(x))


class SELayer(nn.Module):
    """Squeeze-excitation: global average -> 1x1 (ReLU) -> 1x1 (hard sigmoid) -> channel gate."""

    def __init__(self, channels: int, ratio: int = 4) -> None:
        super().__init__()
        squeezed = make_divisible(channels // ratio, 8)
        self.conv1 = _ConvAct(channels, squeezed, nn.ReLU(inplace=True))
        self.conv2 = _ConvAct(squeezed, channels, HSigmoid(3.0, 6.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv2(self.conv1(F.adaptive_avg_pool2d(x, 1)))


class InvertedResidualV3(nn.Module):
    """1x1 expansion (when mid != in) -> k x k depthwise -> optional SE -> linear 1x1, residual when shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int, kernel_size: int, *, stride: int,
                 dilation: int, se: bool, act: str, eps: float, same_pad: bool) -> None:
        super().__init__()
        self.with_res_shortcut = stride == 1 and in_channels == out_channels
        if in_channels != mid_channels:
            self.expand_conv = ConvBNAct(in_channels, mid_channels, 1, act=_act(act), eps=eps)
        else:
            self.expand_conv = None
        if same_pad:
            conv = SamePadConv2d(mid_channels, mid_channels, kernel_size, stride=stride, groups=mid_channels)
        else:
            conv = nn.Conv2d(mid_channels, mid_channels, kernel_size, padding=dilation * (kernel_size - 1) // 2,
                             dilation=dilation, groups=mid_channels, bias=False)
        self.depthwise_conv = ConvBNAct(mid_channels, mid_channels, act=_act(act), eps=eps, conv=conv)
        self.se = SELayer(mid_channels) if se else None
        self.linear_conv = ConvBNAct(mid_channels, out_channels, 1, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand_conv is None else self.expand_conv(x)
        out = self.depthwise_conv(out)
        if self.se is not None:
            out = self.se(out)
        out = self.linear_conv(out)
        return x + out if self.with_res_shortcut else out


class MobileNetV3(nn.Module):
    """MobileNetV3 (``arch`` "large" or "small") at output stride 8, returning the layers in ``out_indices``
    (0 is the stem, the last the final 1x1 conv)."""

    def __init__(self, arch: str = "small", *, out_indices=(0, 1, 12), reduction_factor: int = 1,
                 norm_eps: float = 1e-5) -> None:
        super().__init__()
        if arch not in _ARCHS:
            raise ValueError(f"MobileNetV3 arch must be one of {sorted(_ARCHS)}, got {arch!r}")
        if not (isinstance(reduction_factor, int) and reduction_factor > 0):
            raise ValueError(f"reduction_factor must be a positive int, got {reduction_factor!r}")
        blocks = _ARCHS[arch]
        n_layers = len(blocks) + 2
        if any(i not in range(n_layers) for i in out_indices):
            raise ValueError(f"out_indices must be in range(0, {n_layers}), got {out_indices}")
        self.out_indices = tuple(out_indices)
        dil2, dil4, last_channels, reduce_from = _DILATE[arch]
        self.layer0 = ConvBNAct(3, 16, act=nn.Hardswish(), eps=norm_eps, conv=SamePadConv2d(3, 16, 3, stride=2))
        channels = [16]
        in_ch = 16
        for i, (k, mid, out, se, act, stride) in enumerate(blocks):
            layer = i + 1
            if i >= reduce_from:
                mid, out = mid // reduction_factor, out // reduction_factor
            dilation = 4 if layer >= dil4 else 2 if layer >= dil2 else 1
            # the stride-2 blocks at the two dilation starts run at stride 1 (output stride 8); the reference
            # keeps their "same"-padding conv, which at stride 1 pads symmetrically like a plain conv
            keeps_stride = stride == 2 and layer not in (dil2, dil4)
            self.add_module(f"layer{layer}", InvertedResidualV3(
                in_ch, out, mid, k, stride=stride if keeps_stride else 1, dilation=dilation, se=se, act=act,
                eps=norm_eps, same_pad=keeps_stride))
            in_ch = out
            channels.append(out)
        # a 1x1 conv: the reference's dilation 4 on it changes nothing
        self.add_module(f"layer{len(blocks) + 1}", ConvBNAct(in_ch, last_channels, 1, act=nn.Hardswish(), eps=norm_eps))
        channels.append(last_channels)
        self.n_layers = n_layers
        self.out_channels: list[int] = [channels[i] for i in self.out_indices]

    @classmethod
    def from_config(cls, cfg: MobileNetV3Config) -> "MobileNetV3":
        return cls(cfg.arch, out_indices=cfg.out_indices, reduction_factor=cfg.reduction_factor,
                   norm_eps=cfg.norm_eps)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i in range(self.n_layers):
            x = getattr(self, f"layer{i}")(x)
            if i in self.out_indices:
                outs.append(x)
        return outs
