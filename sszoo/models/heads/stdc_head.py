"""STDC's detail head (Fan et al., "Rethinking BiSeNet For Real-time Semantic Segmentation", CVPR 2021), as
MMSegmentation's ``STDCHead``: an FCN head on the stride-8 STDC map, trained only (it is an auxiliary head)
to predict a binary *detail* (boundary) map made from the segmentation label.

The boundary target: the label, as a float image, filtered by the 3x3 Laplacian ``8·centre - neighbours``
(zero padding) at strides 1, 2 and 4, each clamped at 0, nearest-upsampled to the label's size and
thresholded (``> boundary_threshold``: 1, else 0); the three maps are mixed by the fixed weights
(0.6, 0.3, 0.1) and thresholded again. Ignored pixels (255) are part of the label image, so the borders of
ignored regions count as boundaries too, as in the reference. The loss: sigmoid binary cross-entropy over
both output channels (one-hot targets) plus the V-Net Dice loss of the sigmoid outputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..losses import LossSpec, spec_losses
from .fcn import FCNHead

LAPLACIAN = (-1., -1., -1., -1., 8., -1., -1., -1., -1.)
FUSION = (6. / 10, 3. / 10, 1. / 10)  # the strides-1/2/4 maps' weights; a constant in the reference too


@dataclass(frozen=True)
class STDCHeadConfig:
    in_channels: int = 256
    channels: int = 64
    in_index: int = 0
    num_convs: int = 1
    concat_input: bool = False
    kernel_size: int = 3
    dilation: int = 1
    dropout: float = 0.1
    boundary_threshold: float = 0.1
    num_classes: int = 2  # the boundary map's two classes, whatever the segmentor's class count
    align_corners: bool = True  # the reference's STDCHead resizes with its own align_corners
    # the terms of the boundary loss (each with its own weight; ``loss_weight`` is the first one's, as for every
    # head whose config lists ``losses``)
    losses: tuple = (LossSpec("ce", 1.0, use_sigmoid=True, name="loss_ce"), LossSpec("dice", 1.0, name="loss_dice"))
    loss_weight: float = 1.0
    kind: str = "stdc_head"


def _binarise(x: torch.Tensor, threshold: float) -> torch.Tensor:
    # The reference's two in-place assignments, in order: values above the threshold become 1, then values
    # at or below it (which includes those new 1s if the threshold is >= 1) become 0.
    x = torch.where(x > threshold, torch.ones_like(x), x)
    return torch.where(x <= threshold, torch.zeros_like(x), x)


def boundary_targets(label: torch.Tensor, laplacian: torch.Tensor, fusion: torch.Tensor,
                     threshold: float = 0.1) -> torch.Tensor:
    """STDC's binary detail target (N x H x W, int64) of a label map N x H x W.

    ``laplacian`` (1 x 1 x 3 x 3) and ``fusion`` (1 x 3 x 1 x 1) are the head's kernels; the computation runs
    in their dtype, as the reference's (whose thresholds then compare in that precision).
    """
    seg = label.unsqueeze(1).to(laplacian)
    size = seg.shape[2:]
    maps = []
    for stride in (1, 2, 4):
        b = F.conv2d(seg, laplacian, stride=stride, padding=1).clamp(min=0)
        if stride > 1:
            b = F.interpolate(b, size=size, mode="nearest")
        maps.append(_binarise(b, threshold))
    fused = F.conv2d(torch.cat(maps, dim=1), fusion)
    return _binarise(fused, threshold).squeeze(1).long()


class STDCHead(FCNHead):
    """An FCN head (``num_classes`` = 2) whose :meth:`loss` trains it on :func:`boundary_targets`."""

    def __init__(self, in_channels: int, channels: int, num_classes: int = 2, *, boundary_threshold: float = 0.1,
                 losses: tuple = STDCHeadConfig.losses, **kwargs) -> None:
        super().__init__(in_channels, channels, num_classes, **kwargs)
        self.boundary_threshold = boundary_threshold
        self.loss_specs = tuple(losses)
        self.register_buffer("laplacian_kernel", torch.tensor(LAPLACIAN).reshape(1, 1, 3, 3))
        # A parameter that never trains, as in the reference (so its key and parameter count match).
        self.fusion_kernel = nn.Parameter(torch.tensor(FUSION).reshape(1, 3, 1, 1), requires_grad=False)

    @classmethod
    def from_config(cls, cfg: STDCHeadConfig, num_classes: int, align_corners: bool) -> "STDCHead":
        # the segmentor's class count and align_corners do not apply: the head has its own
        return cls(cfg.in_channels, cfg.channels, cfg.num_classes, in_index=cfg.in_index, num_convs=cfg.num_convs,
                   concat_input=cfg.concat_input, kernel_size=cfg.kernel_size, dilation=cfg.dilation,
                   dropout=cfg.dropout, align_corners=cfg.align_corners, boundary_threshold=cfg.boundary_threshold,
                   losses=cfg.losses)

    def boundary_targets(self, label: torch.Tensor) -> torch.Tensor:
        """The detail target of ``label`` (N x H x W) with this head's kernels and threshold."""
        return boundary_targets(label, self.laplacian_kernel, self.fusion_kernel, self.boundary_threshold)

    def loss(self, output, label: torch.Tensor, *, ignore_index: int = 255) -> dict[str, torch.Tensor]:
        """The config's terms (sigmoid cross-entropy and Dice), each times its weight, of ``output`` against the
        boundary target of ``label``."""
        return spec_losses(self.loss_specs, output, self.boundary_targets(label), align_corners=self.align_corners,
                           ignore_index=ignore_index)

    def reset_classifier(self, num_classes: int) -> None:
        """No-op: the boundary classifier keeps its two classes when the segmentor's classes change."""
