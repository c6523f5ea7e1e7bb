"""Generate sszoo/registry/zoo.json from the reference tables in tools/reference/.

    python tools/generate_zoo.py            # rewrite the table
    python tools/generate_zoo.py --check    # exit 1 if the checked-in table is stale

Inputs (facts collected from the public zoos; see tools/reference/README.md):
  mmseg_zoo.csv, mmseg_fp16_legacy.csv, mmseg_model_settings.csv, ssseg_zoo.csv, seed_tables.csv,
  mmseg_recipes.json (resolved recipes and class metadata, dumped from MMSegmentation 1.2.2 by
  tools/oracle_dump_recipes.py) for FCN, PSPNet, DeepLabV3 and DeepLabV3+;
  mmseg_checkpoints.csv and mmseg_configs.json (every checkpoint of MMSegmentation 1.2.2's metafiles
  and its resolved config, by tools/extract_mmseg_facts.py) for every other method whose architecture
  tools/mmseg_arch.py converts.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import re
import sys
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from mmseg_arch import arch_from_mmseg, loss_fields  # noqa: E402
from detection_zoo import OUT as DET_OUT, detection_text  # noqa: E402

sys.path.insert(0, os.path.join(HERE, os.pardir))
from sszoo.registry.citations import METHOD_CITATION as CITE  # noqa: E402  (method -> BibTeX key)
from sszoo.train.optim import paramwise_from_mmengine  # noqa: E402
REF = os.path.join(HERE, "reference")
OUT = os.path.join(HERE, os.pardir, "sszoo", "registry", "zoo.json")

# dataset column -> (key, mmseg dataset class)
DATASETS = {
    "Cityscapes": ("cityscapes", "CityscapesDataset"),
    "ADE20K": ("ade20k", "ADE20KDataset"),
    "Pascal VOC 2012 + Aug": ("voc12aug", "PascalVOCDataset"),
    "Pascal Context": ("pascal_context", "PascalContextDataset"),
    "Pascal Context 59": ("pascal_context59", "PascalContextDataset59"),
    "COCO-Stuff 10k": ("coco_stuff10k", "COCOStuffDataset"),
    "COCO-Stuff 164k": ("coco_stuff164k", "COCOStuffDataset"),
    "LoveDA": ("loveda", "LoveDADataset"),
    "Potsdam": ("potsdam", "PotsdamDataset"),
    "Vaihingen": ("vaihingen", "ISPRSDataset"),
    "iSAID": ("isaid", "iSAIDDataset"),
    "Mapillary Vistas v1.2": ("mapillary_v1", "MapillaryDataset_v1"),
}
SSSEG_DATASETS = {"PASCAL VOC": "Pascal VOC 2012 + Aug", "ADE20k": "ADE20K", "ADE20K": "ADE20K",
                  "CityScapes": "Cityscapes", "Cityscapes": "Cityscapes", "PASCAL Context": "Pascal Context",
                  "PASCAL Context 59": "Pascal Context 59"}
REDUCE_ZERO = {"ade20k", "pascal_context59", "coco_stuff10k", "loveda", "potsdam", "vaihingen"}
HEAD_KIND = {"FCNHead": "fcn", "PSPHead": "psp", "ASPPHead": "aspp", "DepthwiseSeparableASPPHead": "sep_aspp"}
# the methods served from the hand-collected tables above; every other method comes from the extracted facts
TABLE_METHODS = {"fcn", "pspnet", "deeplabv3", "deeplabv3plus"}
# methods named by MMSegmentation's config directory rather than by the first token of the config name
DIRECTORY_METHODS = {"swin", "convnext", "poolformer", "twins", "segformer", "segnext", "vit", "setr", "segmenter",
                     "dpt", "beit", "mae", "knet", "maskformer", "mask2former"}
DIRECTORY_METHODS |= {"san"}  # san-vit-b16_coco-stuff164k-...: the first token names the backbone too
# backbone families under several heads: their entries cite the head's paper too (UPerNet, PSPNet, FPN, ...)
BACKBONE_METHODS = {"resnest", "mobilenet_v2", "swin", "convnext", "poolformer", "twins", "vit", "beit", "mae"}
MMSEG_CONFIG_URL = "https://github.com/open-mmlab/mmsegmentation/blob/v1.2.2/"
MMSEG_0X_CONFIG_URL = "https://github.com/open-mmlab/mmsegmentation/blob/0.x/"


def tup(s: str):
    s = s.strip()
    return list(int(v) for v in re.findall(r"-?\d+", s)) if s else None


def num(s: str):
    s = (s or "").strip().rstrip("%")
    return None if s in ("", "-") else float(s)


def backbone_slug(bb: str) -> str:
    # "R-101-D16-MG124" -> "r101_d16_mg124", "R-50b-D8 rsb" -> "r50b_d8_rsb"
    return re.sub(r"[^a-z0-9]+", "_", bb.lower().replace("r-", "r")).strip("_")


def method_of(config_base: str, method: str) -> str:
    return "fcn_d6" if config_base.startswith("fcn-d6") else method


def tag_of(config_base: str, crop: str, legacy_fp16: bool) -> str:
    """'pspnet_r101-d8_4xb2-amp-80k_cityscapes-512x1024' -> '512x1024_80k_amp'."""
    if legacy_fp16:
        sched = re.search(r"_(\d+k)_", config_base).group(1)
        return f"{crop}_{sched}_fp16"
    parts = config_base.split("_")
    middle = parts[_layout_index(parts)]  # '4xb2-amp-80k'
    tokens = middle.split("-")
    # an old-style name ('fpn_poolformer_s36_8x4_512x512_40k_ade20k') has the schedule in a token of its own
    sched = next(t for t in (tokens if "xb" in middle else parts) if re.fullmatch(r"\d+k", t))
    extras = [t for t in tokens if t != sched and not re.fullmatch(r"\d+xb?\d+", t)]
    return "_".join([crop, sched] + extras)


def arch_from_settings(s: dict, aux_weight: float) -> dict:
    bb = dict(depth=int(s["depth"]), deep_stem=s["backbone_type"] == "ResNetV1c", strides=tup(s["strides"]),
              dilations=tup(s["dilations"]), contract_dilation=s["contract_dilation"] == "True",
              multi_grid=tup(s["multi_grid"]), kind="resnet")
    kind = HEAD_KIND[s["head"]]
    extra = json.loads(s["head_extra"] or "{}")
    head = dict(kind=kind, in_channels=int(s["head_in"]), channels=int(s["head_ch"]), in_index=3,
                dropout=float(s["dropout"]))
    if kind == "fcn":
        head.update(num_convs=extra.get("num_convs", 2), concat_input=extra.get("concat_input", True),
                    kernel_size=3, dilation=extra.get("dilation", 1))
    elif kind == "psp":
        head.update(pool_scales=extra["pool_scales"])
    else:
        head.update(dilations=extra["dilations"])
        if kind == "sep_aspp":
            head.update(c1_in_channels=extra["c1_in_channels"], c1_channels=extra["c1_channels"], c1_index=0)
    aux = None
    if s["aux"]:
        ax = json.loads(s["aux_extra"] or "{}")
        aux = dict(kind="fcn", in_channels=int(s["aux_in"]), channels=int(s["aux_ch"]), in_index=ax.get("in_index", 2),
                   num_convs=ax.get("num_convs", 1), concat_input=ax.get("concat_input", False), kernel_size=3,
                   dilation=ax.get("dilation", 1), dropout=float(s["dropout"]), loss_weight=aux_weight)
    return dict(backbone=bb, decode_head=head, auxiliary_head=aux, num_classes=int(s["num_classes"]),
                align_corners=s["align_corners"] == "True")


def dataset_record(title: str, meta: dict, num_classes: int) -> dict:
    key, cls = DATASETS[title]
    m = meta[cls]
    # Mapillary v1's metadata lists 66 names; the 65-class model drops the trailing 'Unlabeled'.
    return dict(key=key, title=title, num_classes=num_classes, class_names=m["classes"][:num_classes],
                palette=m["palette"][:num_classes], ignore_index=255, reduce_zero_label=key in REDUCE_ZERO)


def seed_001() -> dict[str, dict]:
    """Seed 001's table (the old configs/fp16 README), keyed by checkpoint file name's hash suffix."""
    out = {}
    for r in csv.DictReader(open(os.path.join(REF, "seed_tables.csv"))):
        if r["seed"] == "001":
            out[r["checkpoint_url"].rsplit("-", 1)[-1]] = r
    return out


def notes(r: dict, rec: dict) -> str:
    out = [r["note"]] if r.get("note") else []
    seed = seed_001().get(r["checkpoint_url"].rsplit("-", 1)[-1])
    if seed and (seed["mem_gb"], seed["fps"]) != (r["mem_gb"], r["fps"]):
        out.append(f"Seed 001's copy of the fp16 table lists {seed['mem_gb']} GB and {seed['fps']} fps; the "
                   f"values here ({r['mem_gb']} GB, {r['fps']} fps) are those of the reference table.")
    if rec["iters"] != int(r["schedule"]):
        # upstream: some 1.x "80k" configs inherit a 40k base; the published run is the table's schedule
        out.append(f"MMSegmentation 1.2.2's config resolves to {rec['iters']} iterations (it inherits a "
                   f"{rec['iters'] // 1000}k base config); the published checkpoint was trained for "
                   f"{int(r['schedule'])} as the result table and the 0.x config say.")
    return " ".join(out)


def mmseg_entries(meta: dict, recipes: dict) -> list[dict]:
    settings = {r["config"]: r for r in csv.DictReader(open(os.path.join(REF, "mmseg_model_settings.csv")))}
    configs = json.load(open(os.path.join(REF, "mmseg_configs.json")))["configs"]
    rows = [(r, False) for r in csv.DictReader(open(os.path.join(REF, "mmseg_zoo.csv")))]
    rows += [(r, True) for r in csv.DictReader(open(os.path.join(REF, "mmseg_fp16_legacy.csv")))]
    out = []
    for r, legacy in rows:
        base = os.path.basename(r["config"]).removesuffix(".py")
        if legacy:  # same network as the 1.x amp config of this model
            amp = [c for c in settings if c.split("/")[-1].startswith(base.split("_")[0] + "_" + base.split("_")[1])
                   and "-amp-" in c]
            s = settings[amp[0]]
        else:
            s = settings[r["config"]]
        rec = recipes[r["config"]]
        method = method_of(base, r["method"].lower().replace("+", "plus"))
        crop = r["crop"]
        name = f"{method}_{backbone_slug(r['backbone'])}_{DATASETS[r['dataset']][0]}.{tag_of(base, crop, legacy)}"
        arch = arch_from_settings(s, rec["aux_loss_weight"])
        # the heads' loss terms and OHEM pixel sampler, from the resolved config (DeepLabV3(+) mg124)
        model = configs.get(s["config"], {}).get("model")
        if model:
            arch["decode_head"].update(loss_fields(model["decode_head"]))
            if arch["auxiliary_head"] and model.get("auxiliary_head"):
                arch["auxiliary_head"].update(loss_fields(model["auxiliary_head"]))
        test_resize = json.loads(s["test_resize"])
        fp16 = legacy or rec["amp"]
        # warm-up, milestones, parameter groups, clipping: mmseg_recipes.json has the scheduler's name only (the
        # AdamW recipes of PSPNet R-50 rsb and DeepLabV3+ Mapillary warm up, clip and group); the resolved
        # config has them
        resolved = configs.get(r["config"], {}).get("recipe")
        optim, optim_notes = optimizer_fields(r["config"], resolved) if resolved else ({}, [])
        optim = {k: v for k, v in optim.items() if v != OPTIM_DEFAULTS[k]}  # the table's entries list no defaults
        ch, cw = (int(v) for v in crop.split("x"))
        out.append(dict(
            name=name, method=method, backbone=r["backbone"], arch=arch,
            dataset=DATASETS[r["dataset"]][0],
            test=dict(scale=test_resize["scale"], keep_ratio=test_resize["keep_ratio"], mode=s["test_mode"],
                      crop=tup(s["test_crop"]), stride=tup(s["test_stride"]), align_corners=arch["align_corners"],
                      mean=rec["mean"], std=rec["std"]),
            recipe=dict(crop=[ch, cw], images_per_gpu=rec["images_per_gpu"],
                        gpus=int(re.search(r"(\d+)xb\d+", base).group(1)) if re.search(r"(\d+)xb\d+", base) else 4,
                        iters=int(r["schedule"]), epochs=None, optimizer=rec["optimizer"].lower(), lr=rec["lr"],
                        momentum=rec["momentum"] if rec["momentum"] is not None else 0.0,
                        weight_decay=rec["weight_decay"],
                        poly_power=rec["poly_power"] if rec["poly_power"] is not None else 1.0,
                        min_lr=rec["min_lr"] if rec["min_lr"] is not None else 0.0,
                        aux_loss_weight=rec["aux_loss_weight"], train_scale=rec["train_scale"],
                        ratio_range=rec["ratio_range"], cat_max_ratio=rec["cat_max_ratio"],
                        precision="fp16" if fp16 else "fp32", # "dynamic" (AmpOptimWrapper's default) is None: the trainer's fp16 scales dynamically
                        loss_scale=float(rec["loss_scale"]) if fp16 and isinstance(rec["loss_scale"], (int, float))
                        else None,
                        pretrained_backbone=s["pretrained"] or None, **optim),
            reported=dict(miou=num(r["miou"]), miou_msflip=num(r["miou_msflip"]), mem_gb=num(r["mem_gb"]),
                          fps=num(r["fps"]), hardware=r.get("device") or "V100",
                          precision="fp16" if fp16 else "fp32"),
            weights=dict(url=r["checkpoint_url"], sha256_prefix=re.search(r"-([0-9a-f]{8})\.pth$", r["checkpoint_url"]).group(1),
                         format="mmseg", url_alt=r.get("checkpoint_url_alt") or None, license="Apache-2.0"),
            source=dict(framework="mmsegmentation", config=r["config"],
                        config_url=(MMSEG_0X_CONFIG_URL if legacy else MMSEG_CONFIG_URL) + r["config"],
                        log_url=r["log_url"] or None, config_0x=r.get("config_0x") or None,
                        notes=" ".join([n for n in [notes(r, rec)] + optim_notes if n])),
            citations=[CITE[method]] + (["micikevicius2017mixed"] if fp16 else []) + ["mmseg2020"],
            aliases=[base] + ([os.path.basename(r["config_0x"]).removesuffix(".py")] if r.get("config_0x") else []),
            n_keys=int(s["n_keys"]), n_params=int(s["n_params"]),
        ))
    return out


def ssseg_arch(method: str, os_: int, num_classes: int) -> dict:
    strides, dilations = ((1, 2, 1, 1), (1, 1, 2, 4)) if os_ == 8 else ((1, 2, 2, 1), (1, 1, 1, 2))
    rates = [1, 12, 24, 36] if os_ == 8 else [1, 6, 12, 18]
    head = dict(in_channels=2048, channels=512, in_index=3, dropout=0.1)
    if method == "fcn":  # sssegmentation's FCN: two 3x3 convs, no concatenation of the input
        head.update(kind="fcn", num_convs=2, concat_input=False, kernel_size=3, dilation=1)
    elif method == "pspnet":
        head.update(kind="psp", pool_scales=[1, 2, 3, 6])
    elif method == "deeplabv3":
        head.update(kind="aspp", dilations=rates)
    else:
        head.update(kind="sep_aspp", dilations=rates, c1_in_channels=256, c1_channels=48, c1_index=0)
    # sssegmentation's auxiliary decoder is 512 channels wide (MMSegmentation's is 256).
    aux = dict(kind="fcn", in_channels=1024, channels=512, in_index=2, num_convs=1, concat_input=False,
               kernel_size=3, dilation=1, dropout=0.1, loss_weight=0.4)
    return dict(backbone=dict(depth=0, deep_stem=True, strides=list(strides), dilations=list(dilations),
                              contract_dilation=True, multi_grid=None, kind="resnet"),
                decode_head=head, auxiliary_head=aux, num_classes=num_classes, align_corners=False)


SSSEG_TEST_SCALE = {"cityscapes": [2048, 1024], "ade20k": [2048, 512], "voc12aug": [2048, 512],
                    "pascal_context": [520, 520], "pascal_context59": [520, 520]}
# sssegmentation tests Pascal Context with 480x480 windows at stride 320 (its configs, checked by the hub stream)
SSSEG_SLIDE = {"pascal_context": ([480, 480], [320, 320]), "pascal_context59": ([480, 480], [320, 320])}
SSSEG_NUM_CLASSES = {"cityscapes": 19, "ade20k": 150, "voc12aug": 21, "pascal_context": 60, "pascal_context59": 59}


def ssseg_entry(method: str, backbone: str, title: str, crop: str, schedule: str, miou: float, url: str,
                precision: str, log_url: str | None, config_url: str | None, notes: str) -> dict:
    key = DATASETS[title][0]
    depth, os_ = (int(v) for v in re.fullmatch(r"R-(\d+)-D(\d+)", backbone).groups())
    arch = ssseg_arch(method, os_, SSSEG_NUM_CLASSES[key])
    arch["backbone"]["depth"] = depth
    lr, _, bs, epochs = re.search(r"([\d.]+)/poly/(\d+)/(\d+)", schedule).group(0).partition("/poly/")[0], None, \
        *re.search(r"/poly/(\d+)/(\d+)", schedule).groups()
    ch, cw = (int(v) for v in crop.split("x"))
    fp16 = precision == "fp16"
    tag = "ssseg_fp16" if fp16 else "ssseg"
    return dict(
        name=f"{method}_{backbone_slug(backbone)}_{key}.{tag}", method=method, backbone=backbone, arch=arch, dataset=key,
        test=dict(scale=SSSEG_TEST_SCALE[key], keep_ratio=True, mode="slide" if key in SSSEG_SLIDE else "whole",
                  crop=SSSEG_SLIDE.get(key, (None, None))[0], stride=SSSEG_SLIDE.get(key, (None, None))[1],
                  align_corners=False, mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                  resize_logits_once=True, window_softmax=key in SSSEG_SLIDE),
        recipe=dict(crop=[ch, cw], images_per_gpu=int(bs) // (4 if key != "cityscapes" else 4), gpus=4, iters=None,
                    epochs=int(epochs), optimizer="sgd", lr=float(lr), momentum=0.9,
                    weight_decay=1e-4 if key.startswith("pascal_context") else 5e-4, poly_power=0.9, min_lr=0.0,
                    aux_loss_weight=0.4, train_scale=[2048, SSSEG_TEST_SCALE[key][1]], ratio_range=[0.5, 2.0],
                    cat_max_ratio=0.75, precision=precision, loss_scale=None,
                    pretrained_backbone=f"sssegmentation://resnet{depth}"),
        reported=dict(miou=miou, miou_msflip=None, mem_gb=None, fps=None, hardware=None, precision=precision),
        weights=dict(url=url, sha256_prefix=None, format="ssseg", url_alt=None, license="Apache-2.0"),
        source=dict(framework="sssegmentation", config=None, config_url=config_url, log_url=log_url,
                    config_0x=None, notes=notes),
        citations=[CITE[method]] + (["micikevicius2017mixed"] if fp16 else []) + ["sssegmentation2020"],
        aliases=[],
    )


def ssseg_entries() -> list[dict]:
    seeds = list(csv.DictReader(open(os.path.join(REF, "seed_tables.csv"))))
    # seed 003 is an older sssegmentation PSPNet table without links: its numbers are kept as notes
    older = {(r["method"].lower(), r["backbone"], SSSEG_DATASETS[r["dataset"]]): r["metric_value"]
             for r in seeds if r["source"] == "sssegmentation" and not r["checkpoint_url"]}
    out = []
    for r in csv.DictReader(open(os.path.join(REF, "ssseg_zoo.csv"))):
        title = SSSEG_DATASETS[r["dataset"]]
        k = (r["method"], r["backbone"], title)
        notes = f"An earlier sssegmentation table (seed 003) reported {older[k]} mIoU." if k in older else ""
        if title.startswith("Pascal Context"):
            notes = (notes + " " if notes else "") + ("sssegmentation averages window probabilities before "
                                                      "resizing (use_probs_before_resize); sszoo averages logits.")
        out.append(ssseg_entry(r["method"], r["backbone"], title, r["crop"], r["schedule"], num(r["miou"]), r["model"],
                               "fp32", r["log"] or None, r["cfg"] or None, notes))
    for r in seeds:
        if r["source"] == "sssegmentation" and r["checkpoint_url"]:
            method = r["method"].lower().replace("+", "plus")
            sched = "LR/POLICY/BS/EPOCH: " + re.sub(r"LR ([\d.]+)/poly/BS (\d+)/(\d+) epochs", r"\1/poly/\2/\3", r["schedule"])
            out.append(ssseg_entry(method, r["backbone"], SSSEG_DATASETS[r["dataset"]], r["crop"], sched,
                                   float(r["metric_value"]), r["checkpoint_url"], "fp16",
                                   r["checkpoint_url"].removesuffix(".pth") + ".log", None,
                                   "Mixed-precision (apex) training, seed 000."))
    return out


def pick_defaults(entries: list[dict]) -> dict[str, str]:
    """Bare name -> default tag: the best single-scale mIoU among checkpoints with a published hash
    (MMSegmentation), else among all; the first listed on ties."""
    groups = defaultdict(list)
    for e in entries:
        groups[e["name"].split(".")[0]].append(e)
    out = {}
    for arch, es in groups.items():
        pool = [e for e in es if e["weights"]["sha256_prefix"]] or es
        best = max(pool, key=lambda e: (e["reported"]["miou"] or 0.0))
        out[arch] = best["name"]
    return out


def _layout_index(parts: list[str]) -> int:
    """The index of a config name's 'NxbM' token (GPUs x batch), or of an old-style name's 'NxM'
    ('fpn_poolformer_s36_8x4_512x512_40k_ade20k')."""
    for pattern in (r"\d+xb\d+", r"\d+x\d+$"):
        for i, t in enumerate(parts):
            if re.match(pattern, t):
                return i
    raise SystemExit(f"no GPUs x batch token in {'_'.join(parts)}")


def head_papers(method: str, arch: dict, config_base: str) -> list[str]:
    """The papers a backbone family's entry cites besides its own: its decode head's (UPerNet, Semantic FPN,
    PSPNet, ...) and DeiT's for DeiT weights."""
    if method not in BACKBONE_METHODS:
        return []
    heads = {"uper": "upernet", "fpn_head": "fpn", "fcn": "fcn", "psp": "pspnet", "aspp": "deeplabv3",
             "sep_aspp": "deeplabv3plus"}
    out = [CITE[heads[arch["decode_head"]["kind"]]]]
    if "deit" in config_base:
        out.append("touvron2021training")
    return out


def _has_layout(config_base: str) -> bool:
    """Whether a config name has a 'NxbM' (or old 'NxM') GPUs x batch token."""
    return any(re.match(p, t) for p in (r"\d+xb\d+", r"\d+x\d+$") for t in config_base.split("_"))


def _shortest_edge_resize(config: str, pipeline: list[dict]) -> tuple[dict, str]:
    """A test pipeline's ResizeShortestEdge (SAN's) as the keep-ratio Resize it amounts to, and a note."""
    t = next((t for t in pipeline if t.get("type") == "ResizeShortestEdge"), None)
    if t is None:
        raise SystemExit(f"{config}: no test Resize")
    short = min(t["scale"]) if isinstance(t["scale"], list) else int(t["scale"])
    return (dict(scale=[int(t["max_size"]), short], keep_ratio=True),
            f"MMSegmentation tests it with ResizeShortestEdge (short side {short}, long side at most "
            f"{t['max_size']}), the keep-ratio resize to ({t['max_size']}, {short}) up to the rounding of a pixel.")


def method_prefix(config_base: str) -> str:
    """'nonlocal_r50-d8_4xb2-40k_cityscapes-512x1024' -> 'nonlocal_r50_d8' (the part before 'NxbM')."""
    head = config_base.split("_")
    cut = _layout_index(head)
    return re.sub(r"[^a-z0-9]+", "_", "_".join(head[:cut]).lower()).strip("_")


def bn_momentum(config: str, model: dict):
    """The momentum the model's norm_cfg gives its BatchNorms, when it sets one (Fast-SCNN: 0.01), else None."""
    found = set()

    def walk(o):
        if isinstance(o, dict):
            if o.get("type") in ("BN", "SyncBN") and "momentum" in o:
                found.add(float(o["momentum"]))
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(model)
    if len(found) > 1:
        raise SystemExit(f"{config}: BatchNorms of different momentum {sorted(found)}")
    return found.pop() if found else None


def aux_weight(config: str, weight) -> float:
    """The recipe's auxiliary loss weight: one number, also for several auxiliary heads (STDC lists [1.0, 1.0]);
    the trainer's --aux-weight replaces every auxiliary head's weight with it, so they must agree."""
    if weight is None:
        return 0.0
    if isinstance(weight, list):
        if len(set(weight)) != 1:
            raise SystemExit(f"{config}: auxiliary heads of different loss weights {weight}")
        weight = weight[0]
    return float(weight)


# TrainRecipe's defaults of the fields optimizer_fields returns
OPTIM_DEFAULTS = dict(warmup_iters=0, warmup_start_factor=1.0, paramwise=None, betas=[0.9, 0.999], eps=1e-8,
                      clip_grad=None, lr_milestones=[], lr_gamma=0.1)


def optimizer_fields(config: str, rec: dict) -> tuple[dict, list[str]]:
    """The recipe's warm-up, milestones, parameter groups, Adam betas/eps and gradient clipping (TrainRecipe fields)
    from a resolved config's recipe (mmseg_configs.json), and notes on settings the reference does not read."""
    notes_ = []
    scheds = rec.get("param_scheduler") or []
    warm = [p for p in scheds if p["type"] == "LinearLR"]
    kinds = [p["type"] for p in scheds]
    if kinds not in (["PolyLR"], ["LinearLR", "PolyLR"], ["LinearLR", "MultiStepLR"]):
        raise SystemExit(f"{config}: lr schedule {kinds} is not poly or milestones (+ warm-up)")
    steps = next((p for p in scheds if p["type"] == "MultiStepLR"), None)
    keys = ((rec.get("paramwise_cfg") or {}).get("custom_keys") or {})
    paramwise = None
    if keys and all(set(v) <= {"wd_mult"} for v in keys.values()):
        # MMEngine (and MMCV before it) reads decay_mult; wd_mult is stored and never used
        notes_.append(f"The config sets wd_mult=0 for {sorted(keys)}, which MMEngine's optimizer constructor "
                      "does not read (it reads decay_mult): those weights were trained with the same weight "
                      "decay as all others, and sszoo's recipe does the same.")
    else:
        try:
            pw = paramwise_from_mmengine(rec.get("paramwise_cfg"), rec.get("constructor"))
        except ValueError as e:
            raise SystemExit(f"{config}: {e}")
        paramwise = dataclasses.asdict(pw) if pw is not None else None
    clip = rec.get("clip_grad")
    if clip and (clip.get("norm_type", 2) != 2 or set(clip) - {"max_norm", "norm_type"}):
        raise SystemExit(f"{config}: gradient clipping {clip} is not an L2-norm clip")
    return dict(warmup_iters=warm[0]["end"] - warm[0]["begin"] if warm else 0,
                warmup_start_factor=warm[0].get("start_factor", 1 / 3) if warm else 1.0,
                paramwise=paramwise, betas=list(rec["betas"]) if rec.get("betas") else [0.9, 0.999],
                eps=float(rec["eps"]) if rec.get("eps") else 1e-8,
                clip_grad=float(clip["max_norm"]) if clip else None,
                lr_milestones=[int(m) for m in steps["milestones"]] if steps else [],
                lr_gamma=float(steps.get("gamma", 0.1)) if steps else 0.1), notes_


def facts_entries() -> list[dict]:
    """Entries of every method beyond the four hand-collected ones, from tools/extract_mmseg_facts.py's
    facts, for the configs whose architecture sszoo builds (tools/mmseg_arch.py has their types)."""
    configs = json.load(open(os.path.join(REF, "mmseg_configs.json")))["configs"]
    out = []
    for r in csv.DictReader(open(os.path.join(REF, "mmseg_checkpoints.csv"))):
        if r["method"] in TABLE_METHODS or r["dataset"] not in DATASETS:
            continue
        c = configs[r["config"]]
        try:
            arch = arch_from_mmseg(c["model"])
        except KeyError:
            continue  # an architecture sszoo does not build yet
        base = os.path.basename(r["config"]).removesuffix(".py")
        method = base.split("_")[0]
        if method.startswith("pidnet-"):  # 'pidnet-s_2xb6-...': the variant (s/m/l) shares the first token
            method = "pidnet"
        # config names that start with a backbone or half a name: the method is the metafile's collection
        method = {"fast": "fastscnn", "stdc1": "stdc", "stdc2": "stdc", "mobilenet-v2-d8": "mobilenet_v2",
                  "mobilenet-v3-d8": "mobilenet_v3", "mobilenet-v3-d8-s": "mobilenet_v3",
                  "mobilenet-v3-d8-scratch": "mobilenet_v3", "mobilenet-v3-d8-scratch-s": "mobilenet_v3"
                  }.get(method, method)
        # HRNet's configs are named fcn_hr*: their method is MMSegmentation's ("hrnet"), not FCN
        method = "hrnet" if r["method"] == "hrnet" else method
        # wave-4 config names start with a backbone or a neck (swin-tiny-patch4-..., convnext-tiny_upernet_...,
        # fpn_poolformer_..., beit-base_upernet_...): their method is MMSegmentation's directory
        method = r["method"] if r["method"] in DIRECTORY_METHODS else method
        rec = c["recipe"]
        tc = c.get("test_cfg") or {}
        tr = c["test_resize"]
        notes_ = [r["note"]] if r["note"] else []
        if _has_layout(base):
            gpus = re.match(r"(\d+)xb?\d+", base.split("_")[_layout_index(base.split("_"))])  # 'NxbM' or old 'NxM'
            prefix, tag = method_prefix(base), tag_of(base, r["crop"], False)
        else:  # 'san-vit-b16_coco-stuff164k-640x640' names neither layout nor schedule: the metafile has them
            gpus = re.match(r"(\d+)x", r["hardware"])
            prefix = re.sub(r"[^a-z0-9]+", "_", base.split("_")[0].lower()).strip("_")
            tag = f"{r['crop']}_{int(r['schedule']) // 1000}k"
        if tr is None:
            tr, note = _shortest_edge_resize(r["config"], c["test_pipeline"])
            notes_.append(note)
        if rec["iters"] and int(r["schedule"]) != rec["iters"]:
            notes_.append(f"MMSegmentation 1.2.2's config resolves to {rec['iters']} iterations; the published "
                          f"checkpoint was trained for {int(r['schedule'])}, as its name says.")
        fp16 = bool(rec.get("amp"))
        optim, optim_notes = optimizer_fields(r["config"], rec)
        notes_ += optim_notes
        out.append(dict(
            name=f"{prefix}_{DATASETS[r['dataset']][0]}.{tag}",
            method=method, backbone=r["architecture"].split("|")[0], arch=arch, dataset=DATASETS[r["dataset"]][0],
            test=dict(scale=list(tr["scale"]), keep_ratio=bool(tr["keep_ratio"]), mode=tc.get("mode", "whole"),
                      crop=list(tc["crop_size"]) if tc.get("crop_size") else None,
                      stride=list(tc["stride"]) if tc.get("stride") else None,
                      align_corners=arch["align_corners"], mean=c["model"]["data_preprocessor"]["mean"],
                      std=c["model"]["data_preprocessor"]["std"],
                      size_divisor=(c["model"]["data_preprocessor"].get("test_cfg") or {}).get("size_divisor")),
            recipe=dict(crop=[int(v) for v in r["crop"].split("x")], images_per_gpu=rec["images_per_gpu"],
                        gpus=int(gpus.group(1)) if gpus else 4, iters=int(r["schedule"]), epochs=None,
                        optimizer=rec["optimizer"].lower(), lr=rec["lr"],
                        momentum=rec["momentum"] if rec["momentum"] is not None else 0.0,
                        weight_decay=rec["weight_decay"],
                        poly_power=rec["poly_power"] if rec["poly_power"] is not None else 1.0,
                        min_lr=rec["min_lr"] if rec["min_lr"] is not None else 0.0,
                        aux_loss_weight=aux_weight(r["config"], rec["aux_loss_weight"]),
                        train_scale=rec["train_scale"], ratio_range=rec["ratio_range"],
                        resize_max_size=next((int(t["max_size"]) for t in rec["train_pipeline"]
                                              if t.get("type") == "RandomChoiceResize" and t.get("max_size")), None),
                        cat_max_ratio=rec["cat_max_ratio"], precision="fp16" if fp16 else "fp32",
                        photometric=any(t.get("type") == "PhotoMetricDistortion" for t in rec["train_pipeline"]),
                        bn_momentum=bn_momentum(r["config"], c["model"]),
                        # "dynamic" (AmpOptimWrapper's default) is None: the trainer's fp16 scales dynamically
                        loss_scale=float(rec["loss_scale"]) if fp16 and isinstance(rec["loss_scale"], (int, float))
                        else None,
                        pretrained_backbone=next(iter((c.get("pretrained") or {}).values()), None),
                        **optim),
            reported=dict(miou=num(r["miou"]), miou_msflip=num(r["miou_msflip"]), mem_gb=num(r["mem_gb"]),
                          fps=num(r["fps"]), hardware="V100" if "V100" in r["hardware"] else (r["hardware"] or None),
                          precision="fp16" if fp16 else "fp32"),
            weights=dict(url=r["checkpoint_url"], sha256_prefix=r["ckpt_sha256_prefix"], format="mmseg", url_alt=None,
                         license="Apache-2.0"),
            source=dict(framework="mmsegmentation", config=r["config"], config_url=MMSEG_CONFIG_URL + r["config"],
                        log_url=r["log_url"] or None, config_0x=None, notes=" ".join(notes_)),
            # backbone families with several heads cite the head's paper too
            citations=[CITE[method]] + head_papers(method, arch, base)
            + (["micikevicius2017mixed"] if fp16 else []) + ["mmseg2020"],
            aliases=[base],
        ))
    # the same model, crop and schedule trained at two batch layouts (FastFCN's 4xb2 and 4xb4): the layout
    # joins the tag of each
    names = Counter(e["name"] for e in out)
    for e in out:
        if names[e["name"]] > 1:
            e["name"] += "_" + re.search(r"\d+xb\d+", e["aliases"][0]).group(0)
    return out


def build() -> dict:
    meta_all = json.load(open(os.path.join(REF, "mmseg_recipes.json")))
    meta, recipes = meta_all["datasets"], meta_all["recipes"]
    entries = mmseg_entries(meta, recipes) + facts_entries() + ssseg_entries()
    names = [e["name"] for e in entries]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SystemExit(f"duplicate names: {sorted(dup)}")
    datasets = {}
    for e in entries:
        title = next(t for t, (k, _) in DATASETS.items() if k == e["dataset"])
        rec = dataset_record(title, meta, e["arch"]["num_classes"])
        if e["dataset"] in datasets and datasets[e["dataset"]] != rec:
            raise SystemExit(f"inconsistent dataset record for {e['dataset']}")
        datasets[e["dataset"]] = rec
    return dict(generated_by="tools/generate_zoo.py", mmseg_version=meta_all["mmseg_version"],
                datasets=datasets, defaults=pick_defaults(entries), entries=entries)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="fail if the checked-in table differs")
    a = ap.parse_args()
    text = json.dumps(build(), indent=1, sort_keys=False) + "\n"
    det_text = detection_text()  # the detection entries have their own table, detection.json
    if a.check:
        same = os.path.exists(OUT) and open(OUT).read() == text
        det_same = os.path.exists(DET_OUT) and open(DET_OUT).read() == det_text
        print("zoo.json is up to date" if same else "zoo.json is stale: run python tools/generate_zoo.py")
        print("detection.json is up to date" if det_same else "detection.json is stale: run python tools/generate_zoo.py")
        return 0 if same and det_same else 1
    with open(DET_OUT + ".tmp", "w") as f:
        f.write(det_text)
    os.replace(DET_OUT + ".tmp", DET_OUT)
    tmp = OUT + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, OUT)
    print(f"wrote {len(json.loads(text)['entries'])} entries to {os.path.relpath(OUT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
