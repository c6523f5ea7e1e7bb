"""Generate model_cards/: one markdown card per zoo entry plus a README table, from the registry only.

    python tools/generate_model_cards.py            # rewrite model_cards/ (removes stale cards)
    python tools/generate_model_cards.py --check    # exit 1 when model_cards/ differs from the registry

The cards are never edited by hand: change the registry (tools/generate_zoo.py) or this script and
regenerate. tests/test_cards.py fails when the checked-in cards are out of date.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Iterable, Optional, Sequence

import torch

from sszoo.models import ASPPHeadConfig, FCNHeadConfig, PSPHeadConfig, SepASPPHeadConfig
from sszoo.models import build_model
from sszoo.registry import ZooEntry, list_entries
from sszoo.registry.citations import CITATIONS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CARDS_DIR = os.path.join(ROOT, "model_cards")

METHOD_TITLE = {"fcn": "FCN", "fcn_d6": "FCN (D6)", "pspnet": "PSPNet", "deeplabv3": "DeepLabV3",
                "deeplabv3plus": "DeepLabV3+", "nonlocal": "NonLocal Net", "dnl": "DNLNet", "gcnet": "GCNet",
                "emanet": "EMANet", "ccnet": "CCNet", "danet": "DANet", "ann": "ANN", "isanet": "ISANet",
                "encnet": "EncNet", "apcnet": "APCNet", "dmnet": "DMNet", "psanet": "PSANet", "upernet": "UPerNet",
                "fpn": "Semantic FPN", "pointrend": "PointRend", "fastfcn": "FastFCN", "resnest": "ResNeSt",
                "hrnet": "HRNet (FCN head)", "ocrnet": "OCRNet", "mobilenet_v2": "MobileNetV2",
                "mobilenet_v3": "MobileNetV3 + LR-ASPP", "fastscnn": "Fast-SCNN", "cgnet": "CGNet", "erfnet": "ERFNet",
                "bisenetv1": "BiSeNetV1", "bisenetv2": "BiSeNetV2", "icnet": "ICNet", "stdc": "STDC",
                "ddrnet": "DDRNet", "pidnet": "PIDNet", "segformer": "SegFormer", "swin": "Swin Transformer + UPerNet",
                "twins": "Twins", "convnext": "ConvNeXt + UPerNet", "poolformer": "PoolFormer + Semantic FPN",
                "segnext": "SegNeXt", "vit": "ViT/DeiT + UPerNet", "setr": "SETR", "segmenter": "Segmenter",
                "dpt": "DPT", "beit": "BEiT + UPerNet", "mae": "MAE + UPerNet", "knet": "K-Net",
                "maskformer": "MaskFormer", "mask2former": "Mask2Former", "san": "SAN"}
PAPER = {
    "fcn": "Long et al., \"Fully Convolutional Networks for Semantic Segmentation\", CVPR 2015",
    "fcn_d6": "Long et al., \"Fully Convolutional Networks for Semantic Segmentation\", CVPR 2015 "
              "(MMSegmentation's D6 variant: dilation 6 in the head)",
    "pspnet": "Zhao et al., \"Pyramid Scene Parsing Network\", CVPR 2017",
    "deeplabv3": "Chen et al., \"Rethinking Atrous Convolution for Semantic Image Segmentation\", arXiv 2017",
    "deeplabv3plus": "Chen et al., \"Encoder-Decoder with Atrous Separable Convolution for Semantic Image "
                     "Segmentation\", ECCV 2018",
}
FRAMEWORK = {"mmsegmentation": ("MMSegmentation", "https://github.com/open-mmlab/mmsegmentation"),
             "sssegmentation": ("sssegmentation", "https://github.com/SegmentationBLWX/sssegmentation")}
# The split the reported numbers were measured on (the test pipelines of the source configs).
EVAL_SPLIT = {"cityscapes": "val", "ade20k": "validation", "voc12aug": "val", "pascal_context": "val",
              "pascal_context59": "val", "coco_stuff10k": "test", "coco_stuff164k": "val", "loveda": "val",
              "potsdam": "val", "vaihingen": "val", "isaid": "val", "mapillary_v1": "validation"}
HF_LICENSE = {"Apache-2.0": "apache-2.0", "MIT": "mit", "BSD-3-Clause": "bsd-3-clause"}
FORMAT_TEXT = {
    "mmseg": "MMSegmentation checkpoint (`{'meta', 'state_dict'}`, keys already in sszoo's layout)",
    "ssseg": "sssegmentation checkpoint (`{'model': ...}`, keys `backbone_net.*`, `ppm_net.*`, ...; "
             "converted to sszoo's layout on load)",
}


# --------------------------------------------------------------------------------------------- helpers


def _optimizer_text(rc) -> str:
    """The recipe's optimizer, its parameter groups and gradient clipping, in one table cell."""
    if rc.optimizer == "sgd":
        text = f"SGD, lr {rc.lr:g}, momentum {rc.momentum:g}, weight decay {rc.weight_decay:g}"
    else:
        name = {"adamw": "AdamW", "adam": "Adam"}[rc.optimizer]
        text = (f"{name}, lr {rc.lr:g}, betas ({rc.betas[0]:g}, {rc.betas[1]:g}), eps {rc.eps:g}, "
                f"weight decay {rc.weight_decay:g}")
    pw = rc.paramwise
    if pw is not None and pw.layer_decay:
        text += (f"; {pw.layer_decay.replace('_', '-')} lr decay {pw.decay_rate:g} over {pw.num_layers} layers "
                 "(biases and 1-D weights without weight decay)")
    elif pw is not None:
        rules = [f"'{r.key}'" + (f" lr x{r.lr_mult:g}" if r.lr_mult != 1 else "")
                 + (f" decay x{r.decay_mult:g}" if r.decay_mult != 1 else "") for r in pw.custom_keys]
        if pw.norm_decay_mult is not None:
            rules.append(f"norm layers decay x{pw.norm_decay_mult:g}")
        text += "; parameters named " + ", ".join(rules)
    if rc.clip_grad:
        text += f"; gradients clipped to L2 norm {rc.clip_grad:g}"
    return text


def _schedule_text(rc) -> str:
    """The recipe's learning-rate schedule, in one table cell."""
    if rc.lr_milestones:
        text = f"x{rc.lr_gamma:g} at iterations {', '.join(str(m + rc.warmup_iters) for m in rc.lr_milestones)}"
    else:
        text = f"poly, power {rc.poly_power:g}, down to {rc.min_lr:g}"
    if rc.warmup_iters:
        text += f", after a linear warm-up over {rc.warmup_iters} iterations from {rc.warmup_start_factor:g} x lr"
    return text


def _yaml_str(value: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(value)


def _num(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:g}"


def _numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


_PARAMS: dict = {}  # architecture -> counts, kept across calls (building 330 networks takes half a minute)


def _params(entries: Iterable[ZooEntry]) -> dict[str, tuple[int, int]]:
    """(total, without auxiliary head) parameter counts per entry, counted on the meta device.

    Each distinct architecture is built once. tests/test_cards.py checks the totals against the counts
    MMSegmentation reports for its configs.
    """
    cache = _PARAMS
    out = {}
    for e in entries:
        if e.arch not in cache:
            with torch.device("meta"):  # shapes only: nothing is allocated
                model = build_model(e.arch)
            aux = sum(_numel(h) for h in model.auxiliary_heads)
            cache[e.arch] = (_numel(model), _numel(model) - aux)
        out[e.name] = cache[e.arch]
    return out


def _fields_text(cfg) -> str:
    """A config's own settings, for kinds without a hand-written description."""
    skip = {"kind", "in_channels", "channels", "in_index", "dropout", "loss_weight", "losses", "sampler"}

    def value(v):
        if dataclasses.is_dataclass(v):  # a nested config (BiSeNetV1's context ResNet, ICNet's backbone)
            depth = getattr(v, "depth", None)
            return f"{v.kind}" + (f"-{depth}" if depth else "") + f" ({_fields_text(v)})"
        return list(v) if isinstance(v, tuple) else v

    parts = [f"{f.name} {value(v)}" for f in dataclasses.fields(cfg)
             if f.name not in skip and (v := getattr(cfg, f.name)) is not None]
    return ", ".join(parts)


def _loss_text(h) -> str:
    """The head's training loss terms when it has other losses than one plain cross-entropy."""
    names = {"ce": "cross-entropy", "ohem_ce": "OHEM cross-entropy", "dice": "Dice loss", "boundary": "boundary loss"}
    terms = []
    for s in getattr(h, "losses", ()):
        t = f"{s.weight:g} x " + ("sigmoid " if s.use_sigmoid else "") + names[s.kind]
        if s.kind == "ohem_ce":
            t += f" (threshold {s.thres:g}, at least {s.min_kept} pixels)"
        if s.class_weight:
            t += f" with {len(s.class_weight)} class weights"
        terms.append(t)
    text = "; training loss " + " + ".join(terms) if terms else ""
    sampler = getattr(h, "sampler", None)
    if sampler is not None:
        text += (", on OHEM-sampled pixels (" + (f"true-class probability below {sampler.thresh:g}, "
                 if sampler.thresh is not None else "largest loss, ") + f"at least {sampler.min_kept} per image)")
    return text


def _backbone_text(e: ZooEntry) -> list[str]:
    b = e.arch.backbone
    if b.kind != "resnet":
        return [f"- Backbone: {e.backbone} ({b.kind}: {_fields_text(b)})"]
    stem = "V1c: deep stem of three 3x3 convs" if b.deep_stem else "V1b: one 7x7 stem conv"
    lines = [f"- Backbone: ResNet-{b.depth} ({stem}), output stride {b.output_stride} "
             f"(stage strides {list(b.strides)}, dilations {list(b.dilations)}"
             + (f", multi-grid {list(b.multi_grid)}" if b.multi_grid else "")
             + (", first block of a dilated stage at half its dilation" if b.contract_dilation else "") + ")"]
    if e.arch.neck is not None:
        lines.append(f"- Neck: {e.arch.neck.kind} ({_fields_text(e.arch.neck)})")
    return lines


def _stage(i) -> str:
    if isinstance(i, tuple):
        return f"stages {[j + 1 for j in i]}"
    return f"stage {i + 1}" if i >= 0 else ("the last stage" if i == -1 else f"the stage {-i - 1} before the last")


def _head_desc(h) -> str:
    if h.kind == "fcn":
        desc = (f"FCN head: {h.num_convs} x {h.kernel_size}x{h.kernel_size} conv, {h.channels} channels, "
                f"dilation {h.dilation}" + (", input concatenated before the classifier" if h.concat_input else ""))
    elif h.kind == "psp":
        desc = f"pyramid pooling module, bins {list(h.pool_scales)}, {h.channels} channels"
    elif h.kind == "aspp":
        desc = f"ASPP with image pooling, dilations {list(h.dilations)}, {h.channels} channels"
    elif h.kind == "sep_aspp":
        desc = (f"ASPP with depthwise-separable convs, dilations {list(h.dilations)}, {h.channels} channels; "
                f"decoder fuses stage-{h.c1_index + 1} features ({h.c1_in_channels} -> {h.c1_channels} channels)")
    else:
        own = _fields_text(h)
        width = f", {h.channels} channels" if hasattr(h, "channels") else ""
        desc = f"{h.kind} head{width}" + (f" ({own})" if own else "")
    # heads that are not ClassifierHeads (Segmenter's mask transformer, the mask-classification heads) may have
    # no dropout or input index
    dropout = f", dropout {h.dropout:g}" if hasattr(h, "dropout") else ""
    where = f" on {_stage(h.in_index)}" if hasattr(h, "in_index") else ""
    cin = f" ({h.in_channels} channels)" if hasattr(h, "in_channels") else ""  # (SAN's head reads the image)
    return f"{desc}{dropout},{where}{cin}{_loss_text(h)}"


def _head_text(e: ZooEntry) -> list[str]:
    heads = e.arch.decode_heads
    if len(heads) == 1:
        lines = [f"- Decode head: {_head_desc(heads[0])}"]
    else:
        lines = [f"- Decode heads (a cascade: each later head refines the previous one's logits; training loss "
                 f"weights {[h.loss_weight for h in heads]}):"]
        lines += [f"  {i + 1}. {_head_desc(h)}" for i, h in enumerate(heads)]
    for a in e.arch.auxiliary_heads:
        lines.append(f"- Auxiliary head (training loss only, weight {a.loss_weight:g}): {_head_desc(a)}")
    return lines


def _citation_keys(e: ZooEntry) -> list[str]:
    keys = list(e.citations)
    fp16 = e.recipe.precision == "fp16" or e.reported.precision == "fp16"
    if fp16 and "micikevicius2017mixed" not in keys:
        keys.insert(1, "micikevicius2017mixed")
    return keys


# ------------------------------------------------------------------------------------------------ card

def front_matter(e: ZooEntry) -> str:
    """YAML front matter in the Hugging Face model-index form."""
    fw_name, fw_url = FRAMEWORK[e.source.framework]
    source_url = e.source.config_url or fw_url
    lic = HF_LICENSE.get(e.weights.license)
    lines = ["---"]
    lines += [f"license: {lic}"] if lic else ["license: other", f"license_name: {_yaml_str(e.weights.license)}"]
    lines += ["library_name: sszoo", "pipeline_tag: image-segmentation", "tags:", "- semantic-segmentation",
              f"- {e.method}",
              f"- resnet{e.arch.backbone.depth}" if e.arch.backbone.kind == "resnet" else f"- {e.arch.backbone.kind}",
              f"- {e.source.framework}"]
    if e.recipe.precision == "fp16":
        lines.append("- mixed-precision")
    lines += ["datasets:", f"- {e.dataset.key}", "model-index:", f"- name: {_yaml_str(e.name)}", "  results:",
              "  - task:", "      type: semantic-segmentation", "      name: Semantic Segmentation",
              "    dataset:", f"      type: {e.dataset.key}", f"      name: {_yaml_str(e.dataset.title)}",
              f"      split: {EVAL_SPLIT.get(e.dataset.key, 'val')}", "    metrics:"]
    metrics = [("mIoU", e.reported.miou), ("mIoU (ms+flip)", e.reported.miou_msflip)]
    for name, value in metrics:
        if value is not None:
            lines += ["    - type: mIoU", f"      value: {value:g}", f"      name: {_yaml_str(name)}",
                      "      verified: false"]
    lines += ["    source:", f"      name: {_yaml_str(fw_name)}", f"      url: {_yaml_str(source_url)}", "---"]
    return "\n".join(lines) + "\n"


def _paper(key: str) -> str:
    """'"Title", venue year' from a BibTeX record of sszoo.registry.citations."""
    import re

    bib = CITATIONS[key]
    field = {k: v for k, v in re.findall(r"(\w+)=\{(.*?)\},?\n", bib)}
    venue = field.get("journal") or field.get("booktitle") or ""
    return f"\"{field.get('title', key)}\"" + (f", {venue}" if venue else "") + f" {field.get('year', '')}".rstrip()


def render_card(e: ZooEntry, params: tuple[int, int]) -> str:
    """The markdown of one entry's card."""
    fw_name, fw_url = FRAMEWORK[e.source.framework]
    method = METHOD_TITLE.get(e.method, e.method)
    r, t, w, rc = e.reported, e.test, e.weights, e.recipe
    ms = f" ({_num(r.miou_msflip)} with multi-scale + flip)" if r.miou_msflip is not None else ""
    out = [front_matter(e), f"# {e.name}", "",
           f"{method} with a {e.backbone} backbone for semantic segmentation of {e.dataset.title} "
           f"({e.dataset.num_classes} classes), trained and published by [{fw_name}]({fw_url}). "
           f"Reported mIoU {_num(r.miou)}{ms} on the {EVAL_SPLIT.get(e.dataset.key, 'val')} split.", ""]
    if e.aliases:
        out += ["Also known as: " + ", ".join(f"`{a}`" for a in e.aliases), ""]

    out += ["## Architecture", "", f"- Method: {method}: {PAPER.get(e.method) or _paper(e.citations[0])}"]
    out += _backbone_text(e) + _head_text(e)
    if e.arch.text_encoder is not None:  # SAN: the classes are CLIP text embeddings of their names
        text = e.arch.text_encoder
        out += [f"- Text encoder: CLIP text transformer ({_fields_text(text)}); the class embeddings of the "
                f"{text.dataset} class names in its prompt templates; the image encoder sees the input scaled by "
                f"{e.arch.encoder_resolution:g}"]
    out += [f"- Classes: {e.dataset.num_classes}; logits resized with align_corners={e.arch.align_corners}",
            f"- Parameters: {params[0]:,} ({params[1]:,} without the auxiliary head, as used for inference)", ""]

    batch = f"{rc.batch_size} ({rc.images_per_gpu} per GPU x {rc.gpus} GPUs)"
    schedule = f"{rc.iters:,} iterations" if rc.iters else f"{rc.epochs} epochs"
    prec = rc.precision + (f", static loss scale {rc.loss_scale:g}" if rc.loss_scale else
                           (", dynamic loss scaling" if rc.precision == "fp16" else ""))
    if rc.ratio_range is None:  # SAN: the short side resized to one of a list of lengths (RandomChoiceResize)
        resize = f"short side resized to one of {list(rc.train_scale)}"
    else:
        resize = (f"random resize of ({rc.train_scale[0]}, {rc.train_scale[1]}) x "
                  f"[{rc.ratio_range[0]:g}, {rc.ratio_range[1]:g}]")
    retrain = (f"Train it again with `python -m sszoo.train --model {e.name} --data DATA_ROOT` (see docs/train.md)."
               if e.arch.text_encoder is None else
               "sszoo serves it for inference only: SAN's training losses are not built.")
    out += ["## Training recipe", "", "| setting | value |", "| --- | --- |",
            f"| crop (h x w) | {rc.crop[0]} x {rc.crop[1]} |", f"| batch | {batch} |", f"| schedule | {schedule} |",
            f"| optimizer | {_optimizer_text(rc)} |",
            f"| lr schedule | {_schedule_text(rc)} |",
            f"| augmentation | {resize}, random crop (cat_max_ratio {rc.cat_max_ratio:g}), horizontal flip |",
            f"| auxiliary loss weight | {rc.aux_loss_weight:g} |", f"| precision | {prec} |",
            f"| pretrained backbone | {rc.pretrained_backbone or '-'} |", "",
            retrain, ""]

    mode = (f"sliding window, crop {t.crop[0]} x {t.crop[1]}, stride {t.stride[0]} x {t.stride[1]}"
            + (", softmax probabilities of the windows averaged (sssegmentation)" if t.window_softmax else
               ", logits of the windows averaged")
            if t.mode == "slide" else "whole image")
    resize = (f"keep-ratio resize to fit ({t.scale[0]}, {t.scale[1]})" if t.keep_ratio
              else f"resize to {t.scale[0]} x {t.scale[1]}")
    out += ["## Test protocol", "", f"- {resize}, bilinear", f"- inference: {mode}",
            f"- normalisation (RGB, 0-255 scale): mean {list(t.mean)}, std {list(t.std)}",
            (f"- logits resized from the feature resolution straight to the label size (sssegmentation's tester) "
             f"with align_corners={t.align_corners}, then argmax" if t.resize_logits_once and t.mode == "whole" else
             f"- logits resized to the label size with align_corners={t.align_corners}, then argmax"),
            f"- multi-scale + flip: ratios {list(t.msflip_ratios)} of the test scale, horizontal flip, "
            "softmax probabilities averaged", f"- label space: {e.dataset.num_classes} classes, ignore index "
            f"{e.dataset.ignore_index}" + (", reduce_zero_label (label 0 ignored, others shifted down)"
                                            if e.dataset.reduce_zero_label else ""), ""]

    verified = (f"yes: sszoo checks the download's sha256 against `{w.sha256_prefix}`" if w.verified else
                "no: the source publishes no hash, so the download cannot be verified (sszoo warns)")
    out += ["## Weights", "", f"- URL: {w.url}"]
    if w.url_alt:
        out.append(f"- Alternative URL: {w.url_alt}")
    out += [f"- sha256: `{w.sha256_prefix}` (the first 8 hex digits, from the published file name)"
            if w.sha256_prefix else "- sha256: not published", f"- Verified: {verified}",
            f"- Format: {FORMAT_TEXT.get(w.format, w.format)}", f"- License: {w.license}"]
    if e.source.config_url:
        out.append(f"- Config: {e.source.config_url}")
    if e.source.log_url:
        out.append(f"- Training log: {e.source.log_url}")
    out.append("")

    out += ["## Reported results", "", "As published by the source (not measured by sszoo); memory is the "
            "training memory per GPU, fps the inference speed at batch 1 on whole images.", "",
            "| mIoU | mIoU (ms+flip) | memory (GB) | fps | hardware | precision |",
            "| ---: | ---: | ---: | ---: | --- | --- |",
            f"| {_num(r.miou)} | {_num(r.miou_msflip)} | {_num(r.mem_gb)} | {_num(r.fps)} | {r.hardware or '-'} "
            f"| {r.precision} |", ""]
    if e.source.notes:
        out += [f"Note: {e.source.notes.strip().rstrip(';')}", ""]

    bare, tag = e.arch_name, e.tag
    key = e.dataset.key
    out += ["## How to use", "", "```python", "import sszoo", "from sszoo.predict import predict", "",
            f"model = sszoo.create_model(\"{e.name}\", pretrained=True)",
            "labels = predict(model, \"image.jpg\")   # H x W class ids", "```", "",
            "With torch.hub, inside a clone of the sszoo repository:", "", "```python", "import torch", "",
            f"model = torch.hub.load(\".\", \"{bare}\", source=\"local\", tag=\"{tag}\", pretrained=True)", "```",
            "", "Evaluate, predict and export from the command line:", "", "```bash",
            f"python -m sszoo.eval --model {e.name} --data data/{key}",
            f"python -m sszoo.predict images/ --model {e.name} --out predictions",
            f"python -m sszoo.export --model {e.name} --format onnx --out {bare}.onnx "
            f"--height {rc.crop[0]} --width {rc.crop[1]}", "```", ""]

    out += ["## Citation", "", "```bibtex"]
    out += ["\n\n".join(CITATIONS[k] for k in _citation_keys(e))]
    out += ["```", "", "## License", "",
            f"The weights are distributed by {fw_name} under the {w.license} license; sszoo's code is "
            "Apache-2.0. The dataset's own terms apply to the training data.", "",
            "<!-- generated by tools/generate_model_cards.py from sszoo/registry/zoo.json; do not edit -->", ""]
    return "\n".join(out)


def render_index(entries: Sequence[ZooEntry]) -> str:
    """model_cards/README.md: every entry in one table per dataset."""
    by_dataset: dict[str, list[ZooEntry]] = {}
    for e in entries:
        by_dataset.setdefault(e.dataset.key, []).append(e)
    out = ["# sszoo model cards", "",
           f"{len(entries)} checkpoints, one card each, generated from the registry by "
           "`tools/generate_model_cards.py` (do not edit by hand). mIoU as reported by the source; "
           "\"verified\" means the download is checked against a published sha256.", ""]
    out += [f"- [{entries_[0].dataset.title}](#{_anchor(entries_[0].dataset.title)}) ({len(entries_)})"
            for entries_ in by_dataset.values()]
    out.append("")
    for group in by_dataset.values():
        d = group[0].dataset
        out += [f"## {d.title}", "", f"{d.num_classes} classes, {len(group)} checkpoints.", "",
                "| model | method | backbone | crop | schedule | mIoU | ms+flip | source | verified |",
                "| --- | --- | --- | --- | --- | ---: | ---: | --- | --- |"]
        for e in group:
            rc = e.recipe
            sched = f"{rc.iters // 1000}k it" if rc.iters else f"{rc.epochs} ep"
            if rc.precision == "fp16":
                sched += ", fp16"
            out.append(f"| [{e.name}]({e.name}.md) | {METHOD_TITLE.get(e.method, e.method)} | {e.backbone} | "
                       f"{rc.crop[0]}x{rc.crop[1]} | {sched} | {_num(e.reported.miou)} | "
                       f"{_num(e.reported.miou_msflip)} | {FRAMEWORK[e.source.framework][0]} | "
                       f"{'yes' if e.weights.verified else 'no'} |")
        out.append("")
    return "\n".join(out)


def _anchor(title: str) -> str:
    keep = "".join(c for c in title.lower() if c.isalnum() or c in " -")
    return keep.replace(" ", "-")


DET_TITLE = {"faster_rcnn": "Faster R-CNN", "mask_rcnn": "Mask R-CNN", "retinanet": "RetinaNet"}
DET_PAPER = {"faster_rcnn": "Ren et al., \"Faster R-CNN: Towards Real-Time Object Detection with Region Proposal "
                            "Networks\", NeurIPS 2015",
             "mask_rcnn": "He et al., \"Mask R-CNN\", ICCV 2017",
             "retinanet": "Lin et al., \"Focal Loss for Dense Object Detection\", ICCV 2017"}


def render_detection_card(e) -> str:
    """The card of a detection entry (sszoo.registry.DetectionEntry)."""
    from sszoo.registry.detection import DET_BIBTEX

    r, w = e.reported, e.weights
    mask = e.arch.with_mask
    task = "instance-segmentation" if mask else "object-detection"
    lines = ["---", "license: apache-2.0", "library_name: sszoo", f"pipeline_tag: {'image-segmentation' if mask else 'object-detection'}",
             "tags:", f"- {task}", f"- {e.method}", "- resnet50", "- mmdetection"]
    if r.precision == "fp16":
        lines.append("- mixed-precision")
    lines += ["datasets:", "- coco", "model-index:", f"- name: {_yaml_str(e.name)}", "  results:"]
    for kind, name, value in (("object-detection", "box AP", r.box_ap), ("instance-segmentation", "mask AP", r.mask_ap)):
        if value is None:
            continue
        lines += ["  - task:", f"      type: {kind}", "    dataset:", "      type: coco", "      name: COCO 2017",
                  "      split: val", "    metrics:", "    - type: mAP", f"      value: {value:g}",
                  f"      name: {_yaml_str(name)}", "      verified: false"]
    lines += ["    source:", "      name: MMDetection", f"      url: {_yaml_str(e.source.config_url)}", "---", ""]
    aps = f"box AP {r.box_ap:g}" + (f", mask AP {r.mask_ap:g}" if r.mask_ap is not None else "")
    out = ["\n".join(lines), f"# {e.name}", "",
           f"{DET_TITLE[e.method]} with a ResNet-50-FPN backbone on COCO 2017 (80 classes), 1x schedule, "
           f"{r.precision} training, published by [MMDetection](https://github.com/open-mmlab/mmdetection). "
           f"Reported {aps} on val2017. Served by sszoo.detection with MMDetection 3.3.0's test-time semantics "
           "(docs/detection.md).", ""]
    if e.aliases:
        out += ["Also known as: " + ", ".join(f"`{a}`" for a in e.aliases), ""]
    out += ["## Architecture", "", f"- Method: {DET_PAPER[e.method]}",
            "- Backbone: ResNet-50 (7x7 stem, MMDetection's style pytorch), FPN "
            + ("P3-P7 (P6 from C5, no ReLU before P7)" if e.method == "retinanet" else "P2-P6"), ""]
    out += ["## Test protocol", "", f"- keep-ratio resize to fit ({e.test.scale[0]}, {e.test.scale[1]}), bilinear; "
            f"normalisation mean {list(e.test.mean)}, std {list(e.test.std)}; pad to {e.test.pad_size_divisor}", ""]
    out += ["## Weights", "", f"- URL: {w.url}",
            f"- sha256: `{w.sha256_prefix}` (the first 8 hex digits, from the published file name)"
            if w.sha256_prefix else "- sha256: not published",
            "- Format: MMDetection checkpoint (`{'meta', 'state_dict'}`, keys loaded unchanged)",
            f"- License: {w.license}", f"- Config: {e.source.config_url}", ""]
    out += ["## Reported results", "", "| box AP | mask AP | memory (GB) | inference (ms) | precision |",
            "| ---: | ---: | ---: | ---: | --- |",
            f"| {_num(r.box_ap)} | {_num(r.mask_ap)} | {_num(r.mem_gb)} | {_num(r.inference_ms)} | {r.precision} |", ""]
    out += ["## How to use", "", "```python", "import sszoo", "",
            f"model = sszoo.create_model(\"{e.name}\", pretrained=True)",
            "out = model(images)   # per image: boxes, scores, labels" + (", masks" if mask else ""), "```", "",
            "```bash", f"python -m sszoo.eval --model {e.name} --data data/coco",
            f"python -m sszoo.predict images/ --model {e.name} --out predictions", "```", ""]
    out += ["## Citation", "", "```bibtex", "\n\n".join(DET_BIBTEX[k] for k in e.citations), "```", "",
            "## License", "", "The weights are distributed by MMDetection under the Apache-2.0 license; sszoo's "
            "code is Apache-2.0. COCO's own terms apply to the training data.", "",
            "<!-- generated by tools/generate_model_cards.py from sszoo/registry/detection.json; do not edit -->", ""]
    return "\n".join(out)


def render_detection_index(entries) -> str:
    """model_cards/DETECTION.md: the detection entries (kept apart from README.md's segmentation tables)."""
    out = ["# sszoo model cards: detection", "",
           f"{len(entries)} MMDetection checkpoints, one card each, generated from the registry by "
           "`tools/generate_model_cards.py` (do not edit by hand). AP as reported by MMDetection.", "",
           "| model | method | backbone | precision | box AP | mask AP | verified |",
           "| --- | --- | --- | --- | ---: | ---: | --- |"]
    for e in entries:
        out.append(f"| [{e.name}]({e.name}.md) | {DET_TITLE[e.method]} | {e.backbone} | {e.reported.precision} | "
                   f"{_num(e.reported.box_ap)} | {_num(e.reported.mask_ap)} | {'yes' if e.weights.verified else 'no'} |")
    return "\n".join(out) + "\n"


def render_all() -> dict[str, str]:
    """Every file of model_cards/ (name -> text)."""
    entries = list_entries()
    params = _params(entries)
    files = {f"{e.name}.md": render_card(e, params[e.name]) for e in entries}
    files["README.md"] = render_index(entries)
    det = list_entries(task="detection")
    if det:
        files.update({f"{e.name}.md": render_detection_card(e) for e in det})
        files["DETECTION.md"] = render_detection_index(det)
    return files


def diff(files: dict[str, str], folder: str) -> list[str]:
    """What differs between ``files`` and the markdown files in ``folder`` (empty when in sync)."""
    have = {f for f in os.listdir(folder) if f.endswith(".md")} if os.path.isdir(folder) else set()
    problems = [f"missing: {n}" for n in sorted(set(files) - have)]
    problems += [f"stale (no registry entry): {n}" for n in sorted(have - set(files))]
    for n in sorted(set(files) & have):
        with open(os.path.join(folder, n), encoding="utf-8") as f:
            if f.read() != files[n]:
                problems.append(f"out of date: {n}")
    return problems


def write(files: dict[str, str], folder: str) -> None:
    """Write the cards (each through a temporary file) and remove cards without a registry entry."""
    os.makedirs(folder, exist_ok=True)
    for name, text in files.items():
        path = os.path.join(folder, name)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    for name in os.listdir(folder):
        if name.endswith(".md") and name not in files:
            os.remove(os.path.join(folder, name))


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=CARDS_DIR, help="folder of the cards (default model_cards/)")
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when the folder is out of date")
    args = ap.parse_args(argv)
    files = render_all()
    if args.check:
        problems = diff(files, args.out)
        for p in problems[:20]:
            print(p)
        if problems:
            print(f"{len(problems)} card file(s) differ; run python tools/generate_model_cards.py")
            return 1
        print(f"{len(files)} card files in sync")
        return 0
    write(files, args.out)
    print(f"wrote {len(files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
