"""ONNX export of every method beyond the first four: onnxruntime's logits equal PyTorch's.

One zoo entry per method, random weights with non-trivial BatchNorm statistics, an odd input size (65 x 97:
feature maps that PSP/APC/ANN/DM pooling bins do not divide, which ONNX's own pooling cannot express;
sszoo.models.layers.adaptive_avg_pool2d switches to matrix products while exporting).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import sszoo
from sszoo.export import export_onnx, size_divisor
from sszoo.models import build_model
from sszoo.registry import get_entry, list_entries

ort = pytest.importorskip("onnxruntime")

FIRST_FOUR = {"fcn", "fcn_d6", "pspnet", "deeplabv3", "deeplabv3plus"}
H, W = 65, 97
# heads that refuse smaller inputs: the least input side they take (LRASPP pools its stride-8 map with a fixed
# AvgPool2d(49): ceil(385 / 8) = 49)
MIN_SIDE = {"lraspp": 385}
# fixed-size backbones (BEiT, MAE: relative position tables for one token grid) run only at their img_size, 640 or
# 512, too slow to export and run twice here: the entry's network is built for a 64 x 64 input instead (the same
# layers and ops; only the tables' and the position embedding's lengths differ) and exported at that size
FIXED_SIZE, FIXED_SIDE = {"beit", "mae"}, 64


def _size(name: str) -> tuple[int, int]:
    """65 x 97, or for a head with a minimum input side the least odd size at least that (width a little more)."""
    if get_entry(name).arch.backbone.kind in FIXED_SIZE:
        return FIXED_SIDE, FIXED_SIDE
    side = max(MIN_SIDE.get(h.kind, 0) for h in get_entry(name).arch.decode_heads)
    return (H, W) if side <= H else (side | 1, (side + 16) | 1)


def _one_entry_per_method() -> list[str]:
    """Per method, the entry with the shallowest backbone and fewest classes (the quickest to export)."""
    picked: dict[str, str] = {}
    for e in sorted(list_entries(), key=lambda e: (e.method, getattr(e.arch.backbone, "depth", 0), e.num_classes,
                                                  e.name)):
        if e.source.framework == "mmsegmentation" and e.method not in FIRST_FOUR:
            picked.setdefault(e.method, e.name)
    return sorted(picked.values())


ENTRIES = _one_entry_per_method()


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    arch = get_entry(name).arch
    if arch.backbone.kind in FIXED_SIZE:
        arch = replace(arch, backbone=replace(arch.backbone, img_size=(FIXED_SIDE, FIXED_SIDE)))
        model = build_model(arch).drop_auxiliary_head()
    else:
        model = sszoo.create_model(name, aux=False)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


@pytest.mark.parametrize("name", ENTRIES)
def test_onnx_logits_equal_pytorch(name, tmp_path):
    torch.set_num_threads(1)
    model = _model(name)
    path = str(tmp_path / "m.onnx")
    h, w = _size(name)
    d = size_divisor(model)  # DDRNet/PIDNet take only multiples of 8: the next such size (72 x 104)
    h, w = h + (-h) % d, w + (-w) % d
    export_onnx(model, path, height=h, width=w)
    x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x).numpy()
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    scale = max(1.0, float(np.abs(expected).max()))
    assert np.abs(got - expected).max() <= 1e-4 * scale
