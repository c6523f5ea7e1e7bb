"""sszoo.eval's outputs: strict JSON, the reported number only where it applies, progress lines, the
benchmark prediction formats, test splits without labels, the Cityscapes ground-truth choice and
category IoU."""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import sszoo
from sszoo.data import build_dataset, synthetic
from sszoo.data.formats import cityscapes_trainid_to_id, encode_prediction, voc_colormap
from sszoo.eval import _Progress, _reported, cityscapes_category_iou, main

MODEL = "fcn_r18_d8_cityscapes"
GOLDEN_CS = os.path.join(os.path.dirname(__file__), "golden", "eval", "cityscapes")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("cs")
    synthetic.generate(str(root), "cityscapes", 3, size=[(64, 32), (48, 40)], seed=2)
    return str(root)


def _strict(text: str) -> dict:
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def test_random_weights_strict_json_and_no_reported_number(data, tmp_path, capsys):
    out = tmp_path / "r.json"
    res = main(["--model", MODEL, "--data", data, "--random-weights", "--scale", "none", "--workers", "0",
                "--out", str(out), "--quiet"])
    saved = _strict(out.read_text())                       # no bare NaN anywhere
    assert any(math.isnan(v) for v in res["IoU"]) and None in saved["IoU"]
    assert saved["reported_mIoU"] is None and saved["difference"] is None
    assert saved["settings"]["weights"] == "random" and saved["settings"]["protocol"]["scale"] is None
    printed = capsys.readouterr().out
    assert "vs reported" not in printed and "no reported number applies: random weights" in printed


def test_the_reported_number_applies_only_to_published_weights_on_real_data(data):
    entry = sszoo.get_entry(MODEL)
    real = build_dataset("cityscapes", GOLDEN_CS)
    synth = build_dataset("cityscapes", data)

    def ns(**kw):
        base = dict(random_weights=False, weights=None, tta=False, split="val", limit=None, data=GOLDEN_CS)
        base.update(kw)
        return argparse.Namespace(**base)

    assert _reported(ns(), entry, "cityscapes", real, {}) == (entry.reported.miou, "")
    for args, ds, key, changes, why in (
            (ns(random_weights=True), real, "cityscapes", {}, "random weights"),
            (ns(weights="mine.pth"), real, "cityscapes", {}, "weights other than"),
            (ns(data=data), synth, "cityscapes", {}, "synthetic data"),
            (ns(), real, "ade20k", {}, "dataset ade20k"),
            (ns(limit=2), real, "cityscapes", {}, "--limit 2"),
            (ns(), real, "cityscapes", {"scale": None}, "--scale")):
        got, reason = _reported(args, entry, key, ds, changes)
        assert got is None and why in reason, (why, reason)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_frames_on_a_terminal_plain_lines_elsewhere():
    log = io.StringIO()
    bar = _Progress(20, True, stream=log)
    for done in range(1, 21):
        bar.update(done, 50.0)
    bar.update(20, 50.0, force=True)
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 10          # one line per tenth, no repeat at the end
    assert lines[0].startswith("eval: 2/20 images") and lines[-1].startswith("eval: 20/20 images")
    term = _Tty()
    bar = _Progress(20, True, stream=term)
    bar.update(20, 50.0, force=True)
    bar.close()
    assert term.getvalue().startswith("\r[") and term.getvalue().endswith("\n")


def test_prediction_formats_by_hand():
    lab = np.array([[0, 10, 13], [18, 11, 2]])
    # Cityscapes: train id -> label id (road 7, sky 23, car 26, bicycle 33, person 24, building 11)
    assert np.asarray(encode_prediction(lab, "cityscapes", 19)).tolist() == [[7, 23, 26], [33, 24, 11]]
    assert np.asarray(encode_prediction(lab, "ade20k", 150)).tolist() == [[1, 11, 14], [19, 12, 3]]
    assert np.asarray(encode_prediction(lab, "trainids", 19)).tolist() == lab.tolist()
    voc = encode_prediction(np.array([[0, 1, 15]]), "voc", 21)
    assert voc.mode == "P" and np.asarray(voc).tolist() == [[0, 1, 15]]
    pal = np.array(voc.getpalette()[:3 * 256]).reshape(-1, 3)
    # VOClabelcolormap.m: background black, aeroplane (128, 0, 0), person (192, 128, 128), the border 255
    assert pal[0].tolist() == [0, 0, 0] and pal[1].tolist() == [128, 0, 0] and pal[15].tolist() == [192, 128, 128]
    assert pal[255].tolist() == [224, 224, 192] and np.array_equal(pal[:21], np.array(
        sszoo.registry.get_dataset("voc12aug").palette))
    lut = cityscapes_trainid_to_id()
    assert lut[:19].tolist() == [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
    assert voc_colormap().shape == (256, 3)


def test_category_iou_by_hand():
    m = torch.zeros(20, 19, dtype=torch.int64)
    m[0, 0] = 10        # road -> road
    m[0, 1] = 5         # road -> sidewalk: still "flat"
    m[2, 0] = 3         # building -> road: a flat false positive, a construction false negative
    m[13, 14] = 4       # car -> truck: both "vehicle"
    m[19, 0] = 100      # out-of-range labels are not counted
    cat = cityscapes_category_iou(m)
    assert cat["flat"] == pytest.approx(100 * 15 / 18)
    assert cat["construction"] == 0.0 and cat["vehicle"] == 100.0 and math.isnan(cat["sky"])


def test_save_predictions_on_a_test_split_without_labels(data, tmp_path, capsys):
    root = tmp_path / "cs"
    shutil.copytree(os.path.join(data, "leftImg8bit", "val"), root / "leftImg8bit" / "test")
    preds = tmp_path / "preds"
    res = main(["--model", MODEL, "--data", str(root), "--split", "test", "--random-weights", "--scale", "none",
                "--workers", "0", "--save-predictions", str(preds), "--quiet"])
    assert res["num_labelled"] == 0 and res["predictions"]["format"] == "cityscapes"
    files = sorted(p.relative_to(preds).as_posix() for p in preds.rglob("*.png"))
    assert files == sorted(os.path.relpath(p, root / "leftImg8bit" / "test").replace("_leftImg8bit.png", "_labelIds.png")
                           for p in map(str, (root / "leftImg8bit" / "test").rglob("*.png")))
    ids = np.asarray(Image.open(preds / files[0]))
    assert set(np.unique(ids)) <= set(cityscapes_trainid_to_id()[:19].tolist())
    assert "no labels: no metrics" in capsys.readouterr().out
    with pytest.raises(SystemExit):   # without --save-predictions there is nothing to do on it
        main(["--model", MODEL, "--data", str(root), "--split", "test", "--random-weights", "--quiet"])
    assert "has no labels" in capsys.readouterr().err


def test_gt_choice_between_label_files_is_said(data, tmp_path, capsys):
    root = tmp_path / "cs"
    shutil.copytree(data, root)
    # make the two label files disagree: labelIds all "road" (7) -> train id 0
    for p in root.rglob("*_gtFine_labelIds.png"):
        Image.fromarray(np.full(np.asarray(Image.open(p)).shape, 7, np.uint8)).save(p)
    auto = build_dataset("cityscapes", str(root))
    ids = build_dataset("cityscapes", str(root), gt="labelIds")
    assert "labelTrainIds" in auto.label_note and "labelIds.png (3) mapped to train ids" in ids.label_note
    assert (ids[0]["label"] == 0).all() and not (auto[0]["label"] == 0).all()
    res = main(["--model", MODEL, "--data", str(root), "--gt", "labelIds", "--random-weights", "--scale", "none",
                "--workers", "0"])
    assert res["dataset"]["labels"] == ids.label_note
    assert f"ground truth: {ids.label_note}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--model", "fcn_r50_d8_ade20k", "--data", str(root), "--gt", "labelIds", "--random-weights"])
    assert "--gt labelIds chooses between Cityscapes' label files" in capsys.readouterr().err
