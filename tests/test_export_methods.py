"""ONNX export of every method beyond the first four: onnxruntime's logits equal PyTorch's.

One zoo entry per method, random weights with non-trivial BatchNorm statistics, an odd input size (65 x 97:
feature maps that PSP/APC/ANN/DM pooling bins do not divide, which ONNX's own pooling cannot express;
sszoo.models.layers.adaptive_avg_pool2d switches to matrix products while exporting).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import sszoo
from sszoo.export import export_onnx, size_divisor
from sszoo.registry import list_entries

ort = pytest.importorskip("onnxruntime")

FIRST_FOUR = {"fcn", "fcn_d6", "pspnet", "deeplabv3", "deeplabv3plus"}
H, W = 65, 97


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
    d = size_divisor(model)  # DDRNet/PIDNet take only multiples of 8: the next such size (72 x 104)
    h, w = H + (-H) % d, W + (-W) % d
    export_onnx(model, path, height=h, width=w)
    x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x).numpy()
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    scale = max(1.0, float(np.abs(expected).max()))
    assert np.abs(got - expected).max() <= 1e-4 * scale
