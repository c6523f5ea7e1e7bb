"""STDC and ICNet beyond the logits goldens: what only training sees, and the variants no config exercises.

tests/golden/heads/stdc_head.pt is MMSegmentation 1.2.2's (tools/make_stdc_head_golden.py): the STDCHead's
boundary targets on two real Cityscapes label crops, its loss terms, the OHEM pixel sampler's weights and
loss, an STDCNet of "add" modules, and the whole STDC1 model's training losses.
"""
from __future__ import annotations

import json
import os

import pytest
import torch
import torch.nn.functional as F

from oracle_weights import draw_parameters
from sszoo.models import ArchConfig, build_model
from sszoo.models.backbones.icnet import ICNetConfig
from sszoo.models.backbones.stdc import STDCNet
from sszoo.models.heads.stdc_head import STDCHead, boundary_targets

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "heads", "stdc_head.pt")


@pytest.fixture(scope="module")
def golden() -> dict:
    d = torch.load(GOLDEN, weights_only=True)
    d["info"] = json.loads(d["info"])
    return d


def _head(dtype: torch.dtype) -> STDCHead:
    return STDCHead(256, 64, 2, num_convs=1, concat_input=False, align_corners=True).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_boundary_targets_match_reference(golden, dtype):
    label = golden["label"].long()
    assert (label == 255).any() and label.shape[-2] % 4 and label.shape[-1] % 4  # ignored pixels, odd sizes
    got = _head(dtype).boundary_targets(label)
    want = golden["targets32" if dtype == torch.float32 else "targets64"].long()
    assert got.dtype == torch.int64 and got.shape == label.shape
    assert torch.equal(got, want)


def test_boundary_targets_follow_the_kernels_precision(golden):
    # the fused stride-4 weight, float32(0.1), is above the threshold 0.1 only in float64: a pixel on a stride-4
    # boundary alone is a boundary in float64 but not in float32, as in the reference
    assert (golden["targets32"] != golden["targets64"]).any()
    label = torch.zeros(1, 16, 16, dtype=torch.long)
    label[:, :, 4:] = 1  # a vertical edge between columns 3 and 4
    rows = {}
    for dtype in (torch.float32, torch.float64):
        head = _head(dtype)
        rows[dtype] = boundary_targets(label, head.laplacian_kernel, head.fusion_kernel)[0, 5].tolist()
    # 8 x centre - neighbours, clamped at 0, fires on the higher side only: column 4, and column 15 against the
    # zero padding. Stride 2 samples column 4 and its nearest upsampling covers columns 4-5 (weight 0.3); stride 4
    # covers 4-7, with weight 0.1, which passes the threshold 0.1 only in float64.
    assert rows[torch.float32] == [0, 0, 0, 0, 1, 1, 0, 0] + [0] * 7 + [1]
    assert rows[torch.float64] == [0, 0, 0, 0, 1, 1, 1, 1] + [0] * 7 + [1]


def test_stdc_head_keeps_two_classes():
    arch = _stdc_arch(num_classes=19)
    model = build_model(arch)
    model.reset_classifier(5)
    assert model.decode_head.conv_seg.out_channels == 5
    assert [h.conv_seg.out_channels for h in model.auxiliary_head] == [5, 5, 2]


def _stdc_arch(num_classes: int = 19) -> ArchConfig:
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "tools"))
    from mmseg_arch import arch_from_mmseg

    facts = os.path.join(os.path.dirname(os.path.dirname(__file__)), "tools", "reference", "mmseg_configs.json")
    with open(facts) as f:
        model = json.load(f)["configs"]["configs/stdc/stdc1_4xb12-80k_cityscapes-512x1024.py"]["model"]
    return ArchConfig.from_dict(arch_from_mmseg(model)).with_num_classes(num_classes)


def test_stdcnet_add_modules_match_reference(golden):
    add = golden["info"]["add"]
    cfg = add["config"]
    net = STDCNet(cfg["stdc_type"], tuple(cfg["channels"]), bottleneck_type="add", num_convs=cfg["num_convs"])
    assert list(net.state_dict()) == add["keys"]  # the shared downsample module under both of its names
    draw_parameters(net, torch.Generator().manual_seed(add["seed"]))
    x = torch.randn(add["input_shape"], generator=torch.Generator().manual_seed(add["input_seed"])).double()
    with torch.no_grad():
        outs = net.double().eval()(x)
    assert len(outs) == 3
    for got, want in zip(outs, golden["add_outputs"]):
        assert got.shape == want.shape
        assert (got - want).abs().max() <= 1e-10 * max(1.0, want.abs().max().item())


def test_icnet_config_round_trips_through_zoo_json():
    cfg = ICNetConfig(backbone_cfg={"depth": 18, "strides": [1, 2, 1, 1], "dilations": [1, 1, 2, 4]})
    assert cfg.backbone_cfg.depth == 18 and cfg.backbone_cfg.strides == (1, 2, 1, 1)
    assert cfg.depth == 18 and cfg.output_stride == 32
    again = ArchConfig.from_dict(json.loads(json.dumps(ArchConfig(backbone=cfg, decode_head=_stdc_arch().decode_head)
                                                       .to_dict())))
    assert again.backbone == cfg


def test_icnet_halves_the_input_by_scale_factor():
    # at odd sizes a 0.5 scale factor samples other source points than a resize to the halved size;
    # the reference passes the scale factor (tests/golden/parity/icnet_* fail by ~1 of the scale otherwise)
    from sszoo.models.backbones.icnet import _half

    x = torch.randn(1, 1, 7, 9, generator=torch.Generator().manual_seed(0)).double()
    y = _half(x, False)
    assert y.shape[-2:] == (3, 4)
    # source row of output row i: (i + 0.5) * 2 - 0.5 = 2i + 0.5, i.e. the mean of rows 2i and 2i+1
    rows = (x[..., 0::2, :][..., :3, :] + x[..., 1::2, :][..., :3, :]) / 2
    cols = (rows[..., 0::2][..., :4] + rows[..., 1::2][..., :4]) / 2
    assert torch.allclose(y, cols, atol=1e-12)
    assert not torch.allclose(y, F.interpolate(x, size=(3, 4), mode="bilinear", align_corners=False))


def _close(got: torch.Tensor, want: torch.Tensor, rel: float = 1e-6) -> bool:
    # the reference's sigmoid cross-entropy and Dice round through float32 targets even in a float64 run
    return abs(got.item() - want.item()) <= rel * max(1.0, abs(want.item()))


def test_stdc_head_loss_terms_match_reference(golden):
    head = _head(torch.float64)
    terms = head.loss(golden["stdc_logits"], golden["label"].long())
    assert set(terms) == {"loss_ce", "loss_dice"}
    for name, want in golden["stdc_losses"].items():
        assert _close(terms[name], want), (name, terms[name].item(), want.item())


@pytest.mark.parametrize("min_kept", ["10000", "1000"])
def test_ohem_decode_head_matches_reference(golden, min_kept):
    from sszoo.models.losses import PixelSampler, ohem_pixel_weights, spec_losses, LossSpec
    from sszoo.models.layers import resize

    arch = _stdc_arch()
    cfg = arch.decode_head
    assert cfg.sampler == PixelSampler(thresh=0.7, min_kept=10000) and cfg.losses == (LossSpec("ce", 1.0),)
    sampler = PixelSampler(thresh=cfg.sampler.thresh, min_kept=int(min_kept))
    label, logits = golden["label"].long(), golden["ohem_logits"]
    weight = ohem_pixel_weights(resize(logits, label.shape[-2:], True), label, sampler)
    assert torch.equal(weight.to(torch.uint8), golden["ohem"][min_kept]["weight"])
    terms = spec_losses(cfg.losses, logits, label, align_corners=True, sampler=sampler)
    assert _close(sum(terms.values()), golden["ohem"][min_kept]["loss"], 1e-10)


def test_stdc1_training_losses_match_reference(golden):
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    from oracle_weights import randomise_like_oracle

    info = golden["info"]
    model = build_model(ArchConfig.from_dict(info["arch"]))
    randomise_like_oracle(model, info["seed"], tuple(info["calib_shape"]), float64=True)
    model.double().eval()  # as the golden: no dropout, BatchNorm statistics fixed
    x = torch.randn(info["input_shape"], generator=torch.Generator().manual_seed(info["input_seed"])).double()
    label = golden["label"].long()
    with torch.no_grad():
        out = model.forward_heads(x)
        got = {f"decode.{k}" if k.startswith("loss") else "decode.loss_ce": v
               for k, v in model.decode_head.loss(out.decode[0], label).items()}
        for i, (head, o) in enumerate(zip(model.auxiliary_heads, out.aux)):
            for k, v in head.loss(o, label).items():
                got[f"aux_{i}.{k if k.startswith('loss') else 'loss_ce'}"] = v
        total = model.loss(out, label)["total"]
    assert set(got) == set(golden["model_losses"])
    for name, want in golden["model_losses"].items():
        assert _close(got[name], want), (name, got[name].item(), want.item())
    assert _close(total, sum(golden["model_losses"].values()))
