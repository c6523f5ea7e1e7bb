"""sszoo.eval's Cityscapes submission files scored by the official cityscapesScripts 2.3.0 evaluation.

``python -m sszoo.eval --save-predictions DIR --format cityscapes`` on a generated Cityscapes-layout set;
``cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling`` then runs unchanged (its own file search,
its ``*_gtFine_labelIds.png`` and ``*_gtFine_instanceIds.png`` ground truth, its confusion matrix) and must
give the class and category IoU that sszoo.eval printed.

cityscapesScripts 2.3.0 calls ``np.in1d``, which numpy 2.4 removed; ``np.isin`` is its documented
replacement with the same result for these 1-D lookups, so the test sets ``np.in1d = np.isin`` while the
script runs (docs/eval.md). The package comes with ``pip install ".[dev]"``.
"""
from __future__ import annotations

import json
import math
import os
import sys

import numpy as np
import pytest
import torch

cs_eval_spec = pytest.importorskip("cityscapesscripts.helpers.labels")   # skip only where it is not installed

import sszoo  # noqa: E402
from sszoo.data import synthetic  # noqa: E402
from sszoo.eval import main  # noqa: E402

MODEL = "fcn_r18_d8_cityscapes"


@pytest.fixture
def official(monkeypatch):
    """The official evaluation module, with numpy >= 2.4's missing np.in1d supplied."""
    if not hasattr(np, "in1d"):
        monkeypatch.setattr(np, "in1d", np.isin, raising=False)
    import importlib
    return importlib.import_module("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")


def _half_trained(root: str) -> torch.nn.Module:
    """A random FCN whose 1x1 classifier is set to the nearest-class-mean rule on its own random features
    of these scenes: right on much of each class and wrong elsewhere, so the IoUs compared are neither 0
    nor 100."""
    from sszoo.data import build_dataset
    torch.manual_seed(0)
    model = sszoo.create_model(MODEL, aux=False).eval()
    entry = model.entry
    mean, std = torch.tensor(entry.test.mean).view(3, 1, 1), torch.tensor(entry.test.std).view(3, 1, 1)
    feats, labels = [], []
    hook = model.decode_head.conv_seg.register_forward_hook(lambda m, i, o: feats.append(i[0].detach()))
    with torch.no_grad():
        for item in build_dataset("cityscapes", root):
            model(((item["image"].float() - mean) / std)[None])
            labels.append(torch.nn.functional.interpolate(item["label"][None, None].float(),
                                                          size=feats[-1].shape[-2:], mode="nearest").flatten().long())
    hook.remove()
    f = torch.cat([x[0].flatten(1).T for x in feats])
    lab = torch.cat(labels)
    f, lab = f[lab != 255], lab[lab != 255]
    scale = 1 / f.var(0).mean()
    head = model.decode_head.conv_seg
    with torch.no_grad():   # logit_c = s (f . mu_c - |mu_c|^2 / 2): the nearest class mean wins
        head.weight.zero_()
        head.bias.fill_(-1e4)
        for c in lab.unique().tolist():
            mu = f[lab == c].mean(0)
            head.weight[c, :, 0, 0] = scale * mu
            head.bias[c] = -scale * (mu @ mu) / 2
    return model


def test_official_scripts_score_the_submission_like_sszoo(official, tmp_path, monkeypatch, capsys):
    root = tmp_path / "cityscapes"
    synthetic.generate(str(root), "cityscapes", 4, size=[(96, 48), (80, 64)], seed=7)
    model = _half_trained(str(root))
    weights = tmp_path / "w.pth"
    torch.save({"state_dict": model.state_dict()}, weights)
    preds = tmp_path / "results"
    res = main(["--model", MODEL, "--data", str(root), "--weights", str(weights), "--gt", "labelIds",
                "--scale", "none", "--workers", "0", "--save-predictions", str(preds), "--format", "cityscapes",
                "--quiet"])
    assert res["predictions"]["files"] == 4 and "labelIds.png (4) mapped" in res["dataset"]["labels"]

    args = official.args
    monkeypatch.setattr(args, "groundTruthSearch", str(root / "gtFine" / "val" / "*" / "*_gtFine_labelIds.png"))
    monkeypatch.setattr(args, "predictionPath", str(preds))
    monkeypatch.setattr(args, "predictionWalk", None)
    monkeypatch.setattr(args, "exportFile", str(tmp_path / "official.json"))
    monkeypatch.setattr(args, "quiet", True)
    monkeypatch.setattr(args, "colorized", False)
    monkeypatch.setattr(args, "evalInstLevelScore", True)   # reads *_gtFine_instanceIds.png
    monkeypatch.setattr(sys, "argv", ["evalPixelLevelSemanticLabeling.py"])
    official.main()
    got = json.loads((tmp_path / "official.json").read_text())

    ours = {row["class"]: row["IoU"] for row in res["per_class"]}
    theirs = {name: 100 * v for name, v in got["classScores"].items()}
    # the official table also lists the ids ignored in evaluation (ego vehicle, ...), all NaN
    assert set(ours) <= set(theirs) and all(math.isnan(v) for k, v in theirs.items() if k not in ours)
    defined = [c for c in ours if not math.isnan(ours[c])]
    assert len(defined) >= 4 and sum(10 < ours[c] < 90 for c in defined) >= 3   # a non-trivial comparison
    for name in ours:
        assert theirs[name] == pytest.approx(ours[name], abs=1e-9, nan_ok=True), name
    assert 100 * got["averageScoreClasses"] == pytest.approx(res["mIoU"], abs=1e-9)
    for name, iou in res["category_IoU"].items():
        assert 100 * got["categoryScores"][name] == pytest.approx(iou, abs=1e-9, nan_ok=True), name
    assert 100 * got["averageScoreCategories"] == pytest.approx(res["mIoU_category"], abs=1e-9)
    # the instance-level score ran on the generated instance ids (cars and people)
    assert any(not math.isnan(v) for v in got["classInstScores"].values())
