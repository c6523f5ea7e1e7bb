"""MMSegmentation's resolved ``cfg.model`` (plain JSON) -> sszoo's architecture record (``zoo.json``'s ``arch``).

Pure Python with no dependency on sszoo or MMSegmentation, so the golden-file scripts (run with the
oracle's python) and tools/generate_zoo.py (run with sszoo's) share one mapping. Every MMSegmentation
type sszoo builds has a converter here; a type without one raises ``KeyError`` naming it.

    arch = arch_from_mmseg(model_cfg)   # {"backbone", "decode_head", "auxiliary_head", "neck", "num_classes", "align_corners"}
"""
from __future__ import annotations

import os
from typing import Any, Callable

Cfg = dict[str, Any]


class Unsupported(KeyError):
    """A variant of a known MMSegmentation type that sszoo does not build (treated like an unknown type)."""


# ------------------------------------------------------------------------------------------ backbones


def _resnet(b: Cfg) -> Cfg:
    frozen = (b.get("norm_cfg") or {}).get("requires_grad") is False
    return dict(**({"norm_frozen": True} if frozen else {}), kind="resnet", depth=int(b["depth"]), deep_stem=b["type"] == "ResNetV1c" or bool(b.get("deep_stem")),
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


def _stdc(b: Cfg) -> Cfg:
    s, ffm = b["backbone_cfg"], b.get("ffm_cfg") or {}
    if s.get("type", "STDCNet") != "STDCNet" or int(s.get("in_channels", 3)) != 3:
        raise Unsupported(f"sszoo's STDCContextPathNet has no backbone {s}")
    if (b.get("upsample_mode", "nearest") != "nearest" or b.get("align_corners") is not None
            or (s.get("act_cfg") or {"type": "ReLU"}) != {"type": "ReLU"}):
        raise Unsupported("sszoo's STDCContextPathNet upsamples with mode 'nearest' and uses ReLU only")
    return dict(kind="stdc", stdc_type=str(s["stdc_type"]), channels=[int(c) for c in s["channels"]],
                bottleneck_type=str(s["bottleneck_type"]), num_convs=int(s.get("num_convs", 4)),
                with_final_conv=bool(s.get("with_final_conv", False)),
                last_in_channels=[int(c) for c in b.get("last_in_channels", (1024, 512))],
                out_channels=int(b.get("out_channels", 128)), ffm_in_channels=int(ffm.get("in_channels", 512)),
                ffm_out_channels=int(ffm.get("out_channels", 256)), ffm_scale_factor=int(ffm.get("scale_factor", 4)))


def _icnet(b: Cfg) -> Cfg:
    r = b["backbone_cfg"]
    if r["type"] != "ResNetV1c" or int(b.get("in_channels", 3)) != 3:
        raise Unsupported(f"sszoo's ICNet runs over a ResNetV1c only, got {r['type']}")
    resnet = _resnet(r)
    resnet.pop("kind")
    return dict(kind="icnet", backbone_cfg=resnet,
                layer_channels=[int(c) for c in b.get("layer_channels", (512, 2048))],
                light_branch_middle_channels=int(b.get("light_branch_middle_channels", 32)),
                psp_out_channels=int(b.get("psp_out_channels", 512)),
                out_channels=[int(c) for c in b.get("out_channels", (64, 256, 256))],
                pool_scales=list(b.get("pool_scales", (1, 2, 3, 6))), align_corners=bool(b.get("align_corners", False)))


BACKBONES.update({"STDCContextPathNet": _stdc, "ICNet": _icnet})


def _ddrnet(b: Cfg) -> Cfg:
    if int(b.get("in_channels", 3)) != 3:
        raise Unsupported("sszoo's DDRNet takes RGB input")
    return dict(kind="ddrnet", channels=int(b.get("channels", 32)), ppm_channels=int(b.get("ppm_channels", 128)),
                align_corners=bool(b.get("align_corners", False)))


def _pidnet(b: Cfg) -> Cfg:
    if int(b.get("in_channels", 3)) != 3 or (b.get("act_cfg") or {}).get("type", "ReLU") != "ReLU":
        raise Unsupported("sszoo's PIDNet takes RGB input and uses ReLU")
    return dict(kind="pidnet", channels=int(b.get("channels", 64)), ppm_channels=int(b.get("ppm_channels", 96)),
                num_stem_blocks=int(b.get("num_stem_blocks", 2)), num_branch_blocks=int(b.get("num_branch_blocks", 3)),
                align_corners=bool(b.get("align_corners", False)))


BACKBONES.update({"DDRNet": _ddrnet, "PIDNet": _pidnet})
def _bisenetv1(b: Cfg) -> Cfg:
    # the context path's ResNet through its own converter; BiSeNetV1 itself builds plain BN + ReLU convs
    # whatever its norm_cfg says (the reference does not pass it on), and align_corners is unused (nearest resizes)
    ctx = b["backbone_cfg"]
    if ctx["type"] not in ("ResNet", "ResNetV1c", "ResNetV1b") or int(b.get("in_channels", 3)) != 3:
        raise Unsupported(f"sszoo's BiSeNetV1 has a ResNet context path over RGB, not {ctx['type']}")
    if list(ctx.get("out_indices", (0, 1, 2, 3))) != [0, 1, 2, 3]:
        raise Unsupported("BiSeNetV1's context path needs all four ResNet stages")
    return dict(kind="bisenetv1", backbone_cfg=_convert(BACKBONES, ctx, "backbone"),
                spatial_channels=list(b.get("spatial_channels", (64, 64, 64, 128))),
                context_channels=list(b.get("context_channels", (128, 256, 512))),
                out_channels=int(b.get("out_channels", 256)), out_indices=list(b.get("out_indices", (0, 1, 2))))


def _bisenetv2(b: Cfg) -> Cfg:
    if int(b.get("in_channels", 3)) != 3:
        raise Unsupported("sszoo's BiSeNetV2 reads RGB images")
    return dict(kind="bisenetv2", detail_channels=list(b.get("detail_channels", (64, 64, 128))),
                semantic_channels=list(b.get("semantic_channels", (16, 32, 64, 128))),
                semantic_expansion_ratio=int(b.get("semantic_expansion_ratio", 6)),
                bga_channels=int(b.get("bga_channels", 128)), out_indices=list(b.get("out_indices", (0, 1, 2, 3, 4))),
                align_corners=bool(b.get("align_corners", False)))


BACKBONES.update({"BiSeNetV1": _bisenetv1, "BiSeNetV2": _bisenetv2})


def _rgb_only(b: Cfg) -> None:
    if int(b.get("in_channels", 3)) != 3:
        raise Unsupported(f"sszoo's {b['type']} takes RGB input only")


def _fast_scnn(b: Cfg) -> Cfg:
    _rgb_only(b)
    if (b.get("act_cfg") or {"type": "ReLU"}) != {"type": "ReLU"} or b.get("dw_act_cfg") is not None:
        raise Unsupported("sszoo's FastSCNN has ReLU activations and no depthwise activation")
    return dict(kind="fast_scnn", downsample_dw_channels=list(b.get("downsample_dw_channels", (32, 48))),
                global_in_channels=int(b.get("global_in_channels", 64)),
                global_block_channels=list(b.get("global_block_channels", (64, 96, 128))),
                global_block_strides=list(b.get("global_block_strides", (2, 2, 1))),
                global_out_channels=int(b.get("global_out_channels", 128)),
                higher_in_channels=int(b.get("higher_in_channels", 64)),
                lower_in_channels=int(b.get("lower_in_channels", 128)),
                fusion_out_channels=int(b.get("fusion_out_channels", 128)),
                out_indices=list(b.get("out_indices", (0, 1, 2))), align_corners=bool(b.get("align_corners", False)))


def _cgnet(b: Cfg) -> Cfg:
    _rgb_only(b)
    if (b.get("act_cfg") or {"type": "PReLU"}).get("type") != "PReLU" or b.get("norm_eval"):
        raise Unsupported("sszoo's CGNet has PReLU activations and trains its norms")
    norm = b.get("norm_cfg") or {}
    return dict(kind="cgnet", num_channels=list(b.get("num_channels", (32, 64, 128))),
                num_blocks=list(b.get("num_blocks", (3, 21))), dilations=list(b.get("dilations", (2, 4))),
                reductions=list(b.get("reductions", (8, 16))), norm_eps=float(norm.get("eps", 1e-5)))


def _erfnet(b: Cfg) -> Cfg:
    # enc_non_bottleneck_channels and dec_upsample_channels only have their lengths checked by the reference
    # (the blocks take their widths from enc_downsample_channels and dec_non_bottleneck_channels)
    _rgb_only(b)
    return dict(kind="erfnet", enc_downsample_channels=list(b.get("enc_downsample_channels", (16, 64, 128))),
                enc_stage_non_bottlenecks=list(b.get("enc_stage_non_bottlenecks", (5, 8))),
                enc_non_bottleneck_dilations=list(b.get("enc_non_bottleneck_dilations", (2, 4, 8, 16))),
                dec_stages_non_bottleneck=list(b.get("dec_stages_non_bottleneck", (2, 2))),
                dec_non_bottleneck_channels=list(b.get("dec_non_bottleneck_channels", (64, 16))),
                dropout_ratio=float(b.get("dropout_ratio", 0.1)))


BACKBONES.update({"FastSCNN": _fast_scnn, "CGNet": _cgnet, "ERFNet": _erfnet})


def _norm_eps(cfg: Cfg, what: str) -> float:
    """BatchNorm eps of a ``norm_cfg`` (1e-5 unless set); a momentum or a non-BN norm is not built."""
    n = cfg.get("norm_cfg") or {}
    if n.get("type", "BN") not in ("BN", "SyncBN") or n.get("momentum") is not None:
        raise Unsupported(f"sszoo's {what} has no norm variant {n}")
    return float(n.get("eps", 1e-5))


def _mobilenet_v2(b: Cfg) -> Cfg:
    if (b.get("act_cfg") or {"type": "ReLU6"}) != {"type": "ReLU6"} or _norm_eps(b, "MobileNetV2") != 1e-5:
        raise Unsupported("sszoo's MobileNetV2 has ReLU6 and BatchNorm's default eps only")
    return dict(kind="mobilenet_v2", widen_factor=float(b.get("widen_factor", 1.0)),
                strides=list(b.get("strides", (1, 2, 2, 2, 1, 2, 1))),
                dilations=list(b.get("dilations", (1, 1, 1, 1, 1, 1, 1))),
                out_indices=list(b.get("out_indices", (1, 2, 4, 6))))


def _mobilenet_v3(b: Cfg) -> Cfg:
    return dict(kind="mobilenet_v3", arch=str(b.get("arch", "small")), out_indices=list(b.get("out_indices", (0, 1, 12))),
                reduction_factor=int(b.get("reduction_factor", 1)), norm_eps=_norm_eps(b, "MobileNetV3"))


BACKBONES.update({"MobileNetV2": _mobilenet_v2, "MobileNetV3": _mobilenet_v3})


# ---------------------------------------------------------------------------------------------- heads


def loss_weight(h: Cfg) -> float:
    """The weight of a head's (first) loss, as its ``loss_decode`` says."""
    loss = h.get("loss_decode") or {}
    if isinstance(loss, list):
        loss = loss[0]
    return float(loss.get("loss_weight", 1.0))


_LOSS_KIND = {"CrossEntropyLoss": "ce", "OhemCrossEntropy": "ohem_ce", "DiceLoss": "dice", "BoundaryLoss": "boundary"}


def _loss_spec(loss: Cfg) -> Cfg:
    kind = _LOSS_KIND.get(loss.get("type", "CrossEntropyLoss"))
    if kind is None or loss.get("avg_non_ignore") or loss.get("reduction", "mean") != "mean":
        raise Unsupported(f"sszoo has no loss {loss}")
    if kind == "dice" and (not loss.get("use_sigmoid", True) or not loss.get("activate", True)
                           or loss.get("naive_dice") or loss.get("eps", 1e-3) != 1e-3):
        raise Unsupported(f"sszoo's dice loss has no variant {loss}")
    spec: Cfg = dict(kind=kind, weight=float(loss.get("loss_weight", 1.0)))
    if loss.get("class_weight"):
        if isinstance(loss["class_weight"], str):
            raise Unsupported(f"class weights read from a file: {loss['class_weight']}")
        spec["class_weight"] = [float(w) for w in loss["class_weight"]]
    if kind == "ce" and loss.get("use_sigmoid"):
        spec["use_sigmoid"] = True
    if kind == "ohem_ce":
        spec.update(thres=float(loss.get("thres", 0.7)), min_kept=int(loss.get("min_kept", 100000)))
    if loss.get("loss_name"):
        spec["name"] = loss["loss_name"]
    return spec


def loss_fields(h: Cfg) -> Cfg:
    """A head's ``losses`` and ``sampler`` fields: empty for one plain cross-entropy and no sampler (the head's
    ``loss_weight`` then says all), else the LossSpec records (sszoo.models.losses) with ``loss_weight`` set to
    the first term's weight, as the segmentor expects."""
    loss = h.get("loss_decode") or {}
    losses = loss if isinstance(loss, list) else [loss]
    specs = [_loss_spec(x) for x in losses]
    out: Cfg = {}
    if len(specs) != 1 or set(specs[0]) - {"kind", "weight", "name"} or specs[0]["kind"] != "ce":
        out.update(losses=specs, loss_weight=specs[0]["weight"])
    sampler = h.get("sampler")
    if sampler:
        if sampler.get("type") != "OHEMPixelSampler":
            raise Unsupported(f"sszoo has no pixel sampler {sampler}")
        thresh = sampler.get("thresh")
        out.update(sampler=dict(thresh=None if thresh is None else float(thresh),
                                min_kept=int(sampler.get("min_kept", 100000))))
        out.setdefault("losses", specs)
        out.setdefault("loss_weight", specs[0]["weight"])
    return out


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
    return dict(kind="fcn", **{**concat_head(h), **loss_fields(h)}, num_convs=int(h.get("num_convs", 2)),
                concat_input=bool(h.get("concat_input", True)), kernel_size=int(h.get("kernel_size", 3)),
                dilation=int(h.get("dilation", 1)))


def _ocr(h: Cfg) -> Cfg:
    # scale > 1 max-pools the queries, and the reference's forward then fails (it resizes without a size)
    if int(h.get("scale", 1)) != 1:
        raise Unsupported("OCRHead with scale != 1")
    if loss_fields(h):
        raise Unsupported("OCRHead with a loss other than one plain cross-entropy")
    return dict(kind="ocr", **concat_head(h), ocr_channels=int(h["ocr_channels"]))


def _psp(h: Cfg) -> Cfg:
    return dict(kind="psp", **base_head(h), pool_scales=list(h.get("pool_scales", (1, 2, 3, 6))))


def _aspp(h: Cfg) -> Cfg:
    return dict(kind="aspp", **{**base_head(h), **loss_fields(h)}, dilations=list(h.get("dilations", (1, 6, 12, 18))))


def _sep_aspp(h: Cfg) -> Cfg:
    return dict(kind="sep_aspp", **{**base_head(h), **loss_fields(h)}, dilations=list(h.get("dilations", (1, 6, 12, 18))),
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


def _stdc_head(h: Cfg) -> Cfg:
    fields = loss_fields(h)
    if ([(s["kind"], bool(s.get("use_sigmoid", s["kind"] == "dice"))) for s in fields.get("losses", [])]
            != [("ce", True), ("dice", True)] or "sampler" in fields):
        raise Unsupported("sszoo's STDCHead trains with sigmoid cross-entropy + Dice only")
    return dict(_fcn(h), kind="stdc_head", boundary_threshold=float(h.get("boundary_threshold", 0.1)),
                num_classes=int(h["num_classes"]), align_corners=bool(h.get("align_corners", False)))


HEADS: dict[str, Callable[[Cfg], Cfg]] = {
    "FCNHead": _fcn, "PSPHead": _psp, "ASPPHead": _aspp, "DepthwiseSeparableASPPHead": _sep_aspp,
    "NLHead": _nonlocal, "DNLHead": _dnl, "GCHead": _gc, "EMAHead": _ema,
    "CCHead": _cc, "DAHead": _da, "ANNHead": _ann, "ISAHead": _isa,
    "UPerHead": _uper, "FPNHead": _fpn_head, "PointHead": _point_head,
    "EncHead": _enc, "APCHead": _apc, "DMHead": _dm, "PSAHead": _psa,
    "OCRHead": _ocr,
}
HEADS.update({"STDCHead": _stdc_head})


def _multi_loss_head(h: Cfg, n_losses: int) -> Cfg:
    """The fields of DDRHead / PIDHead: their loss terms, one spec per ``loss_decode`` entry, in its order."""
    losses = loss_fields(h)
    if len(losses.get("losses", ())) != n_losses or "sampler" in losses:
        raise Unsupported(f"sszoo's {h['type']} computes exactly {n_losses} loss terms, without a pixel sampler")
    if int(h.get("in_index", -1)) != -1:
        raise Unsupported(f"sszoo's {h['type']} reads the backbone's last output")
    return dict(in_channels=int(h["in_channels"]), channels=int(h["channels"]), in_index=-1,
                dropout=float(h.get("dropout_ratio", 0.1)), **losses)


def _ddr(h: Cfg) -> Cfg:
    return dict(kind="ddr", **_multi_loss_head(h, 2))


def _pid(h: Cfg) -> Cfg:
    # GenerateEdge's width lives in the training pipeline, not the model: 4 in every published config
    return dict(kind="pid", **_multi_loss_head(h, 4), edge_width=4)


HEADS.update({"DDRHead": _ddr, "PIDHead": _pid})


def _dsfcn(h: Cfg) -> Cfg:
    if h.get("dw_act_cfg") is not None:
        raise Unsupported("sszoo's DepthwiseSeparableFCNHead has no depthwise activation")
    return dict(kind="dsfcn", **{**base_head(h), **loss_fields(h)}, num_convs=int(h.get("num_convs", 2)),
                concat_input=bool(h.get("concat_input", True)), kernel_size=int(h.get("kernel_size", 3)))


HEADS.update({"DepthwiseSeparableFCNHead": _dsfcn})


def _lraspp(h: Cfg) -> Cfg:
    if h.get("input_transform") != "multiple_select" or (h.get("act_cfg") or {"type": "ReLU"}) != {"type": "ReLU"}:
        raise Unsupported("sszoo's LRASPPHead reads several maps (multiple_select) and uses ReLU")
    if loss_fields(h):
        raise Unsupported("sszoo's LRASPPHead trains with one plain cross-entropy (all its configs do)")
    return dict(kind="lraspp", **multi_head(h), branch_channels=[int(c) for c in h.get("branch_channels", (32, 64))],
                norm_eps=_norm_eps(h, "LRASPPHead"))


HEADS.update({"LRASPPHead": _lraspp})


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


def _icneck(n: Cfg) -> Cfg:
    return dict(kind="icneck", in_channels=[int(c) for c in n.get("in_channels", (64, 256, 256))],
                out_channels=int(n.get("out_channels", 128)), align_corners=bool(n.get("align_corners", False)))


NECKS.update({"ICNeck": _icneck})


def _convert(table: dict[str, Callable[[Cfg], Cfg]], cfg: Cfg, what: str) -> Cfg:
    kind = cfg["type"]
    if kind not in table:
        raise KeyError(f"no sszoo {what} for MMSegmentation's {kind}; add a converter to tools/mmseg_arch.py")
    return table[kind](cfg)


def _head(h: Cfg, what: str) -> Cfg:
    out = _convert(HEADS, h, what)
    # a head with other losses than one plain cross-entropy must say how it trains, not fall back to plain CE
    if loss_fields(h) and "losses" not in out:
        raise Unsupported(f"sszoo's {out['kind']} head does not train with {h.get('loss_decode')}")
    return out


def _heads(cfg: Any, what: str) -> Any:
    if cfg is None:
        return None
    if isinstance(cfg, list):
        return [_head(h, what) for h in cfg]
    return _head(cfg, what)


def arch_from_mmseg(model: Cfg) -> Cfg:
    """sszoo's ``arch`` record for MMSegmentation's resolved ``cfg.model``."""
    if model.get("type") == "MultimodalEncoderDecoder":  # SAN: image/text encoders instead of a backbone
        return _multimodal(model)
    decode = model["decode_head"]
    if isinstance(decode, list):  # a cascade's point selection is in the segmentor's train/test cfg (PointRend)
        decode = [dict(h, train_cfg=model.get("train_cfg"), test_cfg=model.get("test_cfg")) for h in decode]
    last = decode[-1] if isinstance(decode, list) else decode
    # K-Net's IterativeDecodeHead has its class count and align_corners in its kernel generator
    last = last.get("kernel_generate_head", last)
    neck = model.get("neck")
    align_corners = bool(last.get("align_corners", False))
    aux = _heads(model.get("auxiliary_head"), "head")
    # An FCN auxiliary head whose align_corners differs from the decode head's (STDC's: False under True) resizes
    # its logits to the label with its own in the loss; the field is written only then.
    for cfg, out in zip(_as_list(model.get("auxiliary_head")), _as_list(aux)):
        if out["kind"] == "fcn" and bool(cfg.get("align_corners", False)) != align_corners:
            out["align_corners"] = bool(cfg.get("align_corners", False))
    return dict(backbone=_convert(BACKBONES, model["backbone"], "backbone"), decode_head=_heads(decode, "head"),
                auxiliary_head=aux, num_classes=int(last["num_classes"]), align_corners=align_corners,
                neck=_convert(NECKS, neck, "neck") if neck else None)


def _as_list(x: Any) -> list:
    return [] if x is None else list(x) if isinstance(x, list) else [x]


# ---------------------------------------------------------------------------------------------- Twins


def _twins(b: Cfg) -> Cfg:
    # PCPVT and SVT (sszoo.models.backbones.twins); qk_scale is not a PCPVT/SVT argument (always head_dim^-0.5)
    _rgb_only(b)
    if (b.get("norm_cfg") or {"type": "LN"}) != {"type": "LN"} or float(b.get("drop_rate", 0.0)) != 0.0 \
            or float(b.get("attn_drop_rate", 0.0)) != 0.0:
        raise Unsupported(f"sszoo's {b['type']} has LayerNorm and no dropout (only stochastic depth)")
    svt = b["type"] == "SVT"
    # the reference's own defaults where a config leaves a field out (SVT's differ from PCPVT's)
    d = dict(embed_dims=[64, 128, 256] if svt else [64, 128, 256, 512], num_heads=[1, 2, 4] if svt else [1, 2, 4, 8],
             mlp_ratios=[4, 4, 4] if svt else [4, 4, 4, 4], depths=[4, 4, 4] if svt else [3, 4, 6, 3],
             sr_ratios=[4, 2, 1] if svt else [8, 4, 2, 1], drop_path_rate=0.2 if svt else 0.0,
             norm_after_stage=svt)
    out = dict(kind="svt" if svt else "pcpvt",
               embed_dims=[int(c) for c in b.get("embed_dims", d["embed_dims"])],
               patch_sizes=[int(p) for p in b.get("patch_sizes", (4, 2, 2, 2))],
               strides=[int(s) for s in b.get("strides", (4, 2, 2, 2))],
               num_heads=[int(n) for n in b.get("num_heads", d["num_heads"])],
               mlp_ratios=[int(r) for r in b.get("mlp_ratios", d["mlp_ratios"])],
               depths=[int(n) for n in b.get("depths", d["depths"])],
               sr_ratios=[int(r) for r in b.get("sr_ratios", d["sr_ratios"])],
               qkv_bias=bool(b.get("qkv_bias", False)), norm_after_stage=bool(b.get("norm_after_stage", d["norm_after_stage"])),
               out_indices=[int(i) for i in b.get("out_indices", (0, 1, 2, 3))],
               drop_path_rate=float(b.get("drop_path_rate", d["drop_path_rate"])))
    if svt:  # sic: the reference spells the argument "windiow_sizes"
        out["window_sizes"] = [int(w) for w in b.get("windiow_sizes", (7, 7, 7))]
    # the reference reads the first len(depths) entries of the per-stage lists, but builds a PEG (and with
    # norm_after_stage a LayerNorm) for every embed_dims entry
    n = len(out["depths"])
    lists = ["patch_sizes", "strides", "num_heads", "mlp_ratios", "sr_ratios"] + (["window_sizes"] if svt else [])
    if len(out["embed_dims"]) != n or any(len(out[k]) < n for k in lists):
        raise Unsupported(f"{b['type']} with per-stage settings of different lengths: {b}")
    for k in lists:
        out[k] = out[k][:n]
    if any(p < s for p, s in zip(out["patch_sizes"], out["strides"])):
        raise Unsupported(f"sszoo's {b['type']} has patch embeddings with kernel >= stride only: {b}")
    return out


BACKBONES.update({"PCPVT": _twins, "SVT": _twins})
# ------------------------------------------------------------------------------------ Swin Transformer


def _swin(b: Cfg) -> Cfg:
    # with_cp (activation checkpointing) and frozen_stages (requires_grad) change neither keys nor forward
    _rgb_only(b)
    if (b.get("act_cfg") or {"type": "GELU"}) != {"type": "GELU"}:
        raise Unsupported(f"sszoo's SwinTransformer uses GELU, not {b['act_cfg']}")
    norm = dict(b.get("norm_cfg") or {"type": "LN"})
    norm.pop("requires_grad", None)
    if norm != {"type": "LN"}:
        raise Unsupported(f"sszoo's SwinTransformer uses LayerNorm with eps 1e-5, not {b['norm_cfg']}")
    patch = int(b.get("patch_size", 4))
    strides = [int(s) for s in b.get("strides", (4, 2, 2, 2))]
    if strides[0] != patch or any(s != 2 for s in strides[1:]):
        raise Unsupported(f"sszoo's SwinTransformer has a stride-patch_size embedding and stride-2 merging, not {strides}")
    size = b.get("pretrain_img_size", 224)
    size = [int(size), int(size)] if isinstance(size, int) else [int(s) for s in size] * (2 if len(size) == 1 else 1)
    qk_scale = b.get("qk_scale")
    return dict(kind="swin", embed_dims=int(b.get("embed_dims", 96)), depths=[int(d) for d in b.get("depths", (2, 2, 6, 2))],
                num_heads=[int(h) for h in b.get("num_heads", (3, 6, 12, 24))], window_size=int(b.get("window_size", 7)),
                patch_size=patch, strides=strides, mlp_ratio=float(b.get("mlp_ratio", 4)),
                out_indices=[int(i) for i in b.get("out_indices", (0, 1, 2, 3))], qkv_bias=bool(b.get("qkv_bias", True)),
                qk_scale=None if qk_scale is None else float(qk_scale), patch_norm=bool(b.get("patch_norm", True)),
                use_abs_pos_embed=bool(b.get("use_abs_pos_embed", False)), pretrain_img_size=size,
                drop_rate=float(b.get("drop_rate", 0.0)), attn_drop_rate=float(b.get("attn_drop_rate", 0.0)),
                drop_path_rate=float(b.get("drop_path_rate", 0.1)))


BACKBONES.update({"SwinTransformer": _swin})
# ------------------------------------------------------------------ plain ViT / DeiT (vit) and SETR (setr)


def _pair(v: Any) -> list:
    return [int(v), int(v)] if isinstance(v, int) else [int(x) for x in (list(v) * 2 if len(v) == 1 else v)]


def _vit(b: Cfg) -> Cfg:
    # drop_path_rate only changes training; norm_eval and with_cp nothing sszoo builds (no BN, no checkpointing)
    norm = b.get("norm_cfg") or {"type": "LN"}
    if (int(b.get("in_channels", 3)) != 3 or norm.get("type") != "LN"
            or (b.get("act_cfg") or {"type": "GELU"}) != {"type": "GELU"}
            or float(b.get("drop_rate", 0.0)) or float(b.get("attn_drop_rate", 0.0))
            or b.get("patch_pad", "corner") not in ("corner", "same")
            or list(b.get("frozen_exclude", ["all"])) != ["all"]):
        raise Unsupported(f"sszoo's VisionTransformer has no variant {b}")
    num_layers = int(b.get("num_layers", 12))
    out = b.get("out_indices", -1)
    out = [num_layers - 1 if out == -1 else int(out)] if isinstance(out, int) else [int(i) for i in out]
    return dict(kind="vit", img_size=_pair(b.get("img_size", 224)), patch_size=int(b.get("patch_size", 16)),
                patch_pad=str(b.get("patch_pad", "corner")), embed_dims=int(b.get("embed_dims", 768)),
                num_layers=num_layers, num_heads=int(b.get("num_heads", 12)), mlp_ratio=int(b.get("mlp_ratio", 4)),
                num_fcs=int(b.get("num_fcs", 2)), out_indices=out, qkv_bias=bool(b.get("qkv_bias", True)),
                with_cls_token=bool(b.get("with_cls_token", True)), out_origin=bool(b.get("out_origin", False)),
                **({"output_cls_token": True} if b.get("output_cls_token") else {}),  # DPT's (map, cls) pairs
                patch_norm=bool(b.get("patch_norm", False)), patch_bias=bool(b.get("patch_bias", False)),
                pre_norm=bool(b.get("pre_norm", False)), final_norm=bool(b.get("final_norm", False)),
                interpolate_mode=str(b.get("interpolate_mode", "bicubic")), norm_eps=float(norm.get("eps", 1e-5)),
                drop_path_rate=float(b.get("drop_path_rate", 0.0)))


def _mln(n: Cfg) -> Cfg:
    if n.get("norm_cfg") or n.get("act_cfg"):
        raise Unsupported("sszoo's MultiLevelNeck has plain biased convs (no norm, no activation)")
    return dict(kind="mln", in_channels=[int(c) for c in n["in_channels"]], out_channels=int(n["out_channels"]),
                scales=[float(s) for s in n.get("scales", (0.5, 1, 2, 4))])


BACKBONES.update({"VisionTransformer": _vit})
NECKS.update({"MultiLevelNeck": _mln})


def _bn_relu(cfg: Cfg, what: str) -> None:
    """SETR's ConvModules are conv (no bias) + BN + ReLU in every config; other norms or activations are not built."""
    if ((cfg.get("norm_cfg") or {}).get("type") not in ("BN", "SyncBN")
            or (cfg.get("act_cfg") or {"type": "ReLU"}) != {"type": "ReLU"}):
        raise Unsupported(f"sszoo's {what} has BN + ReLU convs only, not {cfg.get('norm_cfg')} / {cfg.get('act_cfg')}")
    if _norm_eps(cfg, what) != 1e-5:  # (a BN momentum is refused there)
        raise Unsupported(f"sszoo's {what} has BatchNorm's default eps")


def _ln_eps(layer: Cfg | None, what: str) -> float:
    layer = layer or {"type": "LN", "eps": 1e-6}
    if layer.get("type") != "LN":
        raise Unsupported(f"sszoo's {what} normalises its inputs with LayerNorm, not {layer}")
    return float(layer.get("eps", 1e-5))


def _setr_up(h: Cfg) -> Cfg:
    _bn_relu(h, "SETRUPHead")
    if h.get("input_transform") or not isinstance(h["in_channels"], int):
        raise Unsupported("sszoo's SETRUPHead reads one map")
    return dict(kind="setr_up", **{**base_head(h), **loss_fields(h)}, num_convs=int(h.get("num_convs", 1)),
                up_scale=int(h.get("up_scale", 4)), kernel_size=int(h.get("kernel_size", 3)),
                norm_eps=_ln_eps(h.get("norm_layer"), "SETRUPHead"))


def _setr_mla(h: Cfg) -> Cfg:
    _bn_relu(h, "SETRMLAHead")
    return dict(kind="setr_mla", **{**multi_head(h), **loss_fields(h)}, mla_channels=int(h.get("mla_channels", 128)),
                up_scale=int(h.get("up_scale", 4)))


def _mla(n: Cfg) -> Cfg:
    _bn_relu(n, "MLANeck")
    return dict(kind="mla", in_channels=[int(c) for c in n["in_channels"]], out_channels=int(n["out_channels"]),
                norm_eps=_ln_eps(n.get("norm_layer"), "MLANeck"))


HEADS.update({"SETRUPHead": _setr_up, "SETRMLAHead": _setr_mla})
NECKS.update({"MLANeck": _mla})
# ------------------------------------------------------------------ MMPretrain backbones: ConvNeXt, PoolFormer

# MMPretrain 1.2.0's ConvNeXt.arch_settings: (depths, channels)
_CONVNEXT_ARCHS = {
    "atto": ([2, 2, 6, 2], [40, 80, 160, 320]), "femto": ([2, 2, 6, 2], [48, 96, 192, 384]),
    "pico": ([2, 2, 6, 2], [64, 128, 256, 512]), "nano": ([2, 2, 8, 2], [80, 160, 320, 640]),
    "tiny": ([3, 3, 9, 3], [96, 192, 384, 768]), "small": ([3, 3, 27, 3], [96, 192, 384, 768]),
    "base": ([3, 3, 27, 3], [128, 256, 512, 1024]), "large": ([3, 3, 27, 3], [192, 384, 768, 1536]),
    "xlarge": ([3, 3, 27, 3], [256, 512, 1024, 2048]), "huge": ([3, 3, 27, 3], [352, 704, 1408, 2816]),
}


def _out_indices(b: Cfg, default: int, length: int) -> list[int]:
    """``out_indices`` as a list of non-negative indices (an int is one index; negatives count from the end)."""
    out = b.get("out_indices", default)
    out = [out] if isinstance(out, int) else list(out)
    return [int(i) + length if int(i) < 0 else int(i) for i in out]


def _convnext(b: Cfg) -> Cfg:
    # with_cp only trades memory for time in training
    arch = b.get("arch", "tiny")
    if isinstance(arch, str):
        if arch not in _CONVNEXT_ARCHS:
            raise Unsupported(f"no ConvNeXt arch {arch!r}")
        depths, channels = _CONVNEXT_ARCHS[arch]
    else:
        depths, channels = list(arch["depths"]), list(arch["channels"])
    if (int(b.get("in_channels", 3)) != 3 or int(b.get("stem_patch_size", 4)) != 4
            or (b.get("norm_cfg") or {"type": "LN2d", "eps": 1e-6}) != {"type": "LN2d", "eps": 1e-6}
            or (b.get("act_cfg") or {"type": "GELU"}) != {"type": "GELU"}
            or not b.get("linear_pw_conv", True) or b.get("use_grn") or b.get("gap_before_final_norm", True)):
        raise Unsupported(f"sszoo's ConvNeXt is v1 on RGB with a 4x4 stem, LN2d(1e-6), GELU, linear pointwise "
                          f"convs and per-stage maps (gap_before_final_norm False); got {b}")
    return dict(kind="convnext", depths=[int(d) for d in depths], channels=[int(c) for c in channels],
                drop_path_rate=float(b.get("drop_path_rate", 0.0)),
                layer_scale_init_value=float(b.get("layer_scale_init_value", 1e-6)),
                out_indices=_out_indices(b, -1, len(depths)), frozen_stages=int(b.get("frozen_stages", 0)))


# MMPretrain 1.2.0's PoolFormer.arch_settings
_POOLFORMER_ARCHS = {
    "s12": dict(layers=[2, 2, 6, 2], embed_dims=[64, 128, 320, 512], layer_scale_init_value=1e-5),
    "s24": dict(layers=[4, 4, 12, 4], embed_dims=[64, 128, 320, 512], layer_scale_init_value=1e-5),
    "s36": dict(layers=[6, 6, 18, 6], embed_dims=[64, 128, 320, 512], layer_scale_init_value=1e-6),
    "m36": dict(layers=[6, 6, 18, 6], embed_dims=[96, 192, 384, 768], layer_scale_init_value=1e-6),
    "m48": dict(layers=[8, 8, 24, 8], embed_dims=[96, 192, 384, 768], layer_scale_init_value=1e-6),
}


def _poolformer(b: Cfg) -> Cfg:
    arch = b.get("arch", "s12")
    if isinstance(arch, str):
        if arch not in _POOLFORMER_ARCHS:
            raise Unsupported(f"no PoolFormer arch {arch!r}")
        arch = dict(_POOLFORMER_ARCHS[arch], mlp_ratios=[4, 4, 4, 4])
    if ((b.get("norm_cfg") or {"type": "GN", "num_groups": 1}) != {"type": "GN", "num_groups": 1}
            or (b.get("act_cfg") or {"type": "GELU"}) != {"type": "GELU"}):
        raise Unsupported(f"sszoo's PoolFormer has GroupNorm(1) norms and GELU; got {b}")
    dims = [int(c) for c in arch["embed_dims"]]
    if any(x == y for x, y in zip(dims, dims[1:])):
        raise Unsupported("sszoo's PoolFormer downsamples between every two stages (widths all differ)")
    return dict(kind="poolformer", layers=[int(n) for n in arch["layers"]], embed_dims=dims,
                mlp_ratios=[float(r) for r in arch.get("mlp_ratios", (4, 4, 4, 4))],
                layer_scale_init_value=float(arch.get("layer_scale_init_value", 1e-5)),
                pool_size=int(b.get("pool_size", 3)), in_patch_size=int(b.get("in_patch_size", 7)),
                in_stride=int(b.get("in_stride", 4)), in_pad=int(b.get("in_pad", 2)),
                down_patch_size=int(b.get("down_patch_size", 3)), down_stride=int(b.get("down_stride", 2)),
                down_pad=int(b.get("down_pad", 1)), drop_rate=float(b.get("drop_rate", 0.0)),
                drop_path_rate=float(b.get("drop_path_rate", 0.0)),
                out_indices=_out_indices(b, -1, 2 * len(dims) - 1), frozen_stages=int(b.get("frozen_stages", 0)))


BACKBONES.update({"mmpretrain.ConvNeXt": _convnext, "mmpretrain.PoolFormer": _poolformer})
# ------------------------------------------------------------------ SegFormer: MixVisionTransformer, SegformerHead


def _mit(b: Cfg) -> Cfg:
    # with_cp only trades memory for time in training; drop_path_rate only changes training
    _rgb_only(b)
    norm = b.get("norm_cfg") or {"type": "LN", "eps": 1e-6}
    if (norm.get("type") != "LN" or set(norm) - {"type", "eps", "requires_grad"}
            or (b.get("act_cfg") or {"type": "GELU"}) != {"type": "GELU"}
            or float(b.get("drop_rate", 0.0)) or float(b.get("attn_drop_rate", 0.0))):
        raise Unsupported(f"sszoo's MixVisionTransformer has LayerNorm, GELU and no dropout (only stochastic depth): {b}")
    # the reference's defaults where a config leaves a field out
    out = dict(kind="mit", embed_dims=int(b.get("embed_dims", 64)),
               num_layers=[int(n) for n in b.get("num_layers", (3, 4, 6, 3))],
               num_heads=[int(n) for n in b.get("num_heads", (1, 2, 4, 8))],
               patch_sizes=[int(p) for p in b.get("patch_sizes", (7, 3, 3, 3))],
               strides=[int(s) for s in b.get("strides", (4, 2, 2, 2))],
               sr_ratios=[int(r) for r in b.get("sr_ratios", (8, 4, 2, 1))],
               out_indices=[int(i) for i in b.get("out_indices", (0, 1, 2, 3))],  # a list there (max() of it)
               mlp_ratio=int(b.get("mlp_ratio", 4)), qkv_bias=bool(b.get("qkv_bias", True)),
               norm_eps=float(norm.get("eps", 1e-5)), drop_path_rate=float(b.get("drop_path_rate", 0.0)))
    n = int(b.get("num_stages", 4))
    if any(len(out[k]) != n for k in ("num_layers", "num_heads", "patch_sizes", "strides", "sr_ratios")):
        raise Unsupported(f"MixVisionTransformer with per-stage settings of other lengths than num_stages: {b}")
    return out


def _segformer_head(h: Cfg) -> Cfg:
    _bn_relu(h, "SegformerHead")
    if h.get("interpolate_mode", "bilinear") != "bilinear":
        raise Unsupported(f"sszoo's SegformerHead resizes bilinearly, not {h['interpolate_mode']!r}")
    return dict(kind="segformer_head", **{**multi_head(h), **loss_fields(h)})


BACKBONES.update({"MixVisionTransformer": _mit})
HEADS.update({"SegformerHead": _segformer_head})


# ------------------------------------------------------------------------- BEiT (beit), MAE (mae), Feature2Pyramid


def _beit(b: Cfg) -> Cfg:
    # drop_path_rate only changes training, init_values only a fresh model's layer scales; norm_eval nothing
    # sszoo builds (no BN in the backbone)
    norm = b.get("norm_cfg") or {"type": "LN"}
    if (int(b.get("in_channels", 3)) != 3 or norm.get("type") != "LN"
            or (b.get("act_cfg") or {"type": "GELU"}) != {"type": "GELU"} or float(b.get("attn_drop_rate", 0.0))):
        raise Unsupported(f"sszoo's {b['type']} has no variant {b}")
    num_layers = int(b.get("num_layers", 12))
    out = b.get("out_indices", -1)
    out = [num_layers - 1 if out == -1 else int(out)] if isinstance(out, int) else [int(i) for i in out]
    rec = dict(kind="beit" if b["type"] == "BEiT" else "mae", img_size=_pair(b.get("img_size", 224)),
               patch_size=int(b.get("patch_size", 16)), embed_dims=int(b.get("embed_dims", 768)),
               num_layers=num_layers, num_heads=int(b.get("num_heads", 12)), mlp_ratio=int(b.get("mlp_ratio", 4)),
               num_fcs=int(b.get("num_fcs", 2)), out_indices=out)
    if b["type"] == "BEiT":
        rec["qv_bias"] = bool(b.get("qv_bias", True))
    rec.update(patch_norm=bool(b.get("patch_norm", False)), final_norm=bool(b.get("final_norm", False)),
               norm_eps=float(norm.get("eps", 1e-5)), init_values=float(b.get("init_values", 0.1)),
               drop_path_rate=float(b.get("drop_path_rate", 0.0)))
    return rec


def _feature2pyramid(n: Cfg) -> Cfg:
    rescales = [float(r) for r in n.get("rescales", (4, 2, 1, 0.5))]
    if rescales not in ([4.0, 2.0, 1.0, 0.5], [2.0, 1.0, 0.5, 0.25]):
        raise Unsupported(f"sszoo's Feature2Pyramid has no rescales {rescales}")
    return dict(kind="feature2pyramid", embed_dim=int(n["embed_dim"]), rescales=rescales,
                norm_eps=_norm_eps(n, "Feature2Pyramid"))


BACKBONES.update({"BEiT": _beit, "MAE": _beit})
NECKS.update({"Feature2Pyramid": _feature2pyramid})


# ------------------------------------------------------------------- Segmenter (segmenter) and DPT (dpt) heads


def _segmenter_mask(h: Cfg) -> Cfg:
    # drop_path_rate only changes training; dropout_ratio is unused (no conv_seg); init_std only initialisation
    if (float(h.get("drop_rate", 0.0)) or float(h.get("attn_drop_rate", 0.0))
            or (h.get("act_cfg") or {"type": "GELU"}) != {"type": "GELU"} or h.get("input_transform")
            or loss_fields(h)):
        raise Unsupported(f"sszoo's SegmenterMaskTransformerHead has no variant {h}")
    return dict(kind="segmenter_mask", in_channels=int(h["in_channels"]), embed_dims=int(h["embed_dims"]),
                num_layers=int(h["num_layers"]), num_heads=int(h["num_heads"]), mlp_ratio=int(h.get("mlp_ratio", 4)),
                num_fcs=int(h.get("num_fcs", 2)), qkv_bias=bool(h.get("qkv_bias", True)),
                in_index=int(h.get("in_index", -1)), norm_eps=_ln_eps(h.get("norm_cfg") or {"type": "LN"}, "Segmenter"),
                drop_path_rate=float(h.get("drop_path_rate", 0.1)), loss_weight=loss_weight(h))


def _dpt(h: Cfg) -> Cfg:
    if (h.get("input_transform") != "multiple_select" or h.get("expand_channels")
            or (h.get("act_cfg") or {"type": "ReLU"}) != {"type": "ReLU"}):
        raise Unsupported(f"sszoo's DPTHead has no variant {h}")
    return dict(kind="dpt", **{**multi_head(h), **loss_fields(h)}, embed_dims=int(h.get("embed_dims", 768)),
                post_process_channels=[int(c) for c in h.get("post_process_channels", (96, 192, 384, 768))],
                readout_type=str(h.get("readout_type", "ignore")), norm_eps=_norm_eps(h, "DPTHead"))


HEADS.update({"SegmenterMaskTransformerHead": _segmenter_mask, "DPTHead": _dpt})
# ------------------------------------------------------------------------------------- SegNeXt (segnext)


def _kernels(v: list) -> list:
    return [int(k) if isinstance(k, int) else [int(x) for x in k] for k in v]


def _mscan(b: Cfg) -> Cfg:
    # init_cfg / pretrained only change initialisation; the stem always takes 3 channels
    _rgb_only(b)
    norm = dict(b.get("norm_cfg") or {"type": "SyncBN"})
    norm.pop("requires_grad", None)
    if norm.get("type") not in ("BN", "SyncBN") or set(norm) != {"type"}:
        raise Unsupported(f"sszoo's MSCAN has BatchNorms with the default eps and momentum, not {b.get('norm_cfg')}")
    if (b.get("act_cfg") or {"type": "GELU"}) != {"type": "GELU"}:
        raise Unsupported(f"sszoo's MSCAN uses GELU, not {b['act_cfg']}")
    depths = [int(d) for d in b.get("depths", (3, 4, 6, 3))]
    sizes = _kernels(b.get("attention_kernel_sizes", [5, [1, 7], [1, 11], [1, 21]]))
    pads = _kernels(b.get("attention_kernel_paddings", [2, [0, 3], [0, 5], [0, 10]]))
    if int(b.get("num_stages", 4)) != len(depths) or len(sizes) != 4 or len(pads) != 4:
        raise Unsupported("sszoo's MSCAN builds one stage per depth and MSCA's 5x5 + three strip branches")
    return dict(kind="mscan", embed_dims=[int(c) for c in b.get("embed_dims", (64, 128, 256, 512))],
                mlp_ratios=[float(r) for r in b.get("mlp_ratios", (4, 4, 4, 4))], depths=depths,
                attention_kernel_sizes=sizes, attention_kernel_paddings=pads,
                drop_rate=float(b.get("drop_rate", 0.0)), drop_path_rate=float(b.get("drop_path_rate", 0.0)))


def _light_ham(h: Cfg) -> Cfg:
    norm = dict(h.get("norm_cfg") or {})
    norm.pop("requires_grad", None)
    if norm.get("type") != "GN" or set(norm) != {"type", "num_groups"}:
        raise Unsupported(f"sszoo's LightHamHead has GroupNorms (eps 1e-5), not {h.get('norm_cfg')}")
    if (h.get("act_cfg") or {"type": "ReLU"}) != {"type": "ReLU"} or h.get("conv_cfg"):
        raise Unsupported("sszoo's LightHamHead has plain convs and ReLU")
    ham = h.get("ham_kwargs") or {}
    if not ham.get("rand_init", True):
        # the reference then registers a 'bases' buffer in its first forward: a state dict that changes
        raise Unsupported("LightHamHead with rand_init=False")
    # ham_kwargs' inv_t is overridden to 1 by the reference's NMF2D, so it changes nothing
    return dict(kind="light_ham", **{**multi_head(h), **loss_fields(h)}, ham_channels=int(h.get("ham_channels", 512)),
                md_s=int(ham.get("MD_S", 1)), md_r=int(ham.get("MD_R", 64)), train_steps=int(ham.get("train_steps", 6)),
                eval_steps=int(ham.get("eval_steps", 7)), num_groups=int(norm["num_groups"]))


BACKBONES.update({"MSCAN": _mscan})
HEADS.update({"LightHamHead": _light_ham})
# ------------------------------------------------------------------------------------------ K-Net (knet)

_KNET_GENERATORS = ("fcn", "psp", "aspp", "uper")


def _knet_stage(u: Cfg) -> Cfg:
    """One KernelUpdateHead's arguments (refusing the variants sszoo does not build)."""
    relu = {"type": "ReLU", "inplace": True}
    ft = u.get("feat_transform_cfg")
    if (u.get("type", "KernelUpdateHead") != "KernelUpdateHead" or int(u.get("feat_gather_stride", 1)) != 1
            or int(u.get("mask_transform_stride", 1)) != 1 or dict(u.get("act_cfg") or relu) != relu
            or dict(u.get("ffn_act_cfg") or relu) != relu):
        raise Unsupported(f"sszoo's KernelUpdateHead has stride-1 gathering and ReLUs only, not {u}")
    if ft is not None and (dict(ft) != {"conv_cfg": {"type": "Conv2d"}, "act_cfg": None}):
        raise Unsupported(f"sszoo's KernelUpdateHead transforms features by a biased 1x1 conv only, not {ft}")
    k = dict(u.get("kernel_updator_cfg") or {})
    if (k.get("type") != "KernelUpdator" or dict(k.get("norm_cfg") or {"type": "LN"}) != {"type": "LN"}
            or dict(k.get("act_cfg") or relu) != relu):
        raise Unsupported(f"sszoo's K-Net has the KernelUpdator with LayerNorms and ReLU only, not {k}")
    in_channels = int(k.get("in_channels", 256))
    return dict(in_channels=int(u.get("in_channels", 256)), out_channels=int(u.get("out_channels", 256)),
                num_heads=int(u.get("num_heads", 8)), feedforward_channels=int(u.get("feedforward_channels", 2048)),
                num_ffn_fcs=int(u.get("num_ffn_fcs", 2)), num_mask_fcs=int(u.get("num_mask_fcs", 3)),
                conv_kernel_size=int(u.get("conv_kernel_size", 1)), feat_transform=ft is not None,
                with_ffn=bool(u.get("with_ffn", True)), dropout=float(u.get("dropout", 0.0)),
                updator_in_channels=in_channels, updator_feat_channels=int(k.get("feat_channels", 64)),
                updator_out_channels=int(k.get("out_channels") or in_channels),
                gate_sigmoid=bool(k.get("gate_sigmoid", True)), gate_norm_act=bool(k.get("gate_norm_act", False)),
                activate_out=bool(k.get("activate_out", False)))


def _knet(h: Cfg) -> Cfg:
    gen_cfg = h["kernel_generate_head"]
    gen = _head(gen_cfg, "head")
    if gen["kind"] not in _KNET_GENERATORS or "input_transform" in gen:
        raise Unsupported(f"sszoo's K-Net generates kernels with an FCN, PSP, ASPP or UPerNet head, not {gen_cfg['type']}")
    if gen_cfg.get("align_corners"):
        raise Unsupported("K-Net's kernel update heads resize with align_corners=False; a generator with True differs")
    stages = [_knet_stage(u) for u in h["kernel_update_head"]]
    if len(stages) != int(h["num_stages"]) or any(s != stages[0] for s in stages):
        raise Unsupported("sszoo's K-Net has num_stages identical kernel update heads")
    if stages[0]["in_channels"] != gen["channels"]:
        raise Unsupported("the kernel update heads' in_channels must be the generator's channels")
    return dict(kind="knet", kernel_generate_head=gen, num_stages=len(stages), **stages[0],
                loss_weight=gen.get("loss_weight", 1.0))


HEADS.update({"IterativeDecodeHead": _knet})


# ------------------------------------------------------------------ SAN (san): MultimodalEncoderDecoder

_CLIP_PROMPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sszoo", "data",
                             "clip_prompts.json")


def _ln(cfg: Cfg | None, default_eps: float, what: str) -> float:
    cfg = cfg or {"type": "LN"}
    if cfg.get("type") != "LN":
        raise Unsupported(f"sszoo's {what} normalises with LayerNorm, not {cfg}")
    return float(cfg.get("eps", default_eps))


def _clip_vit(b: Cfg) -> Cfg:
    # CLIP's image tower: no patch padding (patch_pad=0), QuickGELU, (map, class token) outputs; only its
    # position embedding trains (frozen_exclude, which sszoo's MultimodalSegmentor applies)
    if (b.get("type") != "VisionTransformer" or b.get("patch_pad") != 0
            or (b.get("act_cfg") or {}).get("type") != "QuickGELU" or not b.get("output_cls_token")
            or list(b.get("frozen_exclude", ["all"])) != ["pos_embed"]):
        raise Unsupported(f"sszoo's CLIP image encoder is a VisionTransformer with patch_pad=0, QuickGELU, class "
                          f"token outputs and only pos_embed trained, not {b}")
    out = _vit({k: v for k, v in b.items() if k not in ("patch_pad", "act_cfg", "output_cls_token", "frozen_exclude")})
    out.update(patch_pad="none", act="quick_gelu", output_cls_token=True)
    return out


def _clip_text(t: Cfg) -> Cfg:
    import json  # the prompts' token ids sszoo has (tools/clip_prompt_tokens.py)

    if t.get("type") != "CLIPTextEncoder" or t.get("vocabulary") is not None or t.get("templates", "vild") != "vild":
        raise Unsupported(f"sszoo's CLIPTextEncoder embeds a dataset's class names in the 'vild' prompts, not {t}")
    with open(_CLIP_PROMPTS) as f:
        have = json.load(f)["vocabularies"]
    if t.get("dataset_name") not in have:
        raise Unsupported(f"no CLIP prompt tokens for {t.get('dataset_name')!r} in sszoo/data/clip_prompts.json")
    return dict(kind="clip_text", dataset=str(t["dataset_name"]), vocab_size=int(t.get("total_vocab_size", 49408)),
                context_length=int(t.get("context_length", 77)), embed_dims=int(t.get("embed_dims", 512)),
                num_layers=int(t.get("num_layers", 12)), num_heads=int(t.get("num_heads", 8)),
                mlp_ratio=int(t.get("mlp_ratio", 4)), output_dims=int(t.get("output_dims", 512)),
                cat_bg=bool(t.get("cat_bg", True)), norm_eps=_ln(t.get("norm_cfg"), 1e-5, "CLIPTextEncoder"))


def _san_head(h: Cfg) -> Cfg:
    s, m = h["san_cfg"], h["maskgen_cfg"]
    enc, dec = s.get("cfg_encoder", {}), s.get("cfg_decoder", {})
    if (int(s.get("in_channels", 3)) != 3 or m.get("sos_token_format", "cls_token") != "cls_token"
            or m.get("cross_attn", False) or int(m.get("num_fcs", 2)) != 2
            or (m.get("act_cfg") or {}).get("type") != "QuickGELU"
            or int(s.get("num_queries", 100)) != int(m.get("sos_token_num", 100))):
        raise Unsupported(f"sszoo's SideAdapterCLIPHead has class-token queries, self-attention recognition with "
                          f"QuickGELU, not {h}")
    return dict(kind="san", clip_channels=int(s.get("clip_channels", 768)), embed_dims=int(s.get("embed_dims", 240)),
                patch_size=int(s.get("patch_size", 16)), patch_bias=bool(s.get("patch_bias", True)),
                num_queries=int(s.get("num_queries", 100)), encode_layers=int(enc["num_encode_layer"]),
                encode_heads=int(enc["num_heads"]), encode_mlp_ratio=int(enc["mlp_ratio"]),
                fusion_index=[int(i) for i in s.get("fusion_index", (0, 1, 2, 3))],
                encode_norm_eps=_ln(s.get("norm_cfg"), 1e-5, "side adapter network"),
                decoder_heads=int(dec["num_heads"]), decoder_layers=int(dec["num_layers"]),
                decoder_embed_channels=int(dec["embed_channels"]), decoder_mlp_channels=int(dec["mlp_channels"]),
                decoder_num_mlp=int(dec["num_mlp"]), rescale_attn_bias=bool(dec["rescale"]),
                deep_supervision_idxs=[int(i) for i in h.get("deep_supervision_idxs", ())],
                rec_layers=int(m.get("num_layers", 3)), rec_embed_dims=int(m.get("embed_dims", 768)),
                rec_heads=int(m.get("num_heads", 12)), rec_mlp_ratio=int(m.get("mlp_ratio", 4)),
                rec_qkv_bias=bool(m.get("qkv_bias", True)), rec_out_dims=int(m.get("out_dims", 512)),
                rec_final_norm=bool(m.get("final_norm", True)),
                rec_norm_eps=_ln(m.get("norm_cfg"), 1e-5, "mask recognition"))


def _multimodal(model: Cfg) -> Cfg:
    head = model["decode_head"]
    if head.get("type") != "SideAdapterCLIPHead":
        raise KeyError(f"no sszoo head for MultimodalEncoderDecoder's {head.get('type')}")
    res = model.get("encoder_resolution") if model.get("asymetric_input", True) else None
    return dict(backbone=_clip_vit(model["image_encoder"]), decode_head=_san_head(head), auxiliary_head=None,
                num_classes=int(head["num_classes"]), align_corners=bool(head.get("align_corners", False)), neck=None,
                text_encoder=_clip_text(model["text_encoder"]), encoder_resolution=None if res is None else float(res))
# ------------------------------------------------------------------------ Mask2Former (mask classification)


def _drop_free(cfg: Cfg, keys: tuple[str, ...], what: str) -> None:
    """Dropout probabilities that must be zero (sszoo's mask-classification heads build none)."""
    for k in keys:
        if float(cfg.get(k) or 0.0):
            raise Unsupported(f"sszoo's {what} has no dropout, not {k}={cfg[k]}")


def _ffn(f: Cfg, embed: int, what: str) -> int:
    """An MMCV FFN of two ReLU layers with identity (the hidden width is returned)."""
    if (int(f.get("num_fcs", 2)) != 2 or int(f.get("embed_dims", 256)) != embed
            or (f.get("act_cfg") or {"type": "ReLU"}).get("type") != "ReLU" or not f.get("add_identity", True)
            or f.get("dropout_layer") or float(f.get("layer_scale_init_value", 0.0))):
        raise Unsupported(f"sszoo's {what} FFN has two ReLU layers and an identity, not {f}")
    _drop_free(f, ("ffn_drop",), what)
    return int(f.get("feedforward_channels", 1024))


def _sine(p: Cfg, what: str) -> int:
    if (not p.get("normalize") or float(p.get("scale", 2 * 3.141592653589793)) != 2 * 3.141592653589793
            or float(p.get("temperature", 10000)) != 10000 or float(p.get("offset", 0.0))
            or float(p.get("eps", 1e-6)) != 1e-6 or p.get("type", "SinePositionalEncoding") != "SinePositionalEncoding"):
        raise Unsupported(f"sszoo's {what} uses the normalised sine position encoding, not {p}")
    return int(p["num_feats"])


def _mask_losses(h: Cfg, num_classes: int) -> Cfg:
    """The class / mask / dice loss weights and the point sampling of the mask losses (training only)."""
    cls, mask, dice = h.get("loss_cls") or {}, h.get("loss_mask") or {}, h.get("loss_dice") or {}
    weights = [float(w) for w in cls.get("class_weight") or [1.0] * (num_classes + 1)]
    # (the length is not checked: golden cases change num_classes and leave the published class_weight)
    if (cls.get("type") != "mmdet.CrossEntropyLoss" or cls.get("use_sigmoid") or any(w != 1.0 for w in weights[:-1]) or mask.get("type") != "mmdet.CrossEntropyLoss"
            or not mask.get("use_sigmoid") or dice.get("type") != "mmdet.DiceLoss" or not dice.get("use_sigmoid", True)
            or not dice.get("activate", True) or not dice.get("naive_dice") or float(dice.get("eps", 1.0)) != 1.0
            or any(x.get("reduction", "mean") != "mean" for x in (cls, mask, dice))):
        raise Unsupported(f"sszoo's mask-classification losses are softmax CE + sigmoid BCE + naive dice, not {h}")
    t = h.get("train_cfg") or {}
    # sszoo's matcher (sszoo/models/mask_losses.py) uses the loss weights as its cost weights, as every config does
    costs = (t.get("assigner") or {}).get("match_costs") or []
    expected = [("mmdet.ClassificationCost", float(cls.get("loss_weight", 1.0))),
                ("mmdet.CrossEntropyLossCost", float(mask.get("loss_weight", 1.0))),
                ("mmdet.DiceCost", float(dice.get("loss_weight", 1.0)))]
    if ((t.get("assigner") or {}).get("type") != "mmdet.HungarianAssigner"
            or (t.get("sampler") or {}).get("type") != "mmdet.MaskPseudoSampler"
            or [(c.get("type"), float(c.get("weight", 1.0))) for c in costs] != expected
            or not costs[1].get("use_sigmoid", True) or not costs[2].get("pred_act")
            or float(costs[2].get("eps", 1e-3)) != 1.0 or not costs[2].get("naive_dice", True)):
        raise Unsupported(f"sszoo's Mask2Former matcher is HungarianAssigner with the loss weights as cost weights, "
                          f"not {t}")
    return dict(cls_weight=float(cls.get("loss_weight", 1.0)), mask_weight=float(mask.get("loss_weight", 1.0)),
                dice_weight=float(dice.get("loss_weight", 1.0)), no_object_weight=weights[-1],
                num_points=int(t.get("num_points", 12544)), oversample_ratio=float(t.get("oversample_ratio", 3.0)),
                importance_sample_ratio=float(t.get("importance_sample_ratio", 0.75)))


def _mask2former(h: Cfg) -> Cfg:
    pd, td = h["pixel_decoder"], h["transformer_decoder"]
    if pd.get("type") != "mmdet.MSDeformAttnPixelDecoder":
        raise Unsupported(f"sszoo's Mask2FormerHead has the MSDeformAttnPixelDecoder, not {pd.get('type')}")
    feat = int(h["feat_channels"])
    levels = int(h.get("num_transformer_feat_level", 3))
    norm, act = pd.get("norm_cfg") or {}, pd.get("act_cfg") or {"type": "ReLU"}
    if norm.get("type") != "GN" or act.get("type") != "ReLU":
        raise Unsupported(f"sszoo's MSDeformAttnPixelDecoder has GroupNorm + ReLU convs, not {norm} / {act}")
    enc = pd["encoder"]
    sa, el = enc["layer_cfg"]["self_attn_cfg"], enc["layer_cfg"]
    if (int(sa.get("num_levels", 4)) != levels or int(sa.get("embed_dims", 256)) != feat or not sa.get("batch_first")
            or sa.get("norm_cfg") or float(sa.get("value_proj_ratio", 1.0)) != 1.0
            or (el.get("norm_cfg") or {"type": "LN"}) != {"type": "LN"}):
        raise Unsupported(f"sszoo's pixel-decoder encoder has no variant {el}")
    _drop_free(sa, ("dropout",), "MSDeformAttnPixelDecoder")
    layer = td["layer_cfg"]
    for a in (layer["self_attn_cfg"], layer["cross_attn_cfg"]):
        if int(a.get("embed_dims", 256)) != feat or not a.get("batch_first") or a.get("dropout_layer"):
            raise Unsupported(f"sszoo's Mask2Former decoder attention has no variant {a}")
        _drop_free(a, ("attn_drop", "proj_drop", "dropout"), "Mask2Former decoder")
    heads = int(layer["cross_attn_cfg"].get("num_heads", 8))
    if (int(layer["self_attn_cfg"].get("num_heads", 8)) != heads
            or (layer.get("norm_cfg") or {"type": "LN"}) != {"type": "LN"}
            or (td.get("post_norm_cfg") or {"type": "LN"}) != {"type": "LN"} or td.get("init_cfg")):
        raise Unsupported(f"sszoo's Mask2Former decoder has no variant {td}")
    pos = _sine(pd.get("positional_encoding") or {"num_feats": 128, "normalize": True}, "pixel decoder")
    if _sine(h.get("positional_encoding") or {"num_feats": 128, "normalize": True}, "Mask2FormerHead") != pos:
        raise Unsupported("sszoo's Mask2FormerHead has one sine encoding for the pixel decoder and the decoder")
    num_classes = int(h["num_classes"])
    return dict(kind="mask2former", in_channels=[int(c) for c in h["in_channels"]],
                # the head's own ``strides`` argument is swallowed by MMDetection's **kwargs: the pixel decoder's count
                strides=[int(s) for s in pd.get("strides", (4, 8, 16, 32))],
                feat_channels=feat, out_channels=int(h["out_channels"]), num_queries=int(h.get("num_queries", 100)),
                num_transformer_feat_level=levels,
                enforce_decoder_input_project=bool(h.get("enforce_decoder_input_project", False)),
                num_groups=int(norm.get("num_groups", 32)), pos_num_feats=pos,
                encoder_layers=int(enc["num_layers"]), encoder_heads=int(sa.get("num_heads", 8)),
                encoder_points=int(sa.get("num_points", 4)),
                encoder_ffn_channels=_ffn(el["ffn_cfg"], feat, "pixel-decoder encoder"),
                num_outs=int(pd.get("num_outs", 3)), decoder_layers=int(td["num_layers"]), decoder_heads=heads,
                decoder_ffn_channels=_ffn(layer["ffn_cfg"], feat, "Mask2Former decoder"),
                **_mask_losses(h, num_classes))


HEADS.update({"Mask2FormerHead": _mask2former})
# --------------------------------------------------------------------------- MaskFormer (mask classification)


def _maskformer(h: Cfg) -> Cfg:
    pd, td = h["pixel_decoder"], h["transformer_decoder"]
    if pd.get("type") != "mmdet.PixelDecoder":
        raise Unsupported(f"sszoo's MaskFormerHead has MMDetection's PixelDecoder, not {pd.get('type')}")
    norm, act = pd.get("norm_cfg") or {}, pd.get("act_cfg") or {"type": "ReLU"}
    if norm.get("type") != "GN" or act.get("type") != "ReLU":
        raise Unsupported(f"sszoo's PixelDecoder has GroupNorm + ReLU convs, not {norm} / {act}")
    out = int(h["out_channels"])
    layer = td["layer_cfg"]
    drops = set()
    for a in (layer["self_attn_cfg"], layer["cross_attn_cfg"]):
        if int(a.get("embed_dims", 256)) != out or not a.get("batch_first") or a.get("dropout_layer"):
            raise Unsupported(f"sszoo's MaskFormer decoder attention has no variant {a}")
        drops |= {float(a.get("attn_drop", 0.0)), float(a.get("proj_drop", 0.0))}
    drops.add(float(layer["ffn_cfg"].get("ffn_drop", 0.0)))
    heads = int(layer["cross_attn_cfg"].get("num_heads", 8))
    if (len(drops) != 1 or int(layer["self_attn_cfg"].get("num_heads", 8)) != heads
            or (layer.get("norm_cfg") or {"type": "LN"}) != {"type": "LN"} or not td.get("return_intermediate", True)
            or (td.get("post_norm_cfg") or {"type": "LN"}) != {"type": "LN"} or td.get("init_cfg")):
        raise Unsupported(f"sszoo's MaskFormer decoder (one dropout rate, post-norm, every layer out) has no variant {td}")
    cls, mask, dice = h.get("loss_cls") or {}, h.get("loss_mask") or {}, h.get("loss_dice") or {}
    weights = [float(w) for w in cls.get("class_weight") or [1.0] * (int(h["num_classes"]) + 1)]
    if (cls.get("type") != "mmdet.CrossEntropyLoss" or cls.get("use_sigmoid") or any(w != 1.0 for w in weights[:-1])
            or mask.get("type") != "mmdet.FocalLoss" or not mask.get("use_sigmoid", True)
            or dice.get("type") != "mmdet.DiceLoss" or not dice.get("use_sigmoid", True) or not dice.get("activate", True)
            or not dice.get("naive_dice") or float(dice.get("eps", 1.0)) != 1.0
            or any(x.get("reduction", "mean") != "mean" for x in (cls, mask, dice))):
        raise Unsupported(f"sszoo's MaskFormer losses are softmax CE + sigmoid focal + naive dice, not {h}")
    in_channels = [int(c) for c in h["in_channels"]]
    in_index = h.get("in_index", list(range(len(in_channels))))
    return dict(kind="maskformer", in_channels=in_channels,
                in_index=[int(i) for i in (in_index if isinstance(in_index, list) else [in_index])],
                feat_channels=int(h["feat_channels"]), out_channels=out, num_queries=int(h.get("num_queries", 100)),
                enforce_decoder_input_project=bool(h.get("enforce_decoder_input_project", False)),
                num_groups=int(norm.get("num_groups", 32)),
                pos_num_feats=_sine(h.get("positional_encoding") or {"num_feats": 128, "normalize": True}, "MaskFormerHead"),
                decoder_layers=int(td["num_layers"]), decoder_heads=heads,
                decoder_ffn_channels=_ffn(dict(layer["ffn_cfg"], ffn_drop=0.0), out, "MaskFormer decoder"),
                dropout=drops.pop(), cls_weight=float(cls.get("loss_weight", 1.0)),
                mask_weight=float(mask.get("loss_weight", 1.0)), dice_weight=float(dice.get("loss_weight", 1.0)),
                no_object_weight=weights[-1], focal_alpha=float(mask.get("alpha", 0.25)),
                focal_gamma=float(mask.get("gamma", 2.0)))


HEADS.update({"MaskFormerHead": _maskformer})
