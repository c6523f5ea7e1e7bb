"""CCNet's criss-cross attention head (Huang et al., "CCNet: Criss-Cross Attention for Semantic
Segmentation", ICCV 2019).

An FCN head whose two convs sandwich ``recurrence`` passes of one criss-cross attention module: each
position attends to the positions of its own row and column (its own position counted once), so two
passes connect every pair of positions.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import ClassifierHead, ConvBNReLU
from .self_attention import Scale


class CrissCrossAttention(nn.Module):
    """Attention over each position's row and column, added to the input scaled by a learnable ``gamma``.

    Query and key project to ``in_channels // 8``; the value keeps ``in_channels``. The column and row
    energies share one softmax; the position itself appears in both, so its column copy is masked out.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.query_conv = nn.Conv2d(in_channels, in_channels // 8, 1)
        self.key_conv = nn.Conv2d(in_channels, in_channels // 8, 1)
        self.value_conv = nn.Conv2d(in_channels, in_channels, 1)
        self.gamma = Scale(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[2]
        q, k, v = self.query_conv(x), self.key_conv(x), self.value_conv(x)
        # column energies: e_col[n, y, x, i] = <q[:, y, x], k[:, i, x]>, the self term masked
        e_col = torch.matmul(q.permute(0, 3, 2, 1), k.permute(0, 3, 1, 2)).transpose(1, 2)
        # -inf on the diagonal, from an index comparison (ONNX Runtime has neither fill_diagonal_ nor a boolean eye)
        idx = torch.arange(h, device=x.device)
        self_mask = torch.zeros(h, h, dtype=x.dtype, device=x.device).masked_fill(
            idx[:, None] == idx[None, :], float("-inf"))
        e_col = e_col + self_mask.unsqueeze(1)  # indexed [y, i], broadcast over x
        # row energies: e_row[n, y, x, j] = <q[:, y, x], k[:, y, j]>
        e_row = torch.matmul(q.permute(0, 2, 3, 1), k.permute(0, 2, 1, 3))
        attn = F.softmax(torch.cat([e_col, e_row], dim=-1), dim=-1)
        a_col, a_row = attn[..., :h], attn[..., h:]
        # out[n, c, y, x] = sum_i v[n, c, i, x] a_col[n, y, x, i] + sum_j v[n, c, y, j] a_row[n, y, x, j]
        out_col = torch.matmul(a_col.permute(0, 2, 1, 3), v.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)
        out_row = torch.matmul(a_row, v.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.gamma(out_col + out_row) + x


@dataclass(frozen=True)
class CCHeadConfig:
    in_channels: int = 2048
    channels: int = 512
    in_index: int = 3
    recurrence: int = 2
    concat_input: bool = True
    kernel_size: int = 3
    dilation: int = 1
    dropout: float = 0.1
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    kind: str = "cc"


class CCHead(ClassifierHead):
    """conv -> ``recurrence`` x criss-cross attention -> conv (-> concat with the input, fuse) -> classifier."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *, in_index: int = 3, recurrence: int = 2,
                 concat_input: bool = True, kernel_size: int = 3, dilation: int = 1, dropout: float = 0.1,
                 align_corners: bool = False) -> None:
        super().__init__()
        # The classifier is registered first, as in the reference, so parameters enumerate in the same order.
        self._init_classifier(channels, num_classes, dropout)
        self.in_index = in_index
        self.align_corners = align_corners
        self.recurrence = recurrence
        pad = (kernel_size // 2) * dilation
        # the reference's FCN layout (``convs.0``, ``convs.1``, ``conv_cat``), then ``cca``
        self.convs = nn.Sequential(
            ConvBNReLU(in_channels, channels, kernel_size, padding=pad, dilation=dilation),
            ConvBNReLU(channels, channels, kernel_size, padding=pad, dilation=dilation))
        self.conv_cat = (ConvBNReLU(in_channels + channels, channels, kernel_size, padding=kernel_size // 2)
                         if concat_input else None)
        self.cca = CrissCrossAttention(channels)

    @classmethod
    def from_config(cls, cfg: CCHeadConfig, num_classes: int, align_corners: bool) -> "CCHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, recurrence=cfg.recurrence,
                   concat_input=cfg.concat_input, kernel_size=cfg.kernel_size, dilation=cfg.dilation,
                   dropout=cfg.dropout, align_corners=align_corners)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[self.in_index]
        out = self.convs[0](x)
        for _ in range(self.recurrence):  # the same module each pass: weights shared across recurrences
            out = self.cca(out)
        out = self.convs[1](out)
        if self.conv_cat is not None:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return self.cls_seg(out)
