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


def _tiny(kind: str, num_classes: int = 3, losses: tuple = ()) -> torch.nn.Module:
    """Narrow networks of each family (the reference's structure at channels 4-8), for shape checks."""
    if kind == "ddrnet":
        arch = ArchConfig(backbone=DDRNetConfig(channels=4, ppm_channels=8),
                          decode_head=DDRHeadConfig(16, 8, losses=losses), num_classes=num_classes)
    else:
        arch = ArchConfig(backbone=PIDNetConfig(channels=4, ppm_channels=8, num_stem_blocks=3, num_branch_blocks=4)
                          if kind == "pidnet_l" else PIDNetConfig(channels=4, ppm_channels=8),
                          decode_head=PIDHeadConfig(16, 8, losses=losses), num_classes=num_classes,
                          align_corners=True)
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


_NAMES = {"loss_context": "context", "loss_spatial": "spatial", "loss_sem_p": "sem_p", "loss_sem_i": "sem_i",
          "loss_bd": "bd", "loss_sem_bd": "sem_bd"}


def _golden_head(case: dict, kind: str) -> torch.nn.Module:
    from mmseg_arch import HEADS as CONVERT

    from sszoo.models.builder import build_head

    channels = {"ddr": (128, 64), "pid": (128, 128)}[kind]
    cfg = CONVERT["DDRHead" if kind == "ddr" else "PIDHead"](
        dict(type="DDRHead" if kind == "ddr" else "PIDHead", in_channels=channels[0], channels=channels[1],
             loss_decode=json.loads(case["loss_decode"])))
    cls = DDRHeadConfig if kind == "ddr" else PIDHeadConfig
    return build_head(cls(**{k: v for k, v in cfg.items()}), 19, case["align_corners"]).train()


@pytest.mark.parametrize("case", ["ddr_config_ignore", "ddr_small_ohem_ignore", "pid_config_ignore",
                                  "pid_config_full", "pid_small_ohem_ignore", "pid_small_ohem_full"])
def test_head_losses_match_reference(golden, case):
    ref = golden["results"][case]
    kind = case[:3]
    head = _golden_head(ref, kind)
    label = (golden["label_full"] if ref["label"] == "full" else golden["label"]).long()
    got = head.loss(tuple(golden["logits"][kind]), label, ignore_index=255)
    expected = {_NAMES[k]: v.item() for k, v in ref["losses"].items()}
    if "sem_p" in expected:
        # MMSegmentation 1.2.2 divides the class-weighted cross-entropy by the sum of the label pixels' class
        # weights; sszoo (as MMSegmentation 0.x, with which the checkpoints were trained) by the pixel count.
        # On a label without ignored pixels one is the other rescaled (1.2.2 raises on ignored pixels).
        w = torch.tensor(json.loads(ref["loss_decode"])[0]["class_weight"], dtype=torch.float64)
        expected["sem_p"] *= w[label].sum().item() / label.numel()
    elif kind == "pid":
        got.pop("sem_p")
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name].dtype == torch.float64
        # the reference's BoundaryLoss casts its target to float32, and torch then returns the binary
        # cross-entropy of float64 logits in float32: that term is float32-exact only
        rel = 1e-6 if name == "bd" else 1e-10
        assert got[name].item() == pytest.approx(value, rel=rel, abs=1e-12), name


def test_pid_boundary_terms_use_the_label_edges(golden):
    # the boundary-masked term changes with D's confidence; the boundary term with the edges' padding
    ref = golden["results"]["pid_config_ignore"]
    head = _golden_head(ref, "pid")
    p, i, d = golden["logits"]["pid"]
    label = golden["label"].long()
    base = head.loss((p, i, d), label)
    assert head.loss((p, i, d - 100.0), label)["sem_bd"].item() == 0.0  # nothing on a boundary: no pixel kept
    padded = F.pad(label, (0, 3, 0, 3), value=255)
    valid = torch.tensor([[label.shape[1], label.shape[2]]] * 2)
    with_pad = head.loss((p, i, d), padded, valid=valid)["bd"]
    without = head.loss((p, i, d), padded)["bd"]
    assert with_pad.item() != without.item() and base["bd"].item() != without.item()


def test_segmentor_loss_trains_every_branch():
    # through Segmentor.loss, as the trainer calls it: the heads' weighted terms add up (a head with its own
    # specs is not weighted again) and the auxiliary/boundary outputs get gradients
    from sszoo.models.losses import LossSpec

    for kind, specs, extra in (
            ("ddrnet", (LossSpec("ohem_ce", 1.0, thres=0.6, min_kept=50), LossSpec("ohem_ce", 0.4, min_kept=50)),
             ("aux_cls_seg", "aux_head")),
            ("pidnet", (LossSpec("ce", 0.4), LossSpec("ohem_ce", 1.0, min_kept=50), LossSpec("boundary", 20.0),
                        LossSpec("ohem_ce", 1.0, min_kept=50)), ("p_cls_seg", "d_cls_seg"))):
        model = _tiny(kind, losses=specs).train()
        head = model.decode_heads[0]
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2, 3, 32, 40, generator=g)
        label = torch.randint(0, 3, (2, 32, 40), generator=g)
        label[:, :4] = 255
        outputs = model.forward_heads(x)
        losses = model.loss(outputs, label)
        terms = head.loss(outputs.decode[0], label)
        assert len(terms) == len(specs)
        assert losses["total"].item() == pytest.approx(sum(t.item() for t in terms.values()), rel=1e-6)
        losses["total"].backward()
        for name in extra:
            grad = getattr(head, name).weight.grad if name.endswith("cls_seg") else next(
                getattr(head, name).parameters()).grad
            assert grad is not None and grad.abs().sum() > 0, (kind, name)
