"""PSANet's point-wise spatial attention head (Zhao et al., "PSANet: Point-wise Spatial Attention Network for
Scene Parsing", ECCV 2018).

Every position predicts an attention map over a ``mask_size`` window centred on itself; :func:`psa_mask`
places those windows into full h*w x h*w attention matrices, either as "collect" (position p gathers
from its neighbours) or "distribute" (position p sends to its neighbours). It is the PSAMask operator,
written with tensor indexing instead of a compiled kernel.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import ClassifierHead, ConvBNReLU, resize

PSA_TYPES = ("collect", "distribute", "bi-direction")


@dataclass(frozen=True)
class PSAHeadConfig:
    in_channels: int = 2048
    channels: int = 512
    in_index: int = 3
    mask_size: tuple[int, int] = (97, 97)
    psa_type: str = "bi-direction"
    compact: bool = False
    shrink_factor: int = 2
    normalization_factor: Optional[float] = 1.0  # None: mask_h * mask_w
    psa_softmax: bool = True
    dropout: float = 0.1
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    kind: str = "psa"


def psa_mask(mask: torch.Tensor, psa_type: str, mask_size: tuple[int, int]) -> torch.Tensor:
    """The PSAMask operator: N x (mh*mw) x H x W window attentions -> N x (H*W) x H x W attention matrices.

    Channel ``dh * mw + dw`` of position c = (ch, cw) is the weight between c and q = c + (dh, dw) - half,
    half = ((mh - 1) // 2, (mw - 1) // 2). "collect" puts it at ``out[n, q, c]`` (q flattened), "distribute"
    at ``out[n, c, q]``; pairs whose offset falls outside the window are 0.
    """
    if psa_type not in ("collect", "distribute"):
        raise ValueError(f"psa_type must be 'collect' or 'distribute', got {psa_type!r}")
    n, k, h, w = mask.shape
    mh, mw = mask_size
    if k != mh * mw:
        raise ValueError(f"expected {mh * mw} = {mh} x {mw} mask channels, got {k}")
    dev = mask.device
    # window offsets of every (q, c) pair per axis: dh[qh, ch] = qh - ch + half_h
    dh = torch.arange(h, device=dev)[:, None] - torch.arange(h, device=dev)[None, :] + (mh - 1) // 2
    dw = torch.arange(w, device=dev)[:, None] - torch.arange(w, device=dev)[None, :] + (mw - 1) // 2
    inside = (((dh >= 0) & (dh < mh))[:, None, :, None] & ((dw >= 0) & (dw < mw))[None, :, None, :])
    channel = dh[:, None, :, None] * mw + dw[None, :, None, :]  # [qh, qw, ch, cw]
    # pairs outside the window read an extra all-zero channel
    index = torch.where(inside, channel, k).reshape(h * w, h * w)
    flat = torch.cat([mask.reshape(n, k, h * w), mask.new_zeros(n, 1, h * w)], dim=1)
    collect = flat.gather(1, index.expand(n, -1, -1))  # [n, q, c] = flat[n, index[q, c], c]
    out = collect if psa_type == "collect" else collect.transpose(1, 2)
    return out.reshape(n, h * w, h, w)


def _attention(channels: int, mask_size: tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(ConvBNReLU(channels, channels, 1),
                         nn.Conv2d(channels, mask_size[0] * mask_size[1], 1, bias=False))


class PSAHead(ClassifierHead):
    """Reduce, shrink, per-position window attention (collect, distribute or both), project back, upsample,
    concatenate with the input, fuse by a 3x3 ConvBNReLU."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *, mask_size: tuple[int, int],
                 in_index: int = 3, psa_type: str = "bi-direction", compact: bool = False, shrink_factor: int = 2,
                 normalization_factor: Optional[float] = 1.0, psa_softmax: bool = True, dropout: float = 0.1,
                 align_corners: bool = False) -> None:
        super().__init__()
        if psa_type not in PSA_TYPES:
            raise ValueError(f"psa_type must be one of {PSA_TYPES}, got {psa_type!r}")
        # The classifier is registered first, as in the reference, so parameters enumerate in the same order.
        self._init_classifier(channels, num_classes, dropout)
        self.in_index = in_index
        self.align_corners = align_corners
        self.mask_size = tuple(mask_size)
        self.psa_type = psa_type
        self.compact = compact
        self.shrink_factor = shrink_factor
        self.normalization_factor = (float(mask_size[0] * mask_size[1]) if normalization_factor is None
                                     else float(normalization_factor))
        self.psa_softmax = psa_softmax
        self.reduce = ConvBNReLU(in_channels, channels, 1)
        self.attention = _attention(channels, self.mask_size)
        if psa_type == "bi-direction":
            self.reduce_p = ConvBNReLU(in_channels, channels, 1)
            self.attention_p = _attention(channels, self.mask_size)
        # padding=1 on a 1x1 conv, as the reference: the map grows by a border that the resize below absorbs
        self.proj = ConvBNReLU(channels * (2 if psa_type == "bi-direction" else 1), in_channels, 1, padding=1)
        self.bottleneck = ConvBNReLU(in_channels * 2, channels, 3, padding=1)

    @classmethod
    def from_config(cls, cfg: PSAHeadConfig, num_classes: int, align_corners: bool) -> "PSAHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, mask_size=cfg.mask_size, in_index=cfg.in_index,
                   psa_type=cfg.psa_type, compact=cfg.compact, shrink_factor=cfg.shrink_factor,
                   normalization_factor=cfg.normalization_factor, psa_softmax=cfg.psa_softmax,
                   dropout=cfg.dropout, align_corners=align_corners)

    def _attend(self, x: torch.Tensor, attention: nn.Module, psa_type: str) -> torch.Tensor:
        """``x`` (N x C x h x w) re-aggregated by its predicted attention of ``psa_type``."""
        n, c, h, w = x.shape
        y = attention(x)
        if self.compact:
            # The compact map is already h*w x h*w. The reference transposes it for the distribute branch of
            # "bi-direction" but for the single "collect" type; kept as it is.
            if psa_type == ("distribute" if self.psa_type == "bi-direction" else "collect"):
                y = y.reshape(n, h * w, h * w).transpose(1, 2)
            y = y.reshape(n, h * w, h, w)
        else:
            y = psa_mask(y, psa_type, self.mask_size)
        if self.psa_softmax:
            y = F.softmax(y, dim=1)
        return torch.bmm(x.reshape(n, c, h * w), y.reshape(n, h * w, h * w)).reshape(n, c, h, w) * (
            1.0 / self.normalization_factor)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[self.in_index]
        if self.psa_type == "bi-direction":
            branches = [(self.reduce(x), self.attention, "collect"), (self.reduce_p(x), self.attention_p, "distribute")]
        else:
            branches = [(self.reduce(x), self.attention, self.psa_type)]
        align_corners = self.align_corners
        h, w = x.shape[2:]
        s = self.shrink_factor
        if s != 1:
            # as the reference: when both sides are indivisible, corner-aligned to ceil(size / s) (and the
            # upsampling back uses the same alignment), else floor(size / s) without corner alignment
            if h % s and w % s:
                h, w, align_corners = (h - 1) // s + 1, (w - 1) // s + 1, True
            else:
                h, w, align_corners = h // s, w // s, False
            branches = [(resize(b, (h, w), align_corners), a, t) for b, a, t in branches]
        out = torch.cat([self._attend(b, a, t) for b, a, t in branches], dim=1)
        out = resize(self.proj(out), x.shape[2:], align_corners)
        return self.cls_seg(self.bottleneck(torch.cat([x, out], dim=1)))
