"""DANet's dual attention head (Fu et al., "Dual Attention Network for Scene Segmentation", CVPR 2019).

Two branches on the backbone's last map: a position attention module (PAM, every position attends to
every position) and a channel attention module (CAM, every channel attends to every channel). Each
branch has its own classifier; the classifier of their sum is the prediction. Training supervises all
three with the same cross-entropy.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import ClassifierHead, ConvBNReLU
from ..losses import seg_cross_entropy
from .self_attention import Scale, SelfAttentionBlock


class PositionAttention(SelfAttentionBlock):
    """PAM: unnormalised dot-product attention over positions with plain 1x1 projections (query and key to
    ``channels``, value keeping ``in_channels``), added to the input scaled by ``gamma``."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__(in_channels, in_channels, channels, in_channels, share_key_query=False,
                         query_downsample=None, key_downsample=None, key_query_num_convs=1, key_query_norm=False,
                         value_out_num_convs=1, value_out_norm=False, matmul_norm=False, with_out=False)
        self.gamma = Scale(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.gamma(super().forward(x, x)) + x


class ChannelAttention(nn.Module):
    """CAM: channel-by-channel attention from the Gram matrix, added to the input scaled by ``gamma``.

    The softmax is taken of ``max(energy) - energy`` per row (as the reference), so channels that are
    *less* similar get more weight.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gamma = Scale(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        flat = x.reshape(n, c, h * w)
        energy = torch.bmm(flat, flat.transpose(1, 2))
        energy = energy.max(dim=-1, keepdim=True).values - energy
        out = torch.bmm(F.softmax(energy, dim=-1), flat).reshape(n, c, h, w)
        return self.gamma(out) + x


@dataclass(frozen=True)
class DAHeadConfig:
    in_channels: int = 2048
    channels: int = 512
    in_index: int = 3
    pam_channels: int = 64
    dropout: float = 0.1
    loss_weight: float = 1.0  # weight of each of the three loss terms in the training total
    kind: str = "da"


class DAHead(ClassifierHead):
    """PAM branch and CAM branch (3x3 conv -> attention -> 3x3 conv each), one classifier per branch and one
    (``conv_seg``, the prediction) on their sum.

    In training mode ``forward`` returns ``(pam_cam, pam, cam)`` logits for :meth:`loss`; in eval mode only
    the ``pam_cam`` logits.
    """

    def __init__(self, in_channels: int, channels: int, num_classes: int, *, in_index: int = 3,
                 pam_channels: int = 64, dropout: float = 0.1, align_corners: bool = False) -> None:
        super().__init__()
        # The classifier is registered first, as in the reference, so parameters enumerate in the same order.
        self._init_classifier(channels, num_classes, dropout)
        self.in_index = in_index
        self.align_corners = align_corners
        self.pam_in_conv = ConvBNReLU(in_channels, channels, 3, padding=1)
        self.pam = PositionAttention(channels, pam_channels)
        self.pam_out_conv = ConvBNReLU(channels, channels, 3, padding=1)
        self.pam_conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)
        self.cam_in_conv = ConvBNReLU(in_channels, channels, 3, padding=1)
        self.cam = ChannelAttention()
        self.cam_out_conv = ConvBNReLU(channels, channels, 3, padding=1)
        self.cam_conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)

    @classmethod
    def from_config(cls, cfg: DAHeadConfig, num_classes: int, align_corners: bool) -> "DAHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, pam_channels=cfg.pam_channels,
                   dropout=cfg.dropout, align_corners=align_corners)

    def forward(self, features: list[torch.Tensor]):
        x = features[self.in_index]
        pam_feat = self.pam_out_conv(self.pam(self.pam_in_conv(x)))
        # the branch classifiers only feed the training loss; their dropout draws come before the sum's, as there
        pam_out = self.pam_conv_seg(self.dropout(pam_feat)) if self.training else None
        cam_feat = self.cam_out_conv(self.cam(self.cam_in_conv(x)))
        cam_out = self.cam_conv_seg(self.dropout(cam_feat)) if self.training else None
        pam_cam_out = self.cls_seg(pam_feat + cam_feat)
        return (pam_cam_out, pam_out, cam_out) if self.training else pam_cam_out

    def predict(self, features: list[torch.Tensor], *prev: torch.Tensor) -> torch.Tensor:
        """The ``pam_cam`` logits (the branch classifiers are not used for inference)."""
        out = self(features)
        return out[0] if isinstance(out, tuple) else out

    def loss(self, output, label: torch.Tensor, *, ignore_index: int = 255) -> dict[str, torch.Tensor]:
        """Cross-entropy of each of the three logits, unweighted (the segmentor applies ``loss_weight`` to
        each term, which is how the reference weights all three by its one ``loss_decode``)."""
        names = ("pam_cam", "pam", "cam")
        return {name: seg_cross_entropy(logits, label, align_corners=self.align_corners, ignore_index=ignore_index)
                for name, logits in zip(names, output)}

    def reset_classifier(self, num_classes: int) -> None:
        """Replace all three classifiers (the prediction's and the two branches') for ``num_classes`` outputs."""
        super().reset_classifier(num_classes)
        for name in ("pam_conv_seg", "cam_conv_seg"):
            old = getattr(self, name)
            new = nn.Conv2d(old.in_channels, num_classes, kernel_size=1).to(old.weight.device, old.weight.dtype)
            nn.init.normal_(new.weight, std=0.01)
            nn.init.zeros_(new.bias)
            setattr(self, name, new)
