"""The RPN head and its proposal step (MMDetection's ``RPNHead`` with ``test_cfg.rpn``)."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from . import box_coder
from .config import CoderConfig, DenseTestConfig
from .nms import batched_nms


class RPNHead(nn.Module):
    """A shared 3x3 conv + ReLU, then 1x1 convs for A sigmoid objectness scores and A x 4 deltas per cell."""

    def __init__(self, in_channels: int = 256, feat_channels: int = 256, num_anchors: int = 3) -> None:
        super().__init__()
        self.rpn_conv = nn.Conv2d(in_channels, feat_channels, 3, padding=1)
        self.rpn_cls = nn.Conv2d(feat_channels, num_anchors, 1)
        self.rpn_reg = nn.Conv2d(feat_channels, num_anchors * 4, 1)

    def forward(self, feats: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        scores, deltas = [], []
        for x in feats:
            x = F.relu(self.rpn_conv(x))
            scores.append(self.rpn_cls(x))
            deltas.append(self.rpn_reg(x))
        return scores, deltas


def proposals_single(scores: list[torch.Tensor], deltas: list[torch.Tensor], anchors: list[torch.Tensor],
                     img_shape: tuple[int, int], coder: CoderConfig, cfg: DenseTestConfig
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Proposals (boxes P x 4, scores P) of one image from its per-level maps (A x H x W, 4A x H x W).

    Per level the ``nms_pre`` best anchors by sigmoid score (``torch.sort``, descending); all levels decoded
    and clipped together; boxes with a side <= ``min_bbox_size`` dropped; NMS per level (the level is the NMS
    class); the first ``max_per_img`` kept."""
    mlvl_deltas, mlvl_anchors, mlvl_scores, level_ids = [], [], [], []
    for level, (s, d, a) in enumerate(zip(scores, deltas, anchors)):
        d = d.permute(1, 2, 0).reshape(-1, 4)
        s = s.permute(1, 2, 0).reshape(-1, 1).sigmoid().squeeze()
        if 0 < cfg.nms_pre < s.shape[0]:
            ranked, order = s.sort(descending=True)
            top = order[:cfg.nms_pre]
            s, d, a = ranked[:cfg.nms_pre], d[top, :], a[top]
        mlvl_deltas.append(d)
        mlvl_anchors.append(a)
        mlvl_scores.append(s)
        level_ids.append(s.new_full((s.size(0),), level, dtype=torch.long))
    boxes = box_coder.decode(coder, torch.cat(mlvl_anchors), torch.cat(mlvl_deltas), max_shape=img_shape)
    s = torch.cat(mlvl_scores)
    ids = torch.cat(level_ids)
    if cfg.min_bbox_size >= 0:
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        valid = (w > cfg.min_bbox_size) & (h > cfg.min_bbox_size)
        if not valid.all():
            boxes, s, ids = boxes[valid], s[valid], ids[valid]
    if boxes.numel() == 0:
        return boxes.new_zeros(0, 4), s.new_zeros(0)
    kept_scores, keep = batched_nms(boxes, s, ids, cfg.iou_threshold)
    return boxes[keep][:cfg.max_per_img], kept_scores[:cfg.max_per_img]
