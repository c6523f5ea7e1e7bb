"""MobileNetV2-D8, MobileNetV3 and the LRASPP head: what the logit goldens do not pin down on their own.

The parity goldens (tests/test_parity.py, mobilenet_*) check the logits against MMSegmentation; here the
pieces are checked against expectations worked out by hand: the input size LRASPP accepts (and the error
below it), the grid of its fixed AvgPool2d(49, stride (16, 20)), TensorFlow-style "same" padding on even
sizes, MMCV's hard sigmoid, and where the dilated backbones put their strides and dilations.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sszoo.models import ArchConfig, build_model
from sszoo.models.backbones.mobilenet_v2 import MobileNetV2, make_divisible
from sszoo.models.backbones.mobilenet_v3 import HSigmoid, MobileNetV3, SamePadConv2d
from sszoo.models.heads.lraspp import LRASPPHead

torch.set_num_threads(1)


def _lraspp_small(num_classes: int = 3):
    return build_model(ArchConfig.from_dict(dict(
        backbone=dict(kind="mobilenet_v3", arch="small", out_indices=[0, 1, 12], norm_eps=1e-3),
        decode_head=dict(kind="lraspp", in_channels=[16, 16, 576], channels=16, in_index=[0, 1, 2], norm_eps=1e-3),
        auxiliary_head=None, num_classes=num_classes, align_corners=False))).eval()


def test_lraspp_accepts_385_px_and_names_it_below():
    model = _lraspp_small()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 385, 387)).shape == (1, 3, 385, 387)  # ceil(385 / 8) = 49: one pool cell
        for h, w in ((384, 400), (400, 384), (97, 131)):  # a 48-pixel side somewhere
            with pytest.raises(ValueError, match=r"at least 385 x 385 px"):
                model(torch.randn(1, 3, h, w))


def test_lraspp_image_pool_grid_is_kernel_49_stride_16_20():
    head = LRASPPHead((4, 4, 6), 8, 2, branch_channels=(2, 2)).eval()
    x = torch.randn(1, 6, 64, 128, dtype=torch.float64)  # the stride-8 map of a 512 x 1024 Cityscapes crop
    pooled = head.image_pool[0](x)
    # floor((64 - 49) / 16) + 1 = 1 row, floor((128 - 49) / 20) + 1 = 4 columns
    assert pooled.shape == (1, 6, 1, 4)
    for j in range(4):
        assert torch.allclose(pooled[0, :, 0, j], x[0, :, :49, 20 * j:20 * j + 49].mean(dim=(1, 2)), rtol=0, atol=1e-12)


def test_same_padding_puts_the_odd_pixel_at_the_end():
    torch.manual_seed(0)
    conv = SamePadConv2d(2, 3, 5, stride=2).double()
    for n, pads in ((10, (1, 2)), (11, (2, 2))):  # even: 3 = 1 + 2; odd: 4 = 2 + 2
        x = torch.randn(1, 2, n, n + 1, dtype=torch.float64)
        pw = (2, 2) if (n + 1) % 2 else (1, 2)
        expected = F.conv2d(F.pad(x, [*pw, *pads]), conv.weight, stride=2)
        out = conv(x)
        assert out.shape[-2:] == (math.ceil(n / 2), math.ceil((n + 1) / 2))
        assert torch.equal(out, expected)


def test_hsigmoid_is_mmcv_clamp_of_x_plus_3_over_6():
    x = torch.tensor([-4.0, -3.0, -1.5, 0.0, 1.5, 3.0, 4.0], dtype=torch.float64)
    assert torch.equal(HSigmoid()(x), torch.tensor([0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0], dtype=torch.float64))


def test_make_divisible_rounds_to_multiples_of_8():
    assert [make_divisible(v, 8) for v in (32, 16 * 0.5, 72 // 4, 88 // 4, 120 // 4, 10)] == [32, 8, 24, 24, 32, 16]


def test_mobilenet_v2_d8_dilates_only_the_first_block_of_a_stage():
    net = MobileNetV2(strides=(1, 2, 2, 1, 1, 1, 1), dilations=(1, 1, 1, 2, 2, 4, 4)).eval()
    assert net.out_channels == [24, 32, 96, 320]
    for stage, d in ((4, 2), (5, 2), (6, 4), (7, 4)):
        blocks = getattr(net, f"layer{stage}")
        assert blocks[0].conv[1].conv.dilation == (d, d) and blocks[0].conv[1].conv.padding == (d, d)
        assert all(b.conv[1].conv.dilation == (1, 1) for b in blocks[1:])  # as MMSegmentation builds it
    assert [len(getattr(net, f"layer{i}")[0].conv) for i in (1, 2)] == [2, 3]  # no expansion conv at ratio 1
    with torch.no_grad():
        outs = net(torch.randn(1, 3, 65, 97))
    # stem and two stride-2 stages, each 3x3 pad 1: n -> floor((n - 1) / 2) + 1
    assert [tuple(o.shape[1:]) for o in outs] == [(24, 17, 25), (32, 9, 13), (96, 9, 13), (320, 9, 13)]


@pytest.mark.parametrize("arch, out_indices, channels", [("large", (1, 3, 16), [16, 24, 960]),
                                                        ("small", (0, 1, 12), [16, 16, 576])])
def test_mobilenet_v3_d8_strides_and_dilations(arch, out_indices, channels):
    net = MobileNetV3(arch, out_indices=out_indices, norm_eps=1e-3).eval()
    assert net.out_channels == channels
    assert all(m.eps == 1e-3 for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    first2, first4 = (7, 13) if arch == "large" else (4, 9)
    for i in range(1, net.n_layers - 1):
        conv = getattr(net, f"layer{i}").depthwise_conv.conv
        d = 4 if i >= first4 else 2 if i >= first2 else 1
        assert conv.dilation == (d, d)
        assert conv.stride[0] == 1 or i < first2
    with torch.no_grad():
        outs = net(torch.randn(1, 3, 66, 91))
    # "same" padding: ceil(n / 2) per stride-2 conv, output stride 2, 4, 8
    sizes = [(33, 46), (17, 23), (9, 12)]
    assert [tuple(o.shape[-2:]) for o in outs] == sizes
