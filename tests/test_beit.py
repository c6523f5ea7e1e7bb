"""BEiT / MAE backbones and the Feature2Pyramid neck: the relative position index against hand-computed rows, the
attention against torch's own multi-head attention, the fixed input size (refused with the accepted size named,
the patch conv's floor accepted as the reference does) and the neck's rescaling. Logit parity with the reference
is tests/test_parity.py's beit_b_upernet and tests/test_inference.py's slide_mae_b_upernet."""
import pytest
import torch
from torch import nn

from sszoo.models import ArchConfig, build_model
from sszoo.models.backbones import BEiT, MAE
from sszoo.models.backbones.beit import BEiTAttention, relative_position_index
from sszoo.models.necks import Feature2Pyramid

torch.set_num_threads(1)


def test_relative_position_index_hand_computed():
    # a 2 x 3 grid: offsets dh in -1..1, dw in -2..2 -> 3 x 5 = 15 rows, then class->patch 15, patch->class 16,
    # class->class 17; patch p = (p // 3, p % 3), token p + 1; row (dh + 1) * 5 + (dw + 2) for query minus key
    idx = relative_position_index((2, 3))
    assert idx.shape == (7, 7) and idx.dtype == torch.long
    assert idx[0, 0] == 17 and (idx[0, 1:] == 15).all() and (idx[1:, 0] == 16).all()
    assert idx[1, 1] == 7            # (0,0) to itself: zero offset, the centre row
    assert idx[1, 6] == 0            # (0,0) to (1,2): dh = -1, dw = -2
    assert idx[6, 1] == 14           # (1,2) to (0,0): dh = 1, dw = 2
    assert idx[2, 4] == 0 * 5 + 3    # (0,1) to (1,0): dh = -1, dw = 1
    assert idx[5, 3] == 2 * 5 + 1    # (1,1) to (0,2): dh = 1, dw = -1
    # pairs with the same offset share a row, different offsets never do
    rows = {}
    for a in range(6):
        for b in range(6):
            off = (a // 3 - b // 3, a % 3 - b % 3)
            assert rows.setdefault(off, int(idx[a + 1, b + 1])) == idx[a + 1, b + 1]
    assert len(set(rows.values())) == len(rows) == 15


def test_attention_with_zero_bias_is_plain_multihead_attention():
    torch.manual_seed(0)
    c, heads = 12, 3
    attn = BEiTAttention(c, heads, (2, 3), bias="qv").double()
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_()
        attn.relative_position_bias_table.zero_()
    ref = nn.MultiheadAttention(c, heads, batch_first=True).double()
    with torch.no_grad():
        ref.in_proj_weight.copy_(attn.qkv.weight)
        ref.in_proj_bias.copy_(torch.cat((attn.q_bias, torch.zeros(c), attn.v_bias)))
        ref.out_proj.weight.copy_(attn.proj.weight)
        ref.out_proj.bias.copy_(attn.proj.bias)
    x = torch.randn(2, 7, c, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(attn(x), ref(x, x, x, need_weights=False)[0], atol=1e-12)
        # a bias on the class-to-class row only changes how the class token attends to itself
        attn.relative_position_bias_table[-1] = 5.0
        y = attn(x)
    assert not torch.allclose(y[:, 0], ref(x, x, x)[0][:, 0])
    with torch.no_grad():
        assert torch.allclose(y[:, 1:], ref(x, x, x)[0][:, 1:], atol=1e-12)


def _small(cls=BEiT, **kw):
    torch.manual_seed(0)
    m = cls(img_size=(32, 48), embed_dims=16, num_layers=2, num_heads=2, out_indices=(0, 1), **kw).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(std=0.2)
    return m


@pytest.mark.parametrize("cls", [BEiT, MAE])
def test_fixed_size_refused_with_the_accepted_size_named(cls):
    m = _small(cls)
    for h, w in [(48, 48), (32, 64), (31, 48), (48, 32)]:
        with pytest.raises(ValueError, match=r"runs only on 32x48 inputs.*got %dx%d" % (h, w)):
            m(torch.zeros(1, 3, h, w))
    # sizes the patch conv floors to the same grid run, as in the reference: the extra pixels are never read
    x = torch.randn(1, 3, 47, 63)
    with torch.no_grad():
        a, b = m(x), m(x[..., :32, :48].contiguous())
    assert [t.shape for t in a] == [(1, 16, 2, 3)] * 2
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_the_zoo_configs_refuse_other_sizes_with_their_size_named():
    # BEiT-B (640 x 640) and MAE-B (512 x 512) as converted from MMSegmentation's configs, on the meta device
    # (the check precedes any computation)
    import json
    import os
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.join(root, "tools"))
    from mmseg_arch import arch_from_mmseg

    with open(os.path.join(root, "tools", "reference", "mmseg_configs.json")) as f:
        configs = json.load(f)["configs"]
    for config, size in [("configs/beit/beit-base_upernet_8xb2-160k_ade20k-640x640.py", 640),
                         ("configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py", 512)]:
        with torch.device("meta"):
            model = build_model(ArchConfig.from_dict(arch_from_mmseg(configs[config]["model"])))
            with pytest.raises(ValueError, match=f"runs only on {size}x{size} inputs"):
                model(torch.empty(1, 3, 512 + 640 - size, 512 + 640 - size))


def test_mae_has_absolute_position_embedding_and_biased_qkv():
    beit, mae = _small(BEiT), _small(MAE)
    keys_b, keys_m = set(beit.state_dict()), set(mae.state_dict())
    assert keys_m - keys_b == {"pos_embed"} | {f"layers.{i}.attn.qkv.bias" for i in range(2)}
    assert keys_b - keys_m == {f"layers.{i}.attn.{b}_bias" for i in range(2) for b in "qv"}
    assert mae.pos_embed.shape == (1, 2 * 3 + 1, 16)
    # the position embedding enters: zeroing it changes the output
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        before = mae(x)[1]
        mae.pos_embed.zero_()
        assert not torch.allclose(before, mae(x)[1])


def test_feature2pyramid_rescales():
    x = [torch.randn(2, 8, 3, 5) for _ in range(4)]
    neck = Feature2Pyramid(8, (4, 2, 1, 0.5)).eval()
    assert [tuple(o.shape[2:]) for o in neck(x)] == [(12, 20), (6, 10), (3, 5), (1, 2)]
    assert torch.equal(neck(x)[2], x[2])
    assert torch.equal(neck(x)[3], torch.nn.functional.max_pool2d(x[3], 2))
    assert sorted(neck.state_dict()) == sorted(
        [f"upsample_4x.{k}" for k in ("0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                                      "1.num_batches_tracked", "3.weight", "3.bias")]
        + ["upsample_2x.0.weight", "upsample_2x.0.bias"])
    neck = Feature2Pyramid(8, (2, 1, 0.5, 0.25)).eval()
    x = [torch.randn(1, 8, 8, 12) for _ in range(4)]
    assert [tuple(o.shape[2:]) for o in neck(x)] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    assert neck.upsample_4x is None
    with pytest.raises(ValueError, match="rescales"):
        Feature2Pyramid(8, (4, 2, 1, 0.25))
