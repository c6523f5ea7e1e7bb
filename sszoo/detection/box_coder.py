"""MMDetection's ``DeltaXYWHBBoxCoder.decode`` (``delta2bbox``): deltas (dx, dy, dw, dh) on reference boxes.

Sizes are x2 - x1 (no +1), the log-size deltas are clamped to +-|log(wh_ratio_clip)| (16/1000 -> +-4.135),
and the boxes are clipped to the image (x to [0, W], y to [0, H]). The order of the float32 operations is the
reference's, so decoded boxes are bit-identical.
"""
from __future__ import annotations

import math

import torch

from .config import CoderConfig


def decode(cfg: CoderConfig, rois: torch.Tensor, deltas: torch.Tensor,
           max_shape: tuple[int, int] | None = None) -> torch.Tensor:
    """Boxes N x 4 from reference boxes ``rois`` N x 4 and ``deltas`` N x 4; ``max_shape`` is (H, W)."""
    if deltas.shape[0] == 0:
        return deltas
    deltas = deltas.reshape(-1, 4)
    means = deltas.new_tensor(cfg.means).view(1, -1)
    stds = deltas.new_tensor(cfg.stds).view(1, -1)
    d = deltas * stds + means
    dxy, dwh = d[:, :2], d[:, 2:]
    rois = rois.reshape(-1, 4)
    pxy = (rois[:, :2] + rois[:, 2:]) * 0.5
    pwh = rois[:, 2:] - rois[:, :2]
    dxy_wh = pwh * dxy
    max_ratio = abs(math.log(cfg.wh_ratio_clip))  # float64, as numpy's in the reference
    dwh = dwh.clamp(min=-max_ratio, max=max_ratio)
    gxy = pxy + dxy_wh
    gwh = pwh * dwh.exp()
    boxes = torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], dim=-1)
    if cfg.clip_border and max_shape is not None:
        boxes[..., 0::2].clamp_(min=0, max=max_shape[1])
        boxes[..., 1::2].clamp_(min=0, max=max_shape[0])
    return boxes
