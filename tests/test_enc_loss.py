"""EncNet's training forward and losses (segmentation CE + SE loss) equal MMSegmentation's EncHead.

The golden (tools/make_heads_c_golden.py, run with the oracle) is a small EncHead in training mode
(dropout 0, BatchNorm on batch statistics) in float64: its state dict, features, label (with ignored
pixels), the training outputs and ``loss_by_feat``'s ``loss_ce`` and ``loss_se`` (weight 0.2 included).
"""
import os

import torch

from sszoo.models.heads.enc import EncHead, se_class_presence

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "heads", "enc_loss.pt")


def _head_and_golden():
    g = torch.load(GOLDEN, weights_only=True)
    head = EncHead((6, 8, 12), 16, g["num_classes"], in_index=(0, 1, 2), num_codes=4, dropout=0.0,
                   align_corners=False)
    head.load_state_dict(g["state_dict"])
    return head.double().train(), g


def test_enc_training_outputs_and_losses_match_reference():
    head, g = _head_and_golden()
    out = head(g["features"])
    logits, se_logits = out
    assert torch.allclose(logits, g["logits"], rtol=0, atol=1e-10)
    assert torch.allclose(se_logits, g["se_logits"], rtol=0, atol=1e-10)
    losses = head.loss(out, g["label"])
    assert set(losses) == {"ce", "se"}
    assert torch.allclose(losses["ce"].double(), g["loss_ce"].double(), rtol=1e-6, atol=0)
    assert torch.allclose(losses["se"].double(), g["loss_se"].double(), rtol=1e-6, atol=0)


def test_enc_eval_forward_is_logits_only():
    head, g = _head_and_golden()
    head.eval()
    assert isinstance(head(g["features"]), torch.Tensor)
    assert isinstance(head.predict(g["features"]), torch.Tensor)


def test_se_class_presence_ignores_out_of_range_labels():
    label = torch.tensor([[[0, 2, 255], [2, 2, 0]], [[255, 255, 1], [1, 4, 7]]])
    expected = torch.tensor([[1, 0, 1, 0, 0], [0, 1, 0, 0, 1]], dtype=torch.float)
    assert torch.equal(se_class_presence(label, 5), expected)
