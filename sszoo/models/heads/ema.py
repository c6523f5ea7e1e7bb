"""Expectation-maximisation attention head (Li et al., "Expectation-Maximization Attention Networks for
Semantic Segmentation", ICCV 2019), as MMSegmentation's EMAHead.

The features are reconstructed from a few *bases* found by EM iterations (E step: soft assignment of
every position to the bases; M step: bases = assignment-weighted means), started from bases kept in a
buffer. In training, the buffer follows the batch's final bases by a moving average.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
import torch.nn.functional as F

from ..layers import ClassifierHead, ConvBNReLU
from ..layers import Conv, ConvBN


def _mean_over_processes(t: torch.Tensor) -> torch.Tensor:
    """``t`` averaged over the processes of a distributed run (itself otherwise), as the reference's bases."""
    if not (dist.is_available() and dist.is_initialized()):
        return t
    t = t / dist.get_world_size()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


class EMAModule(nn.Module):
    """EM attention: ``num_stages`` EM iterations from the ``bases`` buffer (1 x C x K), then the input
    reconstructed from the final bases and assignments.

    The iterations run without gradient, as the reference's (so the reconstruction passes no gradient
    to its input). In training mode each forward moves the buffer towards the batch-mean of the final
    bases: ``bases <- (1 - momentum) * bases + momentum * normalize(mean_batch(final))``.
    """

    bases: torch.Tensor

    def __init__(self, channels: int, num_bases: int, num_stages: int, momentum: float = 0.1) -> None:
        super().__init__()
        if num_stages < 1:
            raise ValueError("EMA needs at least one EM stage")
        self.num_bases = num_bases
        self.num_stages = num_stages
        self.momentum = momentum
        # initial bases as the reference draws them: N(0, 2 / K), each basis L2-normalised over channels
        bases = torch.randn(1, channels, num_bases) * math.sqrt(2.0 / num_bases)
        self.register_buffer("bases", F.normalize(bases, dim=1, p=2))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        n, c, h, w = feats.shape
        feats = feats.reshape(n, c, h * w)
        bases = self.bases.repeat(n, 1, 1)
        with torch.no_grad():
            for _ in range(self.num_stages):
                # E step: responsibilities N x HW x K, a softmax over the bases
                attention = F.softmax(torch.einsum("bcn,bck->bnk", feats, bases), dim=2)
                # M step: bases as the responsibility-weighted means of the positions, L2-normalised
                weights = F.normalize(attention, dim=1, p=1)
                bases = F.normalize(torch.einsum("bcn,bnk->bck", feats, weights), dim=1, p=2)
        recon = torch.einsum("bck,bnk->bcn", bases, attention).reshape(n, c, h, w)
        if self.training:
            with torch.no_grad():
                batch_bases = F.normalize(_mean_over_processes(bases.mean(dim=0, keepdim=True)), dim=1, p=2)
                self.bases.copy_((1 - self.momentum) * self.bases + self.momentum * batch_bases)
        return recon


@dataclass(frozen=True)
class EMAHeadConfig:
    in_channels: int = 2048
    channels: int = 256
    in_index: int = 3
    ema_channels: int = 512
    num_bases: int = 64
    num_stages: int = 3
    concat_input: bool = True
    momentum: float = 0.1
    dropout: float = 0.1
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    kind: str = "ema"


class EMAHead(ClassifierHead):
    """3x3 conv to ``ema_channels``, a frozen biased 1x1 projection, :class:`EMAModule`, ReLU, 1x1 conv + BN,
    a residual ReLU, a 3x3 bottleneck to ``channels``, optionally fused with the input by ``conv_cat``."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *, in_index: int = 3,
                 ema_channels: int = 512, num_bases: int = 64, num_stages: int = 3, concat_input: bool = True,
                 momentum: float = 0.1, dropout: float = 0.1, align_corners: bool = False) -> None:
        super().__init__()
        # The classifier is registered first, as in the reference, so parameters enumerate in the same order.
        self._init_classifier(channels, num_classes, dropout)
        self.in_index = in_index
        self.align_corners = align_corners
        self.ema_module = EMAModule(ema_channels, num_bases, num_stages, momentum)
        self.ema_in_conv = ConvBNReLU(in_channels, ema_channels, 3, padding=1)
        # maps the ReLU features from (0, inf) to (-inf, inf); frozen in training, as in the reference
        self.ema_mid_conv = Conv(ema_channels, ema_channels)
        self.ema_mid_conv.requires_grad_(False)
        self.ema_out_conv = ConvBN(ema_channels, ema_channels)
        self.bottleneck = ConvBNReLU(ema_channels, channels, 3, padding=1)
        self.conv_cat = ConvBNReLU(in_channels + channels, channels, 3, padding=1) if concat_input else None

    @classmethod
    def from_config(cls, cfg: EMAHeadConfig, num_classes: int, align_corners: bool) -> "EMAHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, ema_channels=cfg.ema_channels,
                   num_bases=cfg.num_bases, num_stages=cfg.num_stages, concat_input=cfg.concat_input,
                   momentum=cfg.momentum, dropout=cfg.dropout, align_corners=align_corners)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[self.in_index]
        identity = self.ema_in_conv(x)
        recon = F.relu(self.ema_module(self.ema_mid_conv(identity)))
        out = F.relu(identity + self.ema_out_conv(recon))
        out = self.bottleneck(out)
        if self.conv_cat is not None:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return self.cls_seg(out)
