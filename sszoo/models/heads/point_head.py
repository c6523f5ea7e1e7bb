"""PointRend's point head (Kirillov et al., "PointRend: Image Segmentation as Rendering", CVPR 2020).

The second stage of a cascade after a coarse head (Semantic FPN's). At test time it refines the coarse logits
by adaptive subdivision: ``subdivision_steps`` times, upsample the current logits by ``scale_factor``, pick the
``subdivision_num_points`` most uncertain pixels (smallest top-1 minus top-2 margin), and replace their logits
by an MLP's prediction from the fine features and the coarse logits sampled there. In training it predicts at
``num_points`` points per image, chosen among ``oversample_ratio`` x as many random ones by uncertainty
(``importance_sample_ratio`` of them; the rest uniformly at random), and its loss is the cross-entropy there.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import ClassifierHead
from ..losses import loss_precision


@dataclass(frozen=True)
class PointHeadConfig:
    in_channels: tuple[int, ...] = (256,)
    channels: int = 256
    in_index: tuple[int, ...] = (0,)
    num_fcs: int = 3
    coarse_pred_each_layer: bool = True
    dropout: float = 0.0
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    # training point selection (MMSegmentation's train_cfg)
    num_points: int = 2048
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    # test-time subdivision (MMSegmentation's test_cfg)
    subdivision_steps: int = 2
    subdivision_num_points: int = 8196
    scale_factor: float = 2.0
    kind: str = "point"


def point_sample(x: torch.Tensor, points: torch.Tensor, *, align_corners: bool = False,
                 mode: str = "bilinear") -> torch.Tensor:
    """``x`` (N x C x H x W) sampled at ``points`` (N x P x 2, (x, y) in [0, 1]^2): N x C x P."""
    # the points are made in float32 (as the reference makes them) and used in the features' precision
    grid = points.to(x.dtype).unsqueeze(2) * 2.0 - 1.0
    return F.grid_sample(x, grid, mode=mode, align_corners=align_corners).squeeze(3)


def uncertainty(logits: torch.Tensor) -> torch.Tensor:
    """Top-2 minus top-1 logit along dim 1 (kept): highest where the prediction is least certain."""
    top2 = torch.topk(logits, k=2, dim=1)[0]
    return (top2[:, 1] - top2[:, 0]).unsqueeze(1)


class PointFC(nn.Module):
    """Shared per-point linear layer (1x1 Conv1d with bias) + ReLU, keys ``conv.*`` as MMCV's ConvModule."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size=1)
        self.activate = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.conv(x))


class PointHead(ClassifierHead):
    """``fcs`` (``num_fcs`` PointFCs, the coarse logits concatenated to each input when ``coarse_pred_each_layer``)
    then ``fc_seg`` (1x1 Conv1d); there is no ``conv_seg``.

    ``forward(features, coarse_logits)`` is the training pass: ``(point_logits N x K x P, points N x P x 2)`` for
    :meth:`loss`. :meth:`predict` is the subdivision inference and returns refined logits N x K x H' x W'.
    """

    def __init__(self, in_channels: tuple[int, ...], channels: int, num_classes: int, *,
                 in_index: tuple[int, ...] = (0,), num_fcs: int = 3, coarse_pred_each_layer: bool = True,
                 dropout: float = 0.0, align_corners: bool = False, num_points: int = 2048,
                 oversample_ratio: float = 3.0, importance_sample_ratio: float = 0.75, subdivision_steps: int = 2,
                 subdivision_num_points: int = 8196, scale_factor: float = 2.0) -> None:
        super().__init__()
        if len(in_channels) != len(in_index):
            raise ValueError("in_channels and in_index must have the same length")
        if oversample_ratio < 1 or not 0 <= importance_sample_ratio <= 1:
            raise ValueError("need oversample_ratio >= 1 and 0 <= importance_sample_ratio <= 1")
        self.in_channels = tuple(in_channels)
        self.in_index = tuple(in_index)
        self.channels = channels
        self.num_fcs = num_fcs
        self.coarse_pred_each_layer = coarse_pred_each_layer
        self.align_corners = align_corners
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.subdivision_steps = subdivision_steps
        self.subdivision_num_points = subdivision_num_points
        self.scale_factor = scale_factor
        self._build_mlp(num_classes)
        # a 1-d dropout before fc_seg (none in the published configs: dropout_ratio=-1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def _build_mlp(self, num_classes: int) -> None:
        fcs = []
        c = sum(self.in_channels) + num_classes
        for _ in range(self.num_fcs):
            fcs.append(PointFC(c, self.channels))
            c = self.channels + (num_classes if self.coarse_pred_each_layer else 0)
        self.fcs = nn.ModuleList(fcs)
        self.fc_seg = nn.Conv1d(c, num_classes, kernel_size=1)

    @classmethod
    def from_config(cls, cfg: PointHeadConfig, num_classes: int, align_corners: bool) -> "PointHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, num_fcs=cfg.num_fcs,
                   coarse_pred_each_layer=cfg.coarse_pred_each_layer, dropout=cfg.dropout,
                   align_corners=align_corners, num_points=cfg.num_points, oversample_ratio=cfg.oversample_ratio,
                   importance_sample_ratio=cfg.importance_sample_ratio, subdivision_steps=cfg.subdivision_steps,
                   subdivision_num_points=cfg.subdivision_num_points, scale_factor=cfg.scale_factor)

    def cls_seg(self, feat: torch.Tensor) -> torch.Tensor:
        return self.fc_seg(self.dropout(feat))

    def point_logits(self, features: list[torch.Tensor], coarse_logits: torch.Tensor,
                     points: torch.Tensor) -> torch.Tensor:
        """The MLP's logits N x K x P at ``points`` from the fine features and the coarse logits sampled there."""
        fine = torch.cat([point_sample(features[i], points, align_corners=self.align_corners)
                          for i in self.in_index], dim=1)
        coarse = point_sample(coarse_logits, points, align_corners=self.align_corners)
        x = torch.cat([fine, coarse], dim=1)
        for fc in self.fcs:
            x = fc(x)
            if self.coarse_pred_each_layer:
                x = torch.cat([x, coarse], dim=1)
        return self.cls_seg(x)

    @torch.no_grad()
    def train_points(self, coarse_logits: torch.Tensor) -> torch.Tensor:
        """Training points N x P x 2 in [0, 1]^2, drawn with torch's global RNG in the reference's order."""
        n = coarse_logits.shape[0]
        num_sampled = int(self.num_points * self.oversample_ratio)
        candidates = torch.rand(n, num_sampled, 2, device=coarse_logits.device)
        # the reference scores the candidates with align_corners=False whatever the head's setting
        scores = uncertainty(point_sample(coarse_logits, candidates, align_corners=False))[:, 0]
        num_uncertain = int(self.importance_sample_ratio * self.num_points)
        idx = torch.topk(scores, k=num_uncertain, dim=1)[1]
        points = torch.gather(candidates, 1, idx.unsqueeze(2).expand(-1, -1, 2))
        num_random = self.num_points - num_uncertain
        if num_random > 0:
            points = torch.cat([points, torch.rand(n, num_random, 2, device=coarse_logits.device)], dim=1)
        return points

    def forward(self, features: list[torch.Tensor], coarse_logits: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        points = self.train_points(coarse_logits)
        return self.point_logits(features, coarse_logits, points), points

    def _test_points(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat indices N x P of the most uncertain pixels of ``logits`` and their centres N x P x 2 in [0, 1]^2."""
        n, _, h, w = logits.shape
        scores = uncertainty(logits).view(n, h * w)
        idx = scores.topk(min(h * w, self.subdivision_num_points), dim=1)[1]
        # pixel centres, computed in float32 as the reference does
        points = torch.stack([1.0 / w / 2.0 + (idx % w).float() * (1.0 / w),
                              1.0 / h / 2.0 + (idx // w).float() * (1.0 / h)], dim=2)
        return idx, points

    def predict(self, features: list[torch.Tensor], coarse_logits: torch.Tensor) -> torch.Tensor:
        """Subdivision inference: the coarse logits upsampled ``subdivision_steps`` times by ``scale_factor``,
        with the most uncertain pixels of each step re-predicted by the point MLP."""
        refined = coarse_logits
        for _ in range(self.subdivision_steps):
            refined = F.interpolate(refined, scale_factor=self.scale_factor, mode="bilinear",
                                    align_corners=self.align_corners)
            n, k, h, w = refined.shape
            idx, points = self._test_points(refined)
            # the MLP always reads the first stage's logits, not the refined ones
            values = self.point_logits(features, coarse_logits, points)
            refined = refined.reshape(n, k, h * w).scatter(2, idx.unsqueeze(1).expand(-1, k, -1), values)
            refined = refined.view(n, k, h, w)
        return refined

    def loss(self, output, label: torch.Tensor, *, ignore_index: int = 255) -> dict[str, torch.Tensor]:
        """Cross-entropy at the training points, the labels taken there by nearest sampling; the sum over points
        divided by the number of all points (ignored ones included), as MMSegmentation's point loss."""
        logits, points = output
        point_label = point_sample(label.unsqueeze(1).float(), points, mode="nearest",
                                   align_corners=self.align_corners).squeeze(1).long()
        per_point = F.cross_entropy(loss_precision(logits), point_label, ignore_index=ignore_index, reduction="none")
        return {"point_ce": per_point.sum() / (point_label.numel() + torch.finfo(torch.float32).eps)}

    def reset_classifier(self, num_classes: int) -> None:
        """Rebuild the point MLP for ``num_classes``: every fc reads the coarse logits, so all depend on the class
        count (``fc_seg`` initialised as the reference's init_cfg, normal with std 0.01)."""
        ref = self.fc_seg.weight
        self._build_mlp(num_classes)
        self.fcs.to(ref.device, ref.dtype)
        self.fc_seg.to(ref.device, ref.dtype)
        nn.init.normal_(self.fc_seg.weight, std=0.01)
        nn.init.zeros_(self.fc_seg.bias)
