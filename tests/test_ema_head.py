"""EMANet's train-time behaviour against MMSegmentation 1.2.2 (tests/golden/heads/ema_train.pt, made by
tools/make_ema_train_golden.py): two training steps of a small EMAHead in float64 give the reference's
logits (dropout included), loss, gradients (none through the EM iterations, none for the frozen
``ema_mid_conv``), moving-average bases and BN statistics; the eval forward after them uses the moved
bases and moves nothing.
"""
import os

import torch

from sszoo.models.heads import EMAHead

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "heads", "ema_train.pt")


def _head(g: dict) -> EMAHead:
    h = g["head"]
    head = EMAHead(h["in_channels"], h["channels"], h["num_classes"], in_index=h["in_index"],
                   ema_channels=h["ema_channels"], num_bases=h["num_bases"], num_stages=h["num_stages"],
                   momentum=h["momentum"], dropout=h["dropout_ratio"], align_corners=h["align_corners"]).double()
    head.load_state_dict(g["init"], strict=True)
    return head


def _close(a: torch.Tensor, b: torch.Tensor, tol: float, what: str) -> None:
    diff = (a.double() - b.double()).abs().max().item()
    assert diff <= tol * max(1.0, b.abs().max().item()), f"{what}: max|diff| {diff:.2e}"


def test_ema_training_steps_match_reference():
    g = torch.load(GOLDEN, weights_only=True)
    head = _head(g)
    head.train()
    for step, (feats, label, seed, ref) in enumerate(zip(g["inputs"], g["labels"], g["forward_seeds"], g["steps"])):
        torch.manual_seed(seed)  # the same dropout masks as the reference's forward
        logits = head(feats)
        _close(logits, ref["logits"], 1e-10, f"step {step} logits")
        loss = head.loss(logits, label)["ce"]
        _close(loss, ref["loss"], 1e-6, f"step {step} loss")  # sszoo's cross-entropy runs in float32
        head.zero_grad()
        loss.backward()
        for name, p in head.named_parameters():
            if ref["grads"][name] is None:
                assert p.grad is None, f"step {step}: {name} has a gradient, the reference's has none"
            else:
                _close(p.grad, ref["grads"][name], 1e-5, f"step {step} grad {name}")
        state = head.state_dict()
        assert state.keys() == ref["state"].keys()
        for k, v in ref["state"].items():
            _close(state[k], v, 1e-10, f"step {step} state {k}")
    # the bases did move, by the moving average (not replaced, not left alone)
    assert not torch.allclose(head.ema_module.bases, g["init"]["ema_module.bases"])

    head.eval()
    before = head.ema_module.bases.clone()
    with torch.no_grad():
        torch.manual_seed(g["eval_seed"])
        _close(head(g["eval_input"]), g["eval_logits"], 1e-10, "eval logits")
    assert torch.equal(head.ema_module.bases, before)


def test_ema_bases_moving_average_by_hand():
    """One training forward moves the buffer to (1 - m) * old + m * normalize(batch mean of the final bases)."""
    torch.manual_seed(0)
    head = EMAHead(6, 4, 3, in_index=0, ema_channels=5, num_bases=3, num_stages=2, momentum=0.3).double()
    module = head.ema_module
    feats = torch.randn(2, 5, 4, 6, dtype=torch.float64)
    old = module.bases.clone()
    module.eval()
    module(feats)
    assert torch.equal(module.bases, old)
    # the final bases of each sample, by hand
    x = feats.reshape(2, 5, -1)
    bases = old.repeat(2, 1, 1)
    for _ in range(module.num_stages):
        z = torch.softmax(x.transpose(1, 2) @ bases, dim=2)
        bases = x @ (z / z.sum(dim=1, keepdim=True))
        bases = bases / bases.norm(dim=1, keepdim=True)
    mean = bases.mean(dim=0, keepdim=True)
    module.train()
    recon = module(feats)
    torch.testing.assert_close(recon, (bases @ z.transpose(1, 2)).reshape(2, 5, 4, 6), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(module.bases, 0.7 * old + 0.3 * mean / mean.norm(dim=1, keepdim=True),
                               rtol=1e-10, atol=1e-12)
