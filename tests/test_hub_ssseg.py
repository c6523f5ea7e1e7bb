"""sssegmentation checkpoints: converted weights give sssegmentation 1.7.0's own logits (tools/make_ssseg_golden.py)."""
import dataclasses
import glob
import hashlib
import json
import os

import pytest
import torch

import sszoo
from hub_helpers import hub_env, register  # noqa: F401
from hub_ssseg_weights import seeded_state_dict
from sszoo.hub import CheckpointError, UnverifiedWeightsWarning, load_pretrained, to_sszoo
from sszoo.hub import cache
from sszoo.models import build_model
from sszoo.models.layers import resize
from sszoo.registry import WeightsInfo

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "ssseg")
CASES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(GOLDEN, "*.pt")))
METHOD = {"FCN": "fcn", "PSPNet": "pspnet", "Deeplabv3": "deeplabv3", "Deeplabv3Plus": "deeplabv3plus"}


def load_case(case):
    d = torch.load(os.path.join(GOLDEN, case + ".pt"), weights_only=True)
    return d, json.loads(d["info"])


def arch_for(info):
    """The registry's architecture (R-50 cases: unchanged) or a narrowed R-18 variant of it."""
    if info["entry"]:
        return sszoo.get_entry(info["entry"]).arch
    base = sszoo.get_entry(f"{METHOD[info['method']]}_r50_d{info['outstride']}_cityscapes.ssseg").arch
    c = info["feats_channels"]
    extra = {"c1_in_channels": 64} if base.decode_head.kind == "sep_aspp" else {}
    head = dataclasses.replace(base.decode_head, in_channels=512, channels=c, **extra)
    aux = dataclasses.replace(base.auxiliary_head, in_channels=256, channels=info["aux_channels"])
    return dataclasses.replace(base, backbone=dataclasses.replace(base.backbone, depth=18), decode_head=head,
                               auxiliary_head=aux, num_classes=info["num_classes"])


def test_golden_cases_present():
    assert len(CASES) == 8  # four methods x (R-50-D8 registry architecture, narrow R-18-D16)


# Logit parity runs on the four narrow R-18 cases and on DeepLabV3 R-50-D8 (registry architecture, ASPP
# rates 12/24/36); the other R-50 cases are checked key-by-key and shape-by-shape below, and run in full
# with SSZOO_FULL_GOLDEN=1 (about 10 s each on a 2-core CPU).
FULL = [c for c in CASES if "_r18_" in c or c == "deeplabv3_r50_d8" or os.environ.get("SSZOO_FULL_GOLDEN") == "1"]


@pytest.mark.parametrize("case", [c for c in CASES if "_r50_" in c])
def test_registry_r50_architectures_take_every_sssegmentation_key(case):
    _, info = load_case(case)
    # shapes only: zeros are enough to check that every key lands on a parameter of the right shape
    state = {k: torch.zeros(shape) if not k.endswith("num_batches_tracked") else torch.tensor(0)
             for k, shape in info["keys"]}
    converted = to_sszoo({"model": state})
    model = build_model(arch_for(info))
    sszoo.hub.load_state_dict_strict(model, converted.state_dict, source=case)
    assert model.auxiliary_head.convs[0].conv.out_channels == 512  # sssegmentation's wider auxiliary head


@pytest.mark.parametrize("case", FULL)
def test_converted_logits_equal_sssegmentation(case):
    d, info = load_case(case)
    ssseg_state = seeded_state_dict(info["keys"], info["seed"])
    converted = to_sszoo({"model": ssseg_state})
    assert converted.source_format == "ssseg"
    model = build_model(arch_for(info))
    sszoo.hub.load_state_dict_strict(model, converted.state_dict, source=case)  # every key placed, none left
    model.eval()
    with torch.no_grad():  # one pass: heads at feature resolution, then the segmentor's own resize
        out = model.forward_heads(d["input"])
        dec, aux = out.decode[-1], out.aux[0]
        out = resize(dec, d["input"].shape[2:], model.align_corners)
    scale = max(1.0, d["logits"].abs().max().item())
    assert (out - d["logits"]).abs().max().item() <= 1e-4 * scale
    assert (dec - d["feat_logits"]).abs().max().item() <= 1e-4 * scale
    assert (aux - d["aux_logits"]).abs().max().item() <= 1e-4 * max(1.0, d["aux_logits"].abs().max().item())


def test_whole_image_protocol_resizes_once_as_sssegmentation(case="pspnet_r18_d16"):
    """sssegmentation's tester resizes the network's feature-resolution logits straight to the original
    image (ssseg/test.py); its entries' protocol does the same, through Segmentor(x, out_size=...)."""
    d, info = load_case(case)
    model = build_model(arch_for(info))
    sszoo.hub.load_state_dict_strict(model, to_sszoo({"model": seeded_state_dict(info["keys"], info["seed"])}).state_dict)
    model.eval()
    h, w = d["input"].shape[2:]
    original = (int(h * 1.37), int(w * 0.81))  # the image before the test resize: another size than the input
    with torch.no_grad():
        once = model(d["input"], out_size=original)
        twice = resize(model(d["input"]), original, model.align_corners)
    ref = torch.nn.functional.interpolate(d["feat_logits"], size=original, mode="bilinear",
                                          align_corners=model.align_corners)
    scale = max(1.0, ref.abs().max().item())
    assert (once - ref).abs().max().item() <= 1e-4 * scale
    assert (twice - ref).abs().max().item() > 1e-3 * scale  # the two protocols really differ
    for name in ("pspnet_r50_d8_ade20k.ssseg", "deeplabv3_r101_d8_voc12aug.ssseg"):
        assert sszoo.get_entry(name).test.resize_logits_once
    assert not sszoo.get_entry("pspnet_r50_d8_ade20k").test.resize_logits_once


def test_aspp_image_pool_branch_is_reordered():
    # hand-made 2-branch ASPP: fusion conv input channels [b0 | b1 | pool] must become [pool | b0 | b1]
    w = torch.arange(6.0).view(1, 6, 1, 1)
    sd = {"aspp_net.parallel_branches.0.0.weight": torch.zeros(2, 4, 1, 1),
          "aspp_net.parallel_branches.1.0.weight": torch.zeros(2, 4, 3, 3),
          "aspp_net.global_branch.1.weight": torch.zeros(2, 4, 1, 1),
          "aspp_net.bottleneck.0.weight": w, "backbone_net.stem.0.weight": torch.zeros(1)}
    out = sszoo.hub.from_ssseg(sd)
    assert out["decode_head.bottleneck.conv.weight"].flatten().tolist() == [4.0, 5.0, 0.0, 1.0, 2.0, 3.0]


def test_unknown_ssseg_keys_are_reported():
    with pytest.raises(CheckpointError, match="ocr_net"):
        to_sszoo({"model": {"backbone_net.stem.0.weight": torch.zeros(1), "ocr_net.conv.weight": torch.zeros(1)}})


def test_unverified_ssseg_entry_end_to_end(hub_env, tmp_path, monkeypatch):
    """A published sssegmentation file (no hash): warned once, marked unverified, same logits as sssegmentation."""
    server, home = hub_env
    d, info = load_case("pspnet_r18_d16")
    path = tmp_path / "pspnet_resnet18os16_cityscapes.pth"
    torch.save({"model": seeded_state_dict(info["keys"], info["seed"]), "epoch": 220}, path)
    url_path = "/SegmentationBLWX/modelstore/releases/download/ssseg_pspnet/pspnet_resnet18os16_cityscapes.pth"
    server.add(url_path, path.read_bytes())
    base = sszoo.get_entry("pspnet_r50_d16_cityscapes.ssseg")
    entry = dataclasses.replace(base, name="pspnet_r18_d16_cityscapes.ssseg_test", arch=arch_for(info),
                                weights=WeightsInfo(url="https://github.com" + url_path, format="ssseg"))
    register(monkeypatch, entry)
    with pytest.warns(UnverifiedWeightsWarning, match="no published hash"):
        model = sszoo.create_model(entry.name, pretrained=True)
    with torch.no_grad():
        out = model(d["input"])
    assert (out - d["logits"]).abs().max().item() <= 1e-4 * max(1.0, d["logits"].abs().max().item())
    prov = cache.lookup(entry.name)
    assert prov.source_verified is False and prov.source_format == "ssseg"
    assert prov.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedWeightsWarning)  # no second warning: served from the cache
        load_pretrained(entry, True)
    assert server.gets(url_path) == 1
