"""Logit parity with MMSegmentation 1.2.2 on golden outputs made by tools/make_golden.py."""
import pytest
import torch

import sszoo
from oracle_weights import cases, oracle_checkpoint

WHOLE = [c for c in cases() if not c.startswith("slide_")]


@pytest.mark.parametrize("case", WHOLE)
def test_logits_match_reference(case, tmp_path):
    ckpt = tmp_path / "checkpoint.pth"
    x, ref, info = oracle_checkpoint(case, str(ckpt))
    model = sszoo.create_model(info["config"], pretrained=str(ckpt), num_classes=info["num_classes"])
    assert model.align_corners == info["align_corners"]
    with torch.no_grad():
        out = model(x)
    assert out.shape == ref.shape
    tol = 1e-4 * max(1.0, ref.abs().max().item())
    diff = (out - ref).abs().max().item()
    assert diff <= tol, f"{case}: max|diff| {diff:.2e} > {tol:.2e}"
