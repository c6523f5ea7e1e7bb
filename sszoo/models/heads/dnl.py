"""Disentangled non-local head (Yin et al., "Disentangled Non-Local Neural Networks", ECCV 2020), as
MMSegmentation's DNLHead.

The non-local block's attention is split into a *whitened pairwise* term (queries and keys centred over
the positions, the softmax sharpened by a temperature) and a *unary* term (one softmax mask over the
positions, shared by every query).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .non_local import FCNBlockHead, NonLocal2d


def _float32(value: float) -> float:
    """``value`` rounded to float32: the reference divides by float32 tensors, in float64 too."""
    return torch.tensor(value, dtype=torch.float32).item()


class DisentangledNonLocal2d(NonLocal2d):
    """:class:`NonLocal2d` with whitened pairwise attention and a unary mask (1x1 conv ``conv_mask``)."""

    def __init__(self, in_channels: int, *, reduction: int = 2, use_scale: bool = True,
                 mode: str = "embedded_gaussian", temperature: float = 0.05) -> None:
        super().__init__(in_channels, reduction=reduction, use_scale=use_scale, mode=mode)
        self.temperature = temperature
        self.conv_mask = nn.Conv2d(in_channels, 1, kernel_size=1)

    def attention(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        if self.mode != "embedded_gaussian":
            return super().attention(query, key)
        weight = torch.matmul(query, key)
        if self.use_scale:
            # sqrt(C) computed in float32, as the reference's tensor power
            weight = weight / (torch.tensor(query.shape[-1], dtype=torch.float32) ** 0.5).item()
        weight = weight / _float32(self.temperature)
        return weight.softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        value, query, key = self.embed(x)
        # whitening: centre queries and keys over the positions
        query = query - query.mean(dim=-2, keepdim=True)
        key = key - key.mean(dim=-1, keepdim=True)
        y = torch.matmul(self.attention(query, key), value)
        y = y.transpose(1, 2).reshape(n, self.inter_channels, *x.shape[2:])
        unary = self.conv_mask(x).reshape(n, 1, -1).softmax(dim=-1)  # N x 1 x HW
        unary = torch.matmul(unary, value).transpose(1, 2).reshape(n, self.inter_channels, 1, 1)
        return x + self.conv_out(y + unary)


@dataclass(frozen=True)
class DNLHeadConfig:
    in_channels: int = 2048
    channels: int = 512
    in_index: int = 3
    concat_input: bool = True
    kernel_size: int = 3
    dilation: int = 1
    reduction: int = 2
    use_scale: bool = True
    mode: str = "embedded_gaussian"
    temperature: float = 0.05
    dropout: float = 0.1
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    kind: str = "dnl"


class DNLHead(FCNBlockHead):
    """FCN head with a :class:`DisentangledNonLocal2d` block (key ``dnl_block``) between its convs."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *, reduction: int = 2,
                 use_scale: bool = True, mode: str = "embedded_gaussian", temperature: float = 0.05, **kwargs) -> None:
        super().__init__(in_channels, channels, num_classes, **kwargs)
        self.dnl_block = DisentangledNonLocal2d(channels, reduction=reduction, use_scale=use_scale, mode=mode,
                                                temperature=temperature)

    def block(self) -> nn.Module:
        return self.dnl_block

    @classmethod
    def from_config(cls, cfg: DNLHeadConfig, num_classes: int, align_corners: bool) -> "DNLHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, concat_input=cfg.concat_input,
                   kernel_size=cfg.kernel_size, dilation=cfg.dilation, reduction=cfg.reduction,
                   use_scale=cfg.use_scale, mode=cfg.mode, temperature=cfg.temperature, dropout=cfg.dropout,
                   align_corners=align_corners)
