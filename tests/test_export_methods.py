"""ONNX export of every method beyond the first four: onnxruntime's logits equal PyTorch's.

One zoo entry per method, random weights with non-trivial BatchNorm statistics, an odd input size (65 x 97:
feature maps that PSP/APC/ANN/DM pooling bins do not divide, which ONNX's own pooling cannot express;
sszoo.models.layers.adaptive_avg_pool2d switches to matrix products while exporting).
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import sszoo
from sszoo.export import export_onnx, make_exportable, size_divisor
from sszoo.registry import get_entry, list_entries

ort = pytest.importorskip("onnxruntime")

FIRST_FOUR = {"fcn", "fcn_d6", "pspnet", "deeplabv3", "deeplabv3plus"}
H, W = 65, 97
# heads that refuse smaller inputs: the least input side they take (LRASPP pools its stride-8 map with a fixed
# AvgPool2d(49): ceil(385 / 8) = 49)
MIN_SIDE = {"lraspp": 385}


def _size(name: str) -> tuple[int, int]:
    """65 x 97, or for a head with a minimum input side the least odd size at least that (width a little more)."""
    side = max(MIN_SIDE.get(h.kind, 0) for h in get_entry(name).arch.decode_heads)
    return (H, W) if side <= H else (side | 1, (side + 16) | 1)


# Exporting a ViT-L (SETR's every entry, 300M parameters) holds ~7 GB and takes ~40 s on the 2-core CI machine:
# measured once (onnxruntime equal to PyTorch), not run here.
MAX_PARAMS = 150e6


def _reference_params() -> dict[str, int]:
    """MMSegmentation 1.2.2's parameter count of each config (tools/reference/mmseg_configs.json)."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "reference",
                        "mmseg_configs.json")
    with open(path) as f:
        return {k: v.get("n_params") or 0 for k, v in json.load(f)["configs"].items()}


def _one_entry_per_method() -> list[str]:
    """Per method, the entry with the fewest parameters (then the fewest classes): the quickest to export."""
    picked: dict[str, str] = {}
    n = _reference_params()
    size = lambda e: n.get(e.source.config, 0)  # noqa: E731
    for e in sorted(list_entries(), key=lambda e: (e.method, size(e), getattr(e.arch.backbone, "depth", 0),
                                                  e.num_classes, e.name)):
        if e.source.framework == "mmsegmentation" and e.method not in FIRST_FOUR and size(e) <= MAX_PARAMS:
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
    h, w = _size(name)
    d = size_divisor(model)  # DDRNet/PIDNet take only multiples of 8: the next such size (72 x 104)
    h, w = h + (-h) % d, w + (-w) % d
    torch.manual_seed(2)
    export_onnx(model, path, height=h, width=w)
    if any(callable(getattr(m, "make_deterministic", None)) for m in model.modules()):
        torch.manual_seed(2)  # a network drawing random numbers in every forward (SegNeXt) exports one fixed draw:
        model = make_exportable(model)  # the same one, the network the file holds
    x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x).numpy()
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    scale = max(1.0, float(np.abs(expected).max()))
    assert np.abs(got - expected).max() <= 1e-4 * scale
