"""The one dispatch of model building: config type -> module class.

A new architecture is a file under ``backbones/``, ``necks/`` or ``heads/`` with a frozen config
dataclass (whose ``kind`` string names it in ``zoo.json``) and a module class with ``from_config``;
registering it is one line in the table below.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from .backbones import HRNet, HRNetConfig, ResNeSt, ResNeStConfig, ResNet, ResNetConfig
from .heads import (ANNHead, ANNHeadConfig, APCHead, APCHeadConfig, ASPPHead, ASPPHeadConfig, CCHead, CCHeadConfig,
                    DAHead, DAHeadConfig, DMHead, DMHeadConfig, DNLHead, DNLHeadConfig, EMAHead, EMAHeadConfig,
                    EncHead, EncHeadConfig, FCNHead, FCNHeadConfig, FPNHead, FPNHeadConfig, GCHead, GCHeadConfig,
                    ISAHead, ISAHeadConfig, NLHead, NLHeadConfig, PointHead, PointHeadConfig, PSAHead, PSAHeadConfig,
                    PSPHead, PSPHeadConfig, SepASPPHead, SepASPPHeadConfig, UPerHead, UPerHeadConfig)
from .heads import OCRHead, OCRHeadConfig
from .necks import FPN, FPNConfig, JPU, JPUConfig

BACKBONES: dict[type, type[nn.Module]] = {ResNetConfig: ResNet, ResNeStConfig: ResNeSt, HRNetConfig: HRNet}
NECKS: dict[type, type[nn.Module]] = {FPNConfig: FPN, JPUConfig: JPU}
HEADS: dict[type, type[nn.Module]] = {
    FCNHeadConfig: FCNHead, PSPHeadConfig: PSPHead, ASPPHeadConfig: ASPPHead, SepASPPHeadConfig: SepASPPHead,
    NLHeadConfig: NLHead, DNLHeadConfig: DNLHead, GCHeadConfig: GCHead, EMAHeadConfig: EMAHead,
    CCHeadConfig: CCHead, DAHeadConfig: DAHead, ANNHeadConfig: ANNHead, ISAHeadConfig: ISAHead,
    UPerHeadConfig: UPerHead, FPNHeadConfig: FPNHead, PointHeadConfig: PointHead,
    EncHeadConfig: EncHead, APCHeadConfig: APCHead, DMHeadConfig: DMHead, PSAHeadConfig: PSAHead,
    OCRHeadConfig: OCRHead,
}


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
    return cls(**{k: _tuples(v) for k, v in d.items()})


def build_backbone(cfg) -> nn.Module:
    """The backbone module of ``cfg`` (randomly initialised)."""
    return BACKBONES[type(cfg)].from_config(cfg)


def build_neck(cfg) -> nn.Module:
    """The neck module of ``cfg`` (randomly initialised)."""
    return NECKS[type(cfg)].from_config(cfg)


def build_head(cfg, num_classes: int, align_corners: bool) -> nn.Module:
    """The head module of ``cfg`` with ``num_classes`` outputs (randomly initialised)."""
    return HEADS[type(cfg)].from_config(cfg, num_classes, align_corners)
