"""PIDHead (PIDNet, Xu et al. 2023) and the boundary labels its loss reads.

Three small heads (BN -> ReLU -> 3x3 conv, BN, ReLU, 1x1 classifier): ``i_head`` on the fused features gives
the prediction; in training ``p_head`` on the P branch's stage-3 features and ``d_head`` on the D branch's
stage-4 features give auxiliary logits and a one-channel boundary map. MMSegmentation's losses:

- ``sem_p``: class-weighted cross-entropy of the P logits (weight 0.4);
- ``sem_i``: OHEM cross-entropy of the I logits (1.0);
- ``bd``: the class-balanced binary boundary loss of the D map against the label's edges (20.0);
- ``sem_bd``: OHEM cross-entropy of the I logits on only the pixels where sigmoid(D) > 0.8 (1.0).

The edges come from MMSegmentation's ``GenerateEdge`` data transform (then padded with 255 by the data
preprocessor); :func:`generate_edge` computes the same map from the label tensor.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..backbones.ddrnet import NormActConv
from ..layers import ClassifierHead, resize
from .ddr_head import as_loss_specs, spec_term


def generate_edge(label: torch.Tensor, edge_width: int = 4, ignore_index: int = 255,
                  valid: torch.Tensor | None = None) -> torch.Tensor:
    """MMSegmentation's ``GenerateEdge`` on a batch of labels N x H x W: uint8 N x H x W, 1 on boundaries.

    A pixel is marked when it differs from its neighbour below (the lower pixel is marked), to its right (the
    left pixel), down-right (the upper-left pixel) or down-left (the upper-right pixel), neither of the two
    being ``ignore_index``; the marks are then dilated by an ``edge_width`` x ``edge_width`` square, which
    OpenCV anchors at offset ``edge_width // 2``: a pixel takes the maximum over ``edge_width // 2`` pixels
    above/left of it and ``edge_width - 1 - edge_width // 2`` below/right (so a mark spreads further
    down/right for even widths). ``valid`` (N x 2, the unpadded height and width of each
    sample, as sszoo's collate returns) sets the padding to ``ignore_index``, as the reference's data
    preprocessor pads the edge map after the transform.
    """
    if label.dim() != 3:
        raise ValueError(f"expected labels N x H x W, got shape {tuple(label.shape)}")
    ok = label != ignore_index
    edge = torch.zeros(label.shape, dtype=torch.bool, device=label.device)

    def mark(a: torch.Tensor, b: torch.Tensor, ok_a: torch.Tensor, ok_b: torch.Tensor) -> torch.Tensor:
        return (a != b) & ok_a & ok_b

    edge[:, 1:, :] |= mark(label[:, 1:, :], label[:, :-1, :], ok[:, 1:, :], ok[:, :-1, :])  # down
    edge[:, :, :-1] |= mark(label[:, :, :-1], label[:, :, 1:], ok[:, :, :-1], ok[:, :, 1:])  # left
    edge[:, :-1, :-1] |= mark(label[:, :-1, :-1], label[:, 1:, 1:], ok[:, :-1, :-1], ok[:, 1:, 1:])  # up-left
    edge[:, :-1, 1:] |= mark(label[:, :-1, 1:], label[:, 1:, :-1], ok[:, :-1, 1:], ok[:, 1:, :-1])  # up-right
    before = edge_width // 2
    after = edge_width - 1 - before
    # dilation as a max over the window; zero padding = OpenCV ignoring pixels outside the image
    padded = F.pad(edge.unsqueeze(1).to(torch.float32), (before, after, before, after))
    out = F.max_pool2d(padded, edge_width, stride=1).squeeze(1).to(torch.uint8)
    if valid is not None:
        rows = torch.arange(label.shape[1], device=label.device)
        cols = torch.arange(label.shape[2], device=label.device)
        inside = ((rows[None, :, None] < valid[:, 0, None, None].to(label.device))
                  & (cols[None, None, :] < valid[:, 1, None, None].to(label.device)))
        out = torch.where(inside, out, torch.full_like(out, ignore_index))
    return out


@dataclass(frozen=True)
class PIDHeadConfig:
    in_channels: int = 128
    channels: int = 128
    in_index: int = -1  # the reference's: inference reads the backbone's last (its only) output
    dropout: float = 0.1  # the reference's default; it applies to the I head's classifier only
    edge_width: int = 4  # GenerateEdge in the published training pipelines
    loss_weight: float = 1.0  # the head's weight in the training total; its four terms carry their own weights
    losses: tuple = ()  # LossSpecs in loss_decode order: (P ce, I ohem, boundary, boundary-masked I ohem)
    kind: str = "pid"

    def __post_init__(self) -> None:
        object.__setattr__(self, "losses", as_loss_specs(self.losses))


class BasePIDHead(nn.Module):
    """BN -> ReLU -> 3x3 conv (``conv``), BN (``norm``), ReLU."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.conv = NormActConv(in_channels, channels, 3, padding=1)
        self.norm = nn.BatchNorm2d(channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class PIDHead(ClassifierHead):
    """PIDNet's head. Eval: the I head's logits of ``features[-1]``. Training (the backbone then returns
    ``[P features, fused features, D features]``): ``(P logits, I logits, boundary logits)``, the
    reference's order (so the main logits are the *second* element)."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, *, dropout: float = 0.1,
                 edge_width: int = 4, align_corners: bool = True) -> None:
        super().__init__()
        self._init_classifier(channels, num_classes, dropout)  # registered first, as in the reference
        self.align_corners = align_corners
        self.edge_width = edge_width
        self.i_head = BasePIDHead(in_channels, channels)
        self.p_head = BasePIDHead(in_channels // 2, channels)
        self.d_head = BasePIDHead(in_channels // 2, in_channels // 4)
        self.p_cls_seg = nn.Conv2d(channels, num_classes, kernel_size=1)
        self.d_cls_seg = nn.Conv2d(in_channels // 4, 1, kernel_size=1)

    @classmethod
    def from_config(cls, cfg: PIDHeadConfig, num_classes: int, align_corners: bool) -> "PIDHead":
        head = cls(cfg.in_channels, cfg.channels, num_classes, dropout=cfg.dropout, edge_width=cfg.edge_width,
                   align_corners=align_corners)
        head.loss_specs = cfg.losses
        return head

    def predict(self, features: list[torch.Tensor], *prev: torch.Tensor) -> torch.Tensor:
        return self.cls_seg(self.i_head(features[-1] if len(features) == 1 else features[1]))

    def forward(self, features: list[torch.Tensor]):
        if not self.training:
            return self.predict(features)
        x_p, x_i, x_d = features
        return (self.p_cls_seg(self.p_head(x_p)), self.cls_seg(self.i_head(x_i)), self.d_cls_seg(self.d_head(x_d)))

    def loss(self, output, label: torch.Tensor, *, ignore_index: int = 255,
             valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """MMSegmentation's PIDHead losses ``sem_p``, ``sem_i``, ``bd``, ``sem_bd`` (each times its spec's weight).

        ``valid`` (N x 2 unpadded sizes) marks the padded area of the boundary labels as ignored, as the
        reference's data preprocessor does; without it the labels are taken as unpadded.
        """
        from ..losses import boundary_loss

        if not isinstance(output, (tuple, list)) or len(output) != 3:
            raise ValueError("PIDHead.loss needs the training output (P logits, I logits, boundary logits)")
        specs = self.loss_specs
        if len(specs) != 4 or specs[2].kind != "boundary":
            raise ValueError(f"PIDHead needs four loss specs (P, I, boundary, boundary-masked I), got {specs}")
        p_logits, i_logits, d_logits = output
        kw = dict(align_corners=self.align_corners, ignore_index=ignore_index)
        d_logits = resize(d_logits, label.shape[-2:], self.align_corners)
        edge = generate_edge(label, self.edge_width, ignore_index, valid)
        # the I logits again, on only the pixels the D branch calls boundary (sigmoid > 0.8); not detached
        # from D's graph in the reference either, but a mask carries no gradient
        on_boundary = torch.where(torch.sigmoid(d_logits[:, 0]) > 0.8, label, torch.full_like(label, ignore_index))
        return {"sem_p": spec_term(specs[0], p_logits, label, **kw),
                "sem_i": spec_term(specs[1], i_logits, label, **kw),
                "bd": specs[2].weight * boundary_loss(d_logits, edge),
                "sem_bd": spec_term(specs[3], i_logits, on_boundary, **kw)}

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        old = self.p_cls_seg
        self.p_cls_seg = nn.Conv2d(old.in_channels, num_classes, 1).to(old.weight.device, old.weight.dtype)
        nn.init.normal_(self.p_cls_seg.weight, std=0.01)
        nn.init.zeros_(self.p_cls_seg.bias)
