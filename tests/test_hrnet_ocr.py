"""HRNetV2 and OCRNet specifics: branch sizes on odd inputs, the FCN head's resize_concat input, the OCR head's
spatial gather, the cascade's two-stage loss, and the converters' refusals. Golden logit parity is in
tests/test_parity.py (hrnet_*, ocrnet_*), the training step in tests/test_train_parity.py (ocrnet_hr18s)."""
from __future__ import annotations

import math
import os
import sys

import pytest
import torch
import torch.nn.functional as F

from sszoo.models import ArchConfig, build_model
from sszoo.models.backbones.hrnet import HRNet, HRNetConfig
from sszoo.models.heads.fcn import FCNHead, select_inputs
from sszoo.models.heads.ocr import spatial_gather

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from mmseg_arch import Unsupported, arch_from_mmseg  # noqa: E402

W18S = dict(kind="hrnet", num_modules=[1, 1, 3, 2], num_branches=[1, 2, 3, 4],
            block=["BOTTLENECK", "BASIC", "BASIC", "BASIC"], num_blocks=[[2], [2, 2], [2, 2, 2], [2, 2, 2, 2]],
            num_channels=[[64], [18, 36], [18, 36, 72], [18, 36, 72, 144]])
# a narrow, shallow HRNet for the head tests (quick on a CPU)
TINY = dict(kind="hrnet", num_modules=[1, 1, 1, 1], num_branches=[1, 2, 3, 4],
            block=["BOTTLENECK", "BASIC", "BASIC", "BASIC"], num_blocks=[[1], [1, 1], [1, 1, 1], [1, 1, 1, 1]],
            num_channels=[[8], [4, 8], [4, 8, 16], [4, 8, 16, 32]])


def _ocrnet_tiny(num_classes: int = 3) -> ArchConfig:
    fcn = dict(kind="fcn", in_channels=[4, 8, 16, 32], channels=60, in_index=[0, 1, 2, 3], dropout=0.0,
               loss_weight=0.4, input_transform="resize_concat", num_convs=1, concat_input=False, kernel_size=1)
    ocr = dict(kind="ocr", in_channels=[4, 8, 16, 32], channels=16, in_index=[0, 1, 2, 3], dropout=0.0,
               loss_weight=1.0, input_transform="resize_concat", ocr_channels=8)
    return ArchConfig.from_dict(dict(backbone=TINY, decode_head=[fcn, ocr], num_classes=num_classes,
                                     align_corners=False))


def test_hrnet_branches_on_an_odd_input():
    # the stem and each new branch halve the size rounding up (3x3 convs, stride 2, padding 1)
    torch.manual_seed(0)
    net = HRNet.from_config(HRNetConfig(**{k: tuple(map(tuple, v)) if isinstance(v[0], list) else tuple(v)
                                           for k, v in W18S.items() if k != "kind"})).eval()
    h, w = 37, 51
    with torch.no_grad():
        outs = net(torch.randn(1, 3, h, w))
    assert net.out_channels == [18, 36, 72, 144]
    for k, (out, c) in enumerate(zip(outs, (18, 36, 72, 144))):
        exp_h, exp_w = h, w
        for _ in range(2 + k):
            exp_h, exp_w = math.ceil(exp_h / 2), math.ceil(exp_w / 2)
        assert out.shape == (1, c, exp_h, exp_w)


def test_resize_concat_input():
    torch.manual_seed(0)
    feats = [torch.randn(2, 3, 9, 13), torch.randn(2, 4, 5, 7), torch.randn(2, 5, 3, 4)]
    got = select_inputs(feats, (0, 2), "resize_concat", False)
    up = F.interpolate(feats[2], size=(9, 13), mode="bilinear", align_corners=False)
    torch.testing.assert_close(got, torch.cat([feats[0], up], dim=1), rtol=0, atol=0)
    assert select_inputs(feats, 1, None, False) is feats[1]
    with pytest.raises(ValueError):
        select_inputs(feats, (0, 1), "multiple_select", False)
    head = FCNHead((3, 5), 8, 2, in_index=(0, 2), num_convs=1, concat_input=False, kernel_size=1, dropout=0.0,
                   input_transform="resize_concat")
    assert head.convs[0].conv.in_channels == 8 and head.convs[0].conv.kernel_size == (1, 1)
    assert head(feats).shape == (2, 2, 9, 13)


def test_spatial_gather_is_the_class_weighted_mean():
    torch.manual_seed(0)
    feats, logits = torch.randn(2, 6, 4, 5, dtype=torch.float64), torch.randn(2, 3, 4, 5, dtype=torch.float64)
    got = spatial_gather(feats, logits)
    assert got.shape == (2, 6, 3, 1)
    for n in range(2):
        for k in range(3):
            weight = torch.exp(logits[n, k]) / torch.exp(logits[n, k]).sum()  # softmax over the pixels
            expected = (feats[n] * weight).sum(dim=(1, 2))
            torch.testing.assert_close(got[n, :, k, 0], expected, rtol=1e-12, atol=1e-12)


def test_cascade_loss_is_the_weighted_sum_of_both_stages():
    torch.manual_seed(0)
    model = build_model(_ocrnet_tiny()).double().train()
    x = torch.randn(2, 3, 35, 41, dtype=torch.float64)
    label = torch.randint(0, 3, (2, 35, 41))
    label[:, :3] = 255
    bn0 = model.decode_head[0].convs[0].bn
    before = int(bn0.num_batches_tracked)
    out = model.forward_heads(x)
    # the reference's cascade runs the first stage a second time to feed the OCR head
    assert int(bn0.num_batches_tracked) == before + 2
    fcn_logits, ocr_logits = out.decode
    assert fcn_logits.shape == ocr_logits.shape == (2, 3, 9, 11)  # stride 4, rounded up

    def ce(logits):  # sum over the non-ignored pixels / all pixels
        up = F.interpolate(logits, size=(35, 41), mode="bilinear", align_corners=False)
        return F.cross_entropy(up, label, ignore_index=255, reduction="sum") / label.numel()

    losses = model.loss(out, label)
    expected = 0.4 * ce(fcn_logits) + 1.0 * ce(ocr_logits)
    torch.testing.assert_close(losses["decode"], expected, rtol=1e-6, atol=0)
    torch.testing.assert_close(losses["total"], expected, rtol=1e-6, atol=0)
    assert float(losses["aux"]) == 0.0


def test_inference_refines_the_first_stage():
    torch.manual_seed(0)
    model = build_model(_ocrnet_tiny()).eval()
    x = torch.randn(1, 3, 33, 39)
    with torch.no_grad():
        feats = model.forward_features(x)
        coarse = model.decode_head[0](feats)
        fine = model.decode_head[1](feats, coarse)
        out = model(x)
    torch.testing.assert_close(out, F.interpolate(fine, size=(33, 39), mode="bilinear", align_corners=False))


def test_converters_refuse_what_sszoo_does_not_build():
    fcn = dict(type="FCNHead", in_channels=[18, 36], in_index=[0, 1], channels=54, num_classes=3,
               input_transform="resize_concat", num_convs=1, concat_input=False, kernel_size=1, dropout_ratio=-1)
    ocr = dict(type="OCRHead", in_channels=[18, 36], in_index=[0, 1], channels=32, ocr_channels=16, num_classes=3,
               input_transform="resize_concat", dropout_ratio=-1)
    stages = {f"stage{b}": dict(num_modules=1, num_branches=b, block="BASIC", num_blocks=[1] * b,
                                num_channels=[18 * 2 ** j for j in range(b)]) for b in (1, 2, 3, 4)}
    backbone = dict(type="HRNet", extra=stages)
    arch = arch_from_mmseg(dict(backbone=backbone, decode_head=[fcn, ocr]))
    assert arch["decode_head"][0]["input_transform"] == "resize_concat" and arch["decode_head"][0]["dropout"] == 0.0
    # a single-map FCN head keeps the record it had before resize_concat existed (no input_transform field)
    single = arch_from_mmseg(dict(backbone=backbone, decode_head=dict(fcn, in_channels=18, in_index=0,
                                                                     input_transform=None)))
    assert "input_transform" not in single["decode_head"]
    with pytest.raises(Unsupported):
        arch_from_mmseg(dict(backbone=backbone, decode_head=[fcn, dict(ocr, scale=2)]))
    with pytest.raises(Unsupported):
        arch_from_mmseg(dict(backbone=backbone, decode_head=dict(fcn, input_transform="multiple_select")))
    with pytest.raises(Unsupported):
        arch_from_mmseg(dict(backbone=dict(backbone, multiscale_output=False), decode_head=fcn))
