"""SETR's decode heads (Zheng et al., "Rethinking Semantic Segmentation from a Sequence-to-Sequence Perspective
with Transformers", CVPR 2021), as MMSegmentation 1.2.2 builds them over a ViT-L.

- ``SETRUPHead``: one ViT map, layer-normalised per token (``norm``), then ``num_convs`` blocks of a ConvBNReLU
  (``kernel_size`` 1 or 3) followed by a bilinear upsampling by ``up_scale``. "Naive" is one 1x1 block (x4), "PUP"
  (progressive upsampling) four 3x3 blocks (x2 each).
- ``SETRMLAHead``: over the MLA neck's four maps, per map two 3x3 ConvBNReLUs to ``mla_channels`` and a x4
  upsampling; the four results are concatenated (``channels`` = 4 x ``mla_channels``) for the classifier.

The upsampling is the reference's ``Upsample`` with a scale factor: the output size is ``int(side * scale)`` and
the resize is by that size (so for integer scales the same as ``scale_factor``), with the head's align_corners.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import ClassifierHead, ConvBNReLU, resize


class Upsample(nn.Module):
    """Bilinear resize to ``int(side * scale)`` per side (MMSegmentation's ``Upsample(scale_factor=...)``)."""

    def __init__(self, scale: float, align_corners: bool) -> None:
        super().__init__()
        self.scale = float(scale)
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize(x, [int(t * self.scale) for t in x.shape[-2:]], self.align_corners)


def token_layer_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """LayerNorm over the channels of each pixel of an N x C x H x W map (the reference's NCHW -> NLC -> NCHW)."""
    n, c, h, w = x.shape
    x = norm(x.reshape(n, c, h * w).transpose(2, 1))
    return x.transpose(1, 2).reshape(n, c, h, w).contiguous()


@dataclass(frozen=True)
class SETRUPHeadConfig:
    in_channels: int = 1024
    channels: int = 256
    in_index: int = -1
    num_convs: int = 1
    up_scale: int = 4
    kernel_size: int = 3
    norm_eps: float = 1e-6  # the input LayerNorm's
    dropout: float = 0.0
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    kind: str = "setr_up"


class SETRUPHead(ClassifierHead):
    """``norm`` (LayerNorm per token) -> ``up_convs`` [(ConvBNReLU, x up_scale)] * num_convs -> classifier."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *, in_index: int = -1, num_convs: int = 1,
                 up_scale: int = 4, kernel_size: int = 3, norm_eps: float = 1e-6, dropout: float = 0.0,
                 align_corners: bool = False) -> None:
        super().__init__()
        if kernel_size not in (1, 3):
            raise ValueError(f"SETRUPHead's kernel_size must be 1 or 3, got {kernel_size}")
        # The classifier is registered first, as in the reference, so parameters enumerate in the same order.
        self._init_classifier(channels, num_classes, dropout)
        self.in_index = in_index
        self.align_corners = align_corners
        self.norm = nn.LayerNorm(in_channels, eps=norm_eps)
        self.up_convs = nn.ModuleList(
            nn.Sequential(ConvBNReLU(in_channels if i == 0 else channels, channels, kernel_size,
                                     padding=(kernel_size - 1) // 2),
                          Upsample(up_scale, align_corners))
            for i in range(num_convs))

    @classmethod
    def from_config(cls, cfg: SETRUPHeadConfig, num_classes: int, align_corners: bool) -> "SETRUPHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, num_convs=cfg.num_convs,
                   up_scale=cfg.up_scale, kernel_size=cfg.kernel_size, norm_eps=cfg.norm_eps, dropout=cfg.dropout,
                   align_corners=align_corners)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = token_layer_norm(self.norm, features[self.in_index])
        for block in self.up_convs:
            x = block(x)
        return self.cls_seg(x)


@dataclass(frozen=True)
class SETRMLAHeadConfig:
    in_channels: tuple[int, ...] = (256, 256, 256, 256)
    channels: int = 512
    in_index: tuple[int, ...] = (0, 1, 2, 3)
    mla_channels: int = 128
    up_scale: int = 4
    dropout: float = 0.0
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    kind: str = "setr_mla"


class SETRMLAHead(ClassifierHead):
    """Per input: ``up_convs.{i}`` = two 3x3 ConvBNReLUs and a x up_scale upsampling; concatenated -> classifier."""

    def __init__(self, in_channels: tuple[int, ...], channels: int, num_classes: int, *,
                 in_index: tuple[int, ...] = (0, 1, 2, 3), mla_channels: int = 128, up_scale: int = 4,
                 dropout: float = 0.0, align_corners: bool = False) -> None:
        super().__init__()
        if len(in_channels) != len(in_index):
            raise ValueError("in_channels and in_index must have the same length")
        if channels != len(in_channels) * mla_channels:
            raise ValueError(f"SETRMLAHead's channels ({channels}) must be {len(in_channels)} x mla_channels "
                             f"({mla_channels}): the classifier reads the concatenated levels")
        self._init_classifier(channels, num_classes, dropout)
        self.in_index = tuple(in_index)
        self.align_corners = align_corners
        self.up_convs = nn.ModuleList(
            nn.Sequential(ConvBNReLU(c, mla_channels, 3, padding=1), ConvBNReLU(mla_channels, mla_channels, 3, padding=1),
                          Upsample(up_scale, align_corners))
            for c in in_channels)

    @classmethod
    def from_config(cls, cfg: SETRMLAHeadConfig, num_classes: int, align_corners: bool) -> "SETRMLAHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, mla_channels=cfg.mla_channels,
                   up_scale=cfg.up_scale, dropout=cfg.dropout, align_corners=align_corners)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        outs = [block(features[i]) for i, block in zip(self.in_index, self.up_convs)]
        return self.cls_seg(torch.cat(outs, dim=1))
