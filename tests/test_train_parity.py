"""Recipe parity: sszoo's training step equals MMSegmentation 1.2.2's on the same weights and batch.

Golden numbers come from tools/make_train_golden.py (the reference's model.loss, parse_losses,
OptimWrapper with SGD and PolyLR, three steps; or, for the AdamW recipes, the config's own optim_wrapper and
param_scheduler, shortened, four steps: sszoo's recipe for the entry must be the config's, and every parameter
group's lr at every step, its weight decay, the betas/eps and gradient clipping are sszoo's trainer's).
The weights are regenerated here with the oracle's
seeded procedure, so a wrong loss normalisation, resize, auxiliary weight, weight decay, momentum
or schedule shows as a mismatch. The heads' Dropout2d masks are the reference run's, replayed from
the golden file: torch's own masks for a seed differ between releases.
"""
from __future__ import annotations

import contextlib
import json
import os

import pytest
import torch

from oracle_weights import randomise_like_oracle
import sszoo.models.mask_losses as mask_losses
from sszoo.models import build_model
from sszoo.models.segmentor import ArchConfig
from sszoo.registry import UnknownModelError, get_entry
from sszoo.train.engine import TrainForward, build_optimizer, compute_losses, set_lr
from sszoo.train.optim import clip_gradients, paramwise_from_mmengine
from sszoo.train.recipe import TrainConfig, config_from_entry

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "train")
CASES = sorted(f[:-3] for f in os.listdir(GOLDEN) if f.endswith(".pt"))
# Tolerances, relative. The golden run and this one are in float64 (tools/make_train_golden.py): random
# deep networks amplify rounding, and float32 goldens moved by more than 1e-5 from one CPU to another.
# Measured here (MMSegmentation on torch 2.14, sszoo on torch 2.14, one thread): losses 5.5e-16, norms
# 2.2e-16, whole tensors 2.8e-16, parameter changes 2.5e-14. The bounds leave a wide margin for other
# kernels; a wrong loss weight, lr, momentum or BN momentum is off by a percent or far more, and weight
# decay moves each step's change by 0.5% to 50%.
# The AdamW cases (Swin-T, DeiT-S, ConvNeXt-T, MiT-B0, PSPNet R-50 rsb, DeepLabV3+ R-50 Mapillary, Twins-SVT-S,
# PoolFormer-S12): losses <= 4.8e-12, norms <= 7.6e-12, tensors <= 8.5e-13, changes <= 6.6e-11, every group's lr
# <= 3e-16; MiT-B0's last norm bias (weight decay only, its gradient cancelled by the head's BatchNorm) 2.1e-9 before
# the noise allowance of test_weight_changes_match_reference.
# Mask2Former R-50 (AdamW, backbone lr x 0.1, clip 0.01; Hungarian matching and point-sampled mask losses over 10
# layers, the first step's assignments equal): losses 6.7e-13, norms 1.0e-13, tensors 7.7e-13, changes 3.2e-11, lrs 3e-16.
RTOL = dict(loss=1e-10, norm=1e-10, tensor=1e-10, delta=1e-8)
# EncNet's Encoding computes ||x - c||^2 expanded and sums the residuals as A^T X - (sum A) c, so no
# N x HW x K x C tensor is built (the reference builds it); the rounding differs by 1e-10 per forward, and the
# stem's cancellation-heavy BN-bias gradients carry that to 1e-5 after three steps (measured: losses 1.6e-8,
# norms 1.0e-5, tensors 1.6e-5, changes 3.8e-5). Still far below what a wrong weight, lr or decay moves.
CASE_RTOL = {"encnet_r50-d8_4xb2-40k_cityscapes-512x1024": dict(loss=1e-7, norm=1e-4, tensor=1e-4, delta=5e-4),
             # PointRend's stem BN biases: their gradients cancel over the FPN's four levels and the point head;
             # on an AMD EPYC (the golden was made on an Intel AVX-512 CPU) the norm of backbone.stem.1.bias
             # after three steps differs by 1.4e-10
             "pointrend_r50_4xb2-80k_cityscapes-512x1024": dict(loss=1e-10, norm=1e-8, tensor=1e-8, delta=1e-6),
             # the same for BiSeNetV1's 7x7-stem BN bias (golden made on an AMD EPYC): on an Intel Xeon the norm of
             # backbone.context_path.backbone.bn1.bias after three steps differs by 3.4e-10
             "bisenetv1_r18-d32_4xb4-160k_cityscapes-1024x1024": dict(loss=1e-10, norm=1e-8, tensor=1e-8, delta=1e-6)}


def rtol(info: dict, what: str) -> float:
    return CASE_RTOL.get(info["config"], RTOL)[what]


@contextlib.contextmanager
def replayed_dropout2d(masks: list):
    """F.dropout2d (what nn.Dropout2d calls) applying the reference's keep masks (N x C) in call order."""
    import torch.nn.functional as F
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


def _run_case(case: str):
    g = torch.load(os.path.join(GOLDEN, case + ".pt"), weights_only=True)
    info = json.loads(g["info"])
    try:
        entry = get_entry(info["config"])
    except UnknownModelError:  # a method whose zoo entries are not generated yet: the golden's records
        if "arch" not in info:
            raise
        entry = None
    if entry is not None and "arch" in info:
        # (the golden's record is of the model with num_classes classes)
        assert entry.arch.with_num_classes(info["num_classes"]) == ArchConfig.from_dict(info["arch"])
    arch = entry.arch if entry is not None else ArchConfig.from_dict(info["arch"])
    model = build_model(arch.with_num_classes(info["num_classes"]))
    float64 = info.get("dtype") == "float64"
    randomise_like_oracle(model, info["seed"], tuple(info["calib_shape"]), float64=float64)
    if float64:
        model.double()
    model.train()
    # the parameters the reference does not train (Mask2Former R-50's backbone BatchNorms: norm_cfg requires_grad=False,
    # ResNetConfig.norm_frozen; PoolFormer's first patch embedding) are sszoo's frozen ones
    if "frozen" in info:  # the goldens that list them (the others are checked below: frozen ones do not move)
        assert sorted(k for k, p in model.named_parameters() if not p.requires_grad) == sorted(info["frozen"])
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if entry is None:
        # the recipe the golden recorded (the config's optim_wrapper, paramwise_cfg through sszoo's converter), the
        # schedule shortened as there; once the zoo entry exists the branch below checks it is the entry's recipe
        recipe = {k: tuple(v) if isinstance(v, list) else v for k, v in info["recipe"].items()}
        cfg = TrainConfig(model=info["config"], data="unused", dataset="unused", work_dir="unused",
                          num_classes=info["num_classes"], batch_size=info["batch"],
                          crop=(info["height"], info["width"]), scale=(info["width"], info["height"]),
                          test_scale=(info["width"], info["height"]),
                          paramwise=paramwise_from_mmengine(info["paramwise_cfg"], None),
                          **recipe, **{k: tuple(v) if isinstance(v, list) else v for k, v in info["short"].items()})
    elif "recipe" in info:
        # a case trained with its config's own optimizer and schedule (tools/make_train_golden.py's OWN_RECIPE):
        # the zoo entry's recipe must be the config's, the schedule shortened as there
        cfg = config_from_entry(entry, data="unused", work_dir="unused", num_classes=info["num_classes"],
                                **{k: tuple(v) if isinstance(v, list) else v for k, v in info["short"].items()})
        got = {k: list(getattr(cfg, k)) if isinstance(getattr(cfg, k), tuple) else getattr(cfg, k)
               for k in info["recipe"]}
        assert got == info["recipe"]
    else:
        # the golden's warm-up is the recipe's, shortened to fit the three steps (tools/make_train_golden.py)
        cfg = config_from_entry(entry, data="unused", work_dir="unused", iters=info["iters"],
                                num_classes=info["num_classes"], warmup_iters=info.get("warmup_iters", 0))
        assert (cfg.lr, cfg.momentum, cfg.weight_decay, cfg.min_lr, cfg.poly_power, cfg.aux_weight) == (
            info["lr"], info["momentum"], info["weight_decay"], info["min_lr"], info["power"], info["aux_weight"])
        assert cfg.warmup_start_factor == info.get("warmup_start_factor", 1.0)
    optimizer = build_optimizer(model, cfg)
    forward = TrainForward(model)
    names = {id(p): k for k, p in model.named_parameters()}
    param_lrs = {names[id(p)]: [] for group in optimizer.param_groups for p in group["params"]}
    losses, lrs = [], []
    # mask-classification heads: the first step's assignment of queries to targets, and the loss terms' names
    assigned, keys = [], []
    real_assign = mask_losses.assign_queries

    def recording_assign(*args, **kwargs):
        out = real_assign(*args, **kwargs)
        assigned.append(out)
        return out

    head = model.decode_heads[0]
    real_loss = head.loss

    def recording_loss(*args, **kwargs):
        terms = real_loss(*args, **kwargs)
        keys.append(sorted("decode." + k for k in terms))
        return terms

    head.loss = recording_loss
    try:
        with replayed_dropout2d(g["dropout_masks"]) as unused:
            for step in range(info["steps"]):
                mask_losses.assign_queries = recording_assign if step == 0 else real_assign
                lrs.append(set_lr(optimizer, cfg, step))
                for group in optimizer.param_groups:
                    for p in group["params"]:
                        param_lrs[names[id(p)]].append(group["lr"])
                if "point_seed" in info:  # PointRend's training points, drop path: the reference's torch.rand draws
                    torch.manual_seed(info["point_seed"] + step)
                out = compute_losses(model, forward(g["input"]), g["label"], aux_weight=cfg.aux_weight,
                                     ignore_index=cfg.ignore_index)
                losses.append([out["decode"].item(), out["aux"].item(), out["total"].item()])
                optimizer.zero_grad(set_to_none=True)
                out["total"].backward()
                clip_gradients(optimizer, cfg.clip_grad)
                optimizer.step()
    finally:
        mask_losses.assign_queries = real_assign
        del head.loss
    assert not unused, "the reference drew more dropout masks than sszoo's heads used"
    if "assigned" in g:  # every (layer, image)'s assigned_gt_inds of the first step: the reference's matching
        assert torch.equal(torch.stack(assigned).reshape(g["assigned"].shape), g["assigned"])
        # the reference's parse_losses sums exactly these terms (sszoo's segmentor sums each head's terms)
        assert keys[0] == info["loss_keys"]
    run = dict(param_lrs=param_lrs, param_weight_decay={names[id(p)]: group["weight_decay"]
                                                        for group in optimizer.param_groups for p in group["params"]})
    return (g, info, model, initial, torch.tensor(losses, dtype=torch.float64), torch.tensor(lrs, dtype=torch.float64),
            run)


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
    g, info, model, _, losses, lrs, run = case_run
    assert model.align_corners == info["align_corners"]
    torch.testing.assert_close(lrs, g["lrs"], rtol=1e-12, atol=0)
    if "param_lrs" in g:  # every parameter's lr at every step (its group's: lr multipliers, layer-wise decay)
        expected = json.loads(g["param_lrs"])
        assert set(run["param_lrs"]) == set(expected)
        for k, v in expected.items():
            assert run["param_lrs"][k] == pytest.approx(v, rel=1e-12, abs=0), k
    if "param_weight_decay" in info:
        assert run["param_weight_decay"] == pytest.approx(info["param_weight_decay"], rel=1e-12, abs=0)
    # every step's decode, (weighted) auxiliary and total loss: step 1 checks the loss alone, steps 2-3
    # check that the previous updates (gradients, momentum, decay, lr) were the reference's
    torch.testing.assert_close(losses, g["losses"], rtol=rtol(info, "loss"), atol=0)


def test_updated_weights_match_reference(case_run):
    g, info, model, initial, _, _, _ = case_run
    state = model.state_dict()
    norms = json.loads(g["norms"])
    assert set(norms) == {k for k, v in state.items() if v.is_floating_point()}
    for k, expected in norms.items():
        got = state[k].double().norm().item()
        assert got == pytest.approx(expected, rel=rtol(info, "norm")), k
    # whole tensors: the error relative to the tensor's size (elements near 0 make elementwise ratios meaningless)
    for k, expected in g["tensors"].items():
        err = (state[k].double() - expected.double()).norm() / expected.double().norm()
        assert err < rtol(info, "tensor"), f"{k}: relative error {err:.2e}"


def test_weight_changes_match_reference(case_run):
    """The change of every parameter (w_after - w_before) is what the reference's updates made. The changes
    are small differences of larger numbers, so rounding shows most here (see the tolerances above);
    a wrong gradient, decay or lr is off by more.

    Adam(W) normalises each gradient by its running magnitude, so a gradient that is zero in exact arithmetic
    moves its parameter by normalised rounding noise: a bias of an output norm that feeds only 1 x 1 (or 1 x 1
    sized) convolutions followed by training-mode BatchNorm (Swin's and ConvNeXt's norm0/norm1 before UPerNet's
    laterals, SegFormer's last norm before its head's MLP), which removes any per-channel shift, has a gradient
    of 1e-17 that each side rounds differently. The step scale of Adam is S = sum(lr) x sqrt(numel) (what it
    moves a trained parameter by); a change below 1e-6 S is such noise alone (it must stay below the bound
    here too), and 1e-8 S is allowed besides the relative bound (the noise on top of weight decay's change)."""
    g, info, model, initial, _, _, run = case_run
    params = dict(model.named_parameters())
    deltas = json.loads(g["delta_norms"])
    assert set(deltas) == set(params)
    adam = info.get("recipe", {}).get("optimizer") in ("adam", "adamw")
    worst, untrained = 0.0, []
    for k, expected in deltas.items():
        got = (params[k].detach().double() - initial[k].double()).norm().item()
        if not params[k].requires_grad:  # frozen (PoolFormer's first patch embedding): the reference's too
            assert got == expected == 0, k
            continue
        noise = 0.0
        if adam:
            scale = sum(run["param_lrs"][k]) * params[k].numel() ** 0.5
            if expected < 1e-6 * scale:
                assert got < 1e-6 * scale, k
                untrained.append(k)
                continue
            noise = 1e-8 * scale
        assert expected > 0, k
        err = max(abs(got - expected) - noise, 0.0) / expected
        worst = max(worst, err)
        assert err < rtol(info, "delta"), f"{k}: change {got:.6e}, the reference's {expected:.6e}"
    assert worst < rtol(info, "delta")
    assert len(untrained) <= 4, untrained  # a few biases before BatchNorm, not whole layers
