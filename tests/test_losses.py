"""sszoo.models.losses against MMSegmentation 1.2.2's loss modules (golden: tools/make_loss_golden.py).

Float64 inputs with ignored pixels; the reference's sigmoid and boundary cross-entropies build float32
targets and weights, so those terms carry float32 rounding (bound 1e-6), the others agree to 1e-12.
"""
from __future__ import annotations

import os

import pytest
import torch

from sszoo.models import ArchConfig, build_model
from sszoo.models.losses import (LossSpec, PixelSampler, boundary_loss, dice_loss, ohem_cross_entropy,
                                 ohem_pixel_weights, seg_cross_entropy, sigmoid_seg_cross_entropy, spec_losses)

G = torch.load(os.path.join(os.path.dirname(__file__), "golden", "heads", "losses.pt"), weights_only=True)
X, Y = G["logits"], G["label"]


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-12) -> bool:
    return abs(float(a) - float(b)) <= tol * max(1.0, abs(float(b)))


def test_cross_entropy_plain_and_class_weighted():
    assert close(seg_cross_entropy(X, Y, align_corners=False), G["ce"])
    assert close(seg_cross_entropy(X, Y, align_corners=False, class_weight=G["class_weight"]), G["ce_class_weight"])
    # the class weights change the value: the test would see them dropped
    assert not close(G["ce"], G["ce_class_weight"], 1e-3)


def test_sigmoid_cross_entropy_one_hot_and_binary():
    assert close(sigmoid_seg_cross_entropy(X, Y), G["sigmoid_ce"], 1e-6)
    assert close(sigmoid_seg_cross_entropy(G["binary_logits"], G["binary_label"]), G["sigmoid_ce_binary"], 1e-6)


def test_ohem_cross_entropy():
    assert close(ohem_cross_entropy(X, Y, thres=0.5, min_kept=40), G["ohem_ce"])
    assert close(ohem_cross_entropy(X, Y, thres=0.9, min_kept=300, class_weight=G["class_weight"]),
                 G["ohem_ce_class_weight"])


def test_dice_and_boundary():
    assert close(dice_loss(X, Y), G["dice"])
    # the reference casts the boundary targets to float32 and returns a float32 loss, also for float64 logits
    assert close(boundary_loss(G["binary_logits"], G["boundary_map"]), G["boundary"], 1e-6)


@pytest.mark.parametrize("name, sampler", [("sampler_thresh", PixelSampler(0.4, 30)),
                                           ("sampler_thresh_many", PixelSampler(0.4, 200)),
                                           ("sampler_topk", PixelSampler(None, 30))])
def test_ohem_pixel_sampler(name, sampler):
    weight = ohem_pixel_weights(X, Y, sampler)
    assert torch.equal(weight, G[name].to(weight.dtype))
    assert 0 < weight.sum() < (Y != 255).sum()
    got = spec_losses((LossSpec(),), X, Y, align_corners=False, sampler=sampler)
    assert close(sum(got.values()), G[name + "_ce"])


def test_spec_losses_weights_and_names():
    specs = (LossSpec("ce", 0.4, name="loss_ce"), LossSpec("dice", 2.0, name="loss_dice"),
             LossSpec("ce", 1.0, name="loss_ce"))
    got = spec_losses(specs, X, Y, align_corners=False)
    assert set(got) == {"loss_ce", "loss_dice"}  # same names add up, as the reference's loss dict
    assert close(got["loss_ce"], 1.4 * G["ce"])
    assert close(got["loss_dice"], 2.0 * G["dice"])
    with pytest.raises(ValueError, match="unknown loss kind"):
        LossSpec("focal")


def test_segmentor_weights_spec_heads_and_aux_override():
    """A head with listed losses contributes its terms as weighted; --aux-weight rescales them."""
    arch = ArchConfig.from_dict(dict(
        backbone=dict(kind="resnet", depth=18, strides=[1, 2, 1, 1], dilations=[1, 1, 2, 4]),
        decode_head=dict(kind="fcn", in_channels=512, channels=16, in_index=3, num_convs=1, concat_input=False,
                         losses=[dict(kind="ce", weight=1.0, class_weight=[1.0, 2.0, 3.0])], loss_weight=1.0),
        auxiliary_head=dict(kind="fcn", in_channels=256, channels=16, in_index=2, num_convs=1, concat_input=False,
                            losses=[dict(kind="ce", weight=0.4, use_sigmoid=True)], loss_weight=0.4),
        num_classes=3, align_corners=False))
    model = build_model(arch).eval()
    assert model.decode_head.loss_specs[0].class_weight == (1.0, 2.0, 3.0)
    x = torch.randn(1, 3, 33, 41)
    label = torch.randint(0, 3, (1, 33, 41))
    with torch.no_grad():
        out = model.forward_heads(x)
        losses = model.loss(out, label)
        dec = seg_cross_entropy(out.decode[0], label, align_corners=False, class_weight=[1.0, 2.0, 3.0])
        aux_logits = torch.nn.functional.interpolate(out.aux[0], size=(33, 41), mode="bilinear")
        aux = sigmoid_seg_cross_entropy(aux_logits, label)
        assert torch.allclose(losses["decode"], dec)
        assert torch.allclose(losses["aux"], 0.4 * aux)
        assert torch.allclose(model.loss(out, label, aux_weight=1.0)["aux"], aux)


def test_trainer_drops_class_weights_of_another_class_count():
    """CGNet's 19 Cityscapes class weights cannot weight a 5-class fine-tune: the trainer drops them, says so."""
    from sszoo import create_model
    from sszoo.train.engine import drop_mismatched_class_weights

    model = create_model("cgnet_fcn_cityscapes", num_classes=5)
    assert len(model.decode_head.loss_specs[0].class_weight) == 19
    assert drop_mismatched_class_weights(model) == ["decode_head"]
    assert model.decode_head.loss_specs[0].class_weight is None
    assert drop_mismatched_class_weights(create_model("cgnet_fcn_cityscapes")) == []  # 19 classes keep them


def test_segmentor_passes_crop_sizes_to_pidnet_boundary_loss():
    """The trainer's unpadded crop sizes reach PIDNet's head (its boundary targets ignore the padding)."""
    from sszoo import create_model

    torch.manual_seed(0)
    model = create_model("pidnet_s_cityscapes").train()
    x = torch.randn(2, 3, 64, 64)
    label = torch.randint(0, 19, (2, 64, 64))
    label[:, 40:] = 255  # padded rows, as collate pads a short crop
    valid = torch.tensor([[40, 64], [40, 64]])
    out = model.forward_heads(x)
    head = model.decode_head
    expected = sum(head.loss(out.decode[0], label, valid=valid).values())
    assert torch.allclose(model.loss(out, label, valid=valid)["decode"], expected)
    assert not torch.allclose(model.loss(out, label)["decode"], expected)  # the padding changes the targets
