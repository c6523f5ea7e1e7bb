"""The detectors: Faster R-CNN, Mask R-CNN and RetinaNet with MMDetection 3.3.0's test-time semantics.

``model(images)`` (eval mode, no gradients) takes a normalised N x 3 x H x W tensor or a list of 3 x H x W
tensors and returns one dict per image: ``boxes`` K x 4 (x1, y1, x2, y2, input pixels), ``scores`` K,
``labels`` K (0-based MMDetection class indices) and, for Mask R-CNN, ``masks`` K x H x W bool. Images are
zero-padded at the bottom/right to a multiple of 32 (MMDetection's ``DetDataPreprocessor`` pads the normalised
batch with 0), and boxes are clipped to each image's own unpadded size, as MMDetection's ``img_shape``.

``predict(images, metas)`` also takes, per image, MMDetection's ``scale_factor`` (w, h: resized / original)
and ``ori_shape`` (H, W) to return boxes and masks in original-image pixels, exactly as ``rescale=True`` does.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import nn
import torch.nn.functional as F

from ..models.backbones.resnet import ResNet
from . import retina as retina_mod
from . import roi_heads as roi_mod
from .anchors import AnchorGenerator
from .config import DetectorConfig
from .fpn import DetFPN
from .retina import RetinaHead
from .rpn import RPNHead, proposals_single

Images = Union[torch.Tensor, Sequence[torch.Tensor]]


class RoIHead(nn.Module):
    """Container with MMDetection's key names: ``roi_head.bbox_head`` and ``roi_head.mask_head``."""

    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__()
        self.bbox_head = roi_mod.Shared2FCBBoxHead(cfg.num_classes, cfg.neck.out_channels, 7, cfg.fc_channels)
        self.mask_head = (roi_mod.FCNMaskHead(cfg.num_classes, cfg.neck.out_channels, cfg.mask_convs,
                                              channels=cfg.neck.out_channels)
                          if cfg.with_mask else None)


class Detector(nn.Module):
    """One of the three detectors, chosen by ``cfg.kind``; state-dict keys are MMDetection's."""

    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = ResNet.from_config(cfg.backbone)
        self.neck = DetFPN(cfg.neck)
        self.anchor_generator = AnchorGenerator(cfg.anchors)
        a = self.anchor_generator.num_base_anchors
        if cfg.kind == "retinanet":
            self.bbox_head = RetinaHead(cfg.num_classes, cfg.neck.out_channels, cfg.neck.out_channels, num_anchors=a)
        else:
            self.rpn_head = RPNHead(cfg.neck.out_channels, cfg.neck.out_channels, num_anchors=a)
            self.roi_head = RoIHead(cfg)

    # -- inputs -------------------------------------------------------------------------------------------
    def batch(self, images: Images) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """The padded batch and each image's unpadded (H, W)."""
        if isinstance(images, torch.Tensor):
            if images.dim() != 4 or images.shape[1] != 3:
                raise ValueError(f"expected a normalised N x 3 x H x W tensor, got shape {tuple(images.shape)}")
            images = list(images)
        if not images:
            raise ValueError("no images")
        for im in images:
            if im.dim() != 3 or im.shape[0] != 3:
                raise ValueError(f"expected 3 x H x W image tensors, got shape {tuple(im.shape)}")
        sizes = [(int(im.shape[1]), int(im.shape[2])) for im in images]
        d = self.cfg.pad_size_divisor
        hp = -(-max(h for h, _ in sizes) // d) * d
        wp = -(-max(w for _, w in sizes) // d) * d
        batch = torch.stack([F.pad(im, (0, wp - im.shape[2], 0, hp - im.shape[1])) for im in images])
        return batch, sizes

    # -- stages ---------------------------------------------------------------------------------------------
    def extract_feat(self, x: torch.Tensor) -> list[torch.Tensor]:
        """FPN levels (P2-P6 for the R-CNNs, P3-P7 for RetinaNet)."""
        feats = self.backbone(x)
        return self.neck(feats)

    def anchors(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        # float64 for a float64 model (the parity tests), else float32 (also under autocast)
        dtype = torch.float64 if feats[0].dtype == torch.float64 else torch.float32
        return self.anchor_generator.grid([tuple(f.shape[-2:]) for f in feats], device=feats[0].device, dtype=dtype)

    def propose(self, feats: list[torch.Tensor], sizes: list[tuple[int, int]]
                ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """RPN proposals (boxes, scores) per image."""
        scores, deltas = self.rpn_head(feats)
        anchors = self.anchors(feats)
        return [proposals_single([s[i] for s in scores], [d[i] for d in deltas], anchors, sizes[i],
                                 self.cfg.dense_coder, self.cfg.dense_test) for i in range(len(sizes))]

    @torch.no_grad()
    def predict(self, images: Images, metas: Sequence[dict] | None = None) -> list[dict[str, torch.Tensor]]:
        """Detections per image; ``metas[i]`` may give ``scale_factor`` (w, h) and ``ori_shape`` (H, W)."""
        x, sizes = self.batch(images)
        metas = list(metas) if metas is not None else [{} for _ in sizes]
        if len(metas) != len(sizes):
            raise ValueError(f"{len(metas)} metas for {len(sizes)} images")
        feats = self.extract_feat(x)
        if self.cfg.kind == "retinanet":
            return self._retina(feats, sizes, metas)
        return self._two_stage(feats, sizes, metas)

    def forward(self, images: Images, metas: Sequence[dict] | None = None) -> list[dict[str, torch.Tensor]]:
        if self.training:
            # BatchNorm would use batch statistics and no losses exist: refuse rather than return wrong boxes
            raise RuntimeError("sszoo's detectors are inference-only: call model.eval() first")
        return self.predict(images, metas)

    def _retina(self, feats, sizes, metas) -> list[dict[str, torch.Tensor]]:
        scores, deltas = self.bbox_head(feats)
        anchors = self.anchors(feats)
        out = []
        for i, size in enumerate(sizes):
            b, s, l = retina_mod.detect_single([t[i] for t in scores], [t[i] for t in deltas], anchors, size,
                                               self.cfg.dense_coder, self.cfg.dense_test, self.cfg.num_classes,
                                               metas[i].get("scale_factor"))
            out.append({"boxes": b, "scores": s, "labels": l})
        return out

    def _two_stage(self, feats, sizes, metas) -> list[dict[str, torch.Tensor]]:
        cfg = self.cfg
        proposals = self.propose(feats, sizes)
        rois = _to_rois([p[0] for p in proposals])
        out = []
        if rois.shape[0] == 0:
            return [_empty(feats[0], cfg.with_mask, metas[i].get("ori_shape", sizes[i])) for i in range(len(sizes))]
        roi_feats = roi_mod.extract_rois(feats, rois, cfg.roi_strides, 7, cfg.finest_scale)
        cls_score, deltas = self.roi_head.bbox_head(roi_feats)
        counts = [len(p[0]) for p in proposals]
        for i, (r, c, d) in enumerate(zip(rois.split(counts), cls_score.split(counts), deltas.split(counts))):
            # Mask R-CNN rescales boxes after the masks are pasted (MMDetection: bbox_rescale = False)
            scale = None if cfg.with_mask else metas[i].get("scale_factor")
            b, s, l = roi_mod.detect_single(r, c, d, sizes[i], cfg.roi_coder, cfg.rcnn_test, scale)
            out.append({"boxes": b, "scores": s, "labels": l})
        if cfg.with_mask:
            self._masks(feats, sizes, metas, out)
        return out

    def _masks(self, feats, sizes, metas, out) -> None:
        cfg = self.cfg
        rois = _to_rois([o["boxes"] for o in out])
        logits = None
        if rois.shape[0] > 0:
            logits = self.roi_head.mask_head(roi_mod.extract_rois(feats, rois, cfg.roi_strides, 14, cfg.finest_scale))
            logits = logits.split([len(o["boxes"]) for o in out])
        for i, o in enumerate(out):
            h, w = metas[i].get("ori_shape", sizes[i])
            n = len(o["boxes"])
            if n == 0:
                o["masks"] = torch.zeros(0, h, w, dtype=torch.bool, device=o["boxes"].device)
                continue
            probs = logits[i].sigmoid()[torch.arange(n), o["labels"]]
            sf = metas[i].get("scale_factor")
            if sf is not None:
                # MMDetection divides here (the box head multiplies by 1/s); the two can differ in the last bit
                o["boxes"] = o["boxes"] / o["boxes"].new_tensor(sf).repeat((1, 2))
            o["masks"] = roi_mod.paste_masks(probs, o["boxes"], int(h), int(w)) >= cfg.rcnn_test.mask_thr_binary


def _to_rois(boxes: list[torch.Tensor]) -> torch.Tensor:
    """K x 5 RoIs (image index, x1, y1, x2, y2), MMDetection's ``bbox2roi``."""
    return torch.cat([torch.cat([b.new_full((b.size(0), 1), i), b[:, :4]], dim=-1) for i, b in enumerate(boxes)])


def _empty(ref: torch.Tensor, with_mask: bool, shape: tuple[int, int]) -> dict[str, torch.Tensor]:
    o = {"boxes": ref.new_zeros(0, 4), "scores": ref.new_zeros(0),
         "labels": torch.zeros(0, dtype=torch.long, device=ref.device)}
    if with_mask:
        o["masks"] = torch.zeros(0, *shape, dtype=torch.bool, device=ref.device)
    return o


def build_detector(cfg: DetectorConfig) -> Detector:
    return Detector(cfg).eval()
