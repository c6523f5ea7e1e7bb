"""DDRHead (DDRNet, Hong et al. 2021): a pre-activated 3x3 conv, BN, ReLU and a 1x1 classifier on the
backbone's final features; in training a second, identical head on the spatial branch's stage-3 features
gives auxiliary logits. MMSegmentation trains both with OHEM cross-entropy (class-weighted, weights 1.0 and 0.4).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..backbones.ddrnet import NormActConv
from ..layers import ClassifierHead


@dataclass(frozen=True)
class DDRHeadConfig:
    in_channels: int = 128
    channels: int = 64
    in_index: int = -1  # the reference's: inference reads the backbone's last (its only) output
    dropout: float = 0.0
    loss_weight: float = 1.0  # the head's weight in the training total; its two terms carry their own weights
    losses: tuple = ()  # LossSpecs, in the reference's loss_decode order: (main, auxiliary)
    kind: str = "ddr"

    def __post_init__(self) -> None:
        object.__setattr__(self, "losses", as_loss_specs(self.losses))


def as_loss_specs(losses) -> tuple:
    """``losses`` as a tuple of :class:`~sszoo.models.losses.LossSpec` (JSON gives dicts), so configs hash."""
    from ..losses import LossSpec

    def spec(s):
        if isinstance(s, LossSpec):
            return s
        d = dict(s)
        if d.get("class_weight") is not None:
            d["class_weight"] = tuple(float(w) for w in d["class_weight"])
        return LossSpec(**d)

    return tuple(spec(s) for s in losses)


def spec_term(spec, logits: torch.Tensor, label: torch.Tensor, *, align_corners: bool,
              ignore_index: int) -> torch.Tensor:
    """One loss spec's weighted term for feature-resolution ``logits`` (resized to the label)."""
    from ..losses import spec_losses

    (term,) = spec_losses((spec,), logits, label, align_corners=align_corners, ignore_index=ignore_index).values()
    return term


def base_head(in_channels: int, channels: int) -> nn.Sequential:
    """BN -> ReLU -> 3x3 conv (one ConvModule, keys ``0.conv/0.bn``) -> BN (``1``) -> ReLU."""
    return nn.Sequential(NormActConv(in_channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class DDRHead(ClassifierHead):
    """DDRNet's head. Eval: logits of ``features[-1]``. Training (the backbone then returns
    ``[stage-3 spatial features, features]``): ``(logits, auxiliary logits)``."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *, dropout: float = 0.0,
                 align_corners: bool = False) -> None:
        super().__init__()
        self._init_classifier(channels, num_classes, dropout)  # registered first, as in the reference
        self.align_corners = align_corners
        self.head = base_head(in_channels, channels)
        self.aux_head = base_head(in_channels // 2, channels)
        self.aux_cls_seg = nn.Conv2d(channels, num_classes, kernel_size=1)

    @classmethod
    def from_config(cls, cfg: DDRHeadConfig, num_classes: int, align_corners: bool) -> "DDRHead":
        head = cls(cfg.in_channels, cfg.channels, num_classes, dropout=cfg.dropout, align_corners=align_corners)
        head.loss_specs = cfg.losses
        return head

    def predict(self, features: list[torch.Tensor], *prev: torch.Tensor) -> torch.Tensor:
        return self.cls_seg(self.head(features[-1]))

    def forward(self, features: list[torch.Tensor]):
        logits = self.predict(features)
        if not self.training:
            return logits
        return logits, self.aux_cls_seg(self.aux_head(features[0]))

    def loss(self, output, label: torch.Tensor, *, ignore_index: int = 255) -> dict[str, torch.Tensor]:
        """MMSegmentation's DDRHead losses: ``context`` (its name for the main logits' term) and ``spatial``
        (the auxiliary logits'), each its spec's loss (OHEM cross-entropy with class weights in the published
        configs) times its weight (1.0 and 0.4)."""
        if not isinstance(output, (tuple, list)) or len(output) != 2:
            raise ValueError("DDRHead.loss needs the training output (logits, auxiliary logits)")
        specs = self.loss_specs
        if len(specs) != 2:
            raise ValueError(f"DDRHead needs two loss specs (main, auxiliary) as its config's loss_decode, got {specs}")
        return {name: spec_term(spec, logits, label, align_corners=self.align_corners, ignore_index=ignore_index)
                for name, logits, spec in zip(("context", "spatial"), output, specs)}

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        old = self.aux_cls_seg
        self.aux_cls_seg = nn.Conv2d(old.in_channels, num_classes, 1).to(old.weight.device, old.weight.dtype)
        nn.init.normal_(self.aux_cls_seg.weight, std=0.01)
        nn.init.zeros_(self.aux_cls_seg.bias)
