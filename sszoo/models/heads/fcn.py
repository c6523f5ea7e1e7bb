"""FCN head (Long et al., CVPR 2015), as used for FCN decode heads and every auxiliary head.

With ``input_transform="resize_concat"`` (HRNetV2's head) ``in_index`` and ``in_channels`` are tuples: the
selected maps are resized bilinearly to the first one's size and concatenated before the convs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch import nn

from ..layers import ClassifierHead, ConvBNReLU, resize
from ..losses import PixelSampler


def select_inputs(features: list[torch.Tensor], in_index: Union[int, tuple[int, ...]],
                  input_transform: Optional[str], align_corners: bool) -> torch.Tensor:
    """The head's input map: ``features[in_index]``, or for ``"resize_concat"`` the maps ``in_index`` resized
    to the first one's size (bilinear, the head's ``align_corners``) and concatenated along channels."""
    if input_transform is None:
        return features[in_index]
    if input_transform != "resize_concat":
        raise ValueError(f"unsupported input_transform {input_transform!r}")
    maps = [features[i] for i in in_index]
    return torch.cat([resize(m, maps[0].shape[2:], align_corners) for m in maps], dim=1)


def total_channels(in_channels: Union[int, tuple[int, ...]], input_transform: Optional[str]) -> int:
    """Channels of :func:`select_inputs`' map (checking that the fields agree with ``input_transform``)."""
    if input_transform is None:
        if not isinstance(in_channels, int):
            raise ValueError("in_channels must be an int without an input_transform")
        return in_channels
    return sum(in_channels)


@dataclass(frozen=True)
class FCNHeadConfig:
    in_channels: Union[int, tuple[int, ...]] = 2048
    channels: int = 512
    in_index: Union[int, tuple[int, ...]] = 3
    num_convs: int = 2
    concat_input: bool = True
    kernel_size: int = 3
    dilation: int = 1
    dropout: float = 0.1
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    losses: tuple = ()         # LossSpecs when the loss is not one plain cross-entropy (sszoo.models.losses)
    sampler: Optional[PixelSampler] = None  # OHEM pixel selection (the reference's OHEMPixelSampler)
    align_corners: Optional[bool] = None  # the loss's resize, when not the segmentor's (STDC's auxiliary heads)
    input_transform: Optional[str] = None  # "resize_concat": in_channels / in_index are tuples (HRNet)
    kind: str = "fcn"


class FCNHead(ClassifierHead):
    """``num_convs`` 3x3 ConvBNReLUs, optionally concatenated with the input and fused by one more."""

    def __init__(self, in_channels: Union[int, tuple[int, ...]], channels: int, num_classes: int, *,
                 in_index: Union[int, tuple[int, ...]] = 3, num_convs: int = 2, concat_input: bool = True,
                 kernel_size: int = 3, dilation: int = 1, dropout: float = 0.1, align_corners: bool = False,
                 input_transform: Optional[str] = None) -> None:
        super().__init__()
        in_channels = total_channels(in_channels, input_transform)
        self.input_transform = input_transform
        if num_convs == 0 and in_channels != channels:
            raise ValueError("an FCN head without convs needs in_channels == channels")
        # The classifier is registered first, as in the reference, so parameters enumerate in the same order.
        self._init_classifier(channels, num_classes, dropout)
        self.in_index = in_index
        self.align_corners = align_corners
        pad = (kernel_size // 2) * dilation
        convs = [ConvBNReLU(in_channels if i == 0 else channels, channels, kernel_size, padding=pad, dilation=dilation)
                 for i in range(num_convs)]
        self.convs = nn.Sequential(*convs) if convs else nn.Identity()
        self.conv_cat = (ConvBNReLU(in_channels + channels, channels, kernel_size, padding=kernel_size // 2)
                         if concat_input else None)

    @classmethod
    def from_config(cls, cfg: FCNHeadConfig, num_classes: int, align_corners: bool) -> "FCNHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, num_convs=cfg.num_convs,
                   concat_input=cfg.concat_input, kernel_size=cfg.kernel_size, dilation=cfg.dilation,
                   dropout=cfg.dropout,
                   align_corners=align_corners if cfg.align_corners is None else cfg.align_corners,
                   input_transform=cfg.input_transform)

    def forward_feature(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The features before the classifier (K-Net's kernel generator reads them)."""
        x = select_inputs(features, self.in_index, self.input_transform, self.align_corners)
        out = self.convs(x)
        if self.conv_cat is not None:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return out

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.cls_seg(self.forward_feature(features))
