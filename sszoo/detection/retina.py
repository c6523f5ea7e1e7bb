"""RetinaNet's head (MMDetection's ``RetinaHead``) and its test-time step."""
from __future__ import annotations

import torch
from torch import nn

from . import box_coder
from .config import CoderConfig, DenseTestConfig
from .fpn import ConvReLU
from .nms import batched_nms


class RetinaHead(nn.Module):
    """Two towers of four 3x3 conv + ReLU (classification, regression), then 3x3 convs giving A x K sigmoid
    logits and A x 4 deltas per cell, shared by all levels."""

    def __init__(self, num_classes: int = 80, in_channels: int = 256, feat_channels: int = 256,
                 stacked_convs: int = 4, num_anchors: int = 9) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.cls_convs = nn.ModuleList(ConvReLU(in_channels if i == 0 else feat_channels, feat_channels)
                                       for i in range(stacked_convs))
        self.reg_convs = nn.ModuleList(ConvReLU(in_channels if i == 0 else feat_channels, feat_channels)
                                       for i in range(stacked_convs))
        self.retina_cls = nn.Conv2d(feat_channels, num_anchors * num_classes, 3, padding=1)
        self.retina_reg = nn.Conv2d(feat_channels, num_anchors * 4, 3, padding=1)

    def forward(self, feats: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        scores, deltas = [], []
        for x in feats:
            c, r = x, x
            for conv in self.cls_convs:
                c = conv(c)
            for conv in self.reg_convs:
                r = conv(r)
            scores.append(self.retina_cls(c))
            deltas.append(self.retina_reg(r))
        return scores, deltas


def detect_single(scores: list[torch.Tensor], deltas: list[torch.Tensor], anchors: list[torch.Tensor],
                  img_shape: tuple[int, int], coder: CoderConfig, cfg: DenseTestConfig, num_classes: int,
                  scale_factor: tuple[float, float] | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Boxes, scores, labels of one image: per level, (anchor, class) pairs with sigmoid > ``score_thr``,
    the best ``nms_pre`` of them; decode and clip; rescale by 1/``scale_factor``; drop boxes with a side
    <= ``min_bbox_size``; class-wise NMS; the first ``max_per_img``."""
    mlvl_d, mlvl_a, mlvl_s, mlvl_l = [], [], [], []
    for s, d, a in zip(scores, deltas, anchors):
        d = d.permute(1, 2, 0).reshape(-1, 4)
        s = s.permute(1, 2, 0).reshape(-1, num_classes).sigmoid()
        valid = s > cfg.score_thr
        s = s[valid]
        idx = torch.nonzero(valid)
        top = min(cfg.nms_pre, idx.size(0))
        s, order = s.sort(descending=True)
        s = s[:top]
        keep, labels = idx[order[:top]].unbind(dim=1)
        mlvl_d.append(d[keep])
        mlvl_a.append(a[keep])
        mlvl_s.append(s)
        mlvl_l.append(labels)
    boxes = box_coder.decode(coder, torch.cat(mlvl_a), torch.cat(mlvl_d), max_shape=img_shape)
    s, labels = torch.cat(mlvl_s), torch.cat(mlvl_l)
    if scale_factor is not None:
        boxes = boxes * boxes.new_tensor([1 / f for f in scale_factor]).repeat((1, 2))
    if cfg.min_bbox_size >= 0:
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        valid = (w > cfg.min_bbox_size) & (h > cfg.min_bbox_size)
        if not valid.all():
            boxes, s, labels = boxes[valid], s[valid], labels[valid]
    if boxes.numel() == 0:
        return boxes.new_zeros(0, 4), s.new_zeros(0), labels.new_zeros(0)
    kept_scores, keep = batched_nms(boxes, s, labels, cfg.iou_threshold)
    return boxes[keep][:cfg.max_per_img], kept_scores[:cfg.max_per_img], labels[keep][:cfg.max_per_img]
