"""The offline demo end to end (shortened with --quick): data, training, evaluation and overlays."""
from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

from sszoo.demo import main
from sszoo.registry import get_dataset


def test_quick_demo_runs_every_step_offline(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = main(["--out", "demo", "--quick"])
    out = capsys.readouterr().out
    for step in ("[1/4]", "[2/4]", "[3/4]", "[4/4]", "weights", "evaluation", "overlays"):
        assert step in out
    root = tmp_path / "demo"
    assert res["data"] == str(root / "data" / "cityscapes")
    # synthetic data in the Cityscapes layout
    train_imgs = list((root / "data" / "cityscapes" / "leftImg8bit" / "train").rglob("*_leftImg8bit.png"))
    assert len(train_imgs) == 6
    # the trained weights load back into the architecture
    assert os.path.isfile(res["weights"]) and res["weights"].endswith(".safetensors")
    # the evaluation wrote its JSON with a finite mIoU
    with open(res["eval_json"]) as f:
        results = json.load(f)
    assert results["num_images"] == 2 and 0.0 <= results["mIoU"] <= 100.0
    assert results["mIoU"] == res["mIoU"]
    # one overlay per val image, at the image's size, and colour maps in the Cityscapes palette
    palette = {tuple(c) for c in get_dataset("cityscapes").palette}
    assert len(res["overlays"]) == 2
    for overlay in res["overlays"]:
        assert Image.open(overlay).size == (96, 48)
        color = np.asarray(Image.open(overlay.replace("_overlay.png", "_color.png")))
        assert {tuple(c) for c in color.reshape(-1, 3).tolist()} <= palette
        assert os.path.isfile(overlay.replace("_overlay.png", "_legend.png"))


def test_demo_refuses_a_model_of_another_dataset(tmp_path, capsys):
    import pytest
    with pytest.raises(SystemExit) as e:
        main(["--out", str(tmp_path / "d"), "--model", "pspnet_r50_d8_ade20k", "--quick"])
    assert e.value.code == 2
    assert "Cityscapes layout" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
