"""Typed records of the zoo: one :class:`ZooEntry` per published checkpoint.

The records are data: ``zoo.json`` beside this file is generated once from the reference tables by
``tools/generate_zoo.py`` and checked in. Nothing here downloads anything.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..models import ArchConfig

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset's label space and on-disk layout."""

    key: str                      # "cityscapes", "ade20k", "voc12aug", ...
    title: str                    # human-readable name, as in the result tables
    num_classes: int
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: int = 255
    reduce_zero_label: bool = False  # label 0 means "other": ignored, the rest shift down by one


@dataclass(frozen=True)
class TestProtocol:
    """How the reported numbers were measured (MMSegmentation's test pipeline)."""

    scale: tuple[int, int]        # Resize scale (long edge, short edge) for keep_ratio, as the reference writes it
    keep_ratio: bool = True
    mode: str = "whole"           # "whole" or "slide"
    crop: Optional[tuple[int, int]] = None    # slide window (h, w)
    stride: Optional[tuple[int, int]] = None  # slide stride (h, w)
    align_corners: bool = False
    mean: tuple[float, float, float] = IMAGENET_MEAN  # RGB, 0-255 scale
    std: tuple[float, float, float] = IMAGENET_STD
    msflip_ratios: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
    # sssegmentation's tester resizes the network's feature-resolution logits straight to the image; MMSegmentation
    # first to the (resized) network input, then to the image
    resize_logits_once: bool = False
    # slide mode: softmax each window's logits before summing them (sssegmentation's use_probs_before_resize)
    window_softmax: bool = False
    # pad the normalised input to a multiple of this and crop the logits (the data preprocessor's test_cfg)
    size_divisor: Optional[int] = None


@dataclass(frozen=True)
class KeyRule:
    """One of MMEngine's ``paramwise_cfg.custom_keys``: parameters whose full name contains ``key`` get
    ``lr_mult x lr`` and ``decay_mult x weight_decay`` (the longest matching key wins)."""

    key: str
    lr_mult: float = 1.0
    decay_mult: float = 1.0


@dataclass(frozen=True)
class ParamwiseConfig:
    """Per-parameter learning rates and weight decay of a recipe (MMEngine's ``paramwise_cfg``).

    Either name rules (``custom_keys`` and ``norm_decay_mult``, MMEngine's default optimizer constructor), or
    MMSegmentation's layer-wise learning-rate decay (``layer_decay``: "layer_wise" or "stage_wise" for ConvNeXt,
    "layer_wise" for BEiT and MAE; ``decay_rate`` ** depth-from-the-top scales each layer's lr, over
    ``num_layers``). :func:`sszoo.train.optim.param_groups` turns it into optimizer parameter groups.
    """

    custom_keys: tuple[KeyRule, ...] = ()
    norm_decay_mult: Optional[float] = None
    layer_decay: Optional[str] = None
    decay_rate: float = 1.0
    num_layers: int = 0

    def __post_init__(self) -> None:
        # from JSON the rules arrive as dicts (or lists of fields)
        rules = tuple(r if isinstance(r, KeyRule) else KeyRule(**r) if isinstance(r, dict) else KeyRule(*r)
                      for r in self.custom_keys)
        object.__setattr__(self, "custom_keys", rules)
        if self.layer_decay not in (None, "layer_wise", "stage_wise"):
            raise ValueError(f"layer_decay must be 'layer_wise', 'stage_wise' or None, got {self.layer_decay!r}")


def _paramwise(v) -> Optional[ParamwiseConfig]:
    return ParamwiseConfig(**v) if isinstance(v, dict) else v


@dataclass(frozen=True)
class TrainRecipe:
    """The published training recipe (per-GPU batch x GPUs, schedule, optimiser)."""

    crop: tuple[int, int]         # (h, w)
    images_per_gpu: int
    gpus: int
    iters: Optional[int]          # MMSegmentation schedules are in iterations
    epochs: Optional[int] = None  # sssegmentation schedules are in epochs
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    min_lr: float = 1e-4
    aux_loss_weight: float = 0.4
    train_scale: tuple[int, int] = (2048, 1024)   # RandomResize base scale (w, h)
    ratio_range: Optional[tuple[float, float]] = (0.5, 2.0)  # None: train_scale lists shorter sides to pick from
    resize_max_size: Optional[int] = None         # the longer-side cap of those (ResizeShortestEdge's max_size)
    cat_max_ratio: float = 0.75
    photometric: bool = True      # PhotoMetricDistortion in the train pipeline (CGNet's 680x680 recipe has none)
    bn_momentum: Optional[float] = None  # BatchNorm momentum when not PyTorch's 0.1 (Fast-SCNN: 0.01)
    precision: str = "fp32"       # "fp32", "fp16" (static or dynamic loss scaling)
    loss_scale: Optional[float] = None
    pretrained_backbone: Optional[str] = None  # e.g. "open-mmlab://resnet50_v1c", "torchvision://resnet50"
    warmup_iters: int = 0         # linear warm-up (MMEngine's LinearLR) before the poly schedule (PointRend: 200)
    warmup_start_factor: float = 1.0   # the warm-up's first lr, as a fraction of lr
    paramwise: Optional[ParamwiseConfig] = None   # per-parameter lr / weight decay (None: one group)
    betas: tuple[float, float] = (0.9, 0.999)     # Adam(W)
    eps: float = 1e-8                             # Adam(W)
    clip_grad: Optional[float] = None             # max L2 norm of all gradients (MMEngine's clip_grad)
    lr_milestones: tuple[int, ...] = ()           # MultiStepLR after the warm-up instead of poly (K-Net)
    lr_gamma: float = 0.1                         # MultiStepLR's factor at each milestone

    def __post_init__(self) -> None:
        object.__setattr__(self, "paramwise", _paramwise(self.paramwise))

    @property
    def batch_size(self) -> int:
        return self.images_per_gpu * self.gpus


@dataclass(frozen=True)
class Reported:
    """Numbers as published by the source (not measured by sszoo)."""

    miou: Optional[float]
    miou_msflip: Optional[float] = None
    mem_gb: Optional[float] = None     # training memory per GPU
    fps: Optional[float] = None        # inference, batch 1, whole image
    hardware: Optional[str] = None
    precision: str = "fp32"


@dataclass(frozen=True)
class WeightsInfo:
    url: Optional[str]
    sha256_prefix: Optional[str] = None  # the 8 hex digits MMSegmentation puts in its file names
    format: str = "mmseg"                # "mmseg" ({'state_dict', 'meta'}) or "ssseg" ({'model': ...})
    url_alt: Optional[str] = None        # a second published location of the same file
    license: str = "Apache-2.0"

    @property
    def verified(self) -> bool:
        return self.sha256_prefix is not None


@dataclass(frozen=True)
class SourceInfo:
    framework: str                 # "mmsegmentation" or "sssegmentation"
    config: Optional[str] = None   # the original config (path inside the source repository)
    config_url: Optional[str] = None
    log_url: Optional[str] = None
    config_0x: Optional[str] = None
    notes: str = ""


@dataclass(frozen=True)
class ZooEntry:
    """One published checkpoint: architecture, data, protocol, recipe, results, weights and provenance."""

    name: str                      # "pspnet_r101_d8_cityscapes.512x1024_80k"
    method: str                    # "fcn", "fcn_d6", "pspnet", "deeplabv3", "deeplabv3plus"
    backbone: str                  # as in the result tables: "R-101-D8"
    arch: ArchConfig
    dataset: DatasetInfo
    test: TestProtocol
    recipe: TrainRecipe
    reported: Reported
    weights: WeightsInfo
    source: SourceInfo
    citations: tuple[str, ...]     # BibTeX keys, see sszoo.registry.citations
    aliases: tuple[str, ...] = ()

    @property
    def arch_name(self) -> str:
        """The name without its tag: ``pspnet_r101_d8_cityscapes``."""
        return self.name.split(".", 1)[0]

    @property
    def tag(self) -> str:
        return self.name.split(".", 1)[1]

    @property
    def num_classes(self) -> int:
        return self.arch.num_classes
