"""Golden numbers for the trainer's recipe parity, made with MMSegmentation 1.2.2's own training step.

Run with the oracle environment's python (MMSegmentation, MMEngine, mmcv-lite):

    /work/oracle/bin/python tools/make_train_golden.py [CASE ...]

For each case it builds the config's model (SyncBN -> BN, as ../shared/tools/mmseg_oracle_dump.py does),
gives it that script's seeded weights and BatchNorm statistics calibrated as tools/oracle_dump64.py does,
converts it to float64 (random deep networks amplify float32 rounding, so a float32 golden made on one
CPU does not hold on another to the tolerances below), puts it in training mode and runs STEPS
iterations of the reference's step on one fixed, already-augmented batch:
``model.loss`` (decode + 0.4 x auxiliary CrossEntropyLoss, ignore 255) -> ``parse_losses`` ->
``OptimWrapper.update_params`` (SGD lr 0.01, momentum 0.9, weight decay 5e-4) -> ``PolyLR.step``
(power 0.9, eta_min 1e-4, end ITERS). The OWN_RECIPE cases (the AdamW recipes) build instead their config's own
``optim_wrapper`` (its paramwise_cfg / layer-decay constructor, betas, clip_grad; an AmpOptimWrapper as the plain
OptimWrapper, since the model is float64 on a CPU) and ``param_scheduler`` (LinearLR warm-up ending at WARMUP_END,
PolyLR or MultiStepLR from there to ITERS), run OWN_RECIPE_STEPS steps and record every parameter's lr per step and
its weight decay. The backbones' drop path draws ``torch.rand`` from the global generator, which is seeded before
each step here and in the test (so are PointRend's training points).
The heads' Dropout2d masks are drawn with ``torch.rand`` from a
generator seeded with DROPOUT_SEED and stored in the golden file: torch's own Dropout2d draws its masks
differently from one torch release to another (2.4 and 2.13 give other masks for the same seed), and
the test replays the stored masks. Runs on one CPU thread (so does the test) to fix the order of
floating-point sums.

Also writes tests/golden/train/photometric.pth: OpenCV's 8-bit HSV conversions and the reference's
PhotoMetricDistortion with scripted random draws, for tests/test_train_augment.py.

Written to tests/golden/train/<case>.pt (small: input, labels, per-step losses and learning rates (the base lr's;
per parameter in ``param_lrs``),
norms of every updated parameter/buffer and of every parameter's change, and a few full tensors).
No weights are stored: tests/test_train_parity.py regenerates them with tests/oracle_weights.py.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle_dump64 import randomise64_  # noqa: E402
from oracle_models import build_reference_model  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "tests", "golden", "train")

STEPS = 3
ITERS = 5              # poly schedule length, short so the lr visibly changes between the steps
DROPOUT_SEED = 1234
# name: (mmseg config, num_classes, batch, height, width, weight seed)
CASES = {
    "fcn_r18_d8": ("fcn_r18-d8_4xb2-80k_cityscapes-512x1024", 5, 2, 56, 72, 3),
    "pspnet_r18_d8_769": ("pspnet_r18-d8_4xb2-80k_cityscapes-769x769", 4, 4, 48, 64, 7),
    # EncNet: the SE loss (sigmoid cross-entropy on per-image class presence, weight 0.2) beside the CE
    "encnet_r50_d8": ("encnet_r50-d8_4xb2-40k_cityscapes-512x1024", 5, 2, 56, 72, 11),
    # PointRend: FPN neck, cascade FPN head + point head (uncertainty-sampled training points, their CE),
    # and the recipe's linear warm-up before the poly schedule
    "pointrend_r50": ("pointrend_r50_4xb2-80k_cityscapes-512x1024", 5, 2, 64, 80, 13),
    # BiSeNetV1 (R-18 context path): two auxiliary FCN heads on the context path, each weighted 1.0; the
    # recipe's lr 0.025 and its linear warm-up (start factor 0.1) before the poly schedule
    "bisenetv1_r18_d32": ("bisenetv1_r18-d32_4xb4-160k_cityscapes-1024x1024", 4, 2, 41, 49, 17),
    # OCRNet: HRNetV2 W18-Small, cascade FCN head (loss weight 0.4) -> OCR head (1.0) on the FCN head's logits,
    # which the reference computes a second time (fresh BN statistics) for the OCR head; odd label size
    "ocrnet_hr18s": ("ocrnet_hr18s_4xb2-40k_cityscapes-512x1024", 5, 2, 41, 57, 17),
    # wave 4, each with its config's own AdamW recipe (OWN_RECIPE): decay_mult 0 on the norms and Swin's
    # relative position bias tables; the backbones' drop path (torch.rand per sample) and the heads' dropout
    "swin_t_upernet": ("swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512", 4, 2, 29, 37, 19),
    # DeiT-S: decay_mult 0 on cls_token, pos_embed and the norms; the position embedding resized to 2 x 3 patches
    "vit_deit_s16_upernet": ("vit_deit-s16_upernet_8xb2-80k_ade20k-512x512", 4, 2, 33, 47, 23),
    # ConvNeXt-T: MMSegmentation's stage-wise lr decay (LearningRateDecayOptimizerConstructor, rate 0.9 over 6
    # layers); its AmpOptimWrapper runs as the plain OptimWrapper (same update, no loss scaling) in float64
    "convnext_t_upernet": ("convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512", 4, 2, 41, 49, 29),
    # SegFormer MiT-B0: the head's lr x 10 ("head" matches every decode_head parameter), decay_mult 0 on the norms
    # and the position blocks; no auxiliary head
    "segformer_mit_b0": ("segformer_mit-b0_8xb2-160k_ade20k-512x512", 4, 2, 37, 45, 31),
    # PSPNet R-50 (rsb): AdamW with gradient clipping (max L2 norm 1) and LinearLR + MultiStepLR; batch 4 (the
    # pyramid's 1 x 1 bin normalises over the batch alone: over 2 values it amplifies rounding 1e4-fold a step)
    "pspnet_r50_d8_rsb": ("pspnet_r50-d8-rsb_4xb2-adamw-80k_cityscapes-512x1024", 4, 4, 27, 35, 37),
    # DeepLabV3+ R-50 Mapillary: the backbone's lr x 0.1 (custom key "backbone"), clipping at max norm 0.01
    "deeplabv3plus_r50_d8_mapillary": ("deeplabv3plus_r50-d8_4xb2-300k_mapillay_v1_65-1280x1280", 4, 2, 33, 41, 41),
    # Twins-SVT-S + Semantic FPN and PoolFormer-S12 + Semantic FPN: AdamW over one group, PolyLR without warm-up
    # (Twins': eta_min = lr, a constant lr); Twins' drop path (0.2), PoolFormer's frozen first patch embedding
    "twins_svt_s_fpn": ("twins_svt-s_fpn_fpnhead_8xb4-80k_ade20k-512x512", 4, 2, 37, 43, 47),
    "poolformer_s12_fpn": ("fpn_poolformer_s12_8xb4-40k_ade20k-512x512", 4, 2, 37, 43, 53),
    # Mask2Former R-50: AdamW with the backbone's lr x 0.1, decay_mult 0 on the norms and the query / level
    # embeddings, clipping at max norm 0.01; the loss of all 10 prediction layers (Hungarian matching and the
    # point-sampled mask losses, whose torch.rand points both sides draw after the step's seed); 100 queries
    # (the config's), labels of 2-3 classes per image (MASK_CLASSES) so that the matching assigns a few queries
    "mask2former_r50": ("mask2former_r50_8xb2-90k_cityscapes-512x1024", 4, 2, 33, 45, 59),
}
# cases whose recipe warms up: MMEngine's LinearLR(start_factor, begin=0, end=W) then PolyLR(begin=W, end=ITERS),
# with W shortened from the config's 200 so that the three steps see the warm-up and the poly decay
WARMUP = {"pointrend_r50": (2, 0.1), "bisenetv1_r18_d32": (2, 0.1)}
# the recipe's base lr where it is not the 0.01 of configs/_base_/schedules/schedule_80k.py
LR = {"bisenetv1_r18_d32": 0.025}
# Cases trained with the config's own optim_wrapper (AdamW, its paramwise_cfg or layer-decay constructor, clip_grad;
# an AmpOptimWrapper runs as a plain OptimWrapper in float64) and its own param_scheduler, shortened to ITERS: a
# LinearLR warm-up ends at WARMUP_END, the PolyLR / MultiStepLR after it starts there and ends at ITERS, and
# MultiStepLR's milestones (counted from its begin) become SHORT_MILESTONES. Every parameter's lr at every step and
# its weight decay are recorded (the groups differ in both).
OWN_RECIPE = {"swin_t_upernet", "vit_deit_s16_upernet", "convnext_t_upernet", "segformer_mit_b0", "pspnet_r50_d8_rsb",
              "deeplabv3plus_r50_d8_mapillary", "twins_svt_s_fpn", "poolformer_s12_fpn", "mask2former_r50"}
# mask-classification cases: the classes each image's label map holds (the rest ignored or absent)
MASK_CLASSES = {"mask2former_r50": ((0, 2, 3), (1, 3))}
# one step more: the warm-up's first lr (tiny), its end (the base lr), then the decay or the milestone
OWN_RECIPE_STEPS = 4
WARMUP_END = 2
SHORT_MILESTONES = [1]
# the training points and the backbones' drop-path draws are torch.rand draws from the global RNG, seeded before each
# step here and in the test: both sides draw the same numbers when their modules draw in the same order and dtype
POINT_SEED = 4321
FULL_TENSORS = ("decode_head.conv_seg.weight", "decode_head.conv_seg.bias", "auxiliary_head.conv_seg.weight",
                "decode_head.0.conv_seg.weight", "decode_head.cls_embed.weight", "decode_head.level_embed.weight", "decode_head.1.fc_seg.weight",
                "decode_head.1.conv_seg.weight", "backbone.conv1.weight",
                "backbone.stem.0.weight", "backbone.layer4.1.bn2.running_mean", "backbone.layer4.1.bn2.running_var",
                # BiSeNetV1: BatchNorm statistics of globally pooled (1 x 1) maps, an auxiliary classifier
                "backbone.context_path.arm32.atten_conv_layer.1.bn.running_var",
                "backbone.ffm.conv_atten.0.bn.running_mean", "auxiliary_head.1.conv_seg.weight")


@contextlib.contextmanager
def recorded_dropout2d(seed: int, masks: list):
    """Replace F.dropout2d (what nn.Dropout2d calls) by one whose keep masks (N x C, bool) come from
    ``torch.rand`` with a seeded generator and are appended to ``masks``, in call order."""
    import torch.nn.functional as F
    real, gen = F.dropout2d, torch.Generator().manual_seed(seed)

    def dropout2d(x, p=0.5, training=True, inplace=False):
        if not training or p == 0:
            return x
        keep = torch.rand(x.shape[0], x.shape[1], generator=gen) >= p
        masks.append(keep)
        return x * keep[:, :, None, None].to(x.dtype) / (1 - p)

    F.dropout2d = dropout2d
    try:
        yield
    finally:
        F.dropout2d = real


@contextlib.contextmanager
def float64_loss_by_feat(head, assignments: list):
    """Run ``head.loss_by_feat`` (MMDetection's Mask2Former loss) in float64, as
    tools/make_mask2former_loss_golden.py does: its ``.float()`` casts of the targets would meet float64
    predictions in ``grid_sample`` / ``einsum``, so during the call ``Tensor.float`` converts to float64 and the
    default dtype is float64 (its ``torch.rand`` points are then float64, as sszoo's for a float64 model). The
    forward is not patched. Every (layer, image)'s ``assigned_gt_inds`` is appended to ``assignments``."""
    real_loss, real_assign = head.loss_by_feat, head.assigner.assign

    def assign(*args, **kwargs):
        result = real_assign(*args, **kwargs)
        assignments.append(result.gt_inds.clone())
        return result

    def loss_by_feat(*args, **kwargs):
        old_dtype, old_float = torch.get_default_dtype(), torch.Tensor.float
        torch.set_default_dtype(torch.float64)
        torch.Tensor.float = lambda self, *a, **k: self.to(torch.float64)
        try:
            return real_loss(*args, **kwargs)
        finally:
            torch.Tensor.float = old_float
            torch.set_default_dtype(old_dtype)

    head.loss_by_feat, head.assigner.assign = loss_by_feat, assign
    try:
        yield
    finally:
        del head.loss_by_feat, head.assigner.assign


def _aux_weight(aux) -> float:
    """The auxiliary heads' loss weight (0 without one; several heads must share it, as the trainer's one
    ``aux_weight`` does)."""
    if not aux:
        return 0.0
    weights = {h.loss_decode.loss_weight for h in (aux if isinstance(aux, list) else [aux])}
    if len(weights) != 1:
        raise ValueError(f"auxiliary heads with different loss weights {sorted(weights)}")
    return weights.pop()


def own_recipe(model, cfg) -> tuple:
    """The config's optim_wrapper and param_scheduler for ``model``, the schedule shortened to ITERS.

    Returns (optim wrapper, schedulers, the recipe as sszoo TrainConfig fields, the shortened settings that the
    test passes to config_from_entry)."""
    import copy

    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import PARAM_SCHEDULERS

    ow = copy.deepcopy(cfg.optim_wrapper.to_dict())
    if ow["type"] == "AmpOptimWrapper":  # no fp16 on a float64 CPU model: the same update without loss scaling
        ow["type"] = "OptimWrapper"
        ow.pop("loss_scale", None), ow.pop("dtype", None)
    if ow["type"] != "OptimWrapper":
        raise ValueError(f"optim wrapper {ow['type']}")
    wrapper = build_optim_wrapper(model, ow)
    opt = ow["optimizer"]
    clip = ow.get("clip_grad")
    if clip and clip.get("norm_type", 2) != 2:
        raise ValueError(f"clip_grad {clip}")
    recipe = dict(optimizer=opt["type"].lower(), lr=float(opt["lr"]), weight_decay=float(opt.get("weight_decay", 0)),
                  clip_grad=float(clip["max_norm"]) if clip else None)
    if opt["type"] in ("Adam", "AdamW"):
        recipe.update(betas=list(opt.get("betas", (0.9, 0.999))), eps=float(opt.get("eps", 1e-8)))
    else:
        recipe.update(momentum=float(opt.get("momentum", 0)))
    schedulers, short = [], dict(iters=ITERS, warmup_iters=0)
    for s in cfg.param_scheduler:
        s = dict(s)
        if s.pop("by_epoch", True):
            raise ValueError(f"epoch-based scheduler {s}")
        kind = s["type"]
        if kind == "LinearLR":
            if s.get("begin", 0) != 0:
                raise ValueError(f"warm-up {s}")
            s["end"] = short["warmup_iters"] = WARMUP_END
            recipe["warmup_start_factor"] = float(s.get("start_factor", 1 / 3))
        elif kind in ("PolyLR", "MultiStepLR"):
            s.update(begin=short["warmup_iters"], end=ITERS)
            if kind == "PolyLR":
                recipe.update(poly_power=float(s.get("power", 1.0)), min_lr=float(s.get("eta_min", 0.0)))
            else:
                recipe["lr_gamma"] = float(s.get("gamma", 0.1))
                s["milestones"] = short["lr_milestones"] = list(SHORT_MILESTONES)
        else:
            raise ValueError(f"scheduler {kind}")
        schedulers.append(PARAM_SCHEDULERS.build(dict(s, optimizer=wrapper, by_epoch=False)))
    return wrapper, schedulers, recipe, short



def make_case(name: str) -> dict:
    from mmengine.optim import LinearLR, PolyLR, build_optim_wrapper
    from oracle_dump64 import _point_sample_in_input_dtype

    _point_sample_in_input_dtype()  # PointRend makes its points in float32; the float64 model needs float64
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules

    register_all_modules()
    config, k, n, h, w, seed = CASES[name]
    _, model, cfg = build_reference_model(config, k)
    calib = (2, 3, max(h, 64), max(w, 64))
    randomise64_(model, seed, calib)  # leaves the model in float64
    for m in model.modules():  # randomise_ leaves BN in cumulative mode; training uses momentum 0.1 (the BN default)
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.1
    model.train()
    initial = {kk: v.detach().clone() for kk, v in model.state_dict().items()}

    g = torch.Generator().manual_seed(seed + 100)
    x = torch.randn(n, 3, h, w, generator=g).double()
    label = torch.randint(0, k, (n, h, w), generator=g)
    label[torch.rand(n, h, w, generator=g) < 0.15] = 255   # some ignored pixels
    label[:, :, -5:] = 255                                   # and a padded-looking border
    if name in MASK_CLASSES:  # few classes per image: one target mask per class present
        for i, classes in enumerate(MASK_CLASSES[name]):
            keep = label[i] != 255
            label[i][keep] = torch.tensor(classes)[label[i][keep] % len(classes)]
    mask_head = type(model.decode_head).__name__ == "Mask2FormerHead"
    if mask_head:
        # the config's class weights are for its 19 classes (+ "no object" 0.1); for k classes the same
        # (the head keeps its own copy, made at construction, for the loss's avg_factor: set both)
        model.decode_head.loss_cls.class_weight = model.decode_head.class_weight = [1.0] * k + [0.1]
    samples = []
    for i in range(n):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=label[i][None])
        s.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        samples.append(s)

    if name in OWN_RECIPE:
        optim_wrapper, schedulers, recipe, short = own_recipe(model, cfg)
        lr = recipe["lr"]
    else:
        # the recipe of every SGD entry: configs/_base_/schedules/schedule_80k.py (some with another base lr)
        lr = LR.get(name, 0.01)
        optim_wrapper = build_optim_wrapper(model, dict(type="OptimWrapper", optimizer=dict(
            type="SGD", lr=lr, momentum=0.9, weight_decay=0.0005), clip_grad=None))
        warm, start_factor = WARMUP.get(name, (0, 1.0))
        if warm:
            schedulers = [LinearLR(optim_wrapper.optimizer, start_factor=start_factor, begin=0, end=warm,
                                   by_epoch=False),
                          PolyLR(optim_wrapper.optimizer, eta_min=1e-4, power=0.9, begin=warm, end=ITERS,
                                 by_epoch=False)]
        else:
            schedulers = [PolyLR(optim_wrapper.optimizer, eta_min=1e-4, power=0.9, begin=0, end=ITERS, by_epoch=False)]
    # MMEngine's groups hold frozen parameters too (PoolFormer's first patch embedding); sszoo's hold the trained ones
    names = {id(p): kk for kk, p in model.named_parameters() if p.requires_grad}
    groups = optim_wrapper.optimizer.param_groups
    param_lrs = {names[id(p)]: [] for g in groups for p in g["params"] if id(p) in names}

    steps = OWN_RECIPE_STEPS if name in OWN_RECIPE else STEPS
    losses, lrs, masks, assignments = [], [], [], []
    for step in range(steps):
        # the base lr's schedule (the schedulers keep each group's unscheduled lr as its initial_lr)
        lrs.append(lr * groups[0]["lr"] / groups[0]["initial_lr"] if name in OWN_RECIPE else groups[0]["lr"])
        for g in groups:
            for p in g["params"]:
                if id(p) in names:
                    param_lrs[names[id(p)]].append(g["lr"])
        torch.manual_seed(POINT_SEED + step)
        recorded: list = []
        with recorded_dropout2d(DROPOUT_SEED + step, masks), \
                (float64_loss_by_feat(model.decode_head, recorded) if mask_head else contextlib.nullcontext()):
            loss_dict = model.loss(x, samples)
        if step == 0:
            assignments = recorded
        total, _ = model.parse_losses(loss_dict)
        # every decode-head term (EncNet adds loss_se; a cascade's are decode_0.*, decode_1.*), every
        # auxiliary term, and the total
        terms = {p: sum((v for kk, v in loss_dict.items() if kk.startswith(p) and "loss" in kk), torch.zeros(()))
                 for p in ("decode", "aux")}
        losses.append([terms["decode"].item(), terms["aux"].item(), total.item()])
        optim_wrapper.update_params(total)
        for scheduler in schedulers:
            scheduler.step()

    final = {kk: v.detach().clone() for kk, v in model.state_dict().items()}
    last_head = model.decode_head[-1] if isinstance(model.decode_head, torch.nn.ModuleList) else model.decode_head
    params = dict(model.named_parameters())
    norms = {kk: v.double().norm().item() for kk, v in final.items() if v.is_floating_point()}
    delta_norms = {kk: (final[kk].double() - initial[kk].double()).norm().item() for kk in params}
    info = dict(dtype="float64", config=config, num_classes=k, batch=n, height=h, width=w, seed=seed,
                calib_shape=list(calib), steps=steps, iters=ITERS, dropout_seed=DROPOUT_SEED, point_seed=POINT_SEED,
                align_corners=bool(last_head.align_corners))
    if mask_head:  # (its R-50 stem's 7 x 7 weight, 75 KB, is left out of the tensors to keep the file small)
        # the parameters the config freezes (its backbone's norm_cfg requires_grad=False: the BN weights and biases;
        # their running statistics still update), the reference's loss terms (the test checks sszoo's head returns
        # the same keys); the recipe's paramwise_cfg
        # and sszoo's architecture record, so that the test runs before the zoo entries are generated
        from mmseg_arch import arch_from_mmseg
        info.update(frozen=sorted(kk for kk, p in model.named_parameters() if not p.requires_grad),
                    loss_keys=sorted(loss_dict), paramwise_cfg=cfg.optim_wrapper.paramwise_cfg.to_dict(),
                    arch=arch_from_mmseg(cfg.model.to_dict()))
    aux_weight = _aux_weight(cfg.model.get("auxiliary_head"))
    if name in OWN_RECIPE:
        # the recipe as sszoo's TrainConfig fields (the test checks the zoo entry's), and the shortened schedule
        info.update(recipe=dict(recipe, aux_weight=aux_weight), short=short,
                    param_weight_decay={names[id(p)]: g["weight_decay"] for g in groups for p in g["params"]
                                        if id(p) in names})
    else:
        info.update(lr=lr, momentum=0.9, weight_decay=0.0005, min_lr=1e-4, power=0.9, warmup_iters=warm,
                    warmup_start_factor=start_factor, aux_weight=aux_weight)
    return {"info": json.dumps(info), "input": x, "label": label, "losses": torch.tensor(losses, dtype=torch.float64),
            "lrs": torch.tensor(lrs, dtype=torch.float64), "norms": json.dumps(norms),
            "delta_norms": json.dumps(delta_norms), "tensors": {kk: final[kk] for kk in FULL_TENSORS
                                                 if kk in final and not (mask_head and kk == "backbone.conv1.weight")},
            "dropout_masks": masks, "param_lrs": json.dumps(param_lrs),
            **({"assigned": torch.stack(assignments).reshape(-1, n, assignments[0].numel())} if mask_head else {})}


class _Scripted:
    """Stands in for numpy.random inside the reference's PhotoMetricDistortion: returns scripted draws."""

    def __init__(self, draws: list) -> None:
        self.draws = list(draws)

    def randint(self, *args):
        return self.draws.pop(0)

    def uniform(self, *args):
        return self.draws.pop(0)


# (draws in the order the reference makes them, the same order sszoo's photometric_distortion uses)
PHOTO_SCRIPTS = {
    # brightness +20.5, contrast first (mode 1) x1.3, saturation x0.6, hue +7
    "contrast_first": [1, 20.5, 1, 1, 1.3, 1, 0.6, 1, 7],
    # brightness -25, contrast last (mode 0): saturation x1.4, hue -15, contrast x0.7
    "contrast_last": [1, -25.0, 0, 1, 1.4, 1, -15, 1, 0.7],
    # only hue -18 (the lower end) and contrast skipped
    "hue_only": [0, 1, 0, 0, 1, -18, 0],
}


RESIZE_SIZES = ((20, 29), (74, 106), (50, 61), (91, 140), (37, 53))


def make_photometric() -> dict:
    """The reference's 8-bit HSV conversions and PhotoMetricDistortion on a random image (RGB stored)."""
    import cv2
    import numpy as np
    import mmseg.datasets.transforms.transforms as T

    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    rgb[0, :8] = [[v, v, v] for v in range(0, 256, 32)]      # greys (saturation 0)
    rgb[1, :6] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255]]
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    hsv_in = np.stack([rng.integers(0, 180, (24, 40)), rng.integers(0, 256, (24, 40)),
                       rng.integers(0, 256, (24, 40))], -1).astype(np.uint8)
    back = cv2.cvtColor(hsv_in, cv2.COLOR_HSV2BGR)[..., ::-1]
    out = {"rgb": torch.from_numpy(rgb.copy()), "hsv": torch.from_numpy(hsv), "hsv_in": torch.from_numpy(hsv_in),
           "hsv_to_rgb": torch.from_numpy(np.ascontiguousarray(back)), "scripts": json.dumps(PHOTO_SCRIPTS)}
    # the reference's image resize: cv2 INTER_LINEAR on uint8 (up, down, odd factors, exact 2x down)
    src = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    out["resize_src"] = torch.from_numpy(src.copy())
    for h, w in RESIZE_SIZES:
        out[f"resize_{h}x{w}"] = torch.from_numpy(cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR))
    saved = T.random
    try:
        for name, draws in PHOTO_SCRIPTS.items():
            T.random = _Scripted(draws)
            res = T.PhotoMetricDistortion().transform({"img": bgr.copy()})
            out["photo_" + name] = torch.from_numpy(np.ascontiguousarray(res["img"][..., ::-1]))
    finally:
        T.random = saved
    return out


def main(argv: list[str]) -> None:
    # one thread: the summation order of the CPU kernels is then fixed, as in the test (which also uses one)
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    if not argv or "photometric" in argv:
        torch.save(make_photometric(), os.path.join(OUT, "photometric.pth"))
        print("photometric golden written")
        argv = [a for a in argv if a != "photometric"]
        if not argv and "photometric" in sys.argv[1:]:
            return
    for name in argv or list(CASES):
        golden = make_case(name)
        path = os.path.join(OUT, name + ".pt")
        torch.save(golden, path)
        print(name, "losses per step (decode, aux, total):", golden["losses"].tolist(), "lrs:", golden["lrs"].tolist())


if __name__ == "__main__":
    main(sys.argv[1:])
