"""K-Net's own logic (sszoo/models/heads/knet.py) against independent expectations.

The end-to-end numerics are tests/test_parity.py's K-Net goldens (MMSegmentation's float64 forward over an FCN
and a UPerNet kernel generator). Here: no stages is the generator itself (the kernels start as its classifier),
the stages treat the classes as a set (permuting the classifier permutes the logits) and the samples apart,
training returns every stage's logits with the reference's loss names, the classifier can be replaced, and the
converter refuses what sszoo does not build.
"""
from __future__ import annotations

import json
import os
import sys

import pytest
import torch

from sszoo.hub.checkpoint import checkpoint_num_classes
from sszoo.models import ArchConfig, build_model
from sszoo.models.heads.fcn import FCNHead
from sszoo.models.heads.knet import KNetHead
from sszoo.models.losses import seg_cross_entropy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from mmseg_arch import Unsupported, arch_from_mmseg  # noqa: E402

FCN_CONFIG = "configs/knet/knet-s3_r50-d8_fcn_8xb2-adamw-80k_ade20k-512x512.py"


def _reference_model(path: str = FCN_CONFIG) -> dict:
    with open(os.path.join(ROOT, "tools", "reference", "mmseg_configs.json")) as f:
        return json.load(f)["configs"][path]["model"]


def _head(num_stages: int = 2, num_classes: int = 5) -> KNetHead:
    torch.manual_seed(0)
    gen = FCNHead(12, 16, num_classes, in_index=0, num_convs=1, concat_input=False, dropout=0.1)
    # the configs' shape of things: the updator reads each 16-channel kernel as two rows of 8
    updator = dict(in_channels=8, feat_channels=8, out_channels=8)
    head = KNetHead(gen, num_stages, in_channels=16, out_channels=16, num_heads=4, feedforward_channels=24,
                    num_mask_fcs=1, updator=updator)
    with torch.no_grad():  # BN statistics off identity, so that the checks see them
        for m in head.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 1.5)
    return head.double().eval()


def test_no_stages_is_the_generator():
    head = _head(num_stages=0)
    feats = [torch.randn(2, 12, 7, 9, dtype=torch.float64)]
    with torch.no_grad():
        assert torch.equal(head(feats), head.kernel_generate_head(feats))


def test_classes_are_a_set():
    head = _head()
    feats = [torch.randn(1, 12, 7, 9, dtype=torch.float64)]
    perm = torch.tensor([3, 0, 4, 1, 2])
    with torch.no_grad():
        out = head(feats)
        cls = head.kernel_generate_head.conv_seg
        cls.weight.copy_(cls.weight[perm]), cls.bias.copy_(cls.bias[perm])
        permuted = head(feats)
    assert torch.allclose(permuted, out[:, perm], rtol=0, atol=1e-10)
    assert out.shape == (1, 5, 7, 9)


def test_samples_stay_apart():
    head = _head()
    a, b = torch.randn(2, 1, 12, 7, 9, dtype=torch.float64)
    with torch.no_grad():
        ab = head([torch.cat([a, b])])
        ba = head([torch.cat([b, a])])
        alone = head([a])
    assert torch.allclose(ab[0], ba[1], rtol=0, atol=1e-10) and torch.allclose(ab[1], ba[0], rtol=0, atol=1e-10)
    assert torch.allclose(ab[:1], alone, rtol=0, atol=1e-10)


def test_training_returns_every_stage_and_its_loss():
    head = _head(num_stages=3).train()
    feats = [torch.randn(2, 12, 7, 9, dtype=torch.float64)]
    label = torch.randint(0, 5, (2, 27, 35))
    label[0, :3] = 255
    torch.manual_seed(1)
    out = head(feats)
    assert len(out) == 4 and all(o.shape == (2, 5, 7, 9) for o in out)
    losses = head.loss(out, label)
    assert list(losses) == ["ce.s0", "ce.s1", "ce.s2", "ce.s3"]
    for i, o in enumerate(out):
        assert torch.equal(losses[f"ce.s{i}"], seg_cross_entropy(o, label, align_corners=False))
    sum(losses.values()).backward()  # the stages train: gradients reach the first kernels' source
    assert head.kernel_generate_head.conv_seg.weight.grad.abs().sum() > 0


def test_reset_classifier_and_checkpoint_class_count():
    model = build_model(ArchConfig.from_dict(arch_from_mmseg(_reference_model())).with_num_classes(6))
    assert checkpoint_num_classes(model.state_dict()) == 6
    assert model.decode_head.conv_seg is model.decode_head.kernel_generate_head.conv_seg
    assert not any(k.startswith("decode_head.conv_seg") for k in model.state_dict())
    model.reset_classifier(3)
    assert checkpoint_num_classes(model.state_dict()) == 3
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 33, 41)).shape == (1, 3, 33, 41)


def test_converter_record_and_refusals():
    model = _reference_model()
    arch = arch_from_mmseg(model)
    head = arch["decode_head"]
    assert (head["kind"], head["num_stages"], head["in_channels"], head["updator_in_channels"], head["num_mask_fcs"]) \
        == ("knet", 3, 512, 256, 1)
    assert head["kernel_generate_head"]["kind"] == "fcn" and arch["num_classes"] == 150
    dh = model["decode_head"]
    stage = dh["kernel_update_head"][0]
    variants = [
        dict(kernel_update_head=[dict(stage, mask_transform_stride=2)] * 3),
        dict(kernel_update_head=[stage, stage, dict(stage, num_heads=4)]),
        dict(kernel_update_head=[dict(stage, kernel_updator_cfg=dict(stage["kernel_updator_cfg"], type="DynamicConv"))] * 3),
        dict(kernel_generate_head=dict(dh["kernel_generate_head"], align_corners=True)),
        dict(kernel_generate_head=dict(dh["kernel_generate_head"], type="SETRUPHead")),
    ]
    for change in variants:
        with pytest.raises(KeyError):  # Unsupported, or a generator type sszoo's K-Net has no converter for
            arch_from_mmseg(dict(model, decode_head=dict(dh, **change)))
    with pytest.raises(Unsupported):
        arch_from_mmseg(dict(model, decode_head=dict(dh, num_stages=2)))
