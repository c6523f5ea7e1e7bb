"""SegFormer (sszoo.models.backbones.mit, sszoo.models.heads.segformer_head) piece by piece, against independent
computations.

The whole networks are checked against MMSegmentation by the golden cases (tests/test_parity.py and
tests/test_inference.py: *segformer_*) and their layouts by tests/test_zoo_architectures.py; here: the efficient
attention against torch's own nn.MultiheadAttention, Mix-FFN against a hand-written 3x3 neighbourhood sum, the
overlapping patch embeddings' token counts at odd sizes, the smallest input, the reference's key names and
registration order, the stochastic-depth rates and the converter's refusals.
"""
from __future__ import annotations

import json
import math
import os
import sys

import pytest
import torch
from torch import nn
import torch.nn.functional as F

from sszoo.models.backbones.mit import (EfficientAttention, MiTConfig, MixFFN, MixVisionTransformer,
                                        OverlapPatchEmbed, min_input_side)
from sszoo.models.heads.segformer_head import SegformerHead

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from mmseg_arch import Unsupported, arch_from_mmseg  # noqa: E402

B0 = dict(embed_dims=32, num_layers=(2, 2, 2, 2))


def _randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
    return module


@pytest.mark.parametrize("sr_ratio,hw,keys", [(2, (5, 7), (2, 3)), (4, (9, 13), (2, 3)), (1, (3, 4), (3, 4))])
def test_efficient_attention_equals_torch_multihead_attention(sr_ratio, hw, keys):
    """The attention = nn.MultiheadAttention (the reference's module and its need_weights path) of the tokens over
    the map reduced by the strided conv (no padding: odd sides are floored), in float64 to rounding."""
    torch.manual_seed(0)
    c, heads = 12, 3
    attn = _randomise(EfficientAttention(c, heads, qkv_bias=True, sr_ratio=sr_ratio, eps=1e-6, drop_path=0.0))
    attn = attn.double().eval()
    mha = nn.MultiheadAttention(c, heads).double().eval()
    mha.load_state_dict(attn.attn.state_dict())  # the same parameter names: in_proj_weight/bias, out_proj
    x = torch.randn(2, hw[0] * hw[1], c, dtype=torch.float64)
    kv = x
    if sr_ratio > 1:
        m = attn.sr(x.transpose(1, 2).reshape(2, c, *hw))
        assert tuple(m.shape[2:]) == keys
        kv = F.layer_norm(m.flatten(2).transpose(1, 2), (c,), attn.norm.weight, attn.norm.bias, 1e-6)
    with torch.no_grad():
        expected = mha(x.transpose(0, 1), kv.transpose(0, 1), kv.transpose(0, 1))[0].transpose(0, 1)
        got = attn(x, hw)
    assert (got - expected).abs().max().item() < 1e-12


def test_efficient_attention_without_qkv_bias_and_head_check():
    attn = EfficientAttention(8, 2, qkv_bias=False, sr_ratio=1, eps=1e-6, drop_path=0.0)
    assert attn.attn.in_proj_bias is None and attn.attn.out_proj.bias is None
    assert attn(torch.randn(1, 6, 8), (2, 3)).shape == (1, 6, 8)
    with pytest.raises(ValueError, match="multiple of num_heads"):
        EfficientAttention(10, 3, qkv_bias=True, sr_ratio=1, eps=1e-6, drop_path=0.0)


def test_mix_ffn_is_pointwise_depthwise3x3_gelu_pointwise():
    """Mix-FFN on a 3 x 5 token map = Linear, then each channel's 3x3 neighbourhood sum over the zero-padded map
    (written out shift by shift), exact GELU, Linear."""
    torch.manual_seed(1)
    c, hidden, (h, w) = 4, 6, (3, 5)
    ffn = _randomise(MixFFN(c, hidden, drop_path=0.0)).double().eval()
    fc1, dw, fc2 = ffn.layers[0], ffn.layers[1], ffn.layers[4]
    x = torch.randn(2, h * w, c, dtype=torch.float64)
    t = x @ fc1.weight[:, :, 0, 0].T + fc1.bias  # (B, N, hidden)
    grid = F.pad(t.reshape(2, h, w, hidden), (0, 0, 1, 1, 1, 1))
    y = dw.bias.expand(2, h, w, hidden).clone()
    for di in range(3):
        for dj in range(3):
            y = y + grid[:, di:di + h, dj:dj + w, :] * dw.weight[:, 0, di, dj]
    y = 0.5 * y * (1 + torch.erf(y / math.sqrt(2)))
    expected = y.reshape(2, h * w, hidden) @ fc2.weight[:, :, 0, 0].T + fc2.bias
    with torch.no_grad():
        assert (ffn(x, (h, w)) - expected).abs().max().item() < 1e-12


@pytest.mark.parametrize("side,tokens", [(57, [15, 8, 4, 2]), (71, [18, 9, 5, 3]), (29, [8, 4, 2, 1]),
                                         (64, [16, 8, 4, 2]), (41, [11, 6, 3, 2])])
def test_overlapping_patch_embeds_give_ceil_of_the_stride(side, tokens):
    """The 7/4/3 then 3/2/1 embeddings pad symmetrically (no corner padding): ceil(n / 4), then ceil(n / 2) a
    stage, whatever the parity of n (hand-computed lists)."""
    model = MixVisionTransformer(**B0).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, side, side + 2))
    assert [o.shape[2] for o in outs] == tokens
    assert [o.shape[1] for o in outs] == [32, 64, 160, 256] == model.out_channels


def test_patch_embed_is_a_conv_over_the_symmetrically_zero_padded_input():
    torch.manual_seed(2)
    embed = _randomise(OverlapPatchEmbed(3, 8, 7, 4, eps=1e-6)).double()
    x = torch.randn(1, 3, 13, 10, dtype=torch.float64)
    tokens, hw = embed(x)
    conv = F.conv2d(F.pad(x, (3, 3, 3, 3)), embed.projection.weight, embed.projection.bias, stride=4)
    assert hw == (4, 3) == tuple(conv.shape[2:])
    expected = F.layer_norm(conv.flatten(2).transpose(1, 2), (8,), embed.norm.weight, embed.norm.bias, 1e-6)
    assert (tokens - expected).abs().max().item() < 1e-12


def test_smallest_input_is_named():
    """29 px: the first stage's ceil(29 / 4) = 8 tokens hold one 8 x 8 reduction window; 28 px gives 7."""
    assert min_input_side((7, 3, 3, 3), (4, 2, 2, 2), (8, 4, 2, 1)) == 29
    assert min_input_side((7, 3, 3, 3), (4, 2, 2, 2), (1, 1, 1, 1)) == 1
    model = MixVisionTransformer(**B0).eval()
    assert model.min_input_side == 29 == MiTConfig().min_input_side
    assert MiTConfig().output_stride == 32
    with torch.no_grad():
        model(torch.randn(1, 3, 29, 29))
        with pytest.raises(ValueError, match="at least 29 x 29"):
            model(torch.randn(1, 3, 28, 40))


def test_key_names_and_registration_order_are_the_reference():
    """MMSegmentation's order inside a layer: norm1, MMCV's MultiheadAttention (torch's in_proj_weight,
    in_proj_bias, out_proj; then sr, norm), norm2, Mix-FFN's layers 0, 1, 4; per stage patch embed, layers, norm."""
    model = MixVisionTransformer(**B0)
    names = [n for n, _ in model.named_parameters()]
    assert names[:4] == ["layers.0.0.projection.weight", "layers.0.0.projection.bias",
                         "layers.0.0.norm.weight", "layers.0.0.norm.bias"]
    layer = [n[len("layers.0.1.0."):] for n in names if n.startswith("layers.0.1.0.")]
    assert layer == ["norm1.weight", "norm1.bias", "attn.attn.in_proj_weight", "attn.attn.in_proj_bias",
                     "attn.attn.out_proj.weight", "attn.attn.out_proj.bias", "attn.sr.weight", "attn.sr.bias",
                     "attn.norm.weight", "attn.norm.bias", "norm2.weight", "norm2.bias", "ffn.layers.0.weight",
                     "ffn.layers.0.bias", "ffn.layers.1.weight", "ffn.layers.1.bias", "ffn.layers.4.weight",
                     "ffn.layers.4.bias"]
    assert names.index("layers.0.2.weight") == names.index("layers.1.0.projection.weight") - 2
    last = [n for n in names if n.startswith("layers.3.1.0.attn.")]  # sr_ratio 1: no reduction
    assert not any(".sr." in n or "attn.norm" in n for n in last)
    assert all(m.eps == 1e-6 for m in model.modules() if isinstance(m, nn.LayerNorm))
    head = SegformerHead((32, 64, 160, 256), 256, 5)
    assert [n for n, _ in head.named_parameters()][:2] == ["conv_seg.weight", "conv_seg.bias"]
    assert [n for n, _ in head.named_parameters()][2] == "convs.0.conv.weight"
    assert [n for n, _ in head.named_parameters()][-3:] == ["fusion_conv.conv.weight", "fusion_conv.bn.weight",
                                                            "fusion_conv.bn.bias"]
    assert head.fusion_conv.conv.in_channels == 4 * 256


def test_stochastic_depth_rates_as_the_reference():
    """float32 linspace(0, 0.1) over the 8 layers of B0, the same rate in a layer's attention and its FFN."""
    model = MixVisionTransformer(**B0, drop_path_rate=0.1)
    rates = [(b.attn.dropout_layer.drop_prob, b.ffn.dropout_layer.drop_prob) for stage in model.layers for b in stage[1]]
    expected = [r.item() for r in torch.linspace(0, 0.1, 8)]
    assert rates == [(r, r) for r in expected]
    model.eval()  # identity in eval mode
    x = torch.randn(1, 3, 33, 33)
    with torch.no_grad():
        a, b = model(x), model(x)
    assert all(torch.equal(p, q) for p, q in zip(a, b))


def test_head_fuses_levels_at_the_finest_size():
    """Levels resized to the first (given) level's size; in_index picks the maps; the output keeps that size."""
    torch.manual_seed(3)
    head = _randomise(SegformerHead((4, 6), 8, 3, in_index=(2, 0), dropout=0.0)).eval()
    feats = [torch.randn(1, 6, 9, 11), torch.randn(1, 99, 1, 1), torch.randn(1, 4, 5, 6)]
    with torch.no_grad():
        out = head(feats)
        a = head.convs[0](feats[2])
        b = head.convs[1](feats[0])
        expected = head.conv_seg(head.fusion_conv(torch.cat([a, F.interpolate(b, size=(5, 6), mode="bilinear")], 1)))
    assert out.shape == (1, 3, 5, 6)
    assert (out - expected).abs().max().item() < 1e-5
    with pytest.raises(ValueError, match="same length"):
        SegformerHead((4, 6), 8, 3, in_index=(0,))


def _segformer_models() -> dict[str, dict]:
    with open(os.path.join(ROOT, "tools", "reference", "mmseg_configs.json")) as f:
        configs = json.load(f)["configs"]
    return {p: c["model"] for p, c in configs.items() if c.get("method") == "segformer"}


def test_all_segformer_configs_convert():
    models = _segformer_models()
    assert len(models) == 13
    archs = {p: arch_from_mmseg(m) for p, m in models.items()}
    widths = {(a["backbone"]["embed_dims"], tuple(a["backbone"]["num_layers"])) for a in archs.values()}
    assert widths == {(32, (2, 2, 2, 2)), (64, (2, 2, 2, 2)), (64, (3, 4, 6, 3)), (64, (3, 4, 18, 3)),
                      (64, (3, 8, 27, 3)), (64, (3, 6, 40, 3))}  # B0 ... B5
    for a in archs.values():
        assert a["backbone"]["norm_eps"] == 1e-6 and a["backbone"]["strides"] == [4, 2, 2, 2]
        assert a["decode_head"]["kind"] == "segformer_head" and a["auxiliary_head"] is None


@pytest.mark.parametrize("change", [dict(drop_rate=0.1), dict(attn_drop_rate=0.1), dict(act_cfg={"type": "ReLU"}),
                                    dict(norm_cfg={"type": "BN"}), dict(in_channels=4), dict(num_stages=3)])
def test_converter_refuses_unbuilt_backbone_variants(change):
    model = next(iter(_segformer_models().values()))
    with pytest.raises(Unsupported):
        arch_from_mmseg(dict(model, backbone=dict(model["backbone"], **change)))


def test_converter_refuses_unbuilt_head_variants():
    model = next(iter(_segformer_models().values()))
    for change in (dict(interpolate_mode="nearest"), dict(act_cfg={"type": "GELU"}), dict(norm_cfg={"type": "GN"})):
        with pytest.raises(Unsupported):
            arch_from_mmseg(dict(model, decode_head=dict(model["decode_head"], **change)))


def test_converter_takes_the_reference_defaults():
    """Fields a config leaves out take MixVisionTransformer's defaults (num_heads [1, 2, 4, 8], LN eps 1e-6)."""
    model = next(iter(_segformer_models().values()))
    bare = {"type": "MixVisionTransformer"}
    b = arch_from_mmseg(dict(model, backbone=bare))["backbone"]
    assert (b["embed_dims"], b["num_heads"], b["num_layers"], b["norm_eps"]) == (64, [1, 2, 4, 8], [3, 4, 6, 3], 1e-6)
    assert MiTConfig().norm_eps == 1e-6
