"""FastFCN's training losses equal MMSegmentation 1.2.2's (golden: tools/make_loss_golden_fastfcn.py).

The auxiliary FCN head reads the JPU neck's pass-through of backbone stage 3 (``in_index`` 1 of the neck's
outputs); only the training loss sees it, so this checks the neck's output list and both heads' weighted
cross-entropy (decode 1.0, auxiliary 0.4) on the oracle's seeded weights, the network in float64 and eval mode
(no dropout draws).
"""
import json
import os

import torch

from oracle_weights import randomise_like_oracle
from sszoo.models import ArchConfig, build_model

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "heads", "fastfcn_jpu_psp_loss.pt")


def test_fastfcn_losses_match_reference():
    g = torch.load(GOLDEN, weights_only=True)
    info = json.loads(g["info"])
    model = build_model(ArchConfig.from_dict(info["arch"]))
    randomise_like_oracle(model, info["seed"], tuple(info["calib_shape"]), float64=True)
    model.double().eval()
    with torch.no_grad():
        losses = model.loss(model.forward_heads(g["input"]), g["label"])
    # sszoo's cross-entropy runs in float32 by design (AMP-safe), so the bound is float32 rounding
    torch.testing.assert_close(losses["decode"].double(), g["decode"], rtol=1e-6, atol=0)
    torch.testing.assert_close(losses["aux"].double(), g["aux"], rtol=1e-6, atol=0)
