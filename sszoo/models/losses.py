"""Training losses of the heads, as MMSegmentation computes them."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .layers import resize


def loss_precision(t: torch.Tensor) -> torch.Tensor:
    """Logits for a loss: half precision (autocast) upcast to float32, float32 and float64 as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def seg_cross_entropy(logits: torch.Tensor, label: torch.Tensor, *, align_corners: bool,
                      ignore_index: int = 255, class_weight: torch.Tensor | None = None) -> torch.Tensor:
    """The reference's segmentation loss for one head.

    ``logits`` N x K x h x w at feature resolution are resized to the label's H x W; the per-pixel
    cross-entropy (0 at ignored pixels) is summed and divided by the number of *all* label pixels
    (MMSegmentation's ``CrossEntropyLoss`` with ``avg_non_ignore=False``).
    """
    logits = loss_precision(resize(logits, label.shape[-2:], align_corners))
    per_pixel = F.cross_entropy(logits, label, weight=class_weight, ignore_index=ignore_index,
                                reduction="none")
    return per_pixel.sum() / (label.numel() + torch.finfo(torch.float32).eps)
