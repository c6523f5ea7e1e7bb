"""Recipe parity: sszoo's training step equals MMSegmentation 1.2.2's on the same weights and batch.

Golden numbers come from tools/make_train_golden.py (the reference's model.loss, parse_losses,
OptimWrapper with SGD and PolyLR, three steps). The weights are regenerated here with the oracle's
seeded procedure, so a wrong loss normalisation, resize, auxiliary weight, weight decay, momentum
or schedule shows as a mismatch.
"""
from __future__ import annotations

import json
import os

import pytest
import torch

from oracle_weights import randomise_like_oracle
from sszoo.models import build_model
from sszoo.registry import get_entry
from sszoo.train.engine import TrainForward, build_optimizer, compute_losses, poly_lr
from sszoo.train.recipe import config_from_entry

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "train")
CASES = sorted(f[:-3] for f in os.listdir(GOLDEN) if f.endswith(".pt"))
RTOL = 1e-5


def _run_case(case: str):
    g = torch.load(os.path.join(GOLDEN, case + ".pt"), weights_only=True)
    info = json.loads(g["info"])
    entry = get_entry(info["config"])
    model = build_model(entry.arch.with_num_classes(info["num_classes"]))
    randomise_like_oracle(model, info["seed"], tuple(info["calib_shape"]))
    model.train()
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    cfg = config_from_entry(entry, data="unused", work_dir="unused", iters=info["iters"],
                            num_classes=info["num_classes"])
    assert (cfg.lr, cfg.momentum, cfg.weight_decay, cfg.min_lr, cfg.poly_power, cfg.aux_weight) == (
        info["lr"], info["momentum"], info["weight_decay"], info["min_lr"], info["power"], info["aux_weight"])
    optimizer = build_optimizer(model, cfg)
    forward = TrainForward(model)
    losses, lrs = [], []
    for step in range(info["steps"]):
        lr = poly_lr(cfg.lr, step, cfg.iters, cfg.poly_power, cfg.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        lrs.append(lr)
        torch.manual_seed(info["dropout_seed"] + step)
        out = compute_losses(forward(g["input"]), g["label"], align_corners=model.align_corners,
                             aux_weight=cfg.aux_weight, ignore_index=cfg.ignore_index)
        losses.append([out["decode"].item(), out["aux"].item(), out["total"].item()])
        optimizer.zero_grad(set_to_none=True)
        out["total"].backward()
        optimizer.step()
    return g, info, model, initial, torch.tensor(losses, dtype=torch.float64), torch.tensor(lrs, dtype=torch.float64)


@pytest.fixture(scope="module", params=CASES)
def case_run(request):
    # one intra-op thread: much cheaper than two on the shared 2-core test machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run_case(request.param)
    finally:
        torch.set_num_threads(before)


def test_losses_and_schedule_match_reference(case_run):
    g, info, model, _, losses, lrs = case_run
    assert model.align_corners == info["align_corners"]
    torch.testing.assert_close(lrs, g["lrs"], rtol=1e-12, atol=0)
    # every step's decode, (weighted) auxiliary and total loss: step 1 checks the loss alone, steps 2-3
    # check that the previous updates (gradients, momentum, decay, lr) were the reference's
    torch.testing.assert_close(losses, g["losses"], rtol=RTOL, atol=0)


def test_updated_weights_match_reference(case_run):
    g, _, model, initial, _, _ = case_run
    state = model.state_dict()
    norms = json.loads(g["norms"])
    assert set(norms) == {k for k, v in state.items() if v.is_floating_point()}
    for k, expected in norms.items():
        got = state[k].double().norm().item()
        assert got == pytest.approx(expected, rel=RTOL), k
    # whole tensors: the error relative to the tensor's size (elements near 0 make elementwise ratios meaningless).
    # The first convolution's gradient is a sum with heavy cancellation: sszoo's own step run with 1 and with 2
    # CPU threads already differs by 1.5e-5 there (measured), so the stem gets 5e-5; every other tensor 1e-5.
    for k, expected in g["tensors"].items():
        err = (state[k].double() - expected.double()).norm() / expected.double().norm()
        assert err < (5e-5 if k.startswith("backbone.stem.") else RTOL), f"{k}: relative error {err:.2e}"


def test_weight_changes_match_reference(case_run):
    """The change of every parameter (w_after - w_before) is what the reference's updates made. The changes
    are small differences of larger numbers, so float32 rounding allows ~1e-4 relative here; a wrong
    gradient, decay or lr is off by far more."""
    g, _, model, initial, _, _ = case_run
    params = dict(model.named_parameters())
    deltas = json.loads(g["delta_norms"])
    assert set(deltas) == set(params)
    worst = 0.0
    for k, expected in deltas.items():
        got = (params[k].detach().double() - initial[k].double()).norm().item()
        assert expected > 0, k
        worst = max(worst, abs(got - expected) / expected)
        assert got == pytest.approx(expected, rel=2e-3), k
    assert worst < 2e-3
