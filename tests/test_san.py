"""SAN (sszoo.models.heads.san, sszoo.models.clip_text, MultimodalSegmentor): the parts the goldens cannot
isolate, against independent expectations (CLIP's token ids, torch.nn.MultiheadAttention as the reference
runs it, hand-built masks). The whole network is checked against MMSegmentation by tests/test_parity.py
(san_vit_b16*)."""
from __future__ import annotations

import math
import os
import sys

import pytest
import torch
import torch.nn.functional as F

from sszoo.models import ArchConfig, build_model
from sszoo.models.backbones.vit import PatchEmbed, ViTConfig
from sszoo.models.clip_text import CLIPTextEncoder, CLIPTextEncoderConfig, CLIPTransformerLayer, prompt_tokens
from sszoo.models.heads.san import RecWithAttnbias, SideAdapterCLIPHeadConfig

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from mmseg_arch import Unsupported, arch_from_mmseg  # noqa: E402

SOT, EOT = 49406, 49407


def test_prompt_tokens_are_clips():
    names, tokens = prompt_tokens("coco-stuff164k", 3)
    assert names == ["person", "bicycle", "car"]
    assert tokens.shape == (14, 3, 77)  # the 14 "vild" templates
    # "a photo of a person." in CLIP's BPE: a=320 photo=1125 of=539 person=2533 .=269
    assert tokens[0, 0, :8].tolist() == [SOT, 320, 1125, 539, 320, 2533, 269, EOT]
    assert tokens[0, 0, 8:].eq(0).all()
    assert (tokens.argmax(-1) == (tokens == EOT).int().argmax(-1)).all()  # the end token is each row's largest id
    with pytest.raises(ValueError, match="171 class names"):
        prompt_tokens("coco-stuff164k", 172)
    with pytest.raises(ValueError, match="no CLIP prompts"):
        prompt_tokens("cityscapes", 3)


def _reference_layer(layer: CLIPTransformerLayer, x_lnd: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MMCV's BaseTransformerLayer as the reference runs it: sequence-first torch.nn.MultiheadAttention with a
    (N * heads) x L x L float mask, need_weights=True (the explicit softmax)."""
    att = layer.attentions[0].attn
    c = x_lnd.shape[-1]
    mha = torch.nn.MultiheadAttention(c, att.num_heads, dtype=x_lnd.dtype)
    with torch.no_grad():
        mha.in_proj_weight.copy_(att.in_proj_weight)
        mha.in_proj_bias.copy_(att.in_proj_bias)
        mha.out_proj.weight.copy_(att.out_proj.weight)
        mha.out_proj.bias.copy_(att.out_proj.bias)
    h = layer.norms[0](x_lnd)
    x = x_lnd + mha(h, h, h, attn_mask=mask)[0]
    return layer.ffns[0](layer.norms[1](x), identity=x)


def test_layer_matches_multihead_attention_with_per_head_masks():
    torch.manual_seed(0)
    layer = CLIPTransformerLayer(12, 3, 48).double()
    n, length = 2, 5
    x = torch.randn(n, length, 12, dtype=torch.float64)
    mask = torch.randn(n, 3, length, length, dtype=torch.float64)  # a different bias per sample and head
    ours = layer(x, mask)
    ref = _reference_layer(layer, x.transpose(0, 1), mask.reshape(n * 3, length, length)).transpose(0, 1)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)


def _tiny_text(num_classes: int = 3) -> CLIPTextEncoder:
    torch.manual_seed(1)
    enc = CLIPTextEncoder(dataset="coco-stuff164k", num_classes=num_classes, embed_dims=8, num_layers=2,
                          num_heads=2, output_dims=6).double()
    with torch.no_grad():
        for p in enc.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return enc


def test_text_encoder_by_hand():
    enc = _tiny_text()
    per_template = []
    causal = torch.full((77, 77), float("-inf"), dtype=torch.float64).triu(1)
    for t in range(14):
        tok = enc.tokens[t]
        x = (enc.token_embedding(tok) + enc.positional_embedding).transpose(0, 1)
        for layer in enc.transformer:
            x = _reference_layer(layer, x, causal)
        x = enc.ln_final(x.transpose(0, 1))
        eot = (tok == EOT).int().argmax(-1)
        feat = torch.stack([x[i, eot[i]] for i in range(len(tok))]) @ enc.text_projection
        per_template.append(feat / feat.norm(dim=-1, keepdim=True))
    mean = torch.stack(per_template).mean(0)
    mean = mean / mean.norm(dim=-1, keepdim=True)
    both = torch.cat([mean, enc.bg_embed])
    expected = math.exp(enc.logit_scale.item()) * both / both.norm(dim=-1, keepdim=True)
    with torch.no_grad():
        torch.testing.assert_close(enc(), expected, rtol=0, atol=1e-12)


def test_text_cache_follows_the_weights():
    enc = _tiny_text()
    calls = []
    enc.class_embeddings = (lambda f: lambda: calls.append(1) or f())(enc.class_embeddings)
    first = enc()
    assert torch.equal(enc(), first) and len(calls) == 1  # cached
    with torch.no_grad():
        enc.bg_embed.add_(1.0)  # the background is not cached: no recomputation
    enc()
    assert len(calls) == 1
    with torch.no_grad():
        enc.text_projection.mul_(2.0)  # an in-place edit of a cached input
    enc()
    assert len(calls) == 2
    enc.load_state_dict(enc.state_dict())
    enc.float()
    assert enc().dtype == torch.float32 and len(calls) == 3
    enc.select_classes(2)
    assert enc().shape == (3, 6) and len(calls) == 4  # two classes and the background


def test_recognition_masks_by_hand():
    cfg = SideAdapterCLIPHeadConfig(num_queries=2, rec_layers=2, rec_embed_dims=8, rec_heads=2, rec_out_dims=4)
    rec = RecWithAttnbias(cfg)
    bias = torch.arange(2 * 2 * 2 * 4, dtype=torch.float32).reshape(1, 2, 2, 2, 4)  # N, heads, Q, 2 x 4
    masks = rec.attention_masks([bias], (1, 2))  # max-pooled to the 1 x 2 CLIP grid
    assert len(masks) == 2 and masks[0] is masks[1]  # one bias for every layer
    m = masks[0]
    assert m.shape == (1, 2, 5, 5)  # 2 queries, class token, 2 patch tokens
    pooled = F.adaptive_max_pool2d(bias.reshape(1, 4, 2, 4), (1, 2)).reshape(1, 2, 2, 2)
    for h in range(2):
        expected = torch.tensor([[0, -100, -100, 0, 0], [-100, 0, -100, 0, 0]] + [[-100, -100, 0, 0, 0]] * 3,
                                dtype=torch.float32)
        expected[:2, 3:] = pooled[0, h]
        assert torch.equal(m[0, h], expected)
    # a bias shared by the heads (1 head) is repeated for each
    shared = rec.attention_masks([bias[:, :1]], (1, 2))[0]
    assert torch.equal(shared[0, 0], shared[0, 1])
    with pytest.raises(ValueError, match="3 heads"):
        rec.attention_masks([torch.zeros(1, 3, 2, 2, 4)], (1, 2))


def test_patch_embed_without_padding_drops_the_remainder():
    x = torch.randn(1, 3, 33, 47)
    assert PatchEmbed(3, 4, 16, pad="none")(x)[1] == (2, 2)
    assert PatchEmbed(3, 4, 16, pad="corner")(x)[1] == (3, 3)


def _tiny_san(num_classes: int = 3) -> ArchConfig:
    vit = ViTConfig(img_size=(64, 64), patch_size=16, patch_pad="none", embed_dims=16, num_layers=3, num_heads=2,
                    out_indices=(0, 1, 2), output_cls_token=True, out_origin=True, pre_norm=True, norm_eps=1e-5,
                    act="quick_gelu")
    head = SideAdapterCLIPHeadConfig(clip_channels=16, embed_dims=8, num_queries=4, train_size=(64, 64),
                                     encode_layers=4, encode_heads=2, decoder_heads=2, decoder_embed_channels=6,
                                     decoder_mlp_channels=6, rec_layers=1, rec_embed_dims=16, rec_heads=2,
                                     rec_out_dims=6)
    text = CLIPTextEncoderConfig(embed_dims=8, num_layers=1, num_heads=2, output_dims=6)
    return ArchConfig(backbone=vit, decode_head=head, num_classes=num_classes, text_encoder=text,
                      encoder_resolution=0.5)


def test_multimodal_segmentor_odd_sizes_and_classes():
    torch.manual_seed(0)
    model = build_model(_tiny_san()).eval()
    with torch.no_grad():  # (zero-initialised projections would give 0/0 text embeddings)
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    assert ArchConfig.from_dict(model.config.to_dict()) == model.config
    assert [k.split(".")[0] for k in model.state_dict()][:1] == ["image_encoder"]
    assert {k.split(".")[0] for k in model.state_dict()} == {"image_encoder", "text_encoder", "decode_head"}
    x = torch.randn(2, 3, 45, 71)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 3, 45, 71)
        assert model(x, out_size=(20, 30)).shape == (2, 3, 20, 30)
        # scores are sums over the 4 proposals of sigmoid x (softmax without the background): in [0, 4)
        assert out.min() >= 0 and out.max() < 4
        model.reset_classifier(2)  # the first two prompts; the network is unchanged
        assert model(x).shape == (2, 2, 45, 71) and model.text_encoder.class_names == ["person", "bicycle"]
    # only what the reference trains: CLIP's position embedding, the side adapter, the background embedding
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    assert "image_encoder.pos_embed" in trainable and "text_encoder.bg_embed" in trainable
    assert not any(k.startswith(("decode_head.rec_with_attnbias", "image_encoder.layers")) for k in trainable)
    assert any(k.startswith("decode_head.side_adapter_network") for k in trainable)
    with pytest.raises(NotImplementedError, match="inference only"):
        model.forward_heads(x)


def test_arch_refuses_what_sszoo_does_not_build():
    import json
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tools", "reference",
                           "mmseg_configs.json")) as f:
        model = json.load(f)["configs"]["configs/san/san-vit-b16_coco-stuff164k-640x640.py"]["model"]
    arch = arch_from_mmseg(model)
    assert arch["text_encoder"]["dataset"] == "coco-stuff164k" and arch["encoder_resolution"] == 0.5
    assert arch["backbone"]["patch_pad"] == "none" and arch["backbone"]["act"] == "quick_gelu"
    for part, change in [("text_encoder", dict(dataset_name=None, vocabulary=["cat"])),
                         ("text_encoder", dict(dataset_name="cityscapes")),
                         ("image_encoder", dict(patch_pad="corner")),
                         ("decode_head", dict(maskgen_cfg=dict(model["decode_head"]["maskgen_cfg"], cross_attn=True)))]:
        with pytest.raises(Unsupported):
            arch_from_mmseg(dict(model, **{part: dict(model[part], **change)}))


def test_separable_adaptive_max_pool_is_the_aten_op():
    from sszoo.models.heads.san import adaptive_max_pool2d
    x = torch.randn(2, 3, 40, 27)
    for size in [(32, 32), (20, 9), (7, 5), (1, 1), (40, 27)]:
        assert torch.equal(adaptive_max_pool2d(x, size), F.adaptive_max_pool2d(x, size))


def test_onnx_export(tmp_path):
    """The zoo's SAN entries exceed tests/test_export_methods.py's 150M-parameter limit: a tiny one exports."""
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = build_model(_tiny_san()).eval()
    x = torch.randn(1, 3, 64, 96)
    path = str(tmp_path / "san.onnx")
    with torch.no_grad():
        ref = model(x)
        torch.onnx.export(model, (x,), path, opset_version=17, dynamo=False)
    sess = ort.InferenceSession(path)
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert (torch.from_numpy(out) - ref).abs().max() < 1e-5
