"""The plain ViT backbone (ViT / DeiT / SETR's ViT-L), the MultiLevelNeck and SETR's heads and MLA neck.

Whole-model parity of the ViT/DeiT + UPerNet configs is in tests/test_parity.py (goldens vit_deit_*). SETR's
ViT-L models are too large for a whole-model golden: tests/golden/heads/setr.pt (tools/make_setr_golden.py) holds
MMSegmentation 1.2.2's float64 logits of its heads and MLA neck over a 4-layer ViT-L, checked here; the rest
checks the ViT's own logic against independent expectations (hand-computed padding, the position-embedding
resize by its definition, the reference's explicit attention).
"""
from __future__ import annotations

import json
import os

import pytest
import torch
import torch.nn.functional as F

from oracle_weights import draw_parameters
from sszoo.models import ArchConfig
from sszoo.models.backbones.vit import PatchEmbed, VisionTransformer, _InProjAttention, resize_pos_embed
from sszoo.models.builder import build_backbone, build_head, build_neck
from sszoo.models.necks.mln import MultiLevelNeck

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "heads", "setr.pt")


def _small_vit(**kw) -> VisionTransformer:
    args = dict(img_size=(64, 64), patch_size=16, embed_dims=32, num_layers=2, num_heads=4, out_indices=(0, 1))
    args.update(kw)
    torch.manual_seed(0)
    m = VisionTransformer(**args).double().eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.2)
    return m


def test_setr_heads_match_reference():
    d = torch.load(GOLDEN, weights_only=True)
    info = json.loads(d["info"])
    arch = {k: ArchConfig.from_dict(a) for k, a in info["arch"].items()}
    nc = info["num_classes"]
    modules = {"backbone": build_backbone(arch["mla"].backbone), "mla_neck": build_neck(arch["mla"].neck),
               "mla_decode": build_head(arch["mla"].decode_head, nc, False)}
    modules.update({f"mla_aux{i}": build_head(h, nc, False) for i, h in enumerate(arch["mla"].auxiliary_heads)})
    for k in ("naive", "pup"):
        modules[f"{k}_decode"] = build_head(arch[k].decode_head, nc, False)
        modules[f"{k}_aux0"] = build_head(arch[k].auxiliary_heads[0], nc, False)
    assert list(modules) == info["order"]
    g = torch.Generator().manual_seed(info["seed"])
    for k, m in modules.items():  # the oracle's draw: one generator, in registration order, module by module
        assert len(m.state_dict()) == info["keys"][k], k
        draw_parameters(m, g)
        m.double().eval()
    x = torch.randn(info["input_shape"], generator=torch.Generator().manual_seed(info["input_seed"])).double()
    backbone = modules["backbone"]
    out = {}
    with torch.no_grad():
        backbone.with_cls_token = False
        feats = modules["mla_neck"](backbone(x))
        for k in ["mla_decode"] + [f"mla_aux{i}" for i in range(4)]:
            out[k] = modules[k](feats)
        backbone.with_cls_token = True
        feats = backbone(x)
        for k in ("naive_decode", "naive_aux0", "pup_decode", "pup_aux0"):
            out[k] = modules[k](feats)
    for k, ref in d["logits"].items():
        assert out[k].shape == ref.shape, k
        scale = max(1.0, ref.abs().max().item())
        assert (out[k] - ref).abs().max().item() <= 1e-8 * scale, k


@pytest.mark.parametrize("h, w, grid", [(45, 59, (3, 4)), (32, 48, (2, 3)), (17, 1, (2, 1))])
def test_patch_embed_pads_bottom_right(h, w, grid):
    pe = PatchEmbed(3, 8, 16).double()
    x = torch.randn(1, 3, h, w, dtype=torch.float64)
    tokens, hw = pe(x)
    assert hw == grid and tokens.shape == (1, grid[0] * grid[1], 8)
    # "corner" padding: zeros below and to the right, so the last patch's conv sees the image then zeros
    padded = torch.zeros(1, 3, grid[0] * 16, grid[1] * 16, dtype=torch.float64)
    padded[..., :h, :w] = x
    expect = F.conv2d(padded, pe.projection.weight, stride=16).flatten(2).transpose(1, 2)
    torch.testing.assert_close(tokens, expect, rtol=0, atol=1e-12)


def test_patch_embed_same_padding_centres():
    pe = PatchEmbed(3, 4, 16, pad="same").double()
    x = torch.randn(1, 3, 20, 16, dtype=torch.float64)  # 12 rows of padding: 6 above, 6 below
    padded = F.pad(x, [0, 0, 6, 6])
    torch.testing.assert_close(pe(x)[0], F.conv2d(padded, pe.projection.weight, stride=16).flatten(2).transpose(1, 2))
    with pytest.raises(ValueError, match="corner"):
        PatchEmbed(3, 4, 16, pad="reflect")


def test_position_embedding_resized_only_when_the_token_count_differs():
    m = _small_vit(interpolate_mode="bicubic")  # trained grid 4 x 4 (+ the class token's entry)
    pos = m.pos_embed
    assert m.position_embedding((4, 4)) is pos
    # the reference's quirk: the same count in another shape adds the embedding flattened, unresized
    assert m.position_embedding((2, 8)) is pos
    r = m.position_embedding((3, 5))
    assert r.shape == (1, 16, 32)
    assert torch.equal(r[:, 0], pos[:, 0])  # the class token's entry is kept
    grid = pos[:, 1:].reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
    expect = F.interpolate(grid, size=(3, 5), mode="bicubic", align_corners=False).flatten(2).transpose(1, 2)
    torch.testing.assert_close(r[:, 1:], expect, rtol=0, atol=0)
    # a bilinear embedding (SETR) at the trained size is the identity: no interpolation error
    torch.testing.assert_close(resize_pos_embed(pos, (4, 4), (4, 4), "bilinear"), pos, rtol=0, atol=1e-15)


def test_odd_input_runs_and_outputs_token_maps():
    m = _small_vit()
    outs = m(torch.randn(2, 3, 33, 47, dtype=torch.float64))
    assert [o.shape for o in outs] == [(2, 32, 3, 3)] * 2
    m.with_cls_token = False  # the class token dropped after the embedding: the same map sizes
    assert [o.shape for o in m(torch.randn(1, 3, 33, 47, dtype=torch.float64))] == [(1, 32, 3, 3)] * 2


def test_cls_token_outputs_and_final_norm():
    m = _small_vit(output_cls_token=True, final_norm=True, out_indices=(1,))
    (out, cls), = m(torch.randn(1, 3, 64, 64, dtype=torch.float64))
    assert out.shape == (1, 32, 4, 4) and cls.shape == (1, 32)
    # after the final LayerNorm (weights drawn, not identity) each token is normalised then affinely mapped
    tokens = torch.cat([cls[:, None], out.flatten(2).transpose(1, 2)], dim=1)
    raw = (tokens - m.ln1.bias) / m.ln1.weight
    torch.testing.assert_close(raw.mean(-1), torch.zeros(1, 17, dtype=torch.float64), rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="with_cls_token"):
        VisionTransformer(with_cls_token=False, output_cls_token=True)
    with pytest.raises(ValueError, match="out_indices"):
        VisionTransformer(num_layers=2, out_indices=(2,))


def test_fused_attention_matches_the_reference_explicit_path():
    """F.scaled_dot_product_attention against the reference's softmax(q k^T / sqrt(d)) v, and both against
    torch.nn.MultiheadAttention itself (the module MMCV wraps) with the same parameters."""
    torch.manual_seed(0)
    att = _InProjAttention(32, 4).double()
    with torch.no_grad():
        att.in_proj_bias.normal_()
    x = torch.randn(2, 13, 32, dtype=torch.float64)
    ref = torch.nn.MultiheadAttention(32, 4).double()
    ref.load_state_dict(att.state_dict())
    with torch.no_grad():
        expect = ref(x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1))[0].transpose(0, 1)
        fused = att(x)
        _InProjAttention.fused = False
        try:
            explicit = att(x)
        finally:
            _InProjAttention.fused = True
    assert list(att.state_dict()) == list(ref.state_dict())
    torch.testing.assert_close(explicit, expect, rtol=0, atol=1e-13)
    torch.testing.assert_close(fused, expect, rtol=0, atol=1e-13)


def test_multilevel_neck_rescales_by_factor():
    neck = MultiLevelNeck((4, 4, 4, 4), 4, scales=(4, 2, 1, 0.5)).double()
    outs = neck([torch.randn(1, 4, 3, 5, dtype=torch.float64) for _ in range(4)])
    assert [o.shape[2:] for o in outs] == [(12, 20), (6, 10), (3, 5), (1, 2)]
    # the 0.5 rescale samples at 2x strides (scale-factor semantics): output column j reads input 2j + 0.5
    x = torch.arange(15, dtype=torch.float64).reshape(1, 1, 3, 5)
    y = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
    assert y.shape[2:] == (1, 2)
    torch.testing.assert_close(y, torch.tensor([[[[0.5 * 5 + 0.5, 0.5 * 5 + 2.5]]]], dtype=torch.float64))
    with pytest.raises(ValueError, match="inputs"):
        MultiLevelNeck((4, 4), 4, scales=(4, 2, 1))
