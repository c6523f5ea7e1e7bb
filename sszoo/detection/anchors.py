"""MMDetection's ``AnchorGenerator``: exact float anchors, no rounding.

Per level the base size is the stride. For ratio r the height factor is sqrt(r) and the width factor 1/sqrt(r);
anchors are ordered ratio-major, scale-minor, centred at ``center_offset * stride`` (0: the top-left corner of a
cell, MMDetection's default), and shifted by ``stride * (x, y)`` for every cell, cells row-major, anchors of a
cell contiguous. The arithmetic runs in float32 (float64 for a float64 model, as the reference's ``grid_priors``
with that dtype) in the reference's order so that anchors are bit-identical.
"""
from __future__ import annotations

import numpy as np
import torch

from .config import AnchorConfig


def _scales(cfg: AnchorConfig) -> torch.Tensor:
    if cfg.scales is not None:
        return torch.tensor(cfg.scales, dtype=torch.float32)
    # octave scales are computed in float64 (numpy), then stored as float32, as the reference does
    octave = np.array([2 ** (i / cfg.scales_per_octave) for i in range(cfg.scales_per_octave)])
    return torch.tensor(octave * cfg.octave_base_scale, dtype=torch.float32)


def base_anchors(cfg: AnchorConfig) -> list[torch.Tensor]:
    """A x 4 anchors (x1, y1, x2, y2) of one cell at the origin, per level."""
    ratios = torch.tensor(cfg.ratios, dtype=torch.float32)
    scales = _scales(cfg)
    h_ratios = torch.sqrt(ratios)
    w_ratios = 1 / h_ratios
    out = []
    for stride in cfg.strides:
        size = stride
        cx = cfg.center_offset * size
        cy = cfg.center_offset * size
        ws = (size * w_ratios[:, None] * scales[None, :]).reshape(-1)
        hs = (size * h_ratios[:, None] * scales[None, :]).reshape(-1)
        out.append(torch.stack([cx - 0.5 * ws, cy - 0.5 * hs, cx + 0.5 * ws, cy + 0.5 * hs], dim=-1))
    return out


class AnchorGenerator:
    """Anchors of every level for the feature-map sizes of a batch."""

    def __init__(self, cfg: AnchorConfig) -> None:
        self.cfg = cfg
        self.base = base_anchors(cfg)

    @property
    def num_base_anchors(self) -> int:
        return self.base[0].shape[0]

    def grid(self, sizes: list[tuple[int, int]], device: torch.device | str = "cpu",
             dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
        """(H * W * A) x 4 anchors per level; ``sizes`` are the feature maps' (H, W). In ``dtype`` as the
        reference's ``grid_priors(dtype=...)``: the float32 base anchors cast, the shifts added in ``dtype``."""
        out = []
        for base, stride, (h, w) in zip(self.base, self.cfg.strides, sizes):
            base = base.to(device).to(dtype)
            shift_x = torch.arange(0, w, device=device).to(dtype) * stride
            shift_y = torch.arange(0, h, device=device).to(dtype) * stride
            xx = shift_x.repeat(h)
            yy = shift_y.view(-1, 1).repeat(1, w).view(-1)
            shifts = torch.stack([xx, yy, xx, yy], dim=-1)
            out.append((base[None, :, :] + shifts[:, None, :]).view(-1, 4))
        return out
