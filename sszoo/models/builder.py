"""The one dispatch of model building: config type -> module class.

A new architecture is a file under ``backbones/``, ``necks/`` or ``heads/`` with a frozen config
dataclass (whose ``kind`` string names it in ``zoo.json``) and a module class with ``from_config``;
registering it is one line in the table below.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from . import backbones as B
from . import heads as H
from . import necks as N
from .losses import LossSpec, PixelSampler

BACKBONES: dict[type, type[nn.Module]] = {
    B.ResNetConfig: B.ResNet, B.ResNeStConfig: B.ResNeSt, B.HRNetConfig: B.HRNet,
    B.MobileNetV2Config: B.MobileNetV2, B.MobileNetV3Config: B.MobileNetV3,
    B.FastSCNNConfig: B.FastSCNN, B.CGNetConfig: B.CGNet, B.ERFNetConfig: B.ERFNet,
    B.BiSeNetV1Config: B.BiSeNetV1, B.BiSeNetV2Config: B.BiSeNetV2, B.STDCConfig: B.STDCContextPathNet,
    B.ICNetConfig: B.ICNet, B.DDRNetConfig: B.DDRNet, B.PIDNetConfig: B.PIDNet,
    B.SwinConfig: B.SwinTransformer,
}
BACKBONES.update({B.PCPVTConfig: B.PCPVT, B.SVTConfig: B.SVT})
BACKBONES.update({B.ConvNeXtConfig: B.ConvNeXt, B.PoolFormerConfig: B.PoolFormer})
NECKS: dict[type, type[nn.Module]] = {N.FPNConfig: N.FPN, N.JPUConfig: N.JPU, N.ICNeckConfig: N.ICNeck}
BACKBONES.update({B.ViTConfig: B.VisionTransformer})
NECKS.update({N.MultiLevelNeckConfig: N.MultiLevelNeck, N.MLANeckConfig: N.MLANeck})
HEADS: dict[type, type[nn.Module]] = {
    H.FCNHeadConfig: H.FCNHead, H.PSPHeadConfig: H.PSPHead, H.ASPPHeadConfig: H.ASPPHead,
    H.SepASPPHeadConfig: H.SepASPPHead, H.NLHeadConfig: H.NLHead, H.DNLHeadConfig: H.DNLHead,
    H.GCHeadConfig: H.GCHead, H.EMAHeadConfig: H.EMAHead, H.CCHeadConfig: H.CCHead, H.DAHeadConfig: H.DAHead,
    H.ANNHeadConfig: H.ANNHead, H.ISAHeadConfig: H.ISAHead, H.UPerHeadConfig: H.UPerHead,
    H.FPNHeadConfig: H.FPNHead, H.PointHeadConfig: H.PointHead, H.EncHeadConfig: H.EncHead,
    H.APCHeadConfig: H.APCHead, H.DMHeadConfig: H.DMHead, H.PSAHeadConfig: H.PSAHead,
    H.OCRHeadConfig: H.OCRHead, H.LRASPPHeadConfig: H.LRASPPHead, H.DSFCNHeadConfig: H.DSFCNHead,
    H.STDCHeadConfig: H.STDCHead, H.DDRHeadConfig: H.DDRHead, H.PIDHeadConfig: H.PIDHead,
}
HEADS.update({H.SETRUPHeadConfig: H.SETRUPHead, H.SETRMLAHeadConfig: H.SETRMLAHead})
HEADS.update({H.Mask2FormerHeadConfig: H.Mask2FormerHead})


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
