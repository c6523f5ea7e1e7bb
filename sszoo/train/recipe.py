"""The effective training recipe: the zoo entry's published recipe with the user's overrides applied.

:class:`TrainConfig` is a plain frozen dataclass. :func:`config_from_entry` fills it from a
:class:`sszoo.registry.ZooEntry`; the CLI then replaces the fields the user set. The result is
printed at the start of a run and written to ``WORK_DIR/config.json`` so a run can be repeated.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Optional

from ..registry import ZooEntry
from ..registry.entry import ParamwiseConfig, _paramwise

# Fields that may differ between a run and its resumption (they do not change the trained weights).
RESUME_MUTABLE = frozenset({"work_dir", "workers", "eval_interval", "ckpt_interval", "log_interval", "resume",
                            "device", "keep_checkpoints", "tensorboard"})


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run. Sizes are (h, w) for crops and (w, h) for resize scales,
    following the reference configs (``crop_size=(512, 1024)``, ``scale=(2048, 1024)``)."""

    model: str                               # zoo name, e.g. "pspnet_r50_d8_cityscapes.512x1024_80k"
    data: str                                # dataset root folder
    dataset: str                             # dataset key, e.g. "cityscapes"
    work_dir: str
    num_classes: int
    iters: int
    batch_size: int                          # global batch (all processes together)
    crop: tuple[int, int]                    # (h, w)
    scale: tuple[int, int]                   # RandomResize base scale (w, h); ratio_range multiplies it
    test_scale: tuple[int, int]              # evaluation resize scale (w, h)
    ratio_range: tuple[float, float] = (0.5, 2.0)
    short_sides: tuple[int, ...] = ()        # instead: a random shorter side from these (RandomChoiceResize)
    max_size: Optional[int] = None           # ... with the longer side capped (ResizeShortestEdge)
    cat_max_ratio: float = 0.75
    bn_momentum: Optional[float] = None      # BatchNorm momentum of every BN layer; None keeps PyTorch's 0.1
    flip_prob: float = 0.5
    photometric: bool = True
    optimizer: str = "sgd"                   # "sgd", "adam" (CGNet's recipe) or "adamw"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    min_lr: float = 1e-4
    warmup_iters: int = 0                    # linear warm-up iterations before the poly schedule
    warmup_start_factor: float = 1.0         # the warm-up's first lr, as a fraction of lr
    paramwise: Optional[ParamwiseConfig] = None   # per-parameter lr / weight decay (sszoo.train.optim)
    betas: tuple[float, float] = (0.9, 0.999)     # Adam(W)
    eps: float = 1e-8                             # Adam(W)
    clip_grad: Optional[float] = None             # max L2 norm of all gradients; None: no clipping
    lr_milestones: tuple[int, ...] = ()           # MultiStepLR (counted after the warm-up) instead of poly
    lr_gamma: float = 0.1
    aux_weight: float = 0.4
    ignore_index: int = 255
    amp: str = "off"                         # "off", "fp16" (dynamic loss scaling) or "bf16"
    channels_last: bool = False
    seed: int = 0
    eval_interval: int = 0                   # 0: evaluate only at the end
    ckpt_interval: int = 0                   # 0: checkpoint only at the end
    log_interval: int = 10
    keep_checkpoints: int = 2                # iteration checkpoints kept besides best and final
    workers: int = 2
    pretrained_backbone: Optional[str] = None   # e.g. "open-mmlab://resnet50_v1c"; None trains from scratch
    init_from: Optional[str] = None          # a zoo name or checkpoint path to start the whole model from
    device: Optional[str] = None             # None: cuda if available, else cpu
    tensorboard: bool = True
    deterministic: bool = False              # deterministic GPU kernels (CPU runs are deterministic anyway)
    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)

    def __post_init__(self) -> None:
        object.__setattr__(self, "paramwise", _paramwise(self.paramwise))  # from config.json: a dict
        problems = []
        if self.iters < 1:
            problems.append(f"iters must be >= 1, got {self.iters}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if min(self.crop) < 1 or min(self.scale) < 1 or min(self.test_scale) < 1:
            problems.append(f"crop/scale sizes must be positive, got crop={self.crop} scale={self.scale} "
                            f"test_scale={self.test_scale}")
        if not 0 < self.ratio_range[0] <= self.ratio_range[1]:
            problems.append(f"ratio_range must be 0 < low <= high, got {self.ratio_range}")
        if self.lr <= 0:
            problems.append(f"lr must be positive, got {self.lr}")
        if not 0 <= self.warmup_iters < self.iters or not 0 < self.warmup_start_factor <= 1:
            problems.append(f"warm-up must be 0 <= warmup_iters < iters and 0 < warmup_start_factor <= 1, got "
                            f"{self.warmup_iters} of {self.iters} iterations from {self.warmup_start_factor}")
        if self.amp not in ("off", "fp16", "bf16"):
            problems.append(f"amp must be 'off', 'fp16' or 'bf16', got {self.amp!r}")
        if self.optimizer not in ("sgd", "adam", "adamw"):
            problems.append(f"optimizer must be 'sgd', 'adam' or 'adamw', got {self.optimizer!r}")
        if self.clip_grad is not None and self.clip_grad <= 0:
            problems.append(f"clip_grad must be a positive gradient norm or None, got {self.clip_grad}")
        if list(self.lr_milestones) != sorted(self.lr_milestones) or any(m < 1 for m in self.lr_milestones):
            problems.append(f"lr_milestones must be increasing positive iterations, got {self.lr_milestones}")
        if self.num_classes < 1:
            problems.append(f"num_classes must be >= 1, got {self.num_classes}")
        if min(self.eval_interval, self.ckpt_interval, self.workers) < 0 or self.log_interval < 1:
            problems.append("eval/ckpt intervals and workers must be >= 0 and log_interval >= 1")
        if self.pretrained_backbone and self.init_from:
            problems.append("choose one of pretrained_backbone and init_from, not both")
        if problems:
            raise ValueError("invalid training recipe: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names})

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def differences(self, other: "TrainConfig", ignore: frozenset = RESUME_MUTABLE) -> dict[str, tuple]:
        """Fields (outside ``ignore``) whose values differ: ``{name: (self_value, other_value)}``."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if k not in ignore and a[k] != b[k]}


def iterations_of(entry: ZooEntry, dataset_len: int | None = None, batch_size: int | None = None) -> int:
    """The schedule length in iterations. sssegmentation recipes are in epochs of the training set:
    ``epochs x ceil(dataset_len / batch_size)``."""
    r = entry.recipe
    if r.iters:
        return int(r.iters)
    if r.epochs and dataset_len:
        return int(r.epochs) * -(-dataset_len // (batch_size or r.batch_size))
    raise ValueError(f"{entry.name}: the recipe is given in epochs ({r.epochs}) and the training set could not be "
                     "counted; pass --iters N")


def config_from_entry(entry: ZooEntry, data: str, work_dir: str, **overrides: Any) -> TrainConfig:
    """The entry's published recipe as a :class:`TrainConfig`, with ``overrides`` (None values ignored).

    ``scale`` defaults to the recipe's RandomResize scale and ``test_scale`` to ``scale`` (the reference
    trains and tests at the same base scale), so shrinking ``scale`` for small data shrinks both.
    """
    r = entry.recipe
    over = {k: v for k, v in overrides.items() if v is not None}
    # RandomChoiceResize recipes (no ratio range) list shorter sides; their base scale is the test scale
    choice = r.ratio_range is None
    scale = tuple(over.pop("scale", tuple(entry.test.scale) if choice else r.train_scale))
    iters = over.pop("iters", None)
    if iters is None:
        iters = r.iters if r.iters else None
    if iters is None:
        raise ValueError(f"{entry.name}: the recipe is given in epochs ({r.epochs}); pass --iters N")
    base = dict(
        model=entry.name, data=data, dataset=entry.dataset.key, work_dir=work_dir,
        num_classes=entry.num_classes, iters=int(iters), batch_size=r.batch_size, crop=tuple(r.crop),
        scale=scale, test_scale=tuple(over.pop("test_scale", scale)), ratio_range=(0.5, 2.0) if choice else tuple(r.ratio_range),
        short_sides=tuple(r.train_scale) if choice else (), max_size=r.resize_max_size,
        cat_max_ratio=r.cat_max_ratio, photometric=r.photometric, bn_momentum=r.bn_momentum, optimizer=r.optimizer,
        lr=r.lr, momentum=r.momentum,
        weight_decay=r.weight_decay, poly_power=r.poly_power, min_lr=r.min_lr, warmup_iters=r.warmup_iters,
        warmup_start_factor=r.warmup_start_factor, paramwise=r.paramwise, betas=tuple(r.betas), eps=r.eps,
        clip_grad=r.clip_grad, lr_milestones=tuple(r.lr_milestones), lr_gamma=r.lr_gamma,
        aux_weight=r.aux_loss_weight,
        ignore_index=entry.dataset.ignore_index, mean=tuple(entry.test.mean), std=tuple(entry.test.std),
    )
    base.update(over)
    if "crop" in base:
        base["crop"] = tuple(base["crop"])
    return TrainConfig(**base)


def format_config(cfg: TrainConfig) -> str:
    """A readable multi-line listing of the recipe, for the console."""
    d = cfg.to_dict()
    width = max(len(k) for k in d)
    return "\n".join(f"  {k:<{width}} = {v}" for k, v in d.items())
