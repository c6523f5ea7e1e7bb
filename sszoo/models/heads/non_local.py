"""Non-local head (Wang et al., "Non-local Neural Networks", CVPR 2018), as MMSegmentation's NLHead.

An FCN head whose two 3x3 convs have a non-local block between them: every position of the feature map
is updated with an attention-weighted sum over all positions.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import Conv, ConvBN
from .fcn import FCNHead

MODES = ("embedded_gaussian", "dot_product")


class NonLocal2d(nn.Module):
    """Non-local block: ``x + conv_out(attention(theta(x), phi(x)) @ g(x))``.

    ``g``, ``theta`` and ``phi`` are biased 1x1 convs to ``in_channels // reduction`` channels; ``conv_out``
    (1x1 conv + BN) projects back. ``embedded_gaussian`` attention is a softmax over the key positions of
    the dot products (divided by sqrt(inter_channels) with ``use_scale``); ``dot_product`` divides them by
    the number of positions instead.
    """

    def __init__(self, in_channels: int, *, reduction: int = 2, use_scale: bool = True,
                 mode: str = "embedded_gaussian") -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"non-local mode {mode!r} is not implemented; expected one of {MODES}")
        self.in_channels = in_channels
        self.inter_channels = max(in_channels // reduction, 1)
        self.use_scale = use_scale
        self.mode = mode
        # registration order of the reference: g, conv_out, theta, phi
        self.g = Conv(in_channels, self.inter_channels)
        self.conv_out = ConvBN(self.inter_channels, in_channels)
        self.theta = Conv(in_channels, self.inter_channels)
        self.phi = Conv(in_channels, self.inter_channels)

    def attention(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """Pairwise weights N x HW x HW of ``query`` (N x HW x C) against ``key`` (N x C x HW)."""
        weight = torch.matmul(query, key)
        if self.mode == "dot_product":
            return weight / weight.shape[-1]
        if self.use_scale:
            weight = weight / query.shape[-1] ** 0.5
        return weight.softmax(dim=-1)

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Values N x HW x C', queries N x HW x C' and keys N x C' x HW of ``x``."""
        n = x.shape[0]
        value = self.g(x).reshape(n, self.inter_channels, -1).transpose(1, 2)
        query = self.theta(x).reshape(n, self.inter_channels, -1).transpose(1, 2)
        key = self.phi(x).reshape(n, self.inter_channels, -1)
        return value, query, key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, query, key = self.embed(x)
        y = torch.matmul(self.attention(query, key), value)
        y = y.transpose(1, 2).reshape(x.shape[0], self.inter_channels, *x.shape[2:])
        return x + self.conv_out(y)


@dataclass(frozen=True)
class NLHeadConfig:
    in_channels: int = 2048
    channels: int = 512
    in_index: int = 3
    concat_input: bool = True
    kernel_size: int = 3
    dilation: int = 1
    reduction: int = 2
    use_scale: bool = True
    mode: str = "embedded_gaussian"
    dropout: float = 0.1
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    kind: str = "nonlocal"


class FCNBlockHead(FCNHead):
    """An FCN head with two convs and a context block between them (NL, DNL and GC heads).

    The block is registered after the FCN head's modules, as in the reference; subclasses assign it
    under their reference name and return it from :meth:`block`.
    """

    def __init__(self, in_channels: int, channels: int, num_classes: int, *, in_index: int = 3,
                 concat_input: bool = True, kernel_size: int = 3, dilation: int = 1, dropout: float = 0.1,
                 align_corners: bool = False) -> None:
        super().__init__(in_channels, channels, num_classes, in_index=in_index, num_convs=2, concat_input=concat_input,
                         kernel_size=kernel_size, dilation=dilation, dropout=dropout, align_corners=align_corners)

    def block(self) -> nn.Module:
        raise NotImplementedError

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[self.in_index]
        out = self.convs[1](self.block()(self.convs[0](x)))
        if self.conv_cat is not None:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return self.cls_seg(out)


class NLHead(FCNBlockHead):
    """FCN head with a :class:`NonLocal2d` block (key ``nl_block``) between its convs."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *, reduction: int = 2,
                 use_scale: bool = True, mode: str = "embedded_gaussian", **kwargs) -> None:
        super().__init__(in_channels, channels, num_classes, **kwargs)
        self.nl_block = NonLocal2d(channels, reduction=reduction, use_scale=use_scale, mode=mode)

    def block(self) -> nn.Module:
        return self.nl_block

    @classmethod
    def from_config(cls, cfg: NLHeadConfig, num_classes: int, align_corners: bool) -> "NLHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, concat_input=cfg.concat_input,
                   kernel_size=cfg.kernel_size, dilation=cfg.dilation, reduction=cfg.reduction,
                   use_scale=cfg.use_scale, mode=cfg.mode, dropout=cfg.dropout, align_corners=align_corners)
