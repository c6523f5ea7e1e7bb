"""EncNet's context encoding head (Zhang et al., "Context Encoding for Semantic Segmentation", CVPR 2018).

The Encoding layer learns ``num_codes`` codewords; each pixel's residuals to them, softly assigned, are summed
into a global context vector that rescales the feature channels (and, through the SE loss, is trained to
predict which classes the image contains).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import ClassifierHead, ConvBNReLU, resize
from ..losses import loss_precision


@dataclass(frozen=True)
class EncHeadConfig:
    in_channels: tuple[int, ...] = (512, 1024, 2048)
    channels: int = 512
    in_index: tuple[int, ...] = (1, 2, 3)  # the maps the head reads; without laterals only the last is used
    num_codes: int = 32
    use_se_loss: bool = True
    add_lateral: bool = False
    se_loss_weight: float = 0.2  # weight of the semantic encoding loss in the training total
    dropout: float = 0.1
    loss_weight: float = 1.0  # weight of this head's segmentation loss in the training total
    kind: str = "enc"


class Encoding(nn.Module):
    """Residual encoding: N x C x H x W -> N x K x C, ``E_k = sum_i a_ik (x_i - c_k)`` with
    ``a_i = softmax_k(s_k ||x_i - c_k||^2)`` over the K learnt codewords ``c_k`` and smoothing factors ``s_k``."""

    def __init__(self, channels: int, num_codes: int) -> None:
        super().__init__()
        std = 1.0 / (num_codes * channels) ** 0.5
        self.codewords = nn.Parameter(torch.empty(num_codes, channels).uniform_(-std, std))
        self.scale = nn.Parameter(torch.empty(num_codes).uniform_(-1, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2).transpose(1, 2)  # N x HW x C
        codes = self.codewords
        # ||x - c||^2 expanded, so no N x HW x K x C tensor is materialised
        dist = ((x * x).sum(-1, keepdim=True) - 2 * x @ codes.t() + (codes * codes).sum(-1))  # N x HW x K
        assign = F.softmax(dist * self.scale, dim=2)
        # sum_i a_ik (x_i - c_k) = (A^T X)_k - (sum_i a_ik) c_k
        return assign.transpose(1, 2) @ x - assign.sum(1).unsqueeze(-1) * codes


class EncModule(nn.Module):
    """Projection, Encoding + BatchNorm1d + ReLU, mean over the codes, and a sigmoid FC that rescales the
    channels: returns the context vector (N x C) and ``relu(x * (1 + gamma))``."""

    def __init__(self, channels: int, num_codes: int) -> None:
        super().__init__()
        self.encoding_project = ConvBNReLU(channels, channels, 1)
        self.encoding = nn.Sequential(Encoding(channels, num_codes), nn.BatchNorm1d(num_codes), nn.ReLU(inplace=True))
        self.fc = nn.Sequential(nn.Linear(channels, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        context = self.encoding(self.encoding_project(x)).mean(dim=1)
        gamma = self.fc(context)[:, :, None, None]
        return context, F.relu(x + x * gamma)


class EncHead(ClassifierHead):
    """Bottleneck 3x3 ConvBNReLU on the last map (optionally fused with 1x1 laterals of the others), the
    encoding module, the classifier; in training also the SE classifier's class-presence logits."""

    def __init__(self, in_channels: tuple[int, ...], channels: int, num_classes: int, *,
                 in_index: tuple[int, ...] = (1, 2, 3), num_codes: int = 32, use_se_loss: bool = True,
                 add_lateral: bool = False, se_loss_weight: float = 0.2, loss_weight: float = 1.0,
                 dropout: float = 0.1, align_corners: bool = False) -> None:
        super().__init__()
        # The classifier is registered first, as in the reference, so parameters enumerate in the same order.
        self._init_classifier(channels, num_classes, dropout)
        self.in_index = tuple(in_index)
        self.align_corners = align_corners
        self.use_se_loss = use_se_loss
        self.se_loss_weight = se_loss_weight
        self.loss_weight = loss_weight
        self.bottleneck = ConvBNReLU(in_channels[-1], channels, 3, padding=1)
        if add_lateral:
            self.lateral_convs = nn.ModuleList(ConvBNReLU(c, channels, 1) for c in in_channels[:-1])
            self.fusion = ConvBNReLU(len(in_channels) * channels, channels, 3, padding=1)
        else:
            self.lateral_convs = None
        self.enc_module = EncModule(channels, num_codes)
        if use_se_loss:
            self.se_layer = nn.Linear(channels, num_classes)

    @classmethod
    def from_config(cls, cfg: EncHeadConfig, num_classes: int, align_corners: bool) -> "EncHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, num_codes=cfg.num_codes,
                   use_se_loss=cfg.use_se_loss, add_lateral=cfg.add_lateral, se_loss_weight=cfg.se_loss_weight,
                   loss_weight=cfg.loss_weight, dropout=cfg.dropout, align_corners=align_corners)

    def forward(self, features: list[torch.Tensor]):
        """Logits; in training mode with the SE loss, ``(logits, se_logits)`` (se_logits N x K)."""
        inputs = [features[i] for i in self.in_index]
        feat = self.bottleneck(inputs[-1])
        if self.lateral_convs is not None:
            laterals = [resize(conv(x), feat.shape[2:], self.align_corners)
                        for conv, x in zip(self.lateral_convs, inputs)]
            feat = self.fusion(torch.cat([feat, *laterals], dim=1))
        context, feat = self.enc_module(feat)
        logits = self.cls_seg(feat)
        if self.training and self.use_se_loss:
            return logits, self.se_layer(context)
        return logits

    def predict(self, features: list[torch.Tensor], *prev: torch.Tensor) -> torch.Tensor:
        out = self(features)
        return out[0] if isinstance(out, tuple) else out

    def reset_classifier(self, num_classes: int) -> None:
        """The classifier and, with the SE loss, the class-presence layer, fresh for ``num_classes``."""
        super().reset_classifier(num_classes)
        if self.use_se_loss:
            old = self.se_layer
            self.se_layer = nn.Linear(old.in_features, num_classes).to(old.weight.device, old.weight.dtype)

    def loss(self, output, label: torch.Tensor, *, ignore_index: int = 255) -> dict[str, torch.Tensor]:
        """``ce`` (the segmentation loss) and, with the SE loss, ``se``: the mean binary cross-entropy of the
        SE logits against each image's class presence (a class is present if any label pixel has it)."""
        if not self.use_se_loss:
            return super().loss(output, label, ignore_index=ignore_index)
        logits, se_logits = output
        terms = super().loss(logits, label, ignore_index=ignore_index)
        present = se_class_presence(label, se_logits.shape[1])
        se_logits = loss_precision(se_logits)
        bce = F.binary_cross_entropy_with_logits(se_logits, present.to(se_logits.dtype))
        # The segmentor multiplies every term by this head's loss_weight; the SE term has its own weight.
        terms["se"] = bce * (self.se_loss_weight / self.loss_weight)
        return terms


def se_class_presence(label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """N x K float targets of the SE loss: 1 where class k occurs in image n's label (ignored pixels, or any
    value outside [0, K), count for nothing), as the reference's histogram of the label."""
    n = label.shape[0]
    flat = label.reshape(n, -1).long()
    valid = (flat >= 0) & (flat < num_classes)
    counts = torch.zeros(n, num_classes + 1, device=label.device)
    # out-of-range values go to an extra bin that is dropped
    counts.scatter_add_(1, torch.where(valid, flat, num_classes), torch.ones_like(flat, dtype=counts.dtype))
    return (counts[:, :num_classes] > 0).float()
