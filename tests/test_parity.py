"""Logit parity with MMSegmentation 1.2.2 on golden outputs made by tools/make_golden.py.

The golden logits are the reference's float64 forward (tools/oracle_dump64.py), so the parity check runs
sszoo in float64 too (bound 1e-8 of the logit scale; measured about 1e-13): a wrong layer, key or resize
shows as an O(1) difference, float32 rounding does not.
The float32 forward is checked against the same logits with a bound for the rounding that a random
deep network amplifies (about 1e-4 of the logit scale for a ResNet-101, more than any kernel change).
"""
import pytest
import torch

import sszoo
from oracle_weights import case_arch, cases, oracle_checkpoint
from sszoo.hub import load_state_dict_strict
from sszoo.models import ArchConfig, build_model
from sszoo.registry import UnknownModelError

WHOLE = [c for c in cases() if not c.startswith("slide_")]
# The random ResNeSt (split attention over BN-calibrated pooled maps) amplifies float32 rounding most: on one
# input MMSegmentation's own float32 forward misses its float64 logits by 0.2 of the scale, and the thread
# count alone moves sszoo's float32 logits by 2e-3. Its parity is the float64 check above.
FLOAT32_BOUND = {"resnest": 0.25}  # one thread (pytest-xdist workers) measured 0.11 of the scale
# Mask2Former (by decode-head kind) thresholds the previous layer's mask logits into the next cross-attention's
# mask: float32 rounding (~3e-3 on logits of ~50) moves a key across the threshold wherever a logit is that near 0,
# and one such flip moves the output by 0.5-2% of the scale (measured by flipping one entry in float64); the two
# goldens measure 8e-4 and 7e-4 here, but another CPU's float32 rounding may flip an entry. Float64 is exact (0).
# MaskFormer has no threshold, but its random DETR decoder amplifies float32 rounding to 1.7e-3-1.8e-3 of the scale
# on the batch-2 golden (1 and 2 threads; 6e-4 on the other), too near the default 2e-3 to hold on every CPU.
FLOAT32_HEAD_BOUND = {"mask2former": 0.05, "maskformer": 5e-3}
# In float64 too it stays about 1e-6 of the scale (measured 5.8e-7 to 1.8e-6) rather than the others' 1e-13.
# The cause is not traced yet; a likely one is its attention BatchNorms, calibrated on two pooled values per
# channel, where one float32 ulp of a variance (the calibrated statistics are rounded to float32) is amplified
# through 101 layers. Still 100x inside the 1e-4 parity bound.
FLOAT64_BOUND = {"resnest": 1e-5}


@pytest.mark.parametrize("case", WHOLE)
def test_logits_match_reference(case, tmp_path):
    ckpt = tmp_path / "checkpoint.pth"
    x, ref, info = oracle_checkpoint(case, str(ckpt), dtype=torch.float64)
    arch = case_arch(info)
    if "arch" in info:  # the zoo's record (tools/generate_zoo.py) and the golden's (tools/mmseg_arch.py) agree
        assert arch == ArchConfig.from_dict(info["arch"])
    try:
        model = sszoo.create_model(info["config"], pretrained=str(ckpt), num_classes=info["num_classes"])
    except UnknownModelError:  # a method whose zoo entries are not generated yet: the same load, by hand
        model = build_model(arch)
        load_state_dict_strict(model, torch.load(ckpt, weights_only=True)["state_dict"], source=case)
        model.eval()
    assert model.align_corners == info["align_corners"]
    assert len(model.state_dict()) == info["n_keys"]
    if "n_params" in info:
        assert sum(p.numel() for p in model.parameters()) == info["n_params"]
    scale = max(1.0, ref.abs().max().item())
    # the oracle seeds the global generator before its forward: the same numbers for a model that draws from it
    # there (SegNeXt's NMF bases); the others draw nothing in eval mode
    forward_seed = info.get("forward_seed", info["seed"] + 2)
    with torch.no_grad():
        torch.manual_seed(forward_seed)
        out32 = model(x.float())
        torch.manual_seed(forward_seed)
        out = model.double()(x)
    n = info.get("logits_stride", 1)  # a strided golden keeps every n-th row and column of the logits
    out, out32 = out[..., ::n, ::n], out32[..., ::n, ::n]
    assert out.shape == ref.shape
    diff = (out - ref).abs().max().item()
    # the bound is 1e-4 x scale; float64 shows far more: the same operations agree to ~1e-13
    bound64 = FLOAT64_BOUND.get(arch.backbone.kind, 1e-8) * scale
    assert diff <= bound64, f"{case}: float64 max|diff| {diff:.2e} > {bound64:.2e}"
    diff32 = (out32.double() - ref).abs().max().item()
    head_kind = getattr(arch.decode_heads[-1], "kind", "")
    bound32 = FLOAT32_BOUND.get(arch.backbone.kind, FLOAT32_HEAD_BOUND.get(head_kind, 2e-3)) * scale
    assert diff32 <= bound32, f"{case}: float32 max|diff| {diff32:.2e} > {bound32:.2e}"
