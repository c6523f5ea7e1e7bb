"""The zoo table against the reference tables it was generated from (tools/reference/*.csv)."""
import csv
import os
import re
import subprocess
import sys
from urllib.parse import urlparse

import pytest
import torch

from sszoo.models import build_model
from sszoo.registry import UnknownModelError, get_dataset, get_entry, list_entries, list_models

ROOT = os.path.dirname(os.path.dirname(__file__))
REF = os.path.join(ROOT, "tools", "reference")


def rows(name):
    with open(os.path.join(REF, name)) as f:
        return list(csv.DictReader(f))


ZOO = rows("mmseg_zoo.csv")
LEGACY = rows("mmseg_fp16_legacy.csv")
SETTINGS = {r["config"]: r for r in rows("mmseg_model_settings.csv")}
SSSEG = rows("ssseg_zoo.csv")
SEEDS = rows("seed_tables.csv")


def config_name(path):
    return os.path.basename(path).removesuffix(".py")


def test_every_published_checkpoint_is_an_entry():
    entries = list_entries()
    urls = {e.weights.url for e in entries}
    for r in ZOO + LEGACY:
        assert r["checkpoint_url"] in urls, r["config"]
    for r in SSSEG:
        assert r["model"] in urls
    for r in SEEDS:
        if r["source"] == "sssegmentation" and r["checkpoint_url"]:
            assert r["checkpoint_url"] in urls
    # the four hand-collected methods' 179 + 4 legacy fp16 files, and the extracted methods' (test_registry_facts.py)
    table = {r["checkpoint_url"] for r in ZOO + LEGACY}
    assert len([e for e in entries if e.source.framework == "mmsegmentation" and e.weights.url in table]) == 179 + 4
    assert len([e for e in entries if e.source.framework == "sssegmentation"]) == len(SSSEG) + 4
    names = [e.name for e in entries]
    assert len(names) == len(set(names))


def test_urls_hosts_and_hash_prefixes():
    prefixes = {r["checkpoint_url"]: r["ckpt_sha256_prefix"] for r in ZOO}
    for e in list_entries():
        host = urlparse(e.weights.url).hostname
        if e.source.framework == "mmsegmentation":
            assert host == "download.openmmlab.com", e.name
            fname = os.path.basename(urlparse(e.weights.url).path)
            m = re.search(r"-([0-9a-f]{8})\.pth$", fname)
            assert m and m.group(1) == e.weights.sha256_prefix, e.name
            if e.weights.url in prefixes:
                assert prefixes[e.weights.url] == e.weights.sha256_prefix
            assert e.weights.verified
        else:
            assert host == "github.com" and "/SegmentationBLWX/modelstore/releases/download/" in e.weights.url
            assert e.weights.format == "ssseg" and not e.weights.verified


@pytest.mark.parametrize("r", ZOO, ids=lambda r: config_name(r["config"]))
def test_architecture_key_and_parameter_counts(r):
    s = SETTINGS[r["config"]]
    entry = get_entry(config_name(r["config"]))
    with torch.device("meta"):
        model = build_model(entry.arch)
    assert len(model.state_dict()) == int(s["n_keys"])
    assert sum(p.numel() for p in model.parameters()) == int(s["n_params"])


@pytest.mark.parametrize("r", ZOO, ids=lambda r: config_name(r["config"]))
def test_entry_matches_reference_row(r):
    s = SETTINGS[r["config"]]
    e = get_entry(config_name(r["config"]))
    assert e.arch.num_classes == int(s["num_classes"]) == e.dataset.num_classes == len(e.dataset.class_names)
    assert e.arch.align_corners == (s["align_corners"] == "True") == e.test.align_corners
    assert e.test.mode == s["test_mode"]
    assert e.dataset.reduce_zero_label == (s["reduce_zero_label"] == "True")
    assert e.reported.miou == float(r["miou"])
    assert e.recipe.iters == int(r["schedule"])
    assert "x".join(map(str, e.recipe.crop)) == r["crop"]
    assert e.backbone == r["backbone"]
    assert e.arch.backbone.deep_stem == (s["backbone_type"] == "ResNetV1c")


def test_names_and_aliases():
    assert get_entry("pspnet_r101_d8_cityscapes").arch_name == "pspnet_r101_d8_cityscapes"
    e = get_entry("pspnet_r101-d8_4xb2-80k_cityscapes-512x1024")
    assert e.name == "pspnet_r101_d8_cityscapes.512x1024_80k"
    assert get_entry("configs/pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-512x1024.py") is e
    assert get_entry("pspnet_r101_d8_cityscapes.769x769_40k").test.mode == "slide"
    assert get_entry("pspnet_r101_d8_cityscapes.512x1024_80k_fp16").reported.precision == "fp16"
    assert get_entry("pspnet_r50_d8_ade20k.ssseg_fp16").weights.format == "ssseg"
    assert get_entry("deeplabv3_r101_d16_mg124_cityscapes").arch.backbone.multi_grid == (1, 2, 4)
    assert get_entry("deeplabv3plus_r18b_d8_cityscapes").arch.backbone.deep_stem is False
    assert get_entry("fcn_r50_d8_ade20k").dataset.reduce_zero_label


def test_bare_name_resolves_to_best_verified_single_scale():
    for bare in list_models():
        default = get_entry(bare)
        same = [e for e in list_entries(bare) if e.weights.verified] or list_entries(bare)
        assert default.reported.miou == max(e.reported.miou for e in same)


def test_list_models_wildcards():
    psp = list_models("pspnet*")
    assert psp and all(n.startswith("pspnet") for n in psp)
    assert "pspnet_r101_d8_cityscapes" in psp
    tagged = list_models("pspnet_r101_d8_cityscapes*", pretrained=True)
    assert "pspnet_r101_d8_cityscapes.769x769_40k" in tagged and all("." in n for n in tagged)
    assert len(list_models(pretrained=True)) == len(list_entries())
    assert list_models(["fcn_r18_*", "fcn_r18b_*"]) == sorted(list_models("fcn_r18_*") + list_models("fcn_r18b_*"))
    assert list_models("nothing*") == []


def test_unknown_name_suggests_close_names():
    with pytest.raises(UnknownModelError) as e:
        get_entry("pspnet_r101_d8_cityscape")
    assert "pspnet_r101_d8_cityscapes" in str(e.value)
    with pytest.raises(TypeError):
        get_entry(None)
    with pytest.raises(KeyError, match="known"):
        get_dataset("kitti")


def test_datasets_have_palettes():
    city = get_dataset("cityscapes")
    assert city.class_names[0] == "road" and city.palette[0] == (128, 64, 128) and len(city.palette) == 19
    ade = get_dataset("ade20k")
    assert ade.num_classes == 150 and ade.reduce_zero_label


def test_generated_table_is_up_to_date():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "generate_zoo.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
