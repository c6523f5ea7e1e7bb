"""Class-aware NMS with MMCV's semantics (``mmcv.ops.batched_nms``) on ``torchvision.ops.nms``.

* Classes (or RPN levels) are separated by offsetting every box by ``idx * (max coordinate + 1)``, MMCV's
  trick, below 10000 boxes; from 10000 boxes on, one NMS per class and a final sort by score (MMCV's
  ``split_thr``). ``torchvision.ops.batched_nms`` picks its branch at a different size (4000 coordinates on CPU),
  and the offset changes the float32 IoUs by rounding, so the branch is chosen here as MMCV does.
* Tie order: boxes are visited in the order of ``torch.sort(scores, descending=True)`` (the unstable sort),
  which is the order MMCV's CPU kernel uses; torchvision's kernel sorts stably, so it is given the boxes
  already in that order. Equal scores therefore keep MMCV's order, and ``keep`` is sorted by score.
* A box is suppressed when IoU > threshold (strictly), areas are (x2 - x1) * (y2 - y1): both kernels agree.
"""
from __future__ import annotations

import torch
from torchvision.ops import nms as _tv_nms

SPLIT_THR = 10000


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices kept, in MMCV's visiting order (descending score, MMCV's tie order)."""
    order = scores.sort(descending=True)[1]
    return order[_tv_nms(boxes[order], scores[order], float(iou_threshold))]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor,
                iou_threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """NMS within each ``idxs`` group; returns (kept scores, kept indices), sorted by score."""
    if boxes.numel() == 0:
        return scores[:0], idxs[:0].long()
    max_coordinate = boxes.max()
    offsets = idxs.to(boxes) * (max_coordinate + torch.tensor(1).to(boxes))
    boxes_for_nms = boxes + offsets[:, None]
    if boxes_for_nms.shape[0] < SPLIT_THR:
        keep = nms(boxes_for_nms, scores, iou_threshold)
        return scores[keep], keep
    total = torch.zeros_like(scores, dtype=torch.bool)
    for i in torch.unique(idxs):
        members = (idxs == i).nonzero(as_tuple=False).view(-1)
        total[members[nms(boxes_for_nms[members], scores[members], iou_threshold)]] = True
    keep = total.nonzero(as_tuple=False).view(-1)
    kept_scores, order = scores[keep].sort(descending=True)
    return kept_scores, keep[order]
