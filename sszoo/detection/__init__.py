"""Object detection and instance segmentation with MMDetection 3.3.0's semantics, without MMCV.

See docs/detection.md. ``build_detector(faster_rcnn_r50_fpn())`` gives a :class:`Detector` whose state-dict
keys are MMDetection's, so its published checkpoints load strictly. The configs import without torchvision
(the registry reads them); the networks are imported on first use.
"""
from typing import Any

from .config import (AnchorConfig, CoderConfig, DenseTestConfig, DetectorConfig, DetFPNConfig, RCNNTestConfig,
                     faster_rcnn_r50_fpn, mask_rcnn_r50_fpn, retinanet_r50_fpn)

__all__ = ["AnchorConfig", "CoderConfig", "DenseTestConfig", "DetectorConfig", "DetFPNConfig", "RCNNTestConfig",
           "Detector", "build_detector", "faster_rcnn_r50_fpn", "mask_rcnn_r50_fpn", "retinanet_r50_fpn"]


def __getattr__(name: str) -> Any:
    if name in ("Detector", "build_detector"):
        from . import detector
        return getattr(detector, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
