"""PSANet's mask operator (sszoo.models.heads.psa.psa_mask) equals MMCV's compiled ``psamask`` CPU kernel.

The golden (tools/make_heads_c_golden.py, run with the oracle) holds the kernel's collect and distribute
outputs on small random inputs whose windows are smaller than, larger than and of even size relative to
the feature map.
"""
import os

import pytest
import torch

from sszoo.models.heads.psa import psa_mask

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "heads", "psamask.pt")
CASES = torch.load(GOLDEN, weights_only=True)["cases"]


@pytest.mark.parametrize("i", range(len(CASES)))
@pytest.mark.parametrize("psa_type", ["collect", "distribute"])
def test_psa_mask_matches_mmcv_kernel(i, psa_type):
    case = CASES[i]
    out = psa_mask(case["input"], psa_type, tuple(case["mask_size"]))
    assert out.shape == case[psa_type].shape
    assert torch.equal(out, case[psa_type])  # a pure copy: bit-exact


def test_psa_mask_rejects_wrong_channel_count():
    with pytest.raises(ValueError):
        psa_mask(torch.zeros(1, 8, 3, 3), "collect", (3, 3))
