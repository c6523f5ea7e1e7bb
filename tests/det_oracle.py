"""Rebuild the detection oracle's seeded weights and inputs inside sszoo (no MMDetection needed).

The procedure of tools/mmdet_oracle_dump.py (sszoo's copy of ../shared/tools/mmdet_oracle_dump.py), written
again for sszoo's detectors: parameters drawn in registration order (sszoo registers modules in
MMDetection's order; the golden's key list checks it) with the dump's per-layer scales, then BatchNorm
statistics measured on one seeded calibration batch through backbone + neck with only BN in train mode.
"""
from __future__ import annotations

import json
import os

import numpy as np
import torch
from torch import nn

from sszoo.detection import (Detector, build_detector, faster_rcnn_r50_fpn, mask_rcnn_r50_fpn,
                             retinanet_r50_fpn)

GOLDEN = os.environ.get("SSZOO_DET_GOLDEN") or os.path.join(os.path.dirname(__file__), "golden", "detection")
CONFIGS = {"faster-rcnn_r50_fpn_amp-1x_coco": faster_rcnn_r50_fpn, "mask-rcnn_r50_fpn_amp-1x_coco": mask_rcnn_r50_fpn,
           "retinanet_r50_fpn_amp-1x_coco": retinanet_r50_fpn}
# the dump's layer-name rules: (weight std multiplier, bias rule)
CLS_LAYERS = {"rpn_cls": (0.05, None), "fc_cls": (0.2, "softmax"), "retina_cls": (0.05, (-3.0, 0.5))}
REG_LAYERS = ("rpn_reg", "fc_reg", "retina_reg")


def randomise_like_oracle(model: nn.Module, seed: int, calib_shape: tuple[int, int, int, int]) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            layer = name.rsplit(".", 1)[0].rsplit(".", 1)[-1]
            if p.dim() > 1:
                std = (2.0 / p[0].numel()) ** 0.5
                if layer in CLS_LAYERS:
                    std *= CLS_LAYERS[layer][0]
                elif layer in REG_LAYERS:
                    std *= 0.1
                p.copy_(torch.randn(p.shape, generator=g) * std)
            elif name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif layer in CLS_LAYERS and CLS_LAYERS[layer][1] is not None:
                how = CLS_LAYERS[layer][1]
                if how == "softmax":
                    b = 1.5 * torch.randn(p.shape, generator=g)
                    b[-1] = 0.0
                else:
                    b = how[0] + how[1] * torch.randn(p.shape, generator=g)
                p.copy_(b)
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        model.eval()
        for m in bns:
            m.train()
        # calibrated in float64 and the statistics rounded to float32, as the dump does: the weights are float32
        # numbers (the same on every CPU) and the model comes back in float32
        model.double()
        model.extract_feat(torch.randn(calib_shape, generator=g).double())
        model.float()
        model.eval()
        for m in bns:
            m.momentum = 0.1


def load_case(case: str) -> dict:
    g = torch.load(os.path.join(GOLDEN, case + ".pt"), weights_only=True)
    g["info"] = json.loads(g["info"])
    g["keys"] = json.loads(g["keys"])
    g["key_shapes"] = json.loads(g["key_shapes"])
    if "masks_packed" in g:
        n, h, w = len(g["bboxes"]), g["info"]["height"], g["info"]["width"]
        bits = np.unpackbits(g["masks_packed"].numpy(), axis=1)[:, :h * w]
        g["masks"] = torch.from_numpy(bits.reshape(n, h, w).astype(bool))
    if "rescaled_meta" in g:
        g["rescaled_meta"] = json.loads(g["rescaled_meta"])
    if "rescaled_masks_packed" in g:
        n, (h, w) = len(g["rescaled_bboxes"]), g["rescaled_meta"]["ori_shape"]
        bits = np.unpackbits(g["rescaled_masks_packed"].numpy(), axis=1)[:, :h * w]
        g["rescaled_masks"] = torch.from_numpy(bits.reshape(n, h, w).astype(bool))
    return g


def cases() -> list[str]:
    return sorted(f[:-3] for f in os.listdir(GOLDEN) if f.endswith(".pt") and not f.startswith("coco"))


def oracle_model(case: str) -> tuple[Detector, torch.Tensor, dict]:
    """The case's network with the oracle's weights, its unpadded input 1 x 3 x H x W, and the golden."""
    g = load_case(case)
    info = g["info"]
    model = build_detector(CONFIGS[info["config"]](info["n_classes"]))
    randomise_like_oracle(model, info["seed"], (2, 3, info["pad_height"], info["pad_width"]))
    x = torch.randn(1, 3, info["height"], info["width"], generator=torch.Generator().manual_seed(info["seed"] + 1))
    return model, x, g
