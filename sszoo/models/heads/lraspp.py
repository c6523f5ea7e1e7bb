"""Lite R-ASPP head (Howard et al., "Searching for MobileNetV3", ICCV 2019), as MMSegmentation builds it.

On the deepest map: a 1x1 ConvBNReLU gated by a pooled branch (``image_pool``: average pooling, 1x1 conv,
sigmoid), then a biased 1x1 conv. The result is upsampled to each shallower map in turn (deepest first),
concatenated with that map's 1x1 projection (``convs``) and fused by a 1x1 ConvBNReLU (``conv_ups``).

The pooled branch is the paper's "large pooling kernel with a large stride": MMSegmentation fixes it to
``AvgPool2d(kernel_size=49, stride=(16, 20))`` whatever the input size, so the deepest map must be at least
49 x 49 (for a 512 x 1024 crop, a 64 x 128 map, it gives 1 x 4 cells). With the stride-8 MobileNetV3 of
the zoo that is an input of at least 385 x 385 px (ceil(385 / 8) = 49); smaller inputs are refused, here
with an error that says so rather than PyTorch's "output size is too small".
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import ClassifierHead, resize

POOL_KERNEL = 49
POOL_STRIDE = (16, 20)


@dataclass(frozen=True)
class LRASPPHeadConfig:
    in_channels: tuple[int, ...] = (16, 24, 960)
    channels: int = 128
    in_index: tuple[int, ...] = (0, 1, 2)
    branch_channels: tuple[int, ...] = (32, 64)
    dropout: float = 0.1
    norm_eps: float = 1e-5  # the MobileNetV3 configs set BatchNorm eps 1e-3
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    kind: str = "lraspp"


class _ConvBNReLU(nn.Module):
    """A 1x1 Conv2d (no bias) -> BatchNorm2d(eps) -> ReLU under ConvModule's keys."""

    def __init__(self, in_channels: int, out_channels: int, eps: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=eps)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class _ConvSigmoid(nn.Module):
    """A 1x1 Conv2d (no bias, no norm) -> sigmoid, under the key ``conv``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.activate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.conv(x))


def check_pool_input(h: int, w: int) -> None:
    """Raise a ValueError naming the accepted size when an ``h`` x ``w`` map is too small for the pool."""
    if h < POOL_KERNEL or w < POOL_KERNEL:
        raise ValueError(
            f"LRASPP's image pool (AvgPool2d with kernel {POOL_KERNEL}, stride {POOL_STRIDE}, as in "
            f"MMSegmentation) needs a deepest feature map of at least {POOL_KERNEL} x {POOL_KERNEL}, got {h} x {w}: "
            f"with the stride-8 MobileNetV3 backbones the input must be at least {8 * (POOL_KERNEL - 1) + 1} x "
            f"{8 * (POOL_KERNEL - 1) + 1} px (height and width), e.g. the 512 x 1024 of the Cityscapes configs")


class LRASPPHead(ClassifierHead):
    """LRASPP over ``len(branch_channels) + 1`` maps (``in_index``, shallow to deep); logits at the shallowest."""

    def __init__(self, in_channels: tuple[int, ...], channels: int, num_classes: int, *,
                 in_index: tuple[int, ...] = (0, 1, 2), branch_channels: tuple[int, ...] = (32, 64),
                 dropout: float = 0.1, norm_eps: float = 1e-5, align_corners: bool = False) -> None:
        super().__init__()
        if len(in_channels) != len(in_index) or len(branch_channels) != len(in_channels) - 1:
            raise ValueError(f"LRASPP needs one in_index per input and one branch per input but the last, got "
                             f"in_channels {in_channels}, in_index {in_index}, branch_channels {branch_channels}")
        # The classifier is registered first, as in the reference, so parameters enumerate in the same order.
        self._init_classifier(channels, num_classes, dropout)
        self.in_index = tuple(in_index)
        self.align_corners = align_corners
        self.branch_channels = tuple(branch_channels)
        self.convs = nn.Sequential()
        self.conv_ups = nn.Sequential()
        for i, b in enumerate(branch_channels):
            self.convs.add_module(f"conv{i}", nn.Conv2d(in_channels[i], b, 1, bias=False))
            self.conv_ups.add_module(f"conv_up{i}", _ConvBNReLU(channels + b, channels, norm_eps))
        self.conv_up_input = nn.Conv2d(channels, channels, 1)
        self.aspp_conv = _ConvBNReLU(in_channels[-1], channels, norm_eps)
        self.image_pool = nn.Sequential(nn.AvgPool2d(POOL_KERNEL, stride=POOL_STRIDE),
                                        _ConvSigmoid(in_channels[-1], channels))

    @classmethod
    def from_config(cls, cfg: LRASPPHeadConfig, num_classes: int, align_corners: bool) -> "LRASPPHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index,
                   branch_channels=cfg.branch_channels, dropout=cfg.dropout, norm_eps=cfg.norm_eps,
                   align_corners=align_corners)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        inputs = [features[i] for i in self.in_index]
        x = inputs[-1]
        if not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):  # shapes are symbolic while exporting
            check_pool_input(int(x.shape[-2]), int(x.shape[-1]))
        x = self.aspp_conv(x) * resize(self.image_pool(x), x.shape[2:], self.align_corners)
        x = self.conv_up_input(x)
        for i in range(len(self.branch_channels) - 1, -1, -1):
            x = resize(x, inputs[i].shape[2:], self.align_corners)
            x = self.conv_ups[i](torch.cat([x, self.convs[i](inputs[i])], dim=1))
        return self.cls_seg(x)
