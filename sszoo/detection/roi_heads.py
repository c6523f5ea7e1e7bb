"""The RoI stage of Faster/Mask R-CNN: RoIAlign on FPN levels, the Shared2FC box head, the FCN mask head,
per-class NMS of the boxes, and MMDetection's mask pasting."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F
from torchvision.ops import roi_align

from . import box_coder
from .config import CoderConfig, RCNNTestConfig
from .fpn import ConvReLU
from .nms import batched_nms


def map_roi_levels(rois: torch.Tensor, num_levels: int, finest_scale: int = 56) -> torch.Tensor:
    """FPN level of each RoI (``SingleRoIExtractor``): floor(log2(sqrt(w * h) / finest_scale + 1e-6)),
    clamped to the levels; w and h without +1. A 224 px box goes to level 2 (stride 16)."""
    scale = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
    levels = torch.floor(torch.log2(scale / finest_scale + 1e-6))
    return levels.clamp(min=0, max=num_levels - 1).long()


def extract_rois(feats: list[torch.Tensor], rois: torch.Tensor, strides: tuple[int, ...], output_size: int,
                 finest_scale: int = 56) -> torch.Tensor:
    """RoI features K x C x S x S. ``rois`` is K x 5 (batch index, x1, y1, x2, y2). MMCV's RoIAlign with
    ``aligned=True`` and an adaptive sampling ratio (0) is torchvision's ``roi_align`` with the same settings."""
    feats = feats[:len(strides)]
    out = feats[0].new_zeros(rois.size(0), feats[0].size(1), output_size, output_size)
    levels = map_roi_levels(rois, len(feats), finest_scale)
    for i, (f, stride) in enumerate(zip(feats, strides)):
        inds = (levels == i).nonzero(as_tuple=False).squeeze(1)
        if inds.numel() > 0:
            out[inds] = roi_align(f, rois[inds], output_size, spatial_scale=1.0 / stride, sampling_ratio=0,
                                  aligned=True)
    return out


class Shared2FCBBoxHead(nn.Module):
    """Flatten 256 x 7 x 7, two fc + ReLU (1024), then ``fc_cls`` (K + 1, background last) and ``fc_reg``
    (4 K class-specific deltas). ``fc_cls``/``fc_reg`` are registered first, as MMDetection registers them."""

    def __init__(self, num_classes: int = 80, in_channels: int = 256, roi_size: int = 7,
                 fc_channels: int = 1024) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.fc_cls = nn.Linear(fc_channels, num_classes + 1)
        self.fc_reg = nn.Linear(fc_channels, num_classes * 4)
        self.shared_fcs = nn.ModuleList([nn.Linear(in_channels * roi_size * roi_size, fc_channels),
                                         nn.Linear(fc_channels, fc_channels)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.flatten(1)
        for fc in self.shared_fcs:
            x = F.relu(fc(x))
        return self.fc_cls(x), self.fc_reg(x)


class FCNMaskHead(nn.Module):
    """Four 3x3 conv + ReLU on 14 x 14 RoI features, a 2x2 stride-2 deconv + ReLU, 1x1 logits per class (28 x 28)."""

    def __init__(self, num_classes: int = 80, in_channels: int = 256, num_convs: int = 4,
                 channels: int = 256) -> None:
        super().__init__()
        self.convs = nn.ModuleList(ConvReLU(in_channels if i == 0 else channels, channels) for i in range(num_convs))
        self.upsample = nn.ConvTranspose2d(channels, channels, 2, stride=2)
        self.conv_logits = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = conv(x)
        return self.conv_logits(F.relu(self.upsample(x)))


def detect_single(rois: torch.Tensor, cls_score: torch.Tensor, deltas: torch.Tensor, img_shape: tuple[int, int],
                  coder: CoderConfig, cfg: RCNNTestConfig, scale_factor: tuple[float, float] | None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Boxes, scores and labels of one image from its RoIs (R x 5) and the box head's outputs.

    Softmax over K + 1; class-specific boxes decoded from each RoI and clipped to ``img_shape``; with a
    ``scale_factor`` (w, h) boxes are multiplied by (1/w, 1/h) (MMDetection's ``scale_boxes``); every
    (RoI, class) pair with score > ``score_thr`` enters a class-wise NMS; the best ``max_per_img`` are kept."""
    scores = F.softmax(cls_score, dim=-1)
    num_rois, k = rois.size(0), scores.size(1) - 1
    anchors = rois[:, 1:].repeat_interleave(k, dim=0)
    boxes = box_coder.decode(coder, anchors, deltas.reshape(-1, 4), max_shape=img_shape)
    if scale_factor is not None and boxes.size(0) > 0:
        boxes = boxes * boxes.new_tensor([1 / s for s in scale_factor]).repeat((1, 2))
    boxes = boxes.view(num_rois, k, 4).reshape(-1, 4)
    fg = scores[:, :-1]
    labels = torch.arange(k, device=scores.device).view(1, -1).expand_as(fg).reshape(-1)
    flat = fg.reshape(-1)
    inds = (flat > cfg.score_thr).nonzero(as_tuple=False).squeeze(1)
    boxes, flat, labels = boxes[inds], flat[inds], labels[inds]
    if boxes.numel() == 0:
        return boxes.new_zeros(0, 4), flat.new_zeros(0), labels.new_zeros(0)
    kept_scores, keep = batched_nms(boxes, flat, labels, cfg.iou_threshold)
    if cfg.max_per_img > 0:
        kept_scores, keep = kept_scores[:cfg.max_per_img], keep[:cfg.max_per_img]
    return boxes[keep], kept_scores, labels[keep]


def paste_masks(probs: torch.Tensor, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Mask probabilities N x h x w (e.g. 28 x 28) pasted into N x ``height`` x ``width`` images.

    MMDetection's CPU path (``_do_paste_mask`` one instance at a time with ``skip_empty``): only the pixels
    within the box grown by one pixel (floor/ceil) are sampled; there, pixel centres (i + 0.5) are mapped to the
    box's [-1, 1] range and the mask is read by bilinear ``grid_sample`` (align_corners=False, zero padding).
    Pixels outside that window stay 0 (on GPU, MMDetection samples the whole image, which can differ there)."""
    n = probs.shape[0]
    # float32 (float64 for float64 boxes: the reference's grid takes the boxes' dtype and the mask is sampled in it)
    dtype = torch.promote_types(boxes.dtype, torch.float32)
    out = probs.new_zeros(n, height, width, dtype=dtype)
    for i in range(n):
        box = boxes[i:i + 1]
        x0_int, y0_int = torch.clamp(box.min(dim=0).values.floor()[:2] - 1, min=0).to(dtype=torch.int32)
        x1_int = torch.clamp(box[:, 2].max().ceil() + 1, max=width).to(dtype=torch.int32)
        y1_int = torch.clamp(box[:, 3].max().ceil() + 1, max=height).to(dtype=torch.int32)
        x0, y0, x1, y1 = torch.split(box, 1, dim=1)
        img_y = torch.arange(y0_int, y1_int, device=probs.device).to(torch.float32) + 0.5
        img_x = torch.arange(x0_int, x1_int, device=probs.device).to(torch.float32) + 0.5
        img_y = (img_y - y0) / (y1 - y0) * 2 - 1
        img_x = (img_x - x0) / (x1 - x0) * 2 - 1
        img_x[torch.isinf(img_x)] = 0  # a zero-width box: as the reference
        img_y[torch.isinf(img_y)] = 0
        gx = img_x[:, None, :].expand(1, img_y.size(1), img_x.size(1))
        gy = img_y[:, :, None].expand(1, img_y.size(1), img_x.size(1))
        grid = torch.stack([gx, gy], dim=3)
        pasted = F.grid_sample(probs[i:i + 1, None].to(grid.dtype), grid, align_corners=False)
        out[i, int(y0_int):int(y1_int), int(x0_int):int(x1_int)] = pasted[0, 0]
    return out
