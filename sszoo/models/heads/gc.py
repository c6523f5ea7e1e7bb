"""Global context head (Cao et al., "GCNet: Non-local Networks Meet Squeeze-Excitation Networks and
Beyond", ICCVW 2019), as MMSegmentation's GCHead.

An FCN head whose two convs have a global context block between them: one context vector, pooled
over all positions, transformed by a LayerNorm bottleneck and added to (or multiplied into) every position.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .non_local import FCNBlockHead

POOLING_TYPES = ("att", "avg")
FUSION_TYPES = ("channel_add", "channel_mul")


def _transform(channels: int, planes: int) -> nn.Sequential:
    """1x1 conv -> LayerNorm over (C, 1, 1) -> ReLU -> 1x1 conv (keys ``0``, ``1``, ``3``)."""
    return nn.Sequential(nn.Conv2d(channels, planes, 1), nn.LayerNorm([planes, 1, 1]), nn.ReLU(inplace=True),
                         nn.Conv2d(planes, channels, 1))


class ContextBlock(nn.Module):
    """Global context block: pool a context vector (softmax attention ``conv_mask`` or average), fuse it
    into every position by ``channel_mul`` (sigmoid gate, applied first) and/or ``channel_add``."""

    def __init__(self, in_channels: int, ratio: float, *, pooling_type: str = "att",
                 fusion_types: tuple[str, ...] = ("channel_add",)) -> None:
        super().__init__()
        if pooling_type not in POOLING_TYPES:
            raise ValueError(f"pooling_type {pooling_type!r} not in {POOLING_TYPES}")
        if not fusion_types or any(f not in FUSION_TYPES for f in fusion_types):
            raise ValueError(f"fusion_types {fusion_types!r}: a non-empty subset of {FUSION_TYPES}")
        self.pooling_type = pooling_type
        planes = int(in_channels * ratio)
        if pooling_type == "att":
            self.conv_mask = nn.Conv2d(in_channels, 1, kernel_size=1)
        self.channel_add_conv = _transform(in_channels, planes) if "channel_add" in fusion_types else None
        self.channel_mul_conv = _transform(in_channels, planes) if "channel_mul" in fusion_types else None

    def spatial_pool(self, x: torch.Tensor) -> torch.Tensor:
        """The context vector N x C x 1 x 1 of ``x``."""
        n, c, h, w = x.shape
        if self.pooling_type == "avg":
            return x.mean(dim=(2, 3), keepdim=True)
        mask = self.conv_mask(x).reshape(n, 1, h * w, 1).softmax(dim=2)
        return torch.matmul(x.reshape(n, 1, c, h * w), mask).reshape(n, c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.spatial_pool(x)
        out = x
        if self.channel_mul_conv is not None:
            out = out * torch.sigmoid(self.channel_mul_conv(context))
        if self.channel_add_conv is not None:
            out = out + self.channel_add_conv(context)
        return out


@dataclass(frozen=True)
class GCHeadConfig:
    in_channels: int = 2048
    channels: int = 512
    in_index: int = 3
    concat_input: bool = True
    kernel_size: int = 3
    dilation: int = 1
    ratio: float = 0.25
    pooling_type: str = "att"
    fusion_types: tuple[str, ...] = ("channel_add",)
    dropout: float = 0.1
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    kind: str = "gc"


class GCHead(FCNBlockHead):
    """FCN head with a :class:`ContextBlock` (key ``gc_block``) between its convs."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *, ratio: float = 0.25,
                 pooling_type: str = "att", fusion_types: tuple[str, ...] = ("channel_add",), **kwargs) -> None:
        super().__init__(in_channels, channels, num_classes, **kwargs)
        self.gc_block = ContextBlock(channels, ratio, pooling_type=pooling_type, fusion_types=tuple(fusion_types))

    def block(self) -> nn.Module:
        return self.gc_block

    @classmethod
    def from_config(cls, cfg: GCHeadConfig, num_classes: int, align_corners: bool) -> "GCHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, concat_input=cfg.concat_input,
                   kernel_size=cfg.kernel_size, dilation=cfg.dilation, ratio=cfg.ratio,
                   pooling_type=cfg.pooling_type, fusion_types=cfg.fusion_types, dropout=cfg.dropout,
                   align_corners=align_corners)
