"""ConvNeXt and PoolFormer (MMPretrain 1.2.0 backbones): the logic the golden logits do not pin down alone.

Odd sizes (the unpadded ConvNeXt stem floors them, PoolFormer's padded embeddings round up), the too-small
input refusal, the channels-first LayerNorm and the pooling mixer against hand computation, drop path (the
reference's float32 rates; identity in eval mode), layer scale switched off, PoolFormer's always-frozen input
embedding, key order, and the converters' architecture tables and refusals.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

from sszoo.models.backbones import ConvNeXt, ConvNeXtConfig, PoolFormer, PoolFormerConfig
from sszoo.models.backbones import convnext as cn
from sszoo.models.backbones import poolformer as pf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from mmseg_arch import Unsupported, _CONVNEXT_ARCHS, _POOLFORMER_ARCHS, _convnext, _poolformer  # noqa: E402

TINY = dict(depths=(1, 1, 2, 1), channels=(8, 16, 24, 32))


def test_convnext_floors_odd_sizes_and_refuses_small_inputs():
    torch.manual_seed(0)
    model = ConvNeXt(**TINY).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 49, 67))
    # 4x4/4 stem then 2x2/2: floor(49 / 4) = 12, 6, 3, 1; floor(67 / 4) = 16, 8, 4, 2
    assert [tuple(o.shape) for o in outs] == [(2, 8, 12, 16), (2, 16, 6, 8), (2, 24, 3, 4), (2, 32, 1, 2)]
    assert model.out_channels == [8, 16, 24, 32]
    with pytest.raises(ValueError, match="at least 32 x 32"):
        model(torch.randn(1, 3, 31, 64))
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 35))[-1].shape[2:] == (1, 1)


def test_layernorm2d_normalises_channels_of_each_pixel():
    torch.manual_seed(0)
    ln = cn.LayerNorm2d(5)
    with torch.no_grad():
        ln.weight.copy_(torch.randn(5))
        ln.bias.copy_(torch.randn(5))
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    ln = ln.double()
    mean = x.mean(1, keepdim=True)
    var = ((x - mean) ** 2).mean(1, keepdim=True)  # biased variance, eps 1e-6
    expected = (x - mean) / torch.sqrt(var + 1e-6) * ln.weight.view(1, -1, 1, 1) + ln.bias.view(1, -1, 1, 1)
    out = ln(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    assert out.is_contiguous() and ln.eps == 1e-6
    with pytest.raises(ValueError, match="N x C x H x W"):
        ln(torch.randn(5, 3, 4))


def test_convnext_drop_path_rates_are_the_references_float32_linspace():
    model = ConvNeXt(depths=(3, 3, 9, 3), channels=(8, 8, 8, 8), drop_path_rate=0.4, out_indices=(3,))
    rates = [0.0 if isinstance(b.drop_path, torch.nn.Identity) else b.drop_path.drop_prob
             for s in model.stages for b in s]
    expected = [float(v) for v in np.linspace(0, 0.4, 18, dtype=np.float32)]
    assert rates == pytest.approx(expected, rel=0, abs=1e-7)
    assert isinstance(model.stages[0][0].drop_path, torch.nn.Identity)  # rate 0: no module drawing numbers
    assert rates[-1] == float(np.float32(0.4))  # a float32 number, as the reference's .item()
    assert model.out_channels == [8] and not hasattr(model, "norm0") and hasattr(model, "norm3")


def test_drop_path_is_identity_in_eval_and_per_sample_in_training():
    torch.manual_seed(0)
    plain = ConvNeXt(**TINY)
    dropped = ConvNeXt(**TINY, drop_path_rate=0.5)
    dropped.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 40, 44)
    with torch.no_grad():
        for a, b in zip(plain.eval()(x), dropped.eval()(x)):
            assert torch.equal(a, b)
    d = cn.DropPath(0.25).train()
    y = d(torch.ones(64, 3, 2, 2, dtype=torch.float64))
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) <= {0.0, 1 / 0.75}
    assert torch.equal(per_sample.min(1).values, per_sample.max(1).values)  # one decision per sample


def test_convnext_layer_scale_off_and_key_order():
    keys = list(cn.ConvNeXtBlock(8, layer_scale_init_value=0.0).state_dict())
    assert "gamma" not in keys
    keys = list(cn.ConvNeXtBlock(8, layer_scale_init_value=1.0).state_dict())
    # the block's own parameter comes before its children's, as in the reference's checkpoints
    assert keys == ["gamma", "depthwise_conv.weight", "depthwise_conv.bias", "norm.weight", "norm.bias",
                    "pointwise_conv1.weight", "pointwise_conv1.bias", "pointwise_conv2.weight", "pointwise_conv2.bias"]
    top = [k.split(".")[0] for k in ConvNeXt(**TINY).state_dict()]
    assert list(dict.fromkeys(top)) == ["downsample_layers", "stages", "norm0", "norm1", "norm2", "norm3"]


def test_convnext_negative_out_indices_and_frozen_stages():
    model = ConvNeXt(**TINY, out_indices=(-1, 1), frozen_stages=2)
    assert model.out_indices == (3, 1) and model.out_channels == [16, 32]
    model.train()
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(("downsample_layers.0", "downsample_layers.1", "stages.0", "stages.1"))
                          for n in frozen)
    assert not model.stages[1].training and model.stages[2].training
    with pytest.raises(ValueError, match="out_indices"):
        ConvNeXt(**TINY, out_indices=(4,))


def test_pooling_mixer_averages_inside_the_image_only():
    x = torch.arange(12, dtype=torch.float64).reshape(1, 1, 3, 4)
    out = pf.Pooling(3)(x)
    # corner (0, 0): mean of x[0:2, 0:2] = (0 + 1 + 4 + 5) / 4, minus x; edge (0, 1): 6 pixels; centre: 9
    assert out[0, 0, 0, 0].item() == pytest.approx(10 / 4 - 0)
    assert out[0, 0, 0, 1].item() == pytest.approx((0 + 1 + 2 + 4 + 5 + 6) / 6 - 1)
    assert out[0, 0, 1, 1].item() == pytest.approx(sum([0, 1, 2, 4, 5, 6, 8, 9, 10]) / 9 - 5)


def test_poolformer_odd_sizes_out_indices_and_norms():
    torch.manual_seed(0)
    model = PoolFormer((1, 1, 1, 1), (8, 16, 24, 32)).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 37, 53))
    # 7x7/4 pad 2: floor((37 + 4 - 7) / 4) + 1 = 9, floor(50 / 4) + 1 = 13; then 3x3/2 pad 1 rounds up
    assert [tuple(o.shape) for o in outs] == [(2, 8, 9, 13), (2, 16, 5, 7), (2, 24, 3, 4), (2, 32, 2, 2)]
    assert [type(getattr(model, f"norm{i}")).__name__ for i in (0, 2, 4, 6)] == ["GroupNorm"] * 4
    assert model.norm4.num_groups == 1 and model.norm4.eps == 1e-5
    # an output index may be a downsampling (odd), normalised at the next stage's width, as the reference
    odd = PoolFormer((1, 1, 1, 1), (8, 16, 24, 32), out_indices=(1, -1))
    assert odd.out_indices == (1, 6) and odd.out_channels == [16, 32]
    with pytest.raises(ValueError, match="every two stages"):
        PoolFormer((1, 1), (8, 8), (4, 4))
    with torch.no_grad():  # tiny inputs still work (the padded embeddings never reach zero pixels)
        assert model(torch.randn(1, 3, 3, 5))[-1].shape[2:] == (1, 1)


def test_poolformer_input_embedding_never_trains():
    model = PoolFormer((1, 1, 1, 1), (8, 16, 24, 32))
    model.train()
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"patch_embed.proj.weight", "patch_embed.proj.bias"}  # frozen_stages=0 freezes it too
    deeper = PoolFormer((1, 1, 1, 1), (8, 16, 24, 32), frozen_stages=2).train()
    frozen = {n.split(".")[0] + ("." + n.split(".")[1] if n.startswith("network") else "")
              for n, p in deeper.named_parameters() if not p.requires_grad}
    assert frozen == {"patch_embed", "network.0", "network.1", "norm0"}
    block = list(pf.PoolFormerBlock(8).state_dict())
    assert block[:2] == ["layer_scale_1", "layer_scale_2"]  # own parameters first, as the reference


def test_poolformer_block_by_hand():
    torch.manual_seed(0)
    block = pf.PoolFormerBlock(4, layer_scale_init_value=0.5).double().eval()
    x = torch.randn(1, 4, 5, 6, dtype=torch.float64)
    gn = torch.nn.functional.group_norm
    n1 = gn(x, 1, block.norm1.weight, block.norm1.bias, 1e-5)
    pooled = torch.nn.functional.avg_pool2d(n1, 3, 1, 1, count_include_pad=False)
    y = x + 0.5 * (pooled - n1)
    mlp = block.mlp
    h = mlp.fc2(torch.nn.functional.gelu(mlp.fc1(gn(y, 1, block.norm2.weight, block.norm2.bias, 1e-5))))
    torch.testing.assert_close(block(x), y + 0.5 * h, rtol=0, atol=1e-12)


def test_converter_tables_match_the_modules_and_refuse_variants():
    for name, (depths, channels) in _CONVNEXT_ARCHS.items():
        assert (tuple(depths), tuple(channels)) == cn.ARCHS[name]
        assert ConvNeXtConfig.from_arch(name).channels == tuple(channels)
    for name, rec in _POOLFORMER_ARCHS.items():
        assert PoolFormerConfig.from_arch(name).layers == tuple(rec["layers"])
        assert PoolFormerConfig.from_arch(name).layer_scale_init_value == rec["layer_scale_init_value"]
    base = dict(type="mmpretrain.ConvNeXt", arch="tiny", gap_before_final_norm=False, out_indices=[0, 1, 2, 3])
    assert _convnext(base)["channels"] == [96, 192, 384, 768]
    assert _convnext(dict(base, out_indices=-1))["out_indices"] == [3]
    for bad in (dict(use_grn=True), dict(gap_before_final_norm=True), dict(linear_pw_conv=False),
                dict(norm_cfg=dict(type="LN2d", eps=1e-5)), dict(arch="gigantic")):
        with pytest.raises(Unsupported):
            _convnext(dict(base, **bad))
    with pytest.raises(Unsupported):
        _convnext({k: v for k, v in base.items() if k != "gap_before_final_norm"})  # the reference's default: True
    pbase = dict(type="mmpretrain.PoolFormer", arch="m36", out_indices=[0, 2, 4, 6])
    rec = _poolformer(pbase)
    assert rec["embed_dims"] == [96, 192, 384, 768] and rec["layer_scale_init_value"] == 1e-6
    assert _poolformer(dict(pbase, out_indices=-1))["out_indices"] == [6]
    for bad in (dict(norm_cfg=dict(type="BN")), dict(act_cfg=dict(type="ReLU")), dict(arch="x99")):
        with pytest.raises(Unsupported):
            _poolformer(dict(pbase, **bad))


def test_stage_wise_lr_scale_by_hand():
    """sszoo.train.optim's stage-wise ids on ConvNeXt's parameter names (tiny: num_layers 6 -> 8 groups;
    downsampling 0.9^7, stage i 0.9^(6 - i), the rest 1); tests/test_optim_groups.py checks every parameter
    against the reference's constructor."""
    from sszoo.train.optim import convnext_stage_id

    def f(name, num_layers):
        return 0.9 ** (num_layers + 2 - convnext_stage_id(name, num_layers + 2) - 1)

    assert f("backbone.downsample_layers.0.0.weight", 6) == pytest.approx(0.9 ** 7)
    assert f("backbone.stages.0.1.pointwise_conv1.weight", 6) == pytest.approx(0.9 ** 6)
    assert f("backbone.stages.3.2.gamma", 6) == pytest.approx(0.9 ** 3)
    assert f("backbone.norm3.weight", 6) == 1.0
    assert f("backbone.stages.2.20.depthwise_conv.weight", 12) == pytest.approx(0.9 ** 10)
