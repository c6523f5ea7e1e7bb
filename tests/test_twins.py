"""Twins-PCPVT / SVT (sszoo.models.backbones.twins) piece by piece, against independent computations.

The whole networks are checked against MMSegmentation by the golden cases (tests/test_parity.py: twins_*);
here: GSA against torch's own nn.MultiheadAttention, LSA against a window-by-window loop, the reference's
LSA mask rule by hand, the corner padding of the patch embeddings, the smallest input, the PEG's place.
"""
from __future__ import annotations

import os
import sys

import pytest
import torch
from torch import nn
import torch.nn.functional as F

from sszoo.models.backbones.twins import (PCPVT, SVT, DropPath, GlobalSubsampledAttention,
                                          LocallyGroupedSelfAttention, PCPVTConfig, SVTConfig, lsa_mask)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from mmseg_arch import Unsupported, arch_from_mmseg  # noqa: E402


def _randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
    return module


@pytest.mark.parametrize("sr_ratio,hw", [(2, (5, 7)), (1, (3, 4))])
def test_gsa_equals_torch_multihead_attention(sr_ratio, hw):
    """GSA = nn.MultiheadAttention (the reference's module, need_weights path) of the tokens over the sub-sampled
    map (strided conv, no padding: a 5 x 7 map gives 2 x 3), in float64 to rounding."""
    torch.manual_seed(0)
    c, heads = 12, 3
    gsa = _randomise(GlobalSubsampledAttention(c, heads, qkv_bias=True, sr_ratio=sr_ratio, drop_path=0.0)).double().eval()
    mha = nn.MultiheadAttention(c, heads).double().eval()
    mha.load_state_dict(gsa.attn.state_dict())  # the same parameter names: in_proj_weight/bias, out_proj
    x = torch.randn(2, hw[0] * hw[1], c, dtype=torch.float64)
    kv = x
    if sr_ratio > 1:
        m = gsa.sr(x.transpose(1, 2).reshape(2, c, *hw))
        assert m.shape[2:] == (hw[0] // sr_ratio, hw[1] // sr_ratio)
        kv = gsa.norm(m.flatten(2).transpose(1, 2))
    with torch.no_grad():
        expected = mha(x.transpose(0, 1), kv.transpose(0, 1), kv.transpose(0, 1))[0].transpose(0, 1)
        got = gsa(x, hw)
    assert (got - expected).abs().max().item() < 1e-12


def _lsa_by_windows(lsa: LocallyGroupedSelfAttention, x: torch.Tensor, hw, masked: bool) -> torch.Tensor:
    """LSA one window at a time: the map zero-padded to whole windows, each window's tokens attending to each
    other (with ``masked``, padded and real tokens not to each other), then the padding cropped."""
    b, n, c = x.shape
    h, w = hw
    ws, heads = lsa.window_size, lsa.num_heads
    hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
    grid = torch.zeros(b, hp, wp, c, dtype=x.dtype)
    grid[:, :h, :w] = x.reshape(b, h, w, c)
    real = torch.zeros(hp, wp, dtype=torch.bool)
    real[:h, :w] = True
    out = torch.zeros_like(grid)
    d = c // heads
    for r in range(0, hp, ws):
        for s in range(0, wp, ws):
            tokens = grid[:, r:r + ws, s:s + ws].reshape(b, ws * ws, c)
            flags = real[r:r + ws, s:s + ws].reshape(-1)
            q, k, v = lsa.qkv(tokens).reshape(b, ws * ws, 3, heads, d).permute(2, 0, 3, 1, 4)
            logits = q @ k.transpose(-2, -1) / d ** 0.5
            if masked:
                logits = logits - 1000.0 * (flags.unsqueeze(0) != flags.unsqueeze(1)).to(x.dtype)
            y = (logits.softmax(-1) @ v).transpose(1, 2).reshape(b, ws, ws, c)
            out[:, r:r + ws, s:s + ws] = y
    return lsa.proj(out[:, :h, :w].reshape(b, n, c))


@pytest.mark.parametrize("hw,masked", [((5, 7), True),    # padded at the bottom and the right: masked
                                       ((6, 5), False),   # padded at the right only: the reference masks nothing
                                       ((5, 3), False),   # at the bottom only: nothing either
                                       ((6, 3), False)])  # whole windows: no padding
def test_lsa_equals_window_loop(hw, masked):
    torch.manual_seed(1)
    c = 8
    lsa = _randomise(LocallyGroupedSelfAttention(c, 2, qkv_bias=True, window_size=3), 1).double().eval()
    x = torch.randn(2, hw[0] * hw[1], c, dtype=torch.float64)
    with torch.no_grad():
        got = lsa(x, hw)
        expected = _lsa_by_windows(lsa, x, hw, masked)
        other = _lsa_by_windows(lsa, x, hw, not masked)
    assert (got - expected).abs().max().item() < 1e-12
    if hw[0] % 3 or hw[1] % 3:  # the padded tokens (qkv bias only) do change the real ones' outputs
        assert (got - other).abs().max().item() > 1e-3


def test_lsa_mask_by_hand():
    # 3 x 3 map, 2 x 2 windows: padded to 4 x 4 at the bottom and right; windows row-major
    m = lsa_mask(3, 3, 2, torch.zeros((), dtype=torch.float64))
    assert m.shape == (4, 4, 4)
    assert m.dtype == torch.float64
    assert torch.equal(m[0], torch.zeros(4, 4, dtype=torch.float64))  # rows 0-1, cols 0-1: all real
    # window 1 (rows 0-1, cols 2-3): tokens (0,2) (0,3) (1,2) (1,3), the column-3 ones padded
    flags = torch.tensor([0, 1, 0, 1])
    assert torch.equal(m[1], -1000.0 * (flags[:, None] != flags[None, :]).double())
    # window 3 (rows 2-3, cols 2-3): only (2,2) is real
    flags = torch.tensor([0, 1, 1, 1])
    assert torch.equal(m[3], -1000.0 * (flags[:, None] != flags[None, :]).double())
    # one side unpadded: the reference's mask flags every token and masks nothing
    like = torch.zeros(())
    for h, w in ((4, 3), (3, 4), (4, 4)):
        assert torch.equal(lsa_mask(h, w, 2, like), torch.zeros(4, 4, 4))


def _tiny(cls, **kw):
    args = dict(embed_dims=(8, 8, 16, 16), num_heads=(1, 2, 2, 4), mlp_ratios=(2, 2, 2, 2), depths=(2, 1, 2, 1))
    args.update(kw)
    return cls(**args).eval()


@pytest.mark.parametrize("cls", [PCPVT, SVT])
def test_odd_sizes_and_the_smallest_input(cls):
    torch.manual_seed(0)
    model = _tiny(cls)
    with torch.no_grad():
        # the patch embeddings pad bottom/right: ceil(45 / 4) = 12, then halved rounding up
        shapes = [tuple(f.shape) for f in model(torch.randn(1, 3, 45, 59))]
        assert shapes == [(1, 8, 12, 15), (1, 8, 6, 8), (1, 16, 3, 4), (1, 16, 2, 2)]
        # 29: the first stage's ceil(29 / 4) = 8 pixels hold one 8 x 8 sub-sampling window
        assert [f.shape[-1] for f in model(torch.randn(2, 3, 29, 29))] == [8, 4, 2, 1]
        with pytest.raises(ValueError, match="at least 29 x 29"):
            model(torch.randn(1, 3, 28, 64))
    assert PCPVTConfig().min_input_side == SVTConfig().min_input_side == 29
    assert PCPVTConfig().output_stride == 32


def test_peg_after_the_first_layer_of_each_stage():
    model = _tiny(SVT)
    calls: list[str] = []
    for name, m in model.named_modules():
        depth = name.count(".")
        if (name.startswith("layers.") and depth == 2) or (name.startswith("position_encodings.") and depth == 1):
            m.register_forward_hook(lambda mod, inp, out, name=name: calls.append(name))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert calls == ["layers.0.0", "position_encodings.0", "layers.0.1", "layers.1.0", "position_encodings.1",
                     "layers.2.0", "position_encodings.2", "layers.2.1", "layers.3.0", "position_encodings.3"]
    # SVT: LSA in the even layers, GSA in the odd ones
    assert isinstance(model.layers[2][0].attn, LocallyGroupedSelfAttention)
    assert isinstance(model.layers[2][1].attn, GlobalSubsampledAttention)


def test_registration_order_is_the_reference():
    names = [n for n, _ in _tiny(SVT).named_parameters()]
    first = {p: min(i for i, n in enumerate(names) if n.startswith(p)) for p in
             ("patch_embeds.", "layers.", "position_encodings.", "norm_list.")}
    last = {p: max(i for i, n in enumerate(names) if n.startswith(p)) for p in first}
    assert last["patch_embeds."] < first["layers."] and last["layers."] < first["position_encodings."]
    assert last["position_encodings."] < first["norm_list."]
    assert names[names.index("layers.0.1.norm1.weight"):][:9] == [
        "layers.0.1.norm1.weight", "layers.0.1.norm1.bias", "layers.0.1.attn.attn.in_proj_weight",
        "layers.0.1.attn.attn.in_proj_bias", "layers.0.1.attn.attn.out_proj.weight",
        "layers.0.1.attn.attn.out_proj.bias", "layers.0.1.attn.sr.weight", "layers.0.1.attn.sr.bias",
        "layers.0.1.attn.norm.weight"]
    assert not any(n.startswith("norm_list") for n, _ in _tiny(PCPVT).named_parameters())


def test_drop_path():
    x = torch.randn(64, 5, 3) + 3.0
    dp = DropPath(0.25)
    assert torch.equal(dp.eval()(x), x)
    y = dp.train()(x)
    kept = (y != 0).all(dim=(1, 2))
    assert torch.equal((y == 0).all(dim=(1, 2)), ~kept)  # whole samples dropped
    torch.testing.assert_close(y[kept], x[kept] / 0.75)
    # the reference's rates: float32 linspace over all layers; the last layer gets the configured rate
    model = _tiny(PCPVT, drop_path_rate=0.3)
    assert model.layers[3][0].drop_path.drop_prob == torch.linspace(0, 0.3, 6)[5].item()
    assert model.layers[0][0].drop_path.drop_prob == 0.0


def test_converter_refuses_what_is_not_built():
    base = dict(type="PCPVT", embed_dims=[64, 128, 320, 512], depths=[3, 4, 6, 3], qkv_bias=True)
    model = dict(backbone=base, decode_head=dict(type="FCNHead", in_channels=512, channels=8, num_classes=4))
    assert arch_from_mmseg(model)["backbone"]["kind"] == "pcpvt"
    for bad in (dict(drop_rate=0.1), dict(attn_drop_rate=0.1), dict(norm_cfg=dict(type="BN")), dict(in_channels=4),
                dict(num_heads=[1, 2, 5])):
        with pytest.raises(Unsupported):
            arch_from_mmseg(dict(model, backbone=dict(base, **bad)))
    svt = arch_from_mmseg(dict(model, backbone=dict(base, type="SVT", num_heads=[1, 2, 5, 8], mlp_ratios=[4] * 4,
                                                    sr_ratios=[8, 4, 2, 1], windiow_sizes=[7, 7, 7, 7])))["backbone"]
    assert svt["kind"] == "svt" and svt["window_sizes"] == [7, 7, 7, 7] and svt["norm_after_stage"]
    # SVT's own defaults: three stages, whose first three patch sizes and strides the reference reads
    svt = arch_from_mmseg(dict(model, backbone=dict(type="SVT")))["backbone"]
    assert svt["depths"] == [4, 4, 4] and svt["patch_sizes"] == [4, 2, 2] and svt["window_sizes"] == [7, 7, 7]


def test_onnx_dynamic_sizes_pad_and_mask_as_eager(tmp_path):
    """Exported once with dynamic sizes at 65 x 97 (3 x 3 windows over maps of 17 x 25, 9 x 13, 5 x 7, 3 x 4:
    padded on both sides, the right only, both, the right only), run at 41 x 56 (11 x 14, 6 x 7, 3 x 4, 2 x 2:
    both, right, right, both) and at 48 x 48 (12 x 12, 6 x 6, 3 x 3: no padding, then 2 x 2: both): the patch
    embeddings' padding and the LSA mask follow the size as in eager mode."""
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = _tiny(SVT, window_sizes=(3, 3, 3, 3))
    path = str(tmp_path / "svt.onnx")
    with torch.no_grad():
        torch.onnx.export(model, (torch.randn(1, 3, 65, 97),), path, input_names=["x"], opset_version=17,
                          dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}}, dynamo=False)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for shape in ((2, 3, 41, 56), (1, 3, 48, 48)):
        x = torch.randn(shape)
        with torch.no_grad():
            expected = model(x)
        got = session.run(None, {"x": x.numpy()})
        for e, g in zip(expected, got):
            assert e.shape == g.shape
            assert abs(e.numpy() - g).max() < 1e-4
