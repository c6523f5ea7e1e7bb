"""Wave-2 and wave-3 entries through the evaluator and the inference helper, with their own test protocols.

Random weights on a generated Cityscapes-layout set: the point is that each kind of network (a context head
on D8, a cascade with PointRend's subdivision, the FPN and JPU necks) runs the entry's protocol end to end,
sliding windows included, and that the evaluator's counts are consistent with the labels on disk.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import sszoo
from sszoo.data import build_dataset
from sszoo.data.synthetic import generate
from sszoo.eval import evaluate
from sszoo.inference import Protocol, infer

ENTRIES = ["pointrend_r50_cityscapes.512x1024_80k", "ccnet_r50_d8_cityscapes.769x769_40k",
           "fastfcn_r50_d32_jpu_psp_cityscapes.512x1024_80k_4xb2", "fpn_r50_cityscapes.512x1024_80k",
           # wave 3: OCRNet's cascade on HRNet, ICNet's neck, STDC's three auxiliary heads, CGNet's own mean/std
           "ocrnet_hr18s_cityscapes", "icnet_r18_d8_cityscapes", "stdc1_cityscapes", "cgnet_fcn_cityscapes"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("city")
    generate(str(root), "cityscapes", 2, size=[(97, 65), (130, 71)], seed=3, split="val")
    return build_dataset("cityscapes", str(root), "val")


@pytest.mark.parametrize("name", ENTRIES)
def test_entry_protocol_end_to_end(name, dataset):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = sszoo.create_model(name, aux=False)
    entry = sszoo.get_entry(name)
    # the entry's protocol (whole or slide, align_corners) at a scale and window that fit the small images
    p = Protocol.from_entry(entry).with_(scale=(128, 64))
    if p.mode == "slide":
        assert entry.test.crop == (769, 769)
        p = p.with_(crop=(48, 48), stride=(32, 32))
    res = evaluate(model, dataset, p, device="cpu", progress=False)
    assert res["num_images"] == 2
    rows = res["per_class"]
    labels = sum(row["label"] for row in rows)
    on_disk = sum(int((dataset.load_label(i) < 19).sum()) for i in range(len(dataset)))
    assert labels == on_disk and sum(row["pred"] for row in rows) == on_disk  # every valid pixel predicted once
    image = dataset[0]["image"]
    pred = infer(model, np.ascontiguousarray(image.permute(1, 2, 0).numpy()), p)
    assert pred.shape == tuple(image.shape[1:]) and int(pred.max()) < 19
