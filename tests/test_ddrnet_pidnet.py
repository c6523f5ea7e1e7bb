"""DDRNet and PIDNet beyond logit parity: the input sizes they take, their training outputs, PIDHead's
boundary labels (MMSegmentation's GenerateEdge transform) and both heads' training losses, against
tests/golden/heads/ddr_pid_losses.pt (tools/make_loss_golden_ddr_pid.py, MMSegmentation 1.2.2 in float64).
"""
from __future__ import annotations

import json
import os
import sys

import pytest
import torch
import torch.nn.functional as F

from sszoo.models import ArchConfig, build_model
from sszoo.models.backbones import DDRNetConfig, PIDNetConfig
from sszoo.models.heads import DDRHeadConfig, PIDHeadConfig
from sszoo.models.heads.pid_head import generate_edge

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from mmseg_arch import arch_from_mmseg  # noqa: E402

GOLDEN = os.path.join(ROOT, "tests", "golden", "heads", "ddr_pid_losses.pt")


@pytest.fixture(scope="module")
def golden() -> dict:
    return torch.load(GOLDEN, weights_only=True)


def _tiny(kind: str, num_classes: int = 3) -> torch.nn.Module:
    """Narrow networks of each family (the reference's structure at channels 4-8), for shape checks."""
    if kind == "ddrnet":
        arch = ArchConfig(backbone=DDRNetConfig(channels=4, ppm_channels=8), decode_head=DDRHeadConfig(16, 8),
                          num_classes=num_classes)
    else:
        arch = ArchConfig(backbone=PIDNetConfig(channels=4, ppm_channels=8, num_stem_blocks=3, num_branch_blocks=4)
                          if kind == "pidnet_l" else PIDNetConfig(channels=4, ppm_channels=8),
                          decode_head=PIDHeadConfig(16, 8), num_classes=num_classes, align_corners=True)
    torch.manual_seed(0)
    return build_model(arch)


@pytest.mark.parametrize("kind", ["ddrnet", "pidnet", "pidnet_l"])
def test_input_sides_must_be_multiples_of_8(kind):
    # The reference adds ceil(side / 8)- and side // 8-pixel maps and fails with a shape mismatch otherwise.
    model = _tiny(kind).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 40, 56)).shape == (1, 3, 40, 56)
        with pytest.raises(ValueError, match="multiples of 8"):
            model(torch.randn(1, 3, 41, 56))
        with pytest.raises(ValueError, match="multiples of 8"):
            model(torch.randn(1, 3, 40, 60))


def test_ddrnet_training_outputs_main_and_auxiliary_logits():
    model = _tiny("ddrnet").train()
    x = torch.randn(2, 3, 48, 72)
    out = model.forward_heads(x).decode[0]
    assert isinstance(out, tuple) and [tuple(t.shape) for t in out] == [(2, 3, 6, 9), (2, 3, 6, 9)]
    # the main logits are the eval logits' training-mode counterpart: same head, same input path
    model.eval()
    with torch.no_grad():
        feats = model.forward_features(x)
    assert len(feats) == 1 and feats[0].shape == (2, 16, 6, 9)


def test_pidnet_training_outputs_p_i_and_boundary_logits():
    model = _tiny("pidnet").train()
    out = model.forward_heads(torch.randn(2, 3, 48, 72)).decode[0]
    assert [tuple(t.shape) for t in out] == [(2, 3, 6, 9), (2, 3, 6, 9), (2, 1, 6, 9)]
    # in training mode the segmentor's forward still predicts from the I branch alone (batch 2: training-mode
    # BatchNorm needs more than one value after the pyramid's global pooling)
    assert model(torch.randn(2, 3, 48, 72)).shape == (2, 3, 48, 72)


@pytest.mark.parametrize("width", ["3", "4", "5"])
def test_generate_edge_matches_reference_transform(golden, width):
    label = golden["label"].long()
    assert (label == 255).any() and golden["edge"][width].any()
    got = generate_edge(label, int(width), 255)
    assert got.dtype == torch.uint8
    assert torch.equal(got, golden["edge"][width])


def test_generate_edge_marks_the_padding_as_ignored(golden):
    # MMSegmentation pads the edge map with 255 after the transform, on the unpadded label
    label = golden["label"].long()
    padded = F.pad(label, (0, 5, 0, 3), value=255)
    valid = torch.tensor([[label.shape[1], label.shape[2]]] * label.shape[0])
    got = generate_edge(padded, 4, 255, valid=valid)
    assert torch.equal(got, F.pad(golden["edge"]["4"], (0, 5, 0, 3), value=255))
    # without ``valid`` the padding is just more ignored pixels: no marks there, only the dilation of the
    # last valid rows' marks (2 rows down for width 4), so the last padded row stays 0
    plain = generate_edge(padded, 4, 255)
    assert torch.equal(plain[:, :61, :77], golden["edge"]["4"]) and not plain[:, -1, :].any()
