"""PointRend's point head against MMSegmentation 1.2.2 (goldens from tools/make_point_head_golden.py, the same
weights and inputs): the training pass samples the same points (same RNG seed) and gives the same point loss;
the subdivision inference selects the same uncertain pixels and gives the same refined logits (float64)."""
import os

import pytest
import torch

from sszoo.models.heads import PointHead

GOLDEN = torch.load(os.path.join(os.path.dirname(__file__), "golden", "heads", "point_head.pt"), weights_only=True)


@pytest.mark.parametrize("name", sorted(GOLDEN["loss"]))
def test_point_loss_matches_reference(name):
    c = GOLDEN["loss"][name]
    cfg = c["train_cfg"]
    head = PointHead((16,), 24, 5, in_index=(0,), num_fcs=3, align_corners=c["align_corners"],
                     num_points=cfg["num_points"], oversample_ratio=cfg["oversample_ratio"],
                     importance_sample_ratio=cfg["importance_sample_ratio"])
    head.load_state_dict(c["state_dict"], strict=True)  # the reference's keys, unchanged
    head.train()
    torch.manual_seed(c["seed"])
    output = head([c["feat"]], c["coarse"])
    assert output[0].shape == (c["feat"].shape[0], 5, cfg["num_points"])
    loss = head.loss(output, c["label"])["point_ce"]
    assert torch.allclose(loss, c["loss"], rtol=1e-5, atol=1e-6), (loss.item(), c["loss"].item())
    loss.backward()  # the loss reaches the MLP and the coarse logits' sampling is differentiable
    assert head.fc_seg.weight.grad is not None


@pytest.mark.parametrize("name", sorted(GOLDEN["predict"]))
def test_subdivision_inference_matches_reference(name):
    c = GOLDEN["predict"][name]
    cfg = c["test_cfg"]
    head = PointHead((16,), 24, 5, in_index=(0,), num_fcs=3, align_corners=c["align_corners"],
                     subdivision_steps=cfg["subdivision_steps"], subdivision_num_points=cfg["subdivision_num_points"],
                     scale_factor=cfg["scale_factor"])
    head.load_state_dict(c["state_dict"], strict=True)
    head.double().eval()
    with torch.no_grad():
        logits = head.predict([c["feat"]], c["coarse"])
    assert logits.shape == c["logits"].shape
    # fewer points than pixels: a wrongly selected pixel would differ by O(1)
    assert cfg["subdivision_num_points"] < logits.shape[2] * logits.shape[3]
    assert (logits - c["logits"]).abs().max().item() < 1e-10


def test_reset_classifier_rebuilds_the_mlp():
    head = PointHead((16,), 24, 5)
    head.reset_classifier(3)
    logits = head.predict([torch.randn(1, 16, 6, 7)], torch.randn(1, 3, 6, 7))
    assert logits.shape == (1, 3, 24, 28)


def test_pointrend_cascade_trains_through_the_segmentor():
    """FPN neck -> [FPNHead, PointHead]: the training pass gives the coarse head's CE and the point CE."""
    from sszoo.models import ArchConfig, build_model
    from sszoo.models.backbones import ResNetConfig
    from sszoo.models.heads import FPNHeadConfig, PointHeadConfig
    from sszoo.models.necks import FPNConfig

    arch = ArchConfig(backbone=ResNetConfig(depth=18, strides=(1, 2, 2, 2), dilations=(1, 1, 1, 1)),
                      neck=FPNConfig(in_channels=(64, 128, 256, 512), out_channels=16),
                      decode_head=(FPNHeadConfig(in_channels=(16,) * 4, channels=8, dropout=0.0),
                                   PointHeadConfig(in_channels=(16,), channels=8, num_points=30)),
                      num_classes=4)
    model = build_model(arch).train()
    torch.manual_seed(0)
    x, label = torch.randn(2, 3, 45, 61), torch.randint(0, 4, (2, 45, 61))
    outputs = model.forward_heads(x)
    assert outputs.decode[0].shape == (2, 4, 12, 16) and outputs.decode[1][0].shape == (2, 4, 30)
    losses = model.loss(outputs, label)
    losses["total"].backward()
    assert torch.isfinite(losses["total"]) and model.decode_heads[1].fc_seg.weight.grad is not None
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 4, 45, 61)
