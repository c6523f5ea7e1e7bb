"""Training-mode parity of the CCNet, DANet, ANN and ISANet heads with MMSegmentation 1.2.2's.

tests/golden/heads/attention_heads.pt (tools/make_attention_head_golden.py) holds, per head, the
reference's small seeded head, its float64 training-mode outputs on seeded features (BatchNorm on batch
statistics, its Dropout2d masks recorded in call order) and its ``loss_by_feat`` terms. sszoo's head
loads the same state dict strictly, replays the masks (so the dropout calls must come in the same order,
shapes and number) and must give the same outputs and loss terms: DANet's three cross-entropies
(pam_cam, pam, cam), ANN's dropout after the fusion block as well as before the classifier.
"""
from __future__ import annotations

import contextlib
import json
import os

import pytest
import torch
import torch.nn.functional as F

from sszoo.models.builder import HEADS, build_head, config_from_dict

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "heads", "attention_heads.pt")
LOSS_NAMES = {"da": ["pam_cam.loss_ce", "pam.loss_ce", "cam.loss_ce"]}


@contextlib.contextmanager
def replayed_dropout2d(masks: list):
    """F.dropout2d (what nn.Dropout2d calls) applying the reference's keep masks (N x C) in call order."""
    real, queue = F.dropout2d, list(masks)

    def dropout2d(x, p=0.5, training=True, inplace=False):
        if not training or p == 0:
            return x
        keep = queue.pop(0)
        assert keep.shape == x.shape[:2], (keep.shape, x.shape)
        return x * keep[:, :, None, None].to(x.dtype) / (1 - p)

    F.dropout2d = dropout2d
    try:
        yield queue
    finally:
        F.dropout2d = real


def _golden() -> dict:
    return torch.load(GOLDEN, weights_only=True)


def _head(g: dict) -> torch.nn.Module:
    cfg = config_from_dict(json.loads(g["config"]), HEADS, "head")
    head = build_head(cfg, g["num_classes"], g["align_corners"]).double()
    head.load_state_dict(g["state_dict"], strict=True)
    return head


@pytest.mark.parametrize("name", ["cc", "da", "ann", "isa"])
def test_training_outputs_and_losses_match_reference(name):
    torch.set_num_threads(1)
    g = _golden()[name]
    head = _head(g).train()
    with replayed_dropout2d(g["dropout_masks"]) as unused:
        out = head(g["features"])
    assert not unused, "the reference drew more dropout masks than sszoo's head"
    outs = list(out) if isinstance(out, tuple) else [out]
    assert len(outs) == len(g["train_outputs"])
    for mine, ref in zip(outs, g["train_outputs"]):
        assert (mine.detach() - ref).abs().max().item() <= 1e-9 * max(1.0, ref.abs().max().item())
    losses = head.loss(out, g["label"])
    names = LOSS_NAMES.get(name, ["loss_ce"])
    assert len(losses) == len(names)
    for mine, ref_name in zip(losses.values(), names):  # sszoo's cross-entropy runs in float32
        assert abs(mine.item() - g["losses"][ref_name].item()) <= 1e-5 * max(1.0, abs(g["losses"][ref_name].item()))


@pytest.mark.parametrize("name", ["cc", "da", "ann", "isa"])
def test_inference_logits_match_reference(name):
    g = _golden()[name]
    head = _head(g).eval()
    with torch.no_grad():
        logits = head.predict(g["features"])
    assert torch.allclose(logits, g["eval_logits"], rtol=0, atol=1e-10)


def test_danet_segmentor_loss_weights_each_term():
    """The segmentor weights each of DANet's three terms by the head's loss_weight (the reference's one
    loss_decode applied to all three)."""
    g = _golden()["da"]
    head = _head(g).train()
    with replayed_dropout2d(g["dropout_masks"]):
        out = head(g["features"])
    terms = head.loss(out, g["label"])
    assert set(terms) == {"pam_cam", "pam", "cam"}
    expected = sum(g["losses"][k].item() for k in LOSS_NAMES["da"])
    assert abs(sum(t.item() for t in terms.values()) - expected) <= 1e-5 * expected
