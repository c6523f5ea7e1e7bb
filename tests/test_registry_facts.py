"""Zoo entries of the methods beyond the first four against the facts extracted from MMSegmentation 1.2.2.

tools/generate_zoo.py makes them from tools/reference/mmseg_checkpoints.csv (every checkpoint of the 1.2.2
metafiles, upstream errors corrected) and mmseg_configs.json (each resolved config); here each entry is
checked against its row and config again, and every checkpoint of a served method must be an entry.
"""
import csv
import json
import os
import sys
from collections import Counter

import pytest
import torch

from sszoo.models import ArchConfig
from sszoo.registry import get_entry, list_entries

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF = os.path.join(ROOT, "tools", "reference")
sys.path.insert(0, os.path.join(ROOT, "tools"))
from mmseg_arch import arch_from_mmseg  # noqa: E402

FIRST_FOUR = {"fcn", "pspnet", "deeplabv3", "deeplabv3plus"}
with open(os.path.join(REF, "mmseg_checkpoints.csv")) as f:
    ROWS = [r for r in csv.DictReader(f) if r["method"] not in FIRST_FOUR]
with open(os.path.join(REF, "mmseg_configs.json")) as f:
    CONFIGS = json.load(f)["configs"]
URLS = {e.weights.url: e for e in list_entries() if e.source.framework == "mmsegmentation"}
SERVED = sorted({r["method"] for r in ROWS if r["checkpoint_url"] in URLS})


def _num(s):
    return None if s in ("", "-") else float(s)


def test_wave_two_methods_are_served():
    assert {"nonlocal_net", "ccnet", "danet", "ann", "isanet", "gcnet", "dnlnet", "emanet", "upernet", "sem_fpn",
            "point_rend"} <= set(SERVED)


@pytest.mark.parametrize("method", SERVED)
def test_every_checkpoint_of_a_served_method_is_an_entry(method):
    rows = [r for r in ROWS if r["method"] == method]
    missing = [r["name"] for r in rows if r["checkpoint_url"] not in URLS]
    assert not missing
    assert Counter(URLS[r["checkpoint_url"]].name for r in rows).most_common(1)[0][1] == 1  # one entry per file


@pytest.mark.parametrize("r", [r for r in ROWS if r["checkpoint_url"] in URLS], ids=lambda r: r["name"])
def test_entry_matches_its_facts(r):
    e = URLS[r["checkpoint_url"]]
    c = CONFIGS[r["config"]]
    assert get_entry(os.path.basename(r["config"]).removesuffix(".py")) is e  # the 1.x config name is an alias
    assert e.weights.sha256_prefix == r["ckpt_sha256_prefix"] and e.weights.url.endswith(f"-{r['ckpt_sha256_prefix']}.pth")
    assert (e.reported.miou, e.reported.miou_msflip) == (_num(r["miou"]), _num(r["miou_msflip"]))
    assert (e.reported.mem_gb, e.reported.fps) == (_num(r["mem_gb"]), _num(r["fps"]))
    assert e.recipe.iters == int(r["schedule"]) and "x".join(map(str, e.recipe.crop)) == r["crop"]
    assert e.arch == ArchConfig.from_dict(arch_from_mmseg(c["model"]))
    assert e.dataset.title == r["dataset"] and e.dataset.reduce_zero_label == bool(c["reduce_zero_label"])
    tc = c.get("test_cfg") or {}
    assert e.test.mode == tc.get("mode", "whole")
    if e.test.mode == "slide":
        assert list(e.test.crop) == list(tc["crop_size"]) and list(e.test.stride) == list(tc["stride"])
    if c["test_resize"] is not None:
        assert list(e.test.scale) == list(c["test_resize"]["scale"])
    else:  # SAN tests with ResizeShortestEdge(short, max_size): the keep-ratio resize to (max_size, short)
        t = next(t for t in c["test_pipeline"] if t["type"] == "ResizeShortestEdge")
        short = min(t["scale"]) if isinstance(t["scale"], list) else t["scale"]
        assert list(e.test.scale) == [t["max_size"], short] and "ResizeShortestEdge" in e.source.notes
    assert e.test.align_corners == e.arch.align_corners


def test_recipes_without_photometric_distortion_train_without_it():
    """CGNet's 680x680 pipeline has no PhotoMetricDistortion (its 512x1024 one does): the trainer follows each."""
    from sszoo.train.recipe import config_from_entry

    assert not config_from_entry(get_entry("cgnet_fcn_cityscapes.680x680_60k"), "data", "work").photometric
    assert config_from_entry(get_entry("cgnet_fcn_cityscapes.512x1024_60k"), "data", "work").photometric


def test_fast_scnn_trains_its_batchnorms_at_momentum_0_01(tmp_path):
    """Fast-SCNN's norm_cfg sets momentum 0.01 on every BN; the trainer's model follows it, others keep 0.1."""
    from sszoo.train.engine import build_train_model
    from sszoo.train.recipe import config_from_entry

    cfg = config_from_entry(get_entry("fast_scnn_cityscapes"), "data", str(tmp_path))
    assert cfg.bn_momentum == 0.01
    model = build_train_model(cfg, lambda msg: None)
    assert {m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.01}
    assert config_from_entry(get_entry("cgnet_fcn_cityscapes"), "data", str(tmp_path)).bn_momentum is None


def test_cgnet_trains_with_adam_and_l2_weight_decay():
    """CGNet's recipe: Adam, lr 1e-3, weight decay 5e-4 added to the gradient (torch's Adam, as MMEngine's)."""
    from sszoo.train.engine import build_optimizer
    from sszoo.train.recipe import config_from_entry

    cfg = config_from_entry(get_entry("cgnet_fcn_cityscapes"), "data", "work")
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay) == ("adam", 0.001, 0.0005)
    opt = build_optimizer(torch.nn.Linear(2, 2), cfg)
    assert type(opt) is torch.optim.Adam and opt.defaults["weight_decay"] == 0.0005
    assert opt.defaults["betas"] == (0.9, 0.999) and opt.defaults["eps"] == 1e-8
