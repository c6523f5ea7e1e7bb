"""MMSegmentation's resolved ``cfg.model`` (plain JSON) -> sszoo's architecture record (``zoo.json``'s ``arch``).

Pure Python with no dependency on sszoo or MMSegmentation, so the golden-file scripts (run with the
oracle's python) and tools/generate_zoo.py (run with sszoo's) share one mapping. Every MMSegmentation
type sszoo builds has a converter here; a type without one raises ``KeyError`` naming it.

    arch = arch_from_mmseg(model_cfg)   # {"backbone", "decode_head", "auxiliary_head", "neck", "num_classes", "align_corners"}
"""
from __future__ import annotations

from typing import Any, Callable

Cfg = dict[str, Any]


# ------------------------------------------------------------------------------------------ backbones
def _resnet(b: Cfg) -> Cfg:
    return dict(kind="resnet", depth=int(b["depth"]), deep_stem=b["type"] == "ResNetV1c" or bool(b.get("deep_stem")),
                strides=list(b.get("strides", (1, 2, 2, 2))), dilations=list(b.get("dilations", (1, 1, 1, 1))),
                contract_dilation=bool(b.get("contract_dilation", False)),
                multi_grid=list(b["multi_grid"]) if b.get("multi_grid") else None)


def _resnest(b: Cfg) -> Cfg:
    return dict(kind="resnest", depth=int(b["depth"]), stem_channels=int(b.get("stem_channels", 64)),
                strides=list(b.get("strides", (1, 2, 2, 2))), dilations=list(b.get("dilations", (1, 1, 1, 1))),
                contract_dilation=bool(b.get("contract_dilation", False)),
                multi_grid=list(b["multi_grid"]) if b.get("multi_grid") else None, groups=int(b.get("groups", 1)),
                base_width=int(b.get("base_width", 4)), radix=int(b.get("radix", 2)),
                reduction_factor=int(b.get("reduction_factor", 4)), avg_down_stride=bool(b.get("avg_down_stride", True)))


BACKBONES: dict[str, Callable[[Cfg], Cfg]] = {"ResNetV1c": _resnet, "ResNet": _resnet, "ResNetV1b": _resnet,
                                              "ResNeSt": _resnest}


# ---------------------------------------------------------------------------------------------- heads
def loss_weight(h: Cfg) -> float:
    """The weight of a head's (first) loss, as its ``loss_decode`` says."""
    loss = h.get("loss_decode") or {}
    if isinstance(loss, list):
        loss = loss[0]
    return float(loss.get("loss_weight", 1.0))


def base_head(h: Cfg) -> Cfg:
    """The fields every head shares (MMSegmentation's BaseDecodeHead)."""
    return dict(in_channels=int(h["in_channels"]), channels=int(h["channels"]), in_index=int(h.get("in_index", -1)),
                dropout=float(h.get("dropout_ratio", 0.1)), loss_weight=loss_weight(h))


def _fcn(h: Cfg) -> Cfg:
    return dict(kind="fcn", **base_head(h), num_convs=int(h.get("num_convs", 2)),
                concat_input=bool(h.get("concat_input", True)), kernel_size=int(h.get("kernel_size", 3)),
                dilation=int(h.get("dilation", 1)))


def _psp(h: Cfg) -> Cfg:
    return dict(kind="psp", **base_head(h), pool_scales=list(h.get("pool_scales", (1, 2, 3, 6))))


def _aspp(h: Cfg) -> Cfg:
    return dict(kind="aspp", **base_head(h), dilations=list(h.get("dilations", (1, 6, 12, 18))))


def _sep_aspp(h: Cfg) -> Cfg:
    return dict(kind="sep_aspp", **base_head(h), dilations=list(h.get("dilations", (1, 6, 12, 18))),
                c1_in_channels=int(h["c1_in_channels"]), c1_channels=int(h["c1_channels"]), c1_index=0)


HEADS: dict[str, Callable[[Cfg], Cfg]] = {
    "FCNHead": _fcn, "PSPHead": _psp, "ASPPHead": _aspp, "DepthwiseSeparableASPPHead": _sep_aspp,
}


# ---------------------------------------------------------------------------------------------- necks
def _jpu(n: Cfg) -> Cfg:
    return dict(kind="jpu", in_channels=list(n.get("in_channels", (512, 1024, 2048))),
                mid_channels=int(n.get("mid_channels", 512)), start_level=int(n.get("start_level", 0)),
                end_level=int(n.get("end_level", -1)), dilations=list(n.get("dilations", (1, 2, 4, 8))),
                align_corners=bool(n.get("align_corners", False)))


NECKS: dict[str, Callable[[Cfg], Cfg]] = {"JPU": _jpu}


def _convert(table: dict[str, Callable[[Cfg], Cfg]], cfg: Cfg, what: str) -> Cfg:
    kind = cfg["type"]
    if kind not in table:
        raise KeyError(f"no sszoo {what} for MMSegmentation's {kind}; add a converter to tools/mmseg_arch.py")
    return table[kind](cfg)


def _heads(cfg: Any, what: str) -> Any:
    if cfg is None:
        return None
    if isinstance(cfg, list):
        return [_convert(HEADS, h, what) for h in cfg]
    return _convert(HEADS, cfg, what)


def arch_from_mmseg(model: Cfg) -> Cfg:
    """sszoo's ``arch`` record for MMSegmentation's resolved ``cfg.model``."""
    decode = model["decode_head"]
    last = decode[-1] if isinstance(decode, list) else decode
    neck = model.get("neck")
    return dict(backbone=_convert(BACKBONES, model["backbone"], "backbone"), decode_head=_heads(decode, "head"),
                auxiliary_head=_heads(model.get("auxiliary_head"), "head"),
                num_classes=int(last["num_classes"]), align_corners=bool(last.get("align_corners", False)),
                neck=_convert(NECKS, neck, "neck") if neck else None)
