"""Mask2Former's and MaskFormer's training losses equal MMSegmentation 1.2.2's / MMDetection 3.3.0's
(golden: tools/make_mask2former_loss_golden.py), and sszoo's NumPy assignment equals SciPy's.

The golden feeds the reference head's ``loss_by_feat`` seeded random float64 predictions of every decoder
layer and label maps with ignored pixels, under ``torch.manual_seed``; sszoo replays the same random points
(same seed, same draws in the same order), so the assignment of every (layer, image) must be identical and
every loss equal to float64 rounding.
"""
import json
import os

import numpy as np
import pytest
import torch

from sszoo.models.mask_losses import (MASKFORMER_LOSS, MaskClassificationLoss, linear_sum_assignment,
                                      mask_classification_losses, semantic_to_instances)

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "heads", "mask2former_loss.pt")


@pytest.fixture(scope="module")
def golden():
    return torch.load(GOLDEN, weights_only=True)


def _config(case: dict) -> MaskClassificationLoss:
    """The sszoo settings of the case's reference config, checked against what the reference head used."""
    s = json.loads(case["settings"])
    cfg = MASKFORMER_LOSS if "maskformer" in case["config"] else MaskClassificationLoss()
    assert s["loss_cls"]["loss_weight"] == cfg.cls_weight and s["loss_cls"]["class_weight"][-1] == cfg.no_object_weight
    assert s["loss_mask"]["loss_weight"] == cfg.mask_weight and s["loss_dice"]["loss_weight"] == cfg.dice_weight
    assert s["loss_dice"]["eps"] == cfg.dice_eps and s["loss_dice"]["naive_dice"]
    costs = s["train_cfg"]["assigner"]["match_costs"]
    assert [c["weight"] for c in costs] == [cfg.cost_cls, cfg.cost_mask, cfg.cost_dice]
    assert costs[2]["eps"] == cfg.cost_dice_eps
    if cfg.kind == "mask2former":
        t = s["train_cfg"]
        assert (t["num_points"], t["oversample_ratio"], t["importance_sample_ratio"]) == (
            cfg.num_points, cfg.oversample_ratio, cfg.importance_sample_ratio)
    else:
        assert (s["loss_mask"]["alpha"], s["loss_mask"]["gamma"]) == (cfg.focal_alpha, cfg.focal_gamma)
    return cfg


@pytest.mark.parametrize("name", ["mask2former", "mask2former_nomatch", "maskformer"])
def test_losses_and_assignments_match_reference(golden, name):
    case = golden["cases"][name]
    cfg = _config(case)
    cls, masks = case["cls"].double(), case["masks"].double()
    label = case["label"].long()
    assigned: list = []
    torch.manual_seed(case["seed"])
    with torch.no_grad():
        losses = mask_classification_losses(cls, masks, label, 255, cfg, assignments=assigned)
    rand_after = torch.rand(3, dtype=torch.float64)
    assert torch.equal(torch.stack(assigned).reshape(case["assigned"].shape), case["assigned"])
    # the same random numbers were drawn: the generator ends in the reference's state
    torch.testing.assert_close(rand_after, case["rand_after"], rtol=0, atol=0)
    assert list(losses) == case["key_order"]
    for k, ref in case["losses"].items():
        assert losses[k].dtype == torch.float64 and losses[k].shape == ()
        torch.testing.assert_close(losses[k], ref, rtol=1e-10, atol=1e-12, msg=f"{name} {k}")


def test_targets_are_one_mask_per_present_class(golden):
    case = golden["cases"]["mask2former"]
    for lab, ref in zip(case["label"].long(), case["gt_labels"]):
        classes, masks = semantic_to_instances(lab, 255)
        assert torch.equal(classes, ref)
        assert masks.dtype == torch.long and masks.shape == (len(ref),) + tuple(lab.shape)
        for c, m in zip(classes, masks):
            assert torch.equal(m.bool(), lab == c)
    assert semantic_to_instances(torch.full((1, 4, 5), 255), 255)[1].shape == (0, 4, 5)


@pytest.mark.parametrize("group", ["distinct", "ties"])
def test_assignment_equals_scipy(golden, group):
    for i, c in enumerate(golden["lsa"][group]):
        rows, cols = linear_sum_assignment(c["cost"].numpy())
        assert np.array_equal(rows, c["rows"].numpy()) and np.array_equal(cols, c["cols"].numpy()), (group, i)
        assert np.isclose(c["cost"].numpy()[rows, cols].sum(), c["cost"].numpy()[c["rows"], c["cols"]].sum())


def test_assignment_is_optimal_by_brute_force():
    """Independent of SciPy: all permutations of small matrices."""
    import itertools
    rng = np.random.default_rng(5)
    for shape in [(3, 3), (4, 2), (2, 5), (5, 4)]:
        c = rng.standard_normal(shape)
        rows, cols = linear_sum_assignment(c)
        n, m = shape
        k = min(n, m)
        best = min(sum(c[r, q] for r, q in (zip(p, range(m)) if n > m else zip(range(n), p)))
                   for p in itertools.permutations(range(max(n, m)), k))
        assert len(rows) == k and np.isclose(c[rows, cols].sum(), best)


def test_assignment_refusals():
    with pytest.raises(ValueError, match="invalid numeric"):
        linear_sum_assignment(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="infeasible"):
        linear_sum_assignment(np.array([[np.inf, np.inf], [0.0, 1.0]]))
    r, c = linear_sum_assignment(np.zeros((0, 3)))
    assert r.shape == c.shape == (0,)


def test_float32_matches_reference_float32(golden):
    """The training dtype: the reference unpatched in float32 (float32 random points), sszoo in float32."""
    case, inputs = golden["cases"]["mask2former_float32"], golden["cases"]["mask2former"]
    assigned: list = []
    torch.manual_seed(case["seed"])
    with torch.no_grad():
        losses = mask_classification_losses(inputs["cls"], inputs["masks"], inputs["label"].long(), 255,
                                            _config(case), assignments=assigned)
    assert torch.equal(torch.stack(assigned).reshape(case["assigned"].shape), case["assigned"])
    for k, ref in case["losses"].items():
        assert losses[k].dtype == torch.float32
        torch.testing.assert_close(losses[k].double(), ref, rtol=1e-6, atol=0, msg=k)


def test_gradients_flow_to_the_predictions(golden):
    case = golden["cases"]["mask2former"]
    cls = case["cls"][-2:].double().requires_grad_()
    masks = case["masks"][-2:].double().requires_grad_()
    torch.manual_seed(0)
    losses = mask_classification_losses(cls, masks, case["label"].long(), 255, _config(case))
    sum(losses.values()).backward()
    assert cls.grad.abs().sum() > 0 and masks.grad.abs().sum() > 0
    assert torch.all(masks.grad[:, 2] == 0)  # the all-ignored image has no target: its masks get no gradient


def test_segmentor_trains_mask2former_with_this_loss():
    """Wiring: Segmentor.loss (the trainer's call) sums the head's weighted reference terms (loss weight 1.0),
    which are mask_classification_losses of forward_heads' outputs with the same random points."""
    from sszoo.models import ArchConfig, build_model
    from sszoo.models.backbones.resnet import ResNetConfig
    from sszoo.models.heads.mask2former import Mask2FormerHeadConfig

    head = Mask2FormerHeadConfig(in_channels=(64, 128, 256, 512), feat_channels=32, out_channels=32, num_queries=5,
                                 num_groups=8, pos_num_feats=16, encoder_layers=1, encoder_heads=4,
                                 encoder_ffn_channels=64, decoder_layers=2, decoder_heads=4, decoder_ffn_channels=64,
                                 num_points=200)
    backbone = ResNetConfig(depth=18, deep_stem=False, strides=(1, 2, 2, 2), dilations=(1, 1, 1, 1))
    torch.manual_seed(0)
    model = build_model(ArchConfig(backbone=backbone, decode_head=head, num_classes=4)).double()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    label = torch.randint(0, 4, (2, 64, 64))
    label[1, :20] = 255
    outputs = model.forward_heads(x)
    cls_preds, mask_preds = outputs.decode[0]
    assert len(cls_preds) == len(mask_preds) == 3 and mask_preds[0].shape == (2, 5, 16, 16)
    torch.manual_seed(7)
    losses = model.loss(outputs, label)
    torch.manual_seed(7)
    terms = mask_classification_losses(cls_preds, mask_preds, label, 255, model.decode_head.loss_settings())
    assert set(terms) == {f"{p}loss_{t}" for p in ("", "d0.", "d1.") for t in ("cls", "mask", "dice")}
    torch.testing.assert_close(losses["decode"], torch.stack(list(terms.values())).sum(), rtol=1e-14, atol=0)
    losses["total"].backward()
    assert model.decode_head.cls_embed.weight.grad.abs().sum() > 0
    assert model.decode_head.query_feat.weight.grad.abs().sum() > 0


def test_converter_refuses_other_matchers():
    """tools/mmseg_arch.py: the matcher's cost weights must be the loss weights (sszoo has no separate ones)."""
    import copy
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.join(root, "tools"))
    from mmseg_arch import Unsupported, arch_from_mmseg

    with open(os.path.join(root, "tools", "reference", "mmseg_configs.json")) as f:
        configs = json.load(f)["configs"]
    model = configs["configs/mask2former/mask2former_r50_8xb2-90k_cityscapes-512x1024.py"]["model"]
    arch_from_mmseg(copy.deepcopy(model))  # converts as it is
    for edit in ("weight", "eps"):
        m = copy.deepcopy(model)
        m["decode_head"]["train_cfg"]["assigner"]["match_costs"][2][edit] = 3.0
        with pytest.raises(Unsupported, match="matcher"):
            arch_from_mmseg(m)


def test_segmentor_trains_maskformer_with_this_loss():
    """MaskFormer's head trains with the settings the golden checked against the reference (MASKFORMER_LOSS:
    focal mask loss and Dice at mask resolution), summed by Segmentor.loss; gradients reach the queries."""
    import dataclasses

    import sszoo
    from sszoo.models.mask_losses import MASKFORMER_LOSS

    name = sszoo.list_models("maskformer_r50*")[0]
    torch.manual_seed(0)
    model = sszoo.create_model(name, num_classes=4)
    head = model.decode_head
    assert dataclasses.asdict(head.loss_settings()) == dataclasses.asdict(MASKFORMER_LOSS)
    model.train()
    x = torch.randn(1, 3, 64, 64)
    label = torch.randint(0, 4, (1, 64, 64))
    label[0, :16] = 255
    outputs = model.forward_heads(x)
    cls_preds, mask_preds = outputs.decode[0]
    torch.manual_seed(3)
    losses = model.loss(outputs, label)
    torch.manual_seed(3)
    terms = mask_classification_losses(cls_preds, mask_preds, label, 255, MASKFORMER_LOSS)
    assert len(terms) == 3 * len(cls_preds)
    torch.testing.assert_close(losses["decode"], torch.stack(list(terms.values())).sum(), rtol=1e-6, atol=0)
    losses["total"].backward()
    assert head.query_embed.weight.grad.abs().sum() > 0 and head.cls_embed.weight.grad.abs().sum() > 0
