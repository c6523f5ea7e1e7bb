"""Optimizer parameter groups and learning-rate schedules of the published recipes.

The reference builds its optimizers with MMEngine's default constructor (``paramwise_cfg.custom_keys``,
``norm_decay_mult``) or with MMSegmentation's layer-wise learning-rate decay (ConvNeXt, BEiT, MAE). This
module gives the same parameter groups for sszoo's segmentors, whose parameter names are the reference's:

* name rules: for each parameter ``P`` of module ``M`` (full name ``M.P``; ``.P`` at the top level), the
  longest custom key contained in the name (ties: alphabetical) sets ``lr = lr_mult x lr`` and
  ``weight_decay = decay_mult x weight_decay``; a parameter no key matches gets ``norm_decay_mult x
  weight_decay`` if ``M`` is a BatchNorm/GroupNorm/LayerNorm/InstanceNorm;
* layer-wise decay: each parameter gets a depth id (ConvNeXt: by stage and block; BEiT/MAE: by block) and
  ``lr = decay_rate ** (num_layers + 1 - id) x lr``; 1-D tensors and biases get no weight decay.

Each group records its ``lr_mult`` (its lr over the base lr); :func:`group_lr` applies the schedule to it as
MMEngine's chained schedulers do: the warm-up multiplies every group's lr, the poly decay runs each group
from its own lr to the common ``min_lr``.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from ..registry.entry import ParamwiseConfig

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm, nn.GroupNorm, nn.LayerNorm)
_TOKENS = ("backbone.cls_token", "backbone.mask_token", "backbone.pos_embed")


def _rule_groups(model: nn.Module, lr: float, wd: float, pw: ParamwiseConfig) -> list[dict[str, Any]]:
    rules = sorted(sorted(pw.custom_keys, key=lambda r: r.key), key=lambda r: len(r.key), reverse=True)
    groups = []
    for prefix, module in model.named_modules():
        is_norm = isinstance(module, _NORMS)
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            full = f"{prefix}.{name}"  # as the reference matches it: ".weight" for a top-level parameter
            lr_mult, decay_mult = 1.0, 1.0
            rule = next((r for r in rules if r.key in full), None)
            if rule is not None:
                lr_mult, decay_mult = rule.lr_mult, rule.decay_mult
            elif is_norm and pw.norm_decay_mult is not None:
                decay_mult = pw.norm_decay_mult
            groups.append(dict(params=[p], lr=lr * lr_mult, lr_mult=lr_mult, weight_decay=wd * decay_mult,
                               name=full.lstrip(".")))
    return groups


def convnext_layer_id(name: str, num_layers: int) -> int:
    """The depth id of a ConvNeXt segmentor's parameter for "layer_wise" decay (stage 2 in groups of 3 blocks)."""
    if name in _TOKENS:
        return 0
    parts = name.split(".")
    if name.startswith("backbone.downsample_layers"):
        return {0: 0, 1: 2, 2: 3}.get(int(parts[2]), num_layers)
    if name.startswith("backbone.stages"):
        stage, block = int(parts[2]), int(parts[3])
        return {0: 1, 1: 2, 2: 3 + block // 3}.get(stage, num_layers)
    return num_layers + 1


def convnext_stage_id(name: str, max_id: int) -> int:
    """The depth id of a ConvNeXt segmentor's parameter for "stage_wise" decay: 0 the stem and downsampling
    layers, stage + 1 the stages, ``max_id - 1`` the rest (neck and heads)."""
    if name in _TOKENS or name.startswith("backbone.downsample_layers"):
        return 0
    if name.startswith("backbone.stages"):
        return int(name.split(".")[2]) + 1
    return max_id - 1


def vit_layer_id(name: str, max_id: int) -> int:
    """The depth id of a BEiT/MAE segmentor's parameter: 0 the tokens and patch embedding, block + 1 the
    blocks, ``max_id - 1`` the rest."""
    if name in _TOKENS or name.startswith("backbone.patch_embed"):
        return 0
    if name.startswith("backbone.layers"):
        return int(name.split(".")[2]) + 1
    return max_id - 1


def _layer_decay_groups(model: nn.Module, lr: float, wd: float, pw: ParamwiseConfig) -> list[dict[str, Any]]:
    n = pw.num_layers + 2
    backbone = type(getattr(model, "backbone", None)).__name__
    # the reference picks the depth rule by the backbone's class name, as here
    if pw.layer_decay == "stage_wise" and "ConvNeXt" in backbone:
        depth = lambda name: convnext_stage_id(name, n)  # noqa: E731
    elif pw.layer_decay == "layer_wise" and "ConvNeXt" in backbone:
        depth = lambda name: convnext_layer_id(name, pw.num_layers)  # noqa: E731
    elif pw.layer_decay == "layer_wise" and ("BEiT" in backbone or "MAE" in backbone):
        depth = lambda name: vit_layer_id(name, n)  # noqa: E731
    else:
        raise ValueError(f"{pw.layer_decay} learning-rate decay is defined for ConvNeXt, BEiT and MAE backbones, "
                         f"not {backbone}")
    groups: dict[str, dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim == 1 or name.endswith(".bias") or name in ("pos_embed", "cls_token")
        layer = depth(name)
        key = f"layer_{layer}_{'no_decay' if no_decay else 'decay'}"
        if key not in groups:
            scale = pw.decay_rate ** (n - layer - 1)
            groups[key] = dict(params=[], lr=lr * scale, lr_mult=scale, weight_decay=0.0 if no_decay else wd,
                               name=key)
        groups[key]["params"].append(p)
    return list(groups.values())


def param_groups(model: nn.Module, lr: float, weight_decay: float,
                 paramwise: Optional[ParamwiseConfig]) -> list[dict[str, Any]]:
    """The optimizer parameter groups of ``model`` under ``paramwise`` (one group when None)."""
    if paramwise is None:
        params = [p for p in model.parameters() if p.requires_grad]
        return [dict(params=params, lr=lr, lr_mult=1.0, weight_decay=weight_decay, name="all")]
    if paramwise.layer_decay:
        return _layer_decay_groups(model, lr, weight_decay, paramwise)
    return _rule_groups(model, lr, weight_decay, paramwise)


def paramwise_from_mmengine(paramwise_cfg: Optional[dict], constructor: Optional[str]) -> Optional[ParamwiseConfig]:
    """A reference config's ``optim_wrapper.paramwise_cfg`` (and its ``constructor``) as a ParamwiseConfig.

    Raises ``ValueError`` for settings sszoo does not reproduce (bias/depth-wise/flat decay multipliers)."""
    cfg = dict(paramwise_cfg or {})
    if constructor in ("LearningRateDecayOptimizerConstructor", "LayerDecayOptimizerConstructor"):
        if constructor == "LayerDecayOptimizerConstructor":  # MMSegmentation's older name: ViT-style decay
            cfg = dict(num_layers=cfg["num_layers"], decay_rate=cfg["layer_decay_rate"], decay_type="layer_wise")
        kind = cfg.get("decay_type", "layer_wise")
        return ParamwiseConfig(layer_decay="layer_wise" if "layer_wise" in kind else kind,
                               decay_rate=float(cfg["decay_rate"]), num_layers=int(cfg["num_layers"]))
    if constructor not in (None, "DefaultOptimWrapperConstructor"):
        raise ValueError(f"optimizer constructor {constructor} is not reproduced")
    rules = tuple(dict(key=k, lr_mult=float(v.get("lr_mult", 1.0)), decay_mult=float(v.get("decay_mult", 1.0)))
                  for k, v in sorted((cfg.pop("custom_keys", None) or {}).items()))
    norm = cfg.pop("norm_decay_mult", None)
    if cfg:
        raise ValueError(f"paramwise_cfg settings {sorted(cfg)} are not reproduced")
    if not rules and norm is None:
        return None
    return ParamwiseConfig(custom_keys=rules, norm_decay_mult=None if norm is None else float(norm))


def group_lr(base_lr: float, iteration: int, *, iters: int, warmup_iters: int, warmup_start_factor: float,
             poly_power: float, min_lr: float, milestones: tuple[int, ...] = (), gamma: float = 0.1) -> float:
    """The learning rate of update ``iteration`` for a group whose unscheduled lr is ``base_lr``.

    As MMEngine's ``LinearLR(start_factor, begin=0, end=W)`` followed by ``PolyLR(begin=W, end=iters,
    eta_min=min_lr)`` (the poly decay runs over ``iters - W - 1`` updates, the last update uses ``min_lr``), or,
    with ``milestones``, by ``MultiStepLR(begin=W)``: ``gamma`` per milestone ``m <= iteration - W``.
    """
    w = warmup_iters
    if iteration < w:
        frac = iteration / (w - 1) if w > 1 else 1.0
        return base_lr * (warmup_start_factor + (1.0 - warmup_start_factor) * frac)
    if milestones:
        return base_lr * gamma ** sum(1 for m in milestones if iteration - w >= m)
    span = iters - w - 1
    if span <= 0:
        return base_lr
    frac = min(iteration - w, span) / span
    return (base_lr - min_lr) * (1.0 - frac) ** poly_power + min_lr


def clip_gradients(optimizer: torch.optim.Optimizer, max_norm: Optional[float]) -> Optional[torch.Tensor]:
    """Scale all gradients so that their joint L2 norm is at most ``max_norm`` (MMEngine's ``clip_grad``);
    returns the norm before clipping (None when not clipping)."""
    if not max_norm:
        return None
    params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    return torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=2.0)
