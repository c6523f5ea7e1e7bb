"""MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018), dilated.

Seven stages of inverted residual blocks (1x1 expansion, 3x3 depthwise, linear 1x1 projection) after a
3x3 stride-2 stem. MMSegmentation's "M-V2-D8" variant keeps output stride 8 with

    strides (1, 2, 2, 1, 1, 1, 1), dilations (1, 1, 1, 2, 2, 4, 4), out_indices (1, 2, 4, 6)

(24, 32, 96 and 320 channels). Keys follow MMSegmentation: ``conv1.{conv,bn}`` and
``layer{i}.{j}.conv.{k}.{conv,bn}``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# (expand ratio, channels, blocks) of the seven stages
_STAGES = ((1, 16, 1), (6, 24, 2), (6, 32, 3), (6, 64, 4), (6, 96, 3), (6, 160, 3), (6, 320, 1))


def make_divisible(value: float, divisor: int, min_value: int | None = None, min_ratio: float = 0.9) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``min_value``, never below
    ``min_ratio * value``): the channel rounding of the MobileNet papers' reference code."""
    min_value = divisor if min_value is None else min_value
    out = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < min_ratio * value else out


class ConvBNAct(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> optional activation, under MMCV ConvModule's keys ``conv``, ``bn``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, *, stride: int = 1,
                 padding: int = 0, dilation: int = 1, groups: int = 1, act: nn.Module | None = None,
                 eps: float = 1e-5, conv: nn.Conv2d | None = None) -> None:
        super().__init__()
        self.conv = conv if conv is not None else nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
            groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=eps)
        self.activate = act if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


@dataclass(frozen=True)
class MobileNetV2Config:
    """Constructor arguments of :class:`MobileNetV2`, as stored in the zoo registry."""

    widen_factor: float = 1.0
    strides: tuple[int, ...] = (1, 2, 2, 1, 1, 1, 1)
    dilations: tuple[int, ...] = (1, 1, 1, 2, 2, 4, 4)
    out_indices: tuple[int, ...] = (1, 2, 4, 6)
    kind: str = "mobilenet_v2"

    @property
    def output_stride(self) -> int:
        """The total stride of the last stage: the stem's 2 times every stage's."""
        out = 2
        for s in self.strides:
            out *= s
        return out


class InvertedResidual(nn.Module):
    """Expansion 1x1 (omitted at ratio 1) -> depthwise 3x3 -> linear 1x1, ReLU6, residual when shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int, dilation: int = 1) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"an inverted residual block has stride 1 or 2, got {stride}")
        self.use_res_connect = stride == 1 and in_channels == out_channels
        hidden = int(round(in_channels * expand_ratio))
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(in_channels, hidden, 1, act=nn.ReLU6(inplace=True)))
        layers += [ConvBNAct(hidden, hidden, 3, stride=stride, padding=dilation, dilation=dilation, groups=hidden,
                             act=nn.ReLU6(inplace=True)),
                   ConvBNAct(hidden, out_channels, 1)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 returning the outputs of the stages in ``out_indices`` (0-based, of the seven)."""

    def __init__(self, widen_factor: float = 1.0, *, strides=(1, 2, 2, 1, 1, 1, 1), dilations=(1, 1, 1, 2, 2, 4, 4),
                 out_indices=(1, 2, 4, 6)) -> None:
        super().__init__()
        if not len(strides) == len(dilations) == len(_STAGES):
            raise ValueError(f"MobileNetV2 needs {len(_STAGES)} strides and dilations, got {strides}, {dilations}")
        if any(i not in range(len(_STAGES)) for i in out_indices):
            raise ValueError(f"out_indices must be in range(0, {len(_STAGES)}), got {out_indices}")
        self.out_indices = tuple(out_indices)
        channels = make_divisible(32 * widen_factor, 8)
        self.conv1 = ConvBNAct(3, channels, 3, stride=2, padding=1, act=nn.ReLU6(inplace=True))
        stage_channels = []
        for i, ((ratio, c, n), s, d) in enumerate(zip(_STAGES, strides, dilations)):
            out = make_divisible(c * widen_factor, 8)
            # As the reference: only the first block of a stage is strided *and dilated*; the others run at
            # dilation 1 even in the dilated stages.
            blocks = [InvertedResidual(channels if j == 0 else out, out, s if j == 0 else 1, ratio,
                                       d if j == 0 else 1) for j in range(n)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            channels = out
            stage_channels.append(out)
        self.out_channels: list[int] = [stage_channels[i] for i in self.out_indices]

    @classmethod
    def from_config(cls, cfg: MobileNetV2Config) -> "MobileNetV2":
        return cls(cfg.widen_factor, strides=cfg.strides, dilations=cfg.dilations, out_indices=cfg.out_indices)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.conv1(x)
        outs = []
        for i in range(len(_STAGES)):
            x = getattr(self, f"layer{i + 1}")(x)
            if i in self.out_indices:
                outs.append(x)
        return outs
