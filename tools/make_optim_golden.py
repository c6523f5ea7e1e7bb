"""Golden optimizer parameter groups: MMEngine's (and MMSegmentation's layer-decay) constructors on real configs.

    ORACLE=/path/to/oracle/bin/python; $ORACLE tools/make_optim_golden.py

For each config below, the reference model is built (random weights, no pretrained files) and its
``optim_wrapper`` is built by MMEngine exactly as training would; the golden records, for every
parameter by name, the lr multiplier (its group's lr over the base lr) and the weight decay of its group.
tests/test_optim_groups.py builds the same network in sszoo (on the meta device) and compares
sszoo.train.optim.param_groups parameter by parameter. Writes tests/golden/train/optim_groups.json.
"""
from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
OUT = os.path.join(ROOT, "tests", "golden", "train", "optim_groups.json")

# one config per kind of paramwise_cfg of the wave-4 recipes
CONFIGS = [
    "segformer_mit-b0_8xb2-160k_ade20k-512x512",          # custom keys head (lr x10), norm, pos_block
    "swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512",  # absolute_pos_embed, norm, rel. bias
    "convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512",  # stage-wise lr decay
    "convnext-base_upernet_8xb2-amp-160k_ade20k-512x512",  # stage-wise, 12 layers
    "beit-base_upernet_8xb2-160k_ade20k-640x640",          # layer-wise (ViT) decay 0.9
    "mae-base_upernet_8xb2-amp-160k_ade20k-512x512",       # layer-wise decay 0.65
    "mask2former_r50_8xb2-90k_cityscapes-512x1024",        # backbone lr x0.1, norm_decay_mult 0, embeddings
    "vit_deit-s16_upernet_8xb2-80k_ade20k-512x512",        # cls_token, norm, pos_embed
    "pspnet_r18-d8_4xb2-80k_cityscapes-512x1024",          # SGD with the synthetic rules of OVERRIDE
]
# not a published recipe: rules that exercise the longest-key match, a key inside another and norm_decay_mult
# on a network sszoo built before wave 4 (the golden records the paramwise_cfg it used)
OVERRIDE = {"pspnet_r18-d8_4xb2-80k_cityscapes-512x1024": dict(
    custom_keys={"backbone": dict(lr_mult=0.1), "backbone.layer1": dict(lr_mult=0.5, decay_mult=0.0),
                 "conv_seg": dict(lr_mult=10.0)}, norm_decay_mult=0.0)}


def groups_of(config: str) -> dict:
    import torch
    from mmengine.optim import build_optim_wrapper
    from oracle_models import build_reference_model

    torch.manual_seed(0)
    _, model, cfg = build_reference_model(config)
    ow = cfg.optim_wrapper.copy()
    if config in OVERRIDE:
        ow.paramwise_cfg = OVERRIDE[config]
    if ow.get("type") == "AmpOptimWrapper":  # needs a GPU; the parameter groups are the constructor's alone
        ow.type = "OptimWrapper"
        for k in ("loss_scale", "dtype"):
            ow.pop(k, None)
    wrapper = build_optim_wrapper(model, ow)
    opt = wrapper.optimizer
    base_lr, base_wd = opt.defaults["lr"], opt.defaults.get("weight_decay", 0.0)
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for g in opt.param_groups:
        for p in g["params"]:
            out[names[id(p)]] = [g["lr"] / base_lr, g.get("weight_decay", base_wd)]
    return dict(lr=base_lr, weight_decay=base_wd, optimizer=type(opt).__name__, params=out,
                paramwise_cfg=ow.get("paramwise_cfg"), constructor=ow.get("constructor"),
                order=[n for n, _ in model.named_parameters()])


def main() -> None:
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    golden = {c: groups_of(c) for c in (sys.argv[1:] or CONFIGS)}
    if os.path.exists(OUT) and sys.argv[1:]:
        golden = {**json.load(open(OUT)), **golden}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT + ".tmp", "w") as f:
        json.dump(golden, f, indent=0, sort_keys=True)
    os.replace(OUT + ".tmp", OUT)
    for c, g in golden.items():
        mults = sorted({tuple(v) for v in g["params"].values()})
        print(c, g["optimizer"], len(g["params"]), "params,", len(mults), "distinct (lr_mult, wd)")


if __name__ == "__main__":
    main()
