"""Mask2Former's pieces against independent expectations (hand computation, torch.nn.MultiheadAttention).

The whole network's parity with MMSegmentation is tests/test_parity.py's (mask2former_* goldens, float64 exact).
"""
from __future__ import annotations

import math
import os
import sys

import pytest
import torch
from torch import nn

from sszoo.models import ArchConfig, build_model
from sszoo.models.backbones import ResNetConfig
from sszoo.models.heads import Mask2FormerHead, Mask2FormerHeadConfig, MaskFormerHead, MaskFormerHeadConfig
from sszoo.models.heads._msda import MultiScaleDeformableAttention, multi_scale_deformable_attn
from sszoo.models.heads.mask2former import _Attention, reference_points, sine_position_encoding

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from mmseg_arch import Unsupported, arch_from_mmseg  # noqa: E402

TINY = Mask2FormerHeadConfig(in_channels=(8, 16, 24, 32), feat_channels=32, out_channels=16, num_queries=5,
                             num_groups=4, pos_num_feats=16, encoder_layers=1, encoder_heads=2, encoder_points=2,
                             encoder_ffn_channels=24, decoder_layers=4, decoder_heads=2, decoder_ffn_channels=24)


def _bilinear_zero_pad(img: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """Bilinear sample of C x H x W at normalised (x, y) in [0, 1] (pixel centres at (i + 0.5) / W), zeros outside."""
    c, h, w = img.shape
    px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    out = torch.zeros(c, dtype=img.dtype)
    for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
        for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                out += wy * wx * img[:, yy, xx]
    return out


def test_deformable_attention_is_weighted_bilinear_sampling():
    g = torch.Generator().manual_seed(0)
    shapes = [(3, 5), (2, 3)]
    n, heads, d, q, points = 2, 2, 3, 4, 3
    value = torch.randn(n, sum(h * w for h, w in shapes), heads, d, generator=g, dtype=torch.float64)
    # locations partly outside [0, 1] (zero padding) and some exactly at pixel centres
    loc = torch.rand(n, q, heads, len(shapes), points, 2, generator=g, dtype=torch.float64) * 1.4 - 0.2
    loc[0, 0, 0, 0, 0] = torch.tensor([2.5 / 5, 0.5 / 3], dtype=torch.float64)
    weights = torch.rand(n, q, heads, len(shapes), points, generator=g, dtype=torch.float64)
    out = multi_scale_deformable_attn(value, shapes, loc, weights)
    assert out.shape == (n, q, heads * d)
    starts = [0, shapes[0][0] * shapes[0][1]]
    for b in range(n):
        for i in range(q):
            for hd in range(heads):
                expect = torch.zeros(d, dtype=torch.float64)
                for lvl, (h, w) in enumerate(shapes):
                    img = value[b, starts[lvl]:starts[lvl] + h * w, hd].T.reshape(d, h, w)
                    for p in range(points):
                        x, y = loc[b, i, hd, lvl, p].tolist()
                        expect += weights[b, i, hd, lvl, p] * _bilinear_zero_pad(img, x, y)
                torch.testing.assert_close(out[b, i, hd * d:(hd + 1) * d], expect, rtol=0, atol=1e-12)
    # a point at a pixel centre reads that pixel exactly
    one = torch.zeros_like(weights)
    one[0, 0, 0, 0, 0] = 1
    torch.testing.assert_close(multi_scale_deformable_attn(value, shapes, loc, one)[0, 0, :d], value[0, 0 * 5 + 2, 0],
                               rtol=0, atol=1e-12)


def test_deformable_attention_offsets_are_in_pixels_of_each_level():
    torch.manual_seed(0)
    m = MultiScaleDeformableAttention(embed_dims=4, num_heads=1, num_levels=2, num_points=1).double()
    with torch.no_grad():  # offset (+1 px, -1 px) on both levels, all weight on level 1, identity projections
        m.sampling_offsets.weight.zero_()
        m.sampling_offsets.bias.copy_(torch.tensor([1.0, -1.0, 1.0, -1.0]))
        m.attention_weights.weight.zero_()
        m.attention_weights.bias.copy_(torch.tensor([-1e4, 0.0]))
        for lin in (m.value_proj, m.output_proj):
            lin.weight.copy_(torch.eye(4))
            lin.bias.zero_()
    shapes = [(4, 6), (3, 5)]
    value = torch.randn(1, 24 + 15, 4, dtype=torch.float64)
    ref = torch.tensor([[[[1.5 / 6, 2.5 / 4], [1.5 / 5, 1.5 / 3]]]], dtype=torch.float32)  # one query, both levels
    query = torch.zeros(1, 1, 4, dtype=torch.float64)
    out = m(query, value, torch.zeros_like(query), ref, shapes)
    # level 1's pixel (row 1, col 1) moved by (+1, -1) px: (row 0, col 2) of the 3 x 5 map
    # (the reference points are float32, so the point is a pixel centre to float32 precision)
    torch.testing.assert_close(out[0, 0], value[0, 24 + 0 * 5 + 2], rtol=0, atol=1e-6)


def test_reference_points_are_pixel_centres():
    pts, wh = reference_points(torch.zeros(2, 4, 3, 5, dtype=torch.float64), 16)
    assert pts.dtype == torch.float32 and pts.shape == (15, 2) and wh.tolist() == [5.0, 3.0]
    expect = torch.tensor([[(i + 0.5) / 5, (j + 0.5) / 3] for j in range(3) for i in range(5)], dtype=torch.float32)
    torch.testing.assert_close(pts, expect, rtol=0, atol=1e-7)


def test_sine_position_encoding_by_hand():
    pos = sine_position_encoding(torch.zeros(2, 5, 3, 4, dtype=torch.float64), 6)
    assert pos.dtype == torch.float32 and pos.shape == (2, 12, 3, 4)
    for (y, x) in [(0, 0), (2, 3), (1, 2)]:
        ey = (y + 1) / (3 + 1e-6) * 2 * math.pi
        ex = (x + 1) / (4 + 1e-6) * 2 * math.pi
        for k in range(6):
            f = math.sin if k % 2 == 0 else math.cos
            t = 10000 ** (2 * (k // 2) / 6)
            assert pos[1, k, y, x].item() == pytest.approx(f(ey / t), abs=1e-6)      # y channels first
            assert pos[1, 6 + k, y, x].item() == pytest.approx(f(ex / t), abs=1e-6)  # then x


def test_attention_matches_torch_multihead_attention_with_mask():
    torch.manual_seed(0)
    ours = _Attention(8, 2).double()
    theirs = nn.MultiheadAttention(8, 2, batch_first=True).double()
    theirs.load_state_dict(ours.state_dict())
    q, k, v = (torch.randn(3, n, 8, dtype=torch.float64) for n in (4, 6, 6))
    mask = torch.rand(3 * 2, 4, 6) < 0.4
    mask[:, :, 0] = False  # every query sees a key
    expect = theirs(q, k, v, attn_mask=mask)[0]
    torch.testing.assert_close(ours(q, k, v, mask), expect, rtol=0, atol=1e-12)
    torch.testing.assert_close(ours(q, k, v), theirs(q, k, v)[0], rtol=0, atol=1e-12)


def _features(n: int, h: int, w: int, channels=(8, 16, 24, 32), seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, c, -(-h // s), -(-w // s), generator=g) for c, s in zip(channels, (4, 8, 16, 32))]


def test_fully_masked_query_attends_to_every_key():
    """Where the previous masks hide every key of a query the reference un-masks that row: with all mask logits
    negative (every key hidden) the layer's cross-attention is the unmasked one."""
    torch.manual_seed(0)
    head = Mask2FormerHead(TINY, 3).eval()
    seen = []
    for layer in head.transformer_decoder.layers:
        original = layer.cross_attn.forward

        def spy(*args, _orig=original, **kw):
            seen.append(args[5])
            return _orig(*args, **kw)
        layer.cross_attn.forward = spy
    with torch.no_grad():
        head.mask_embed[-1].weight.zero_()
        head.mask_embed[-1].bias.zero_()
        # masks = -1 everywhere (mask_feature constant 1 per channel, embedding -1/16 per channel)
        head.mask_embed[-1].bias.fill_(-1.0 / 16)
        head.pixel_decoder.mask_feature.weight.zero_()
        head.pixel_decoder.mask_feature.bias.fill_(1.0)
        cls, masks = head(_features(1, 37, 45))
    assert all((m < 0).all() for m in masks)
    assert len(seen) == TINY.decoder_layers and all(not m.any() for m in seen)
    # and it does see the thresholded masks where keys are partly hidden (the default initialisation)
    torch.manual_seed(0)
    fresh = Mask2FormerHead(TINY, 3).eval()
    seen.clear()
    for layer in fresh.transformer_decoder.layers:
        original = layer.cross_attn.forward

        def spy2(*args, _orig=original, **kw):
            seen.append(args[5])
            return _orig(*args, **kw)
        layer.cross_attn.forward = spy2
    with torch.no_grad():
        _, masks = fresh(_features(1, 37, 45))
    assert seen[0].any() and not seen[0].all()
    # exactly the keys whose resized mask logits have sigmoid < 0.5, in the first layer (attending 2 x 2 keys)
    first = torch.nn.functional.interpolate(masks[0], (2, 2), mode="bilinear", align_corners=False).flatten(2)
    hidden = first.sigmoid() < 0.5
    hidden = hidden & ~hidden.all(-1, keepdim=True)
    assert torch.equal(seen[0], hidden.repeat_interleave(TINY.decoder_heads, 0))


def test_predict_is_class_weighted_masks_at_the_input_size():
    torch.manual_seed(0)
    head = Mask2FormerHead(TINY, 3).eval()
    feats = _features(2, 37, 45)
    with torch.no_grad():
        cls, masks = head(feats)
        out = head.predict(feats, img_size=(37, 45))
    assert len(cls) == len(masks) == TINY.decoder_layers + 1
    assert cls[-1].shape == (2, 5, 4) and masks[-1].shape == (2, 5, 10, 12)
    assert out.shape == (2, 3, 37, 45)
    up = torch.nn.functional.interpolate(masks[-1], size=(37, 45), mode="bilinear", align_corners=False).sigmoid()
    p = cls[-1].softmax(-1)
    for c in range(3):
        expect = (p[:, :, c, None, None] * up).sum(1)
        torch.testing.assert_close(out[:, c], expect, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="img_size"):
        head.predict(feats)


def test_segmentor_passes_the_input_size_and_reset_classifier():
    arch = ArchConfig(backbone=ResNetConfig(depth=18, deep_stem=False, strides=(1, 2, 2, 2), dilations=(1, 1, 1, 1),
                                            contract_dilation=False),
                      decode_head=Mask2FormerHeadConfig(**{**TINY.__dict__, "in_channels": (64, 128, 256, 512)}),
                      num_classes=4)
    torch.manual_seed(0)
    model = build_model(arch).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 41, 57))
        assert out.shape == (1, 4, 41, 57)
        assert (out >= 0).all()  # probabilities times sigmoids
        model.reset_classifier(6)
        assert model.decode_head.cls_embed.out_features == 7
        assert model(torch.randn(1, 3, 41, 57)).shape == (1, 6, 41, 57)


def _facts_model(name: str) -> dict:
    import json
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "reference",
                        "mmseg_configs.json")
    with open(path) as f:
        return json.load(f)["configs"][f"configs/mask2former/{name}.py"]["model"]


def test_converter_reads_the_config_and_refuses_variants():
    model = _facts_model("mask2former_r50_8xb2-160k_ade20k-512x512")
    arch = arch_from_mmseg(model)
    head = arch["decode_head"]
    assert head["kind"] == "mask2former" and head["encoder_layers"] == 6 and head["decoder_layers"] == 9
    assert head["no_object_weight"] == 0.1 and head["cls_weight"] == 2.0 and head["num_points"] == 12544
    assert arch["backbone"]["deep_stem"] is False
    import copy
    for mutate in (lambda h: h["pixel_decoder"].update(norm_cfg={"type": "BN"}),
                   lambda h: h["pixel_decoder"]["positional_encoding"].update(normalize=False),
                   lambda h: h["transformer_decoder"]["layer_cfg"]["ffn_cfg"].update(num_fcs=3),
                   lambda h: h["transformer_decoder"]["layer_cfg"]["cross_attn_cfg"].update(attn_drop=0.1),
                   lambda h: h["loss_cls"].update(class_weight=[2.0] + h["loss_cls"]["class_weight"][1:])):
        m = copy.deepcopy(model)
        mutate(m["decode_head"])
        with pytest.raises(Unsupported):
            arch_from_mmseg(m)


# ------------------------------------------------------------------------------------------------ MaskFormer

TINY_MF = MaskFormerHeadConfig(in_channels=(8, 16, 24, 40), feat_channels=32, out_channels=32, num_queries=5,
                               num_groups=4, pos_num_feats=16, decoder_layers=3, decoder_heads=2,
                               decoder_ffn_channels=24)


def test_maskformer_pixel_decoder_upsamples_nearest_and_projects_the_memory():
    torch.manual_seed(0)
    head = MaskFormerHead(TINY_MF, 3).eval()
    assert isinstance(head.decoder_input_proj, nn.Conv2d) and head.decoder_input_proj.in_channels == 40
    feats = _features(2, 37, 45, channels=(8, 16, 24, 40))
    pd = head.pixel_decoder
    with torch.no_grad():
        mask_feature, memory = pd(feats)
        assert memory is feats[-1]
        # by hand: coarse to fine with nearest upsampling (2 x 2 -> 3 x 3 -> 5 x 6 -> 10 x 12)
        y = pd.last_feat_conv(feats[-1])
        for i in (2, 1, 0):
            cur = pd.lateral_convs[i](feats[i])
            rows = (torch.arange(cur.shape[2]) * y.shape[2] // cur.shape[2])
            cols = (torch.arange(cur.shape[3]) * y.shape[3] // cur.shape[3])
            y = pd.output_convs[i](cur + y[:, :, rows][:, :, :, cols])
        torch.testing.assert_close(mask_feature, pd.mask_feature(y))


def test_maskformer_predictions_per_layer_and_dropout_only_in_training():
    torch.manual_seed(0)
    head = MaskFormerHead(TINY_MF, 3).eval()
    feats = _features(1, 37, 45, channels=(8, 16, 24, 40))
    with torch.no_grad():
        cls, masks = head(feats)
        again, _ = head(feats)
        out = head.predict(feats, img_size=(37, 45))
    assert len(cls) == len(masks) == TINY_MF.decoder_layers
    assert cls[0].shape == (1, 5, 4) and masks[0].shape == (1, 5, 10, 12) and out.shape == (1, 3, 37, 45)
    assert all(torch.equal(a, b) for a, b in zip(cls, again))  # eval: the 0.1 dropouts are off
    up = torch.nn.functional.interpolate(masks[-1], size=(37, 45), mode="bilinear", align_corners=False).sigmoid()
    expect = torch.einsum("bqc,bqhw->bchw", cls[-1].softmax(-1)[..., :3], up)
    torch.testing.assert_close(out, expect)
    head.train()
    with torch.no_grad():
        trained, _ = head(feats)
    assert not torch.equal(trained[-1], cls[-1])


def test_mask_classifier_sets_the_checkpoint_class_count():
    from sszoo.hub.checkpoint import checkpoint_num_classes
    head = MaskFormerHead(TINY_MF, 3)
    state = {f"decode_head.{k}": v for k, v in head.state_dict().items()}
    assert checkpoint_num_classes(state) == 3  # cls_embed has 4 outputs, the last "no object"


def test_maskformer_converter():
    import json
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "reference",
                        "mmseg_configs.json")
    with open(path) as f:
        model = json.load(f)["configs"]["configs/maskformer/maskformer_r50-d32_8xb2-160k_ade20k-512x512.py"]["model"]
    head = arch_from_mmseg(model)["decode_head"]
    assert head["kind"] == "maskformer" and head["decoder_layers"] == 6 and head["dropout"] == 0.1
    assert head["mask_weight"] == 20.0 and head["focal_gamma"] == 2.0 and head["no_object_weight"] == 0.1
    import copy
    m = copy.deepcopy(model)
    m["decode_head"]["pixel_decoder"]["type"] = "mmdet.TransformerEncoderPixelDecoder"
    with pytest.raises(Unsupported):
        arch_from_mmseg(m)
    m = copy.deepcopy(model)
    m["decode_head"]["transformer_decoder"]["layer_cfg"]["ffn_cfg"]["ffn_drop"] = 0.2  # two dropout rates
    with pytest.raises(Unsupported):
        arch_from_mmseg(m)
