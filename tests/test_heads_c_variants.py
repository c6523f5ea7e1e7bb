"""EncHead, APCHead, DMHead and PSAHead options that no published config uses (laterals, no SE loss, no
fusion, even dynamic filter sizes, single-direction and compact PSA, no shrinking) equal MMSegmentation's.

The golden (tools/make_heads_c_golden.py, run with the oracle) holds tiny heads' state dicts, features and
eval-mode logits in float64; each head is built here through tools/mmseg_arch.py's converter, as the zoo does.
"""
import copy
import os
import sys

import pytest
import torch

from sszoo.models.builder import HEADS, build_head, config_from_dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from make_heads_c_golden import VARIANTS  # noqa: E402
from mmseg_arch import HEADS as CONVERTERS  # noqa: E402

GOLDEN = torch.load(os.path.join(ROOT, "tests", "golden", "heads", "heads_c_variants.pt"), weights_only=True)


@pytest.mark.parametrize("name,kind,kwargs", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_head_variant_matches_reference(name, kind, kwargs):
    kwargs = copy.deepcopy(kwargs)
    mmseg_cfg = dict(type=kind, channels=16, num_classes=5, dropout_ratio=0.1, align_corners=True,
                     in_index=kwargs.pop("in_index", 3), **kwargs)
    head = build_head(config_from_dict(CONVERTERS[kind](mmseg_cfg), HEADS, "head"), 5, True)
    g = GOLDEN[name]
    head.load_state_dict(g["state_dict"])
    head = head.double().eval()
    with torch.no_grad():
        out = head.predict(g["features"])
    assert out.shape == g["logits"].shape
    assert (out - g["logits"]).abs().max().item() <= 1e-10 * max(1.0, g["logits"].abs().max().item())
