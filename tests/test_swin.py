"""Swin Transformer's own logic (sszoo/models/backbones/swin.py) against hand-made expectations.

The end-to-end numerics are tests/test_parity.py's Swin-T UPerNet goldens (MMSegmentation's float64 forward);
here the pieces are checked one by one: window partition/reverse, the shifted-window mask, the relative
position index, the zero padding of the patch embedding, of odd maps before PatchMerging and of maps that are
not whole windows, the absolute position embedding's size refusal, stochastic depth, and the converter.
"""
from __future__ import annotations

import json
import os
import sys

import pytest
import torch
import torch.nn.functional as F

from sszoo.models.backbones.swin import (DropPath, PatchEmbed, PatchMerging, ShiftWindowMSA, SwinConfig,
                                         SwinTransformer, relative_position_index, shift_mask, window_partition,
                                         window_reverse)
from sszoo.models.builder import BACKBONES, config_from_dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from mmseg_arch import Unsupported, arch_from_mmseg  # noqa: E402
from mmseg_arch import _swin as convert_swin  # noqa: E402

D = -100.0


def _tiny(**kw) -> SwinTransformer:
    torch.manual_seed(0)
    args = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=3)
    args.update(kw)
    return SwinTransformer(**args).double().eval()


def test_window_partition_order_and_reverse():
    # x[b, h, w, 0] = 1000 b + 10 h + w: each window's entries say where they came from
    b, h, w, ws = 2, 6, 9, 3
    x = (1000 * torch.arange(b)[:, None, None] + 10 * torch.arange(h)[None, :, None]
         + torch.arange(w)[None, None, :]).double()[..., None].repeat(1, 1, 1, 2)
    win = window_partition(x, ws)
    assert win.shape == (b * 2 * 3, ws, ws, 2)
    # window k of image i covers rows 3 (k // 3) .. and columns 3 (k % 3) .., images one after the other
    for i in range(b):
        for k in range(6):
            r, c = divmod(k, 3)
            expect = 1000 * i + 10 * (3 * r + torch.arange(3)[:, None]) + 3 * c + torch.arange(3)[None, :]
            assert torch.equal(win[i * 6 + k, :, :, 0], expect.double())
    assert torch.equal(window_reverse(win, h, w), x)


def test_shift_mask_by_hand():
    # 4 x 4 map, 2 x 2 windows, shift 1: region labels (row region * 3 + column region) after the roll are
    #   0 0 1 2 / 0 0 1 2 / 3 3 4 5 / 6 6 7 8
    m = shift_mask(4, 4, 2, 1, dtype=torch.float64)
    expect = torch.tensor([
        [[0, 0, 0, 0]] * 4,                                                    # labels 0 0 0 0
        [[0, D, 0, D], [D, 0, D, 0], [0, D, 0, D], [D, 0, D, 0]],              # labels 1 2 1 2
        [[0, 0, D, D], [0, 0, D, D], [D, D, 0, 0], [D, D, 0, 0]],              # labels 3 3 6 6
        [[0, D, D, D], [D, 0, D, D], [D, D, 0, D], [D, D, D, 0]],              # labels 4 5 7 8
    ], dtype=torch.float64)
    assert torch.equal(m, expect)
    assert shift_mask(4, 4, 2, 1).dtype == torch.float32


@pytest.mark.parametrize("h,w,ws", [(14, 21, 7), (7, 7, 7), (24, 12, 12)])
def test_shift_mask_matches_slice_labelling(h, w, ws):
    # the labelling written as the reference describes it: three slices per axis, numbered row-major
    shift = ws // 2
    img = torch.zeros(h, w)
    cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for n, (a, b) in enumerate((a, b) for a in cuts for b in cuts):
        img[a, b] = n
    lab = window_partition(img[None, :, :, None], ws).reshape(-1, ws * ws)
    expect = torch.where(lab[:, None, :] == lab[:, :, None], 0.0, D)
    assert torch.equal(shift_mask(h, w, ws, shift), expect)


def test_relative_position_index_by_hand():
    # 2 x 2 window, tokens (0,0) (0,1) (1,0) (1,1); index = (dr + 1) * 3 + (dc + 1)
    assert relative_position_index(2).tolist() == [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]]


@pytest.mark.parametrize("ws", [7, 12])
def test_relative_position_index_as_reference_builds_it(ws):
    # MMSegmentation's construction: coords i * (2 ws - 1) + j, pairwise sums, columns flipped
    coords = (torch.arange(0, (2 * ws - 1) * ws, 2 * ws - 1)[:, None] + torch.arange(ws)[None, :]).reshape(1, -1)
    expect = (coords + coords.T).flip(1)
    idx = relative_position_index(ws)
    assert idx.dtype == torch.int64 and torch.equal(idx, expect)
    assert idx.min() == 0 and idx.max() == (2 * ws - 1) ** 2 - 1


def test_patch_embed_pads_bottom_right():
    torch.manual_seed(0)
    pe = PatchEmbed(3, 8, 4, norm=False).double()
    x = torch.randn(1, 3, 49, 69, dtype=torch.float64)
    tokens, hw = pe(x)
    assert hw == (13, 18)
    expect = pe.projection(F.pad(x, (0, 3, 0, 3))).flatten(2).transpose(1, 2)
    assert torch.equal(tokens, expect)


@pytest.mark.parametrize("h,w", [(3, 5), (4, 4), (7, 2)])
def test_patch_merging_matches_unfold_on_zero_padded_map(h, w):
    torch.manual_seed(0)
    pm = PatchMerging(6, 12).double()
    x = torch.randn(2, h * w, 6, dtype=torch.float64)
    out, hw = pm(x, (h, w))
    assert hw == ((h + 1) // 2, (w + 1) // 2)
    grid = F.pad(x.view(2, h, w, 6).permute(0, 3, 1, 2), (0, w % 2, 0, h % 2))
    merged = F.unfold(grid, kernel_size=2, stride=2).transpose(1, 2)   # the reference's nn.Unfold order
    assert torch.allclose(out, pm.reduction(pm.norm(merged)), rtol=0, atol=1e-12)


def test_window_attention_pads_unmasked_tokens():
    # a 5 x 4 map in one 7 x 7 window: the 29 zero tokens take part as keys (not masked), as in the reference
    torch.manual_seed(0)
    attn = ShiftWindowMSA(8, 2, 7).double().eval()
    with torch.no_grad():
        attn.w_msa.relative_position_bias_table.normal_()
    x = torch.randn(1, 20, 8, dtype=torch.float64)
    out = attn(x, (5, 4))
    # by hand: dense attention over the zero-padded 7 x 7 window with the bias, explicit softmax
    m = attn.w_msa
    t = F.pad(x.view(1, 5, 4, 8), (0, 0, 0, 3, 0, 2)).reshape(49, 8)
    q, k, v = m.qkv(t).view(49, 3, 2, 4).permute(1, 2, 0, 3)
    bias = m.relative_position_bias_table[relative_position_index(7).view(-1)].view(49, 49, 2).permute(2, 0, 1)
    y = ((q @ k.transpose(1, 2)) * 4 ** -0.5 + bias).softmax(-1) @ v
    y = m.proj(y.transpose(0, 1).reshape(49, 8)).view(7, 7, 8)[:5, :4].reshape(1, 20, 8)
    assert torch.allclose(out, y, rtol=0, atol=1e-12)


def test_explicit_attention_path_equals_fused():
    # training with attention dropout takes the explicit path; with a dropout that keeps everything
    # (p = 1e-300: scale 1) both paths must give the same numbers
    torch.manual_seed(0)
    attn = ShiftWindowMSA(8, 2, 3, shift_size=1).double()
    x = torch.randn(2, 35, 8, dtype=torch.float64)
    attn.eval()
    fused = attn(x, (5, 7))
    attn.w_msa.attn_drop.p = 1e-300
    attn.train()
    explicit = attn(x, (5, 7))
    assert torch.allclose(fused, explicit, rtol=0, atol=1e-13)


def test_odd_input_shapes_and_out_indices():
    net = _tiny(out_indices=(0, 2, 3))
    outs = net(torch.randn(2, 3, 49, 69, dtype=torch.float64))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 13, 18), (2, 64, 4, 5), (2, 128, 2, 3)]
    assert net.out_channels == [16, 64, 128]
    assert [k for k in net.state_dict() if k.startswith("norm")] == [f"norm{i}.{p}" for i in (0, 2, 3)
                                                                      for p in ("weight", "bias")]


def test_batch_items_are_independent():
    # windows of one image never attend to another's (the mask is tiled per image)
    net = _tiny()
    x = torch.randn(2, 3, 37, 29, dtype=torch.float64)
    with torch.no_grad():
        both = net(x)
        one = net(x[1:])
    for a, b in zip(both, one):
        assert torch.allclose(a[1:], b, rtol=0, atol=1e-12)


def test_absolute_position_embedding_accepts_only_its_size():
    net = _tiny(use_abs_pos_embed=True, pretrain_img_size=(64, 48))
    assert net.absolute_pos_embed.shape == (1, 16 * 12, 16)
    assert list(net.state_dict())[0] == "absolute_pos_embed"  # registered (and drawn) first, as the reference
    net(torch.randn(1, 3, 61, 48, dtype=torch.float64))          # padded to 64 x 48: accepted
    with pytest.raises(ValueError, match="64 x 48 only"):
        net(torch.randn(1, 3, 64, 64, dtype=torch.float64))


def test_drop_path():
    dp = DropPath(0.0).train()
    x = torch.randn(8, 5, 3)
    state = torch.get_rng_state()
    assert dp(x) is x and torch.equal(torch.get_rng_state(), state)  # probability 0 draws nothing
    dp = DropPath(0.5).train()
    torch.manual_seed(0)
    y = dp(x)
    kept = (y != 0).flatten(1).all(1)
    assert torch.equal(y[kept], 2 * x[kept]) and (y[~kept] == 0).all() and 0 < kept.sum() < 8
    assert DropPath(0.5).eval()(x) is x


def test_refusals():
    with pytest.raises(ValueError, match="patch_size"):
        SwinTransformer(strides=(2, 2, 2, 2))
    with pytest.raises(ValueError, match="out_indices"):
        SwinTransformer(out_indices=(4,))
    with pytest.raises(ValueError, match="stride 2"):
        PatchMerging(8, 16, stride=3)
    base = dict(type="SwinTransformer")
    for bad in (dict(act_cfg=dict(type="ReLU")), dict(norm_cfg=dict(type="LN", eps=1e-6)), dict(strides=[4, 2, 3, 2]),
                dict(in_channels=4)):
        with pytest.raises(Unsupported):
            convert_swin(dict(base, **bad))


def test_every_swin_config_converts():
    """Every SwinTransformer backbone of MMSegmentation 1.2.2 (swin, K-Net, MaskFormer, Mask2Former) converts
    and builds; the UPerNet ones build the whole segmentor (their digests: tests/test_zoo_architectures.py)."""
    with open(os.path.join(ROOT, "tools", "reference", "mmseg_configs.json")) as f:
        configs = json.load(f)["configs"]
    seen = {}
    for path, c in configs.items():
        b = (c.get("model") or {}).get("backbone") or {}
        if b.get("type") != "SwinTransformer":
            continue
        rec = convert_swin(b)
        cfg = config_from_dict(rec, BACKBONES, "backbone")
        assert isinstance(cfg, SwinConfig) and cfg.output_stride == 32
        seen[path] = (cfg.embed_dims, cfg.depths, cfg.window_size, cfg.pretrain_img_size)
        if c["method"] == "swin":
            arch_from_mmseg(c["model"])
    assert len(seen) == 20
    assert {v[0] for v in seen.values()} == {96, 128, 192} and {v[2] for v in seen.values()} == {7, 12}
    assert {v[3] for v in seen.values()} == {(224, 224), (384, 384)}


VARIANTS = os.path.join(ROOT, "tests", "golden", "heads", "swin_variants.pt")


@pytest.mark.parametrize("name", ["w12_384", "abs_qk_nonorm", "train_droppath"])
def test_variants_match_reference(name):
    """tools/make_swin_golden.py: MMSegmentation's float64 backbone outputs in the variants the UPerNet goldens
    do not reach (window 12 / pretrain 384; abs pos embed, qk_scale, no patch norm, out_indices; training with
    drop path, dropout and attention dropout, whose random numbers must be drawn in the reference's order)."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from oracle_weights import draw_parameters

    g = torch.load(VARIANTS, weights_only=True)[name]
    net = SwinTransformer.from_config(config_from_dict(g["arch"], BACKBONES, "backbone"))
    assert list(net.state_dict()) == g["keys"]
    assert sum(p.numel() for p in net.parameters()) == g["n_params"]
    draw_parameters(net, torch.Generator().manual_seed(g["seed"]))  # registration order = the reference's
    net.double().train(g["training"])
    x = torch.randn(g["shape"], generator=torch.Generator().manual_seed(g["seed"] + 1)).double()
    torch.manual_seed(g["seed"] + 2)
    with torch.no_grad():
        outs = net(x)
    assert len(outs) == len(g["outputs"])
    for out, ref in zip(outs, g["outputs"]):
        assert out.shape == ref.shape
        assert (out - ref).abs().max() <= 1e-10 * ref.abs().max()
