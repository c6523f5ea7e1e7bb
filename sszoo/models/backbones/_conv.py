"""A conv -> norm -> activation block with the key layout of MMCV's ``ConvModule`` (``conv``, ``bn``,
``activate``), for the real-time backbones whose blocks need strides, groups, a BatchNorm ``eps`` other than
PyTorch's or an activation other than ReLU (Fast-SCNN, CGNet)."""
from __future__ import annotations

import torch
from torch import nn


class ConvNormAct(nn.Module):
    """Conv2d (no bias: the norm follows) -> BatchNorm2d -> optional activation.

    ``act`` is the activation module (``None``: none, as ``ConvModule(act_cfg=None)``); it is registered
    last, under ``activate``, so a PReLU's parameter enumerates after the conv and norm as in the reference.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, *, stride: int = 1,
                 padding: int = 0, dilation: int = 1, groups: int = 1, eps: float = 1e-5,
                 act: nn.Module | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                              dilation=dilation, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=eps)
        self.activate = act if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class DepthwiseSeparableConv(nn.Module):
    """MMCV's ``DepthwiseSeparableConvModule`` as Fast-SCNN configures it: a depthwise k x k ConvBN *without*
    activation (``dw_act_cfg=None``) followed by a pointwise 1 x 1 ConvBNReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, stride: int = 1,
                 padding: int = 1) -> None:
        super().__init__()
        self.depthwise_conv = ConvNormAct(in_channels, in_channels, kernel_size, stride=stride, padding=padding,
                                          groups=in_channels)
        self.pointwise_conv = ConvNormAct(in_channels, out_channels, 1, act=nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))
