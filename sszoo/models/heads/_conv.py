"""ConvModule variants that the context-block heads need besides :class:`~sszoo.models.layers.ConvBNReLU`.

MMCV's ConvModule without a norm layer keeps the conv's bias and has no ``bn`` key; without an
activation it ends at the norm. The attribute names give MMSegmentation's state-dict keys.
"""
from __future__ import annotations

import torch
from torch import nn


class Conv(nn.Module):
    """A ConvModule with neither norm nor activation: one biased Conv2d under the key ``conv``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, *, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ConvBN(nn.Module):
    """A ConvModule with a norm but no activation: Conv2d (no bias) -> BatchNorm2d."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, *, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))
