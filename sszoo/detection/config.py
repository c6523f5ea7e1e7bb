"""Typed, frozen configurations of the detectors (MMDetection 3.3.0's R-50-FPN configs, as records).

The defaults are the values of ``faster-rcnn_r50_fpn_1x_coco`` / ``mask-rcnn_r50_fpn_1x_coco`` /
``retinanet_r50_fpn_1x_coco`` (their ``_amp`` variants differ only in the training optimiser wrapper).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..models.backbones.resnet import ResNetConfig

KINDS = ("faster_rcnn", "mask_rcnn", "retinanet")


def _resnet50() -> ResNetConfig:
    # MMDetection's ResNet-50, style "pytorch": 7x7 stem, stride on the 3x3 conv, no dilation (output stride 32)
    return ResNetConfig(depth=50, deep_stem=False, strides=(1, 2, 2, 2), dilations=(1, 1, 1, 1),
                        contract_dilation=False)


@dataclass(frozen=True)
class DetFPNConfig:
    """MMDetection's FPN: ``add_extra_convs`` None adds levels by 1x1 stride-2 max-pooling of the last output
    (Faster/Mask R-CNN); ``"on_input"`` adds stride-2 3x3 convs, the first on the last used backbone output
    (C5), the next on the previous extra level without a ReLU in between (RetinaNet)."""

    in_channels: tuple[int, ...] = (256, 512, 1024, 2048)
    out_channels: int = 256
    num_outs: int = 5
    start_level: int = 0
    add_extra_convs: str | None = None


@dataclass(frozen=True)
class AnchorConfig:
    """MMDetection's ``AnchorGenerator``: base size = stride, float anchors centred on the cell's top-left
    corner (``center_offset`` 0), ratio-major order; ``scales`` or ``octave_base_scale`` x 2^(i / n)."""

    strides: tuple[int, ...] = (4, 8, 16, 32, 64)
    ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    scales: tuple[float, ...] | None = (8.0,)
    octave_base_scale: int | None = None
    scales_per_octave: int | None = None
    center_offset: float = 0.0

    @property
    def num_base_anchors(self) -> int:
        n_scales = len(self.scales) if self.scales is not None else int(self.scales_per_octave or 0)
        return n_scales * len(self.ratios)


@dataclass(frozen=True)
class CoderConfig:
    """``DeltaXYWHBBoxCoder``: deltas are de-normalised by ``stds``/``means``; the log-size deltas are clamped
    to +-|log(wh_ratio_clip)|; decoded boxes are clipped to the image (``clip_border``)."""

    means: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    stds: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    wh_ratio_clip: float = 16 / 1000
    clip_border: bool = True


@dataclass(frozen=True)
class DenseTestConfig:
    """Test-time settings of a dense head (RPN: ``test_cfg.rpn``; RetinaNet: ``test_cfg``)."""

    nms_pre: int = 1000
    max_per_img: int = 1000
    iou_threshold: float = 0.7
    min_bbox_size: float = 0.0
    score_thr: float = 0.0


@dataclass(frozen=True)
class RCNNTestConfig:
    """``test_cfg.rcnn``: per-class score threshold, class-wise NMS, detections kept, mask threshold."""

    score_thr: float = 0.05
    iou_threshold: float = 0.5
    max_per_img: int = 100
    mask_thr_binary: float = 0.5


@dataclass(frozen=True)
class DetectorConfig:
    """One detector: ``kind`` is ``faster_rcnn``, ``mask_rcnn`` or ``retinanet``."""

    kind: str = "faster_rcnn"
    num_classes: int = 80
    backbone: ResNetConfig = field(default_factory=_resnet50)
    neck: DetFPNConfig = field(default_factory=DetFPNConfig)
    anchors: AnchorConfig = field(default_factory=AnchorConfig)
    # the dense head: the RPN (test_cfg.rpn) of a two-stage detector, or RetinaNet's head (test_cfg)
    dense_coder: CoderConfig = field(default_factory=CoderConfig)
    dense_test: DenseTestConfig = field(default_factory=DenseTestConfig)
    roi_coder: CoderConfig = field(default_factory=lambda: CoderConfig(stds=(0.1, 0.1, 0.2, 0.2)))
    rcnn_test: RCNNTestConfig = field(default_factory=RCNNTestConfig)
    roi_strides: tuple[int, ...] = (4, 8, 16, 32)
    finest_scale: int = 56
    fc_channels: int = 1024
    mask_convs: int = 4
    # the data preprocessor: RGB mean/std on 0-255 pixels, inputs padded to a multiple of this
    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    pad_size_divisor: int = 32

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"detector kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def with_mask(self) -> bool:
        return self.kind == "mask_rcnn"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DetectorConfig":
        d = dict(d)
        subs = {"backbone": ResNetConfig, "neck": DetFPNConfig, "anchors": AnchorConfig, "dense_coder": CoderConfig,
                "dense_test": DenseTestConfig, "roi_coder": CoderConfig, "rcnn_test": RCNNTestConfig}
        for key, typ in subs.items():
            if key in d and isinstance(d[key], dict):
                d[key] = typ(**{k: tuple(v) if isinstance(v, list) else v for k, v in d[key].items()})
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def faster_rcnn_r50_fpn(num_classes: int = 80) -> DetectorConfig:
    """``faster-rcnn_r50_fpn_1x_coco``."""
    return DetectorConfig(kind="faster_rcnn", num_classes=num_classes)


def mask_rcnn_r50_fpn(num_classes: int = 80) -> DetectorConfig:
    """``mask-rcnn_r50_fpn_1x_coco``."""
    return DetectorConfig(kind="mask_rcnn", num_classes=num_classes)


def retinanet_r50_fpn(num_classes: int = 80) -> DetectorConfig:
    """``retinanet_r50_fpn_1x_coco``: P3-P7 (FPN from C3, P6 a stride-2 conv on C5, P7 on P6), 9 anchors per
    cell, sigmoid scores filtered at 0.05 before a top-1000 per level, NMS 0.5, 100 detections."""
    return DetectorConfig(
        kind="retinanet", num_classes=num_classes,
        neck=DetFPNConfig(start_level=1, add_extra_convs="on_input", num_outs=5),
        anchors=AnchorConfig(strides=(8, 16, 32, 64, 128), scales=None, octave_base_scale=4, scales_per_octave=3),
        dense_test=DenseTestConfig(nms_pre=1000, max_per_img=100, iou_threshold=0.5, min_bbox_size=0.0,
                                 score_thr=0.05),
    )
