"""Method-specific behaviour of the real-time backbones Fast-SCNN, CGNet and ERFNet, checked against
independent expectations (the golden files in tests/golden/parity check the whole networks' logits)."""
from __future__ import annotations

import os
import sys

import pytest
import torch
import torch.nn.functional as F

from sszoo.models.backbones.cgnet import CGNet, InputInjection
from sszoo.models.backbones.erfnet import ERFNet, NonBottleneck1d
from sszoo.models.backbones.fast_scnn import FastSCNN
from sszoo.models.backbones._conv import DepthwiseSeparableConv

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from mmseg_arch import Unsupported, arch_from_mmseg  # noqa: E402

torch.set_num_threads(1)


def _ceil_div(n: int, k: int) -> int:
    return -(-n // k)


def _randomise_bn(model: torch.nn.Module, g: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(1.0 + 0.2 * torch.rand(m.running_var.shape, generator=g))


# ------------------------------------------------------------------------------------------------ CGNet


@pytest.mark.parametrize("hw", [(37, 53), (40, 41)])
def test_cgnet_input_injection_is_a_zero_padded_3x3_mean_at_odd_sizes(hw):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, *hw, generator=g, dtype=torch.float64)
    # the 3x3 stride-2 mean with the zero padding counted: a box filter of 1/9 over the zero-padded image
    box = torch.full((3, 1, 3, 3), 1 / 9, dtype=torch.float64)
    once = F.conv2d(F.pad(x, (1, 1, 1, 1)), box, stride=2, groups=3)
    twice = F.conv2d(F.pad(once, (1, 1, 1, 1)), box, stride=2, groups=3)
    assert once.shape[2:] == (_ceil_div(hw[0], 2), _ceil_div(hw[1], 2))
    torch.testing.assert_close(InputInjection(1)(x), once, rtol=0, atol=1e-12)
    torch.testing.assert_close(InputInjection(2)(x), twice, rtol=0, atol=1e-12)


def test_cgnet_concatenates_the_image_at_every_odd_size():
    # the injected image meets the stride-2 convs' ceil(n/2) maps, so any size runs; the channel counts are
    # stem + 3 (image), 2 x level-1 + 3 (image), 2 x level-2
    model = CGNet(num_channels=(8, 16, 32), num_blocks=(2, 2), reductions=(4, 8)).eval()
    for h, w in [(33, 47), (31, 30), (17, 19)]:
        with torch.no_grad():
            feats = model(torch.randn(1, 3, h, w))
        assert [f.shape[1] for f in feats] == [8 + 3, 2 * 16 + 3, 2 * 32] == model.out_channels
        assert [tuple(f.shape[2:]) for f in feats] == [(_ceil_div(h, s), _ceil_div(w, s)) for s in (2, 4, 8)]


def test_cgnet_global_context_weights_each_image_by_its_own_mean():
    model = CGNet(num_channels=(8, 16, 32), num_blocks=(1, 2), reductions=(4, 8)).eval()
    x = torch.randn(2, 3, 29, 35)
    with torch.no_grad():
        both = model(x)[-1]
        alone = model(x[1:])[-1]
    torch.testing.assert_close(both[1:], alone, rtol=1e-5, atol=1e-6)


def test_cgnet_batchnorm_eps_comes_from_the_config():
    model = CGNet(num_channels=(8, 16, 32), num_blocks=(1, 1), reductions=(4, 8), norm_eps=1e-3)
    eps = {m.eps for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert eps == {1e-3}


# ---------------------------------------------------------------------------------------------- ERFNet


@pytest.mark.parametrize("dilation", [1, 4])
def test_erfnet_non_bottleneck_has_one_plain_and_one_dilated_factorised_pair(dilation):
    # with every ReLU active the block is linear around x: a changed pixel reaches the offsets
    # {i + j*d : i, j in -1, 0, 1} along each axis (3x1 and 1x3 taps, one pair undilated, one dilated by d),
    # so for d = 4 rows and columns 2 away stay unchanged (dilating both pairs or neither reaches others)
    torch.manual_seed(1)
    g = torch.Generator().manual_seed(1)
    block = NonBottleneck1d(8, 0.0, dilation).double().eval()
    _randomise_bn(block, g)
    with torch.no_grad():  # positive biases keep every ReLU active, so no path of the change is cut off
        for m in block.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d)):
                m.bias.fill_(5.0)
    x = torch.randn(1, 8, 31, 31, generator=g, dtype=torch.float64)
    y = x.clone()
    y[..., 15, 15] += 1.0
    with torch.no_grad():
        changed = (block(y) - block(x)).abs().amax(1)[0] > 1e-12
    offsets = sorted({i + j * dilation for i in (-1, 0, 1) for j in (-1, 0, 1)})
    expect = torch.zeros(31, 31, dtype=torch.bool)
    for a in offsets:
        for b in offsets:
            expect[15 + a, 15 + b] = True
    assert torch.equal(changed, expect)


@pytest.mark.parametrize("hw", [(37, 53), (48, 64)])
def test_erfnet_output_is_four_times_its_one_eighth_map(hw):
    # stride-2 convs give ceil(n/2) three times (the max pool's floor(n/2) map is resized to it); each
    # transposed conv then exactly doubles, so the output is 4 x ceil(n/8), not n/2
    model = ERFNet(enc_stage_non_bottlenecks=(1, 4), dec_stages_non_bottleneck=(1, 1)).eval()
    with torch.no_grad():
        (out,) = model(torch.randn(1, 3, *hw))
    assert out.shape == (1, 16, 4 * _ceil_div(hw[0], 8), 4 * _ceil_div(hw[1], 8))


def test_erfnet_downsampler_keeps_the_max_pool_at_even_sizes():
    block = ERFNet(enc_stage_non_bottlenecks=(1, 4), dec_stages_non_bottleneck=(1, 1)).encoder[0].double().eval()
    x = torch.randn(1, 3, 20, 26, dtype=torch.float64)
    with torch.no_grad():
        out = block(x)
    bn = block.bn
    # undo BN + ReLU on the pooled channels (13 conv channels, then 3 pooled): a plain 2x2 max pool
    pooled = F.max_pool2d(x, 2)
    expect = F.relu((pooled - bn.running_mean[13:, None, None]) / torch.sqrt(bn.running_var[13:, None, None] + bn.eps)
                    * bn.weight[13:, None, None] + bn.bias[13:, None, None])
    torch.testing.assert_close(out[:, 13:], expect, rtol=0, atol=1e-12)


# -------------------------------------------------------------------------------------------- Fast-SCNN


def test_fast_scnn_depthwise_separable_conv_has_no_activation_after_the_depthwise_conv():
    g = torch.Generator().manual_seed(2)
    m = DepthwiseSeparableConv(4, 6, 3, padding=1).double().eval()
    _randomise_bn(m, g)
    x = torch.randn(1, 4, 9, 11, generator=g, dtype=torch.float64)
    dw, pw = m.depthwise_conv, m.pointwise_conv
    mid = F.batch_norm(F.conv2d(x, dw.conv.weight, padding=1, groups=4), dw.bn.running_mean, dw.bn.running_var,
                       dw.bn.weight, dw.bn.bias, eps=dw.bn.eps)
    assert (mid < 0).any()  # a ReLU here would change the result
    expect = F.relu(F.batch_norm(F.conv2d(mid, pw.conv.weight), pw.bn.running_mean, pw.bn.running_var,
                                 pw.bn.weight, pw.bn.bias, eps=pw.bn.eps))
    with torch.no_grad():
        torch.testing.assert_close(m(x), expect, rtol=0, atol=1e-12)


def test_fast_scnn_runs_when_its_pyramid_bins_exceed_the_map():
    # at 41 x 57 the 1/32 map is 2 x 2: the 3- and 6-bin poolings repeat pixels (PyTorch's adaptive bins)
    model = FastSCNN().eval()
    with torch.no_grad():
        higher, lower, fused = model(torch.randn(1, 3, 41, 57))
    assert higher.shape[2:] == fused.shape[2:] == (6, 8)
    assert lower.shape == (1, 128, 2, 2)


# ------------------------------------------------------------------------------------------- converters


def test_converters_refuse_variants_sszoo_does_not_build():
    base = {"decode_head": {"type": "FCNHead", "in_channels": 256, "channels": 256, "num_classes": 19,
                            "num_convs": 0, "concat_input": False}}
    with pytest.raises(Unsupported):
        arch_from_mmseg(dict(base, backbone={"type": "CGNet", "in_channels": 4}))
    with pytest.raises(Unsupported):
        arch_from_mmseg(dict(base, backbone={"type": "FastSCNN", "dw_act_cfg": {"type": "ReLU"}}))
    arch = arch_from_mmseg(dict(base, backbone={"type": "CGNet", "norm_cfg": {"type": "SyncBN", "eps": 1e-3}}))
    assert arch["backbone"]["norm_eps"] == 1e-3


# ------------------------------------------------------------------------------------------------ losses


def _published(config: str, num_classes: int | None = None):
    import json

    from sszoo.models import ArchConfig, build_model

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "tools", "reference", "mmseg_configs.json")) as f:
        model_cfg = json.load(f)["configs"][config]["model"]
    arch = ArchConfig.from_dict(arch_from_mmseg(model_cfg))
    return build_model(arch if num_classes is None else arch.with_num_classes(num_classes))


def _label(shape, num_classes: int, g: torch.Generator) -> torch.Tensor:
    label = torch.randint(0, num_classes, shape, generator=g)
    label[:, :3] = 255  # some ignored pixels
    return label


def test_fast_scnn_trains_every_head_with_sigmoid_cross_entropy_at_its_weight():
    # the published config: use_sigmoid=True CrossEntropyLoss on the decode head (weight 1) and on both FCN
    # auxiliary heads (0.4 each); sigmoid CE is the mean over N x K x H x W of the per-class binary CE against
    # one-hot targets, zero at ignored pixels
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    model = _published("configs/fastscnn/fast_scnn_8xb4-160k_cityscapes-512x1024.py", num_classes=4).train()
    x = torch.randn(2, 3, 45, 61, generator=g)
    label = _label((2, 45, 61), 4, g)
    outs = model.forward_heads(x)
    losses = model.loss(outs, label)

    def sigmoid_ce(logits):
        z = F.interpolate(logits, size=label.shape[-2:], mode="bilinear", align_corners=False)
        valid = label != 255
        onehot = torch.stack([(label == k) & valid for k in range(4)], 1).float()
        per = F.softplus(z) - onehot * z  # -[y log s(z) + (1 - y) log(1 - s(z))]
        return (per * valid[:, None]).sum() / per.numel()

    torch.testing.assert_close(losses["decode"], sigmoid_ce(outs.decode[0]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(losses["aux"], 0.4 * sigmoid_ce(outs.aux[0]) + 0.4 * sigmoid_ce(outs.aux[1]),
                               rtol=1e-5, atol=1e-6)


def test_cgnet_trains_with_its_class_weighted_cross_entropy():
    # CrossEntropyLoss(class_weight=19 weights), averaged over *all* label pixels (not the weights' sum)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(4)
    model = _published("configs/cgnet/cgnet_fcn_4xb4-60k_cityscapes-680x680.py").train()
    (spec,) = model.decode_head.loss_specs
    weights = torch.tensor(spec.class_weight)
    assert weights.shape == (19,) and abs(weights[0].item() - 2.5959933) < 1e-6
    x = torch.randn(1, 3, 33, 41, generator=g)
    label = _label((1, 33, 41), 19, g)
    outs = model.forward_heads(x)
    z = F.interpolate(outs.decode[0], size=label.shape[-2:], mode="bilinear", align_corners=False)
    valid = label != 255
    nll = -torch.log_softmax(z, 1).gather(1, torch.where(valid, label, 0)[:, None])[:, 0]
    expect = (weights[torch.where(valid, label, 0)] * nll * valid).sum() / label.numel()
    torch.testing.assert_close(model.loss(outs, label)["total"], expect, rtol=1e-5, atol=1e-6)
