"""MMSegmentation's resolved ``cfg.model`` (plain JSON) -> sszoo's architecture record (``zoo.json``'s ``arch``).

Pure Python with no dependency on sszoo or MMSegmentation, so the golden-file scripts (run with the
oracle's python) and tools/generate_zoo.py (run with sszoo's) share one mapping. Every MMSegmentation
type sszoo builds has a converter here; a type without one raises ``KeyError`` naming it.

    arch = arch_from_mmseg(model_cfg)   # {"backbone", "decode_head", "auxiliary_head", "neck", "num_classes", "align_corners"}
"""
from __future__ import annotations

from typing import Any, Callable

Cfg = dict[str, Any]


class Unsupported(KeyError):
    """A variant of a known MMSegmentation type that sszoo does not build (treated like an unknown type)."""


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


def _hrnet(b: Cfg) -> Cfg:
    # norm_eval, with_cp, frozen_stages and zero_init_residual only change training or initialisation
    if (int(b.get("in_channels", 3)) != 3 or b.get("conv_cfg") or not b.get("multiscale_output", True)
            or (b.get("norm_cfg") or {"type": "BN"})["type"] not in ("BN", "SyncBN")):
        raise Unsupported(f"sszoo's HRNet has no variant {b}")
    stages = [b["extra"][f"stage{i}"] for i in range(1, 5)]
    return dict(kind="hrnet", num_modules=[int(s["num_modules"]) for s in stages],
                num_branches=[int(s["num_branches"]) for s in stages], block=[str(s["block"]) for s in stages],
                num_blocks=[[int(n) for n in s["num_blocks"]] for s in stages],
                num_channels=[[int(c) for c in s["num_channels"]] for s in stages])


BACKBONES: dict[str, Callable[[Cfg], Cfg]] = {"ResNetV1c": _resnet, "ResNet": _resnet, "ResNetV1b": _resnet,
                                              "ResNeSt": _resnest, "HRNet": _hrnet}


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


def concat_head(h: Cfg) -> Cfg:
    """The shared fields of a head that reads one map (int ``in_index``) or, with ``input_transform=
    'resize_concat'``, several resized to the first and concatenated (HRNet: lists, plus ``input_transform``;
    the field is left out otherwise so that the single-map records stay as they were)."""
    transform = h.get("input_transform")
    if transform is None:
        return base_head(h)
    if transform != "resize_concat":
        raise Unsupported(f"input_transform {transform!r}")
    return dict(multi_head(h), input_transform=transform)


def _fcn(h: Cfg) -> Cfg:
    return dict(kind="fcn", **concat_head(h), num_convs=int(h.get("num_convs", 2)),
                concat_input=bool(h.get("concat_input", True)), kernel_size=int(h.get("kernel_size", 3)),
                dilation=int(h.get("dilation", 1)))


def _ocr(h: Cfg) -> Cfg:
    # scale > 1 max-pools the queries, and the reference's forward then fails (it resizes without a size)
    if int(h.get("scale", 1)) != 1:
        raise Unsupported("OCRHead with scale != 1")
    return dict(kind="ocr", **concat_head(h), ocr_channels=int(h["ocr_channels"]))


def _psp(h: Cfg) -> Cfg:
    return dict(kind="psp", **base_head(h), pool_scales=list(h.get("pool_scales", (1, 2, 3, 6))))


def _aspp(h: Cfg) -> Cfg:
    return dict(kind="aspp", **base_head(h), dilations=list(h.get("dilations", (1, 6, 12, 18))))


def _sep_aspp(h: Cfg) -> Cfg:
    return dict(kind="sep_aspp", **base_head(h), dilations=list(h.get("dilations", (1, 6, 12, 18))),
                c1_in_channels=int(h["c1_in_channels"]), c1_channels=int(h["c1_channels"]), c1_index=0)


def _fcn_block(h: Cfg) -> Cfg:
    """The FCNHead fields of the heads that put a context block between its two convs (NL, DNL, GC)."""
    return dict(**base_head(h), concat_input=bool(h.get("concat_input", True)),
                kernel_size=int(h.get("kernel_size", 3)), dilation=int(h.get("dilation", 1)))


def _nonlocal(h: Cfg) -> Cfg:
    return dict(kind="nonlocal", **_fcn_block(h), reduction=int(h.get("reduction", 2)),
                use_scale=bool(h.get("use_scale", True)), mode=str(h.get("mode", "embedded_gaussian")))


def _dnl(h: Cfg) -> Cfg:
    return dict(kind="dnl", **_fcn_block(h), reduction=int(h.get("reduction", 2)),
                use_scale=bool(h.get("use_scale", True)), mode=str(h.get("mode", "embedded_gaussian")),
                temperature=float(h.get("temperature", 0.05)))


def _gc(h: Cfg) -> Cfg:
    return dict(kind="gc", **_fcn_block(h), ratio=float(h.get("ratio", 1 / 4.)),
                pooling_type=str(h.get("pooling_type", "att")),
                fusion_types=list(h.get("fusion_types", ("channel_add",))))


def _ema(h: Cfg) -> Cfg:
    return dict(kind="ema", **base_head(h), ema_channels=int(h["ema_channels"]), num_bases=int(h["num_bases"]),
                num_stages=int(h["num_stages"]), concat_input=bool(h.get("concat_input", True)),
                momentum=float(h.get("momentum", 0.1)))


def _cc(h: Cfg) -> Cfg:
    return dict(kind="cc", **base_head(h), recurrence=int(h.get("recurrence", 2)),
                concat_input=bool(h.get("concat_input", True)), kernel_size=int(h.get("kernel_size", 3)),
                dilation=int(h.get("dilation", 1)))


def _da(h: Cfg) -> Cfg:
    return dict(kind="da", **base_head(h), pam_channels=int(h["pam_channels"]))


def _ann(h: Cfg) -> Cfg:
    # multiple_select: two (low, high) maps, so in_channels and in_index are pairs
    base = base_head(dict(h, in_channels=0, in_index=0))
    return dict(base, kind="ann", in_channels=[int(c) for c in h["in_channels"]],
                in_index=[int(i) for i in h["in_index"]], project_channels=int(h["project_channels"]),
                query_scales=list(h.get("query_scales", (1,))), key_pool_scales=list(h.get("key_pool_scales", (1, 3, 6, 8))))


def _isa(h: Cfg) -> Cfg:
    return dict(kind="isa", **base_head(h), isa_channels=int(h["isa_channels"]),
                down_factor=list(h.get("down_factor", (8, 8))))


def multi_head(h: Cfg) -> Cfg:
    """The shared fields of a head that reads several maps (MMSegmentation's ``multiple_select``: lists)."""
    return dict(in_channels=[int(c) for c in h["in_channels"]], channels=int(h["channels"]),
                in_index=[int(i) for i in h["in_index"]], dropout=max(0.0, float(h.get("dropout_ratio", 0.1))),
                loss_weight=loss_weight(h))


def _uper(h: Cfg) -> Cfg:
    return dict(kind="uper", **multi_head(h), pool_scales=list(h.get("pool_scales", (1, 2, 3, 6))))


def _fpn_head(h: Cfg) -> Cfg:
    return dict(kind="fpn_head", **multi_head(h), feature_strides=[int(s) for s in h["feature_strides"]])


def _point_head(h: Cfg) -> Cfg:
    # the point selection lives in the segmentor's train_cfg / test_cfg there (passed in by arch_from_mmseg)
    train, test = h.get("train_cfg") or {}, h.get("test_cfg") or {}
    if h.get("class_agnostic") or h.get("norm_cfg"):
        raise Unsupported("sszoo's PointHead has no class_agnostic or norm variant")
    return dict(kind="point", **multi_head(h), num_fcs=int(h.get("num_fcs", 3)),
                coarse_pred_each_layer=bool(h.get("coarse_pred_each_layer", True)),
                num_points=int(train.get("num_points", 2048)),
                oversample_ratio=float(train.get("oversample_ratio", 3)),
                importance_sample_ratio=float(train.get("importance_sample_ratio", 0.75)),
                subdivision_steps=int(test.get("subdivision_steps", 2)),
                subdivision_num_points=int(test.get("subdivision_num_points", 8196)),
                scale_factor=float(test.get("scale_factor", 2)))


def _enc(h: Cfg) -> Cfg:
    # multiple_select: in_channels and in_index are lists
    se = h.get("loss_se_decode") or {}
    return dict(kind="enc", in_channels=[int(c) for c in h["in_channels"]], channels=int(h["channels"]),
                in_index=[int(i) for i in h.get("in_index", (1, 2, 3))], num_codes=int(h.get("num_codes", 32)),
                use_se_loss=bool(h.get("use_se_loss", True)), add_lateral=bool(h.get("add_lateral", False)),
                se_loss_weight=float(se.get("loss_weight", 0.2)), dropout=float(h.get("dropout_ratio", 0.1)),
                loss_weight=loss_weight(h))


def _apc(h: Cfg) -> Cfg:
    return dict(kind="apc", **base_head(h), pool_scales=list(h.get("pool_scales", (1, 2, 3, 6))),
                fusion=bool(h.get("fusion", True)))


def _dm(h: Cfg) -> Cfg:
    return dict(kind="dm", **base_head(h), filter_sizes=list(h.get("filter_sizes", (1, 3, 5, 7))),
                fusion=bool(h.get("fusion", False)))


def _psa(h: Cfg) -> Cfg:
    nf = h.get("normalization_factor", 1.0)
    return dict(kind="psa", **base_head(h), mask_size=[int(m) for m in h["mask_size"]],
                psa_type=str(h.get("psa_type", "bi-direction")), compact=bool(h.get("compact", False)),
                shrink_factor=int(h.get("shrink_factor", 2)), normalization_factor=None if nf is None else float(nf),
                psa_softmax=bool(h.get("psa_softmax", True)))


HEADS: dict[str, Callable[[Cfg], Cfg]] = {
    "FCNHead": _fcn, "PSPHead": _psp, "ASPPHead": _aspp, "DepthwiseSeparableASPPHead": _sep_aspp,
    "NLHead": _nonlocal, "DNLHead": _dnl, "GCHead": _gc, "EMAHead": _ema,
    "CCHead": _cc, "DAHead": _da, "ANNHead": _ann, "ISAHead": _isa,
    "UPerHead": _uper, "FPNHead": _fpn_head, "PointHead": _point_head,
    "EncHead": _enc, "APCHead": _apc, "DMHead": _dm, "PSAHead": _psa,
    "OCRHead": _ocr,
}


# ---------------------------------------------------------------------------------------------- necks


def _fpn(n: Cfg) -> Cfg:
    if (n.get("add_extra_convs") or n.get("end_level", -1) != -1 or n.get("norm_cfg") or n.get("act_cfg")
            or (n.get("upsample_cfg") or {"mode": "nearest"}) != {"mode": "nearest"}):
        raise Unsupported(f"sszoo's FPN neck has no variant {n}")
    return dict(kind="fpn", in_channels=[int(c) for c in n["in_channels"]], out_channels=int(n["out_channels"]),
                num_outs=int(n["num_outs"]), start_level=int(n.get("start_level", 0)))


def _jpu(n: Cfg) -> Cfg:
    return dict(kind="jpu", in_channels=list(n.get("in_channels", (512, 1024, 2048))),
                mid_channels=int(n.get("mid_channels", 512)), start_level=int(n.get("start_level", 0)),
                end_level=int(n.get("end_level", -1)), dilations=list(n.get("dilations", (1, 2, 4, 8))),
                align_corners=bool(n.get("align_corners", False)))


NECKS: dict[str, Callable[[Cfg], Cfg]] = {"FPN": _fpn, "JPU": _jpu}


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
    if isinstance(decode, list):  # a cascade's point selection is in the segmentor's train/test cfg (PointRend)
        decode = [dict(h, train_cfg=model.get("train_cfg"), test_cfg=model.get("test_cfg")) for h in decode]
    last = decode[-1] if isinstance(decode, list) else decode
    neck = model.get("neck")
    return dict(backbone=_convert(BACKBONES, model["backbone"], "backbone"), decode_head=_heads(decode, "head"),
                auxiliary_head=_heads(model.get("auxiliary_head"), "head"),
                num_classes=int(last["num_classes"]), align_corners=bool(last.get("align_corners", False)),
                neck=_convert(NECKS, neck, "neck") if neck else None)
