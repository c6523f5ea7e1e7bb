"""SegNeXt's own logic (sszoo/models/backbones/mscan.py, sszoo/models/heads/ham_head.py) against hand-made
expectations.

The end-to-end numerics are tests/test_parity.py's SegNeXt goldens (MMSegmentation's float64 forward, with the
NMF's random bases drawn under the oracle's seed); here: the stage sizes at odd inputs, the strip kernels, the
NMF's updates and step counts against a float64 re-derivation, its use of the global generator (exactly one draw
per forward, so seeding replays the reference), drop path at eval, and the converter's refusals.
"""
from __future__ import annotations

import json
import os
import sys

import pytest
import torch
import torch.nn.functional as F

from sszoo.models import ArchConfig, build_model
from sszoo.models.backbones.mscan import MSCAN
from sszoo.models.heads.ham_head import NMF2D, LightHamHead

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from mmseg_arch import Unsupported, arch_from_mmseg  # noqa: E402

T_CONFIG = "configs/segnext/segnext_mscan-t_1xb16-adamw-160k_ade20k-512x512.py"


def _reference_model(path: str = T_CONFIG) -> dict:
    with open(os.path.join(ROOT, "tools", "reference", "mmseg_configs.json")) as f:
        return json.load(f)["configs"][path]["model"]


def _tiny_mscan(**kw) -> MSCAN:
    torch.manual_seed(0)
    args = dict(embed_dims=(8, 8, 16, 16), mlp_ratios=(2, 2, 2, 2), depths=(1, 1, 1, 1))
    args.update(kw)
    return MSCAN(**args)


def test_stage_sizes_at_odd_input():
    # every stride-2 3x3 conv with padding 1 maps a side n to ceil(n / 2): 49 -> 25 -> 13 -> 7 -> 4 -> 2
    model = _tiny_mscan().eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 49, 69))
    assert [tuple(o.shape) for o in outs] == [(2, 8, 13, 18), (2, 8, 7, 9), (2, 16, 4, 5), (2, 16, 2, 3)]
    assert all(o.is_contiguous() for o in outs)


def test_strip_kernels_and_key_order():
    model = _tiny_mscan()
    att = model.block1[0].attn.spatial_gating_unit
    shapes = {n: tuple(getattr(att, n).weight.shape) for n in ("conv0", "conv0_1", "conv0_2", "conv1_1", "conv1_2",
                                                             "conv2_1", "conv2_2", "conv3")}
    assert shapes == {"conv0": (8, 1, 5, 5), "conv0_1": (8, 1, 1, 7), "conv0_2": (8, 1, 7, 1), "conv1_1": (8, 1, 1, 11),
                      "conv1_2": (8, 1, 11, 1), "conv2_1": (8, 1, 1, 21), "conv2_2": (8, 1, 21, 1), "conv3": (8, 8, 1, 1)}
    assert att.conv2_2.padding == (10, 0) and att.conv2_1.padding == (0, 10)
    # the layer scales are the block's own parameters: first in its state dict, as the reference's
    keys = [k for k in model.state_dict() if k.startswith("block1.0.")]
    assert keys[:3] == ["block1.0.layer_scale_1", "block1.0.layer_scale_2", "block1.0.norm1.weight"]
    assert list(model.state_dict())[:2] == ["patch_embed1.proj.0.weight", "patch_embed1.proj.0.bias"]


def test_drop_path_is_identity_at_eval():
    plain, dropped = _tiny_mscan(), _tiny_mscan(drop_path_rate=0.5)
    dropped.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 33, 31)
    with torch.no_grad():
        a, b = plain.eval()(x), dropped.eval()(x)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    # the rate rises linearly from 0 to drop_path_rate over all blocks: 0, 1/6, 1/3, 1/2 for 4 blocks
    rates = [blk.drop_path.drop_prob if hasattr(blk.drop_path, "drop_prob") else 0.0
             for i in range(1, 5) for blk in getattr(dropped, f"block{i}")]
    assert rates == pytest.approx([0.0, 0.5 / 3, 1.0 / 3, 0.5])


def _nmf_by_hand(x: torch.Tensor, bases: torch.Tensor, steps: int) -> torch.Tensor:
    """The multiplicative-update NMF written out per sample in float64 (the paper's / reference's rules)."""
    out = []
    for xs, b in zip(x, bases):  # xs: D x N, b: D x R
        c = torch.softmax(xs.T @ b, dim=-1)
        for _ in range(steps):
            c = c * (xs.T @ b) / (c @ (b.T @ b) + 1e-6)
            b = b * (xs @ c) / (b @ (c.T @ c) + 1e-6)
        c = c * (xs.T @ b) / (c @ (b.T @ b) + 1e-6)
        out.append(b @ c.T)
    return torch.stack(out)


@pytest.mark.parametrize("training,steps", [(False, 7), (True, 3)])
def test_nmf_updates_and_steps(training, steps):
    nmf = NMF2D(8, md_s=2, md_r=3, train_steps=3, eval_steps=7).train(training)
    x = torch.rand(2, 8, 5, 3, dtype=torch.float64)  # 2 samples x 2 groups of 4 channels, 15 pixels
    torch.manual_seed(11)
    got = nmf(x)
    torch.manual_seed(11)  # the reference's draw: float32 uniforms (B * S, D, R), normalised over D
    bases = F.normalize(torch.rand(4, 4, 3), dim=1).double()
    want = _nmf_by_hand(x.view(4, 4, 15), bases, steps).view(2, 8, 5, 3)
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-14)
    # a different number of steps gives a different factorisation
    other = _nmf_by_hand(x.view(4, 4, 15), bases, 10 - steps).view(2, 8, 5, 3)
    assert (got - other).abs().max() > 1e-6


def test_nmf_reduces_reconstruction_error():
    torch.manual_seed(0)
    b, r = torch.rand(1, 16, 2, dtype=torch.float64), torch.rand(1, 40, 2, dtype=torch.float64)
    x = torch.bmm(b, r.transpose(1, 2)).view(1, 16, 5, 8)  # exactly rank 2, non-negative
    nmf = NMF2D(16, md_r=2, eval_steps=50).eval()
    assert (nmf(x) - x).norm() < 0.05 * x.norm()


def _segnext_t(num_classes: int = 5):
    arch = ArchConfig.from_dict(arch_from_mmseg(_reference_model())).with_num_classes(num_classes)
    return build_model(arch).eval()


def test_one_global_draw_per_forward_replays_under_a_seed():
    model = _segnext_t()
    x = torch.randn(2, 3, 41, 35)
    with torch.no_grad():
        torch.manual_seed(5)
        a = model(x)
        after = torch.get_rng_state()
        torch.manual_seed(5)
        b = model(x)
        torch.manual_seed(6)
        c = model(x)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-4  # the bases matter: another seed, other logits
    # the forward consumed exactly the reference's one torch.rand((B * MD_S, D, R)) = (2, 256, 16), nothing else
    torch.manual_seed(5)
    torch.rand(2, 256, 16)
    assert torch.equal(torch.get_rng_state(), after)


def test_converter_record_and_refusals():
    model = _reference_model()
    arch = arch_from_mmseg(model)
    assert arch["backbone"]["kind"] == "mscan" and arch["backbone"]["attention_kernel_sizes"] == [5, [1, 7], [1, 11], [1, 21]]
    head = arch["decode_head"]
    assert (head["kind"], head["md_r"], head["eval_steps"], head["train_steps"], head["num_groups"]) == \
        ("light_ham", 16, 7, 6, 32)
    for change in (dict(ham_kwargs=dict(model["decode_head"]["ham_kwargs"], rand_init=False)),
                   dict(norm_cfg=dict(type="BN", requires_grad=True)), dict(act_cfg=dict(type="GELU"))):
        with pytest.raises(Unsupported):
            arch_from_mmseg(dict(model, decode_head=dict(model["decode_head"], **change)))
    for change in (dict(norm_cfg=dict(type="GN", num_groups=8)), dict(act_cfg=dict(type="ReLU")), dict(num_stages=3)):
        with pytest.raises(Unsupported):
            arch_from_mmseg(dict(model, backbone=dict(model["backbone"], **change)))


def test_head_refuses_uneven_groups():
    with pytest.raises(ValueError, match="md_s"):
        LightHamHead((8, 8), 8, 3, in_index=(0, 1), ham_channels=10, md_s=3, num_groups=2)


def test_make_deterministic_fixes_one_draw():
    nmf = NMF2D(8, md_s=2, md_r=3).eval()
    x = torch.rand(1, 8, 5, 3, dtype=torch.float64)
    torch.manual_seed(3)
    random_once = nmf(x)  # one sample: the draw is (S, D, R), the same numbers make_deterministic takes
    torch.manual_seed(3)
    nmf.make_deterministic()
    assert "fixed_bases" not in nmf.state_dict()
    state = torch.get_rng_state()
    assert torch.equal(nmf(x), random_once)
    assert torch.equal(torch.get_rng_state(), state)  # no more draws
    two = nmf(torch.cat([x, x]))  # every sample starts from the same bases
    assert torch.equal(two[0], two[1]) and torch.equal(two[:1], random_once)
