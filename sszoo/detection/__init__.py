"""Object detection and instance segmentation with MMDetection 3.3.0's semantics, without MMCV.

See docs/detection.md. ``build_detector(faster_rcnn_r50_fpn())`` gives a :class:`Detector` whose state-dict
keys are MMDetection's, so its published checkpoints load strictly.
"""
from .config import (AnchorConfig, CoderConfig, DenseTestConfig, DetectorConfig, DetFPNConfig, RCNNTestConfig,
                     faster_rcnn_r50_fpn, mask_rcnn_r50_fpn, retinanet_r50_fpn)
from .detector import Detector, build_detector

__all__ = ["AnchorConfig", "CoderConfig", "DenseTestConfig", "DetectorConfig", "DetFPNConfig", "RCNNTestConfig",
           "Detector", "build_detector", "faster_rcnn_r50_fpn", "mask_rcnn_r50_fpn", "retinanet_r50_fpn"]
