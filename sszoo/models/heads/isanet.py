"""ISANet's interlaced sparse self-attention head (Huang et al., "Interlaced Sparse Self-Attention for
Semantic Segmentation", arXiv:1907.12273, 2019; IJCV 2021).

Dense self-attention factorised in two sparse steps: a *global* relation among positions that are one
local-group size apart (the same offset in every group), then a *local* relation inside each group.
The map is zero-padded (centred) to a multiple of the group size first and cropped back after.
"""
from __future__ import annotations

from dataclasses import dataclass
import math

import torch
import torch.nn.functional as F

from ..layers import ClassifierHead, ConvBNReLU
from .self_attention import SelfAttentionBlock, projection


class ISARelation(SelfAttentionBlock):
    """Self-attention with two-layer ConvBNReLU query/key projections, a plain value conv and scaled dot
    products, followed by a 1x1 ConvBNReLU ``output_project``."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__(in_channels, in_channels, channels, in_channels, share_key_query=False,
                         query_downsample=None, key_downsample=None, key_query_num_convs=2, key_query_norm=True,
                         value_out_num_convs=1, value_out_norm=False, matmul_norm=True, with_out=False)
        self.output_project = projection(in_channels, in_channels, 1, with_norm=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.output_project(super().forward(x, x))


@dataclass(frozen=True)
class ISAHeadConfig:
    in_channels: int = 2048
    channels: int = 512
    in_index: int = 3
    isa_channels: int = 256
    down_factor: tuple[int, int] = (8, 8)  # local group size (H, W)
    dropout: float = 0.1
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    kind: str = "isa"


class ISAHead(ClassifierHead):
    """3x3 ConvBNReLU -> global relation -> local relation -> concat with the conv's output -> 1x1 ConvBNReLU
    -> classifier."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *, in_index: int = 3,
                 isa_channels: int = 256, down_factor: tuple[int, int] = (8, 8), dropout: float = 0.1,
                 align_corners: bool = False) -> None:
        super().__init__()
        # The classifier is registered first, as in the reference, so parameters enumerate in the same order.
        self._init_classifier(channels, num_classes, dropout)
        self.in_index = in_index
        self.align_corners = align_corners
        self.down_factor = tuple(down_factor)
        self.in_conv = ConvBNReLU(in_channels, channels, 3, padding=1)
        self.global_relation = ISARelation(channels, isa_channels)
        self.local_relation = ISARelation(channels, isa_channels)
        self.out_conv = ConvBNReLU(2 * channels, channels, 1)

    @classmethod
    def from_config(cls, cfg: ISAHeadConfig, num_classes: int, align_corners: bool) -> "ISAHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, isa_channels=cfg.isa_channels,
                   down_factor=cfg.down_factor, dropout=cfg.dropout, align_corners=align_corners)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        residual = self.in_conv(features[self.in_index])
        n, c, h, w = residual.shape
        loc_h, loc_w = self.down_factor
        glb_h, glb_w = math.ceil(h / loc_h), math.ceil(w / loc_w)
        pad_h, pad_w = glb_h * loc_h - h, glb_w * loc_w - w
        top, left = pad_h // 2, pad_w // 2
        x = F.pad(residual, (left, pad_w - left, top, pad_h - top)) if pad_h or pad_w else residual
        # position (gy * loc_h + ly, gx * loc_w + lx): group (gy, gx), offset (ly, lx) inside it
        x = x.reshape(n, c, glb_h, loc_h, glb_w, loc_w)
        # global relation: one sequence per offset (ly, lx), over the groups
        x = x.permute(0, 3, 5, 1, 2, 4).reshape(n * loc_h * loc_w, c, glb_h, glb_w)
        x = self.global_relation(x).reshape(n, loc_h, loc_w, c, glb_h, glb_w)
        # local relation: one sequence per group (gy, gx), over its offsets
        x = x.permute(0, 4, 5, 3, 1, 2).reshape(n * glb_h * glb_w, c, loc_h, loc_w)
        x = self.local_relation(x).reshape(n, glb_h, glb_w, c, loc_h, loc_w)
        x = x.permute(0, 3, 1, 4, 2, 5).reshape(n, c, glb_h * loc_h, glb_w * loc_w)
        x = x[:, :, top:top + h, left:left + w]
        return self.cls_seg(self.out_conv(torch.cat([x, residual], dim=1)))
