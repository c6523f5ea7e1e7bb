"""The one dispatch of model building: config type -> module class.

A new architecture is a file under ``backbones/``, ``necks/`` or ``heads/`` with a frozen config
dataclass (whose ``kind`` string names it in ``zoo.json``) and a module class with ``from_config``;
registering it is one line in the table below.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from .backbones import ResNeSt, ResNeStConfig, ResNet, ResNetConfig
from .backbones import BiSeNetV1, BiSeNetV1Config, BiSeNetV2, BiSeNetV2Config
from .backbones import MobileNetV2, MobileNetV2Config, MobileNetV3, MobileNetV3Config
from .backbones import HRNet, HRNetConfig
from .heads import (ANNHead, ANNHeadConfig, APCHead, APCHeadConfig, ASPPHead, ASPPHeadConfig, CCHead, CCHeadConfig,
                    DAHead, DAHeadConfig, DMHead, DMHeadConfig, DNLHead, DNLHeadConfig, EMAHead, EMAHeadConfig,
                    EncHead, EncHeadConfig, FCNHead, FCNHeadConfig, FPNHead, FPNHeadConfig, GCHead, GCHeadConfig,
                    ISAHead, ISAHeadConfig, NLHead, NLHeadConfig, PointHead, PointHeadConfig, PSAHead, PSAHeadConfig,
                    PSPHead, PSPHeadConfig, SepASPPHead, SepASPPHeadConfig, UPerHead, UPerHeadConfig)
from .losses import LossSpec, PixelSampler
from .heads import LRASPPHead, LRASPPHeadConfig
from .heads import OCRHead, OCRHeadConfig
from .necks import FPN, FPNConfig, JPU, JPUConfig
from .backbones import ICNet, ICNetConfig, STDCConfig, STDCContextPathNet
from .heads import STDCHead, STDCHeadConfig
from .necks import ICNeck, ICNeckConfig
from .backbones import DDRNet, DDRNetConfig, PIDNet, PIDNetConfig
from .heads import DDRHead, DDRHeadConfig, PIDHead, PIDHeadConfig
from .backbones import CGNet, CGNetConfig, ERFNet, ERFNetConfig, FastSCNN, FastSCNNConfig
from .heads import DSFCNHead, DSFCNHeadConfig

BACKBONES: dict[type, type[nn.Module]] = {ResNetConfig: ResNet, ResNeStConfig: ResNeSt}
BACKBONES.update({DDRNetConfig: DDRNet, PIDNetConfig: PIDNet})
BACKBONES.update({BiSeNetV1Config: BiSeNetV1, BiSeNetV2Config: BiSeNetV2})
BACKBONES.update({FastSCNNConfig: FastSCNN, CGNetConfig: CGNet, ERFNetConfig: ERFNet})
BACKBONES.update({MobileNetV2Config: MobileNetV2, MobileNetV3Config: MobileNetV3})
BACKBONES.update({HRNetConfig: HRNet})
NECKS: dict[type, type[nn.Module]] = {FPNConfig: FPN, JPUConfig: JPU}
HEADS: dict[type, type[nn.Module]] = {
    FCNHeadConfig: FCNHead, PSPHeadConfig: PSPHead, ASPPHeadConfig: ASPPHead, SepASPPHeadConfig: SepASPPHead,
    NLHeadConfig: NLHead, DNLHeadConfig: DNLHead, GCHeadConfig: GCHead, EMAHeadConfig: EMAHead,
    CCHeadConfig: CCHead, DAHeadConfig: DAHead, ANNHeadConfig: ANNHead, ISAHeadConfig: ISAHead,
    UPerHeadConfig: UPerHead, FPNHeadConfig: FPNHead, PointHeadConfig: PointHead,
    EncHeadConfig: EncHead, APCHeadConfig: APCHead, DMHeadConfig: DMHead, PSAHeadConfig: PSAHead,
    OCRHeadConfig: OCRHead,
}
BACKBONES.update({STDCConfig: STDCContextPathNet, ICNetConfig: ICNet})
NECKS.update({ICNeckConfig: ICNeck})
HEADS.update({STDCHeadConfig: STDCHead})
HEADS.update({DDRHeadConfig: DDRHead, PIDHeadConfig: PIDHead})
HEADS.update({DSFCNHeadConfig: DSFCNHead})
HEADS.update({LRASPPHeadConfig: LRASPPHead})


def _kinds(table: dict[type, type]) -> dict[str, type]:
    return {f.default: c for c in table for f in dataclasses.fields(c) if f.name == "kind"}


def _tuples(v: Any) -> Any:
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def config_from_dict(d: dict[str, Any], table: dict[type, type], what: str, default_kind: str | None = None):
    """The config dataclass instance described by ``d`` (JSON lists become tuples), picked by its ``kind``."""
    kinds = _kinds(table)
    kind = d.get("kind", default_kind)
    cls = kinds.get(kind)
    if cls is None:
        raise ValueError(f"unknown {what} kind {kind!r}; expected one of {sorted(kinds)}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"{what} kind {kind!r} has no fields {sorted(unknown)}")
    return cls(**{k: _field(k, v) for k, v in d.items()})


def _field(name: str, v: Any) -> Any:
    """A config field from JSON: lists become tuples; a head's ``losses`` and ``sampler`` become their types."""
    if name == "losses":
        return tuple(s if isinstance(s, LossSpec) else LossSpec(**{k: _tuples(x) for k, x in s.items()}) for s in v)
    if name == "sampler" and isinstance(v, dict):
        return PixelSampler(**v)
    return _tuples(v)


def build_backbone(cfg) -> nn.Module:
    """The backbone module of ``cfg`` (randomly initialised)."""
    return BACKBONES[type(cfg)].from_config(cfg)


def build_neck(cfg) -> nn.Module:
    """The neck module of ``cfg`` (randomly initialised)."""
    return NECKS[type(cfg)].from_config(cfg)


def build_head(cfg, num_classes: int, align_corners: bool) -> nn.Module:
    """The head module of ``cfg`` with ``num_classes`` outputs (randomly initialised)."""
    head = HEADS[type(cfg)].from_config(cfg, num_classes, align_corners)
    # the loss terms and pixel sampler the config lists (sszoo.models.losses); plain cross-entropy otherwise
    if getattr(cfg, "losses", ()):
        head.loss_specs = tuple(cfg.losses)
    if getattr(cfg, "sampler", None) is not None:
        head.sampler = cfg.sampler
    return head
