"""Golden numbers for the trainer's recipe parity, made with MMSegmentation 1.2.2's own training step.

Run with the oracle environment's python (MMSegmentation, MMEngine, mmcv-lite):

    /work/oracle/bin/python tools/make_train_golden.py [CASE ...]

For each case it builds the config's model (SyncBN -> BN, as ../shared/tools/mmseg_oracle_dump.py does),
gives it that script's seeded weights and calibrated BatchNorm statistics, puts it in training mode and
runs STEPS iterations of the reference's step on one fixed, already-augmented batch:
``model.loss`` (decode + 0.4 x auxiliary CrossEntropyLoss, ignore 255) -> ``parse_losses`` ->
``OptimWrapper.update_params`` (SGD lr 0.01, momentum 0.9, weight decay 5e-4) -> ``PolyLR.step``
(power 0.9, eta_min 1e-4, end ITERS). Dropout draws from torch's global generator, seeded before
each step with ``DROPOUT_SEED + step``.

Written to tests/golden/train/<case>.pt (small: input, labels, per-step losses and learning rates,
norms of every updated parameter/buffer and of every parameter's change, and a few full tensors).
No weights are stored: tests/test_train_parity.py regenerates them with tests/oracle_weights.py.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DUMP = os.environ.get("ORACLE_DUMP", os.path.join(ROOT, os.pardir, "shared", "tools", "mmseg_oracle_dump.py"))
OUT = os.path.join(ROOT, "tests", "golden", "train")

STEPS = 3
ITERS = 5              # poly schedule length, short so the lr visibly changes between the steps
DROPOUT_SEED = 1234
# name: (mmseg config, num_classes, batch, height, width, weight seed)
CASES = {
    "fcn_r18_d8": ("fcn_r18-d8_4xb2-80k_cityscapes-512x1024", 5, 2, 56, 72, 3),
    "pspnet_r18_d8_769": ("pspnet_r18-d8_4xb2-80k_cityscapes-769x769", 4, 4, 48, 64, 7),
}
FULL_TENSORS = ("decode_head.conv_seg.weight", "decode_head.conv_seg.bias", "auxiliary_head.conv_seg.weight",
                "backbone.stem.0.weight", "backbone.layer4.1.bn2.running_mean", "backbone.layer4.1.bn2.running_var")


def _dump_module():
    spec = importlib.util.spec_from_file_location("mmseg_oracle_dump", DUMP)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build(config: str, num_classes: int):
    from mmengine import Config
    from mmseg.registry import MODELS

    dump = _dump_module()
    cfg = Config.fromfile(dump.find_config(config))
    mcfg = cfg.model
    mcfg.pop("pretrained", None)
    if mcfg.backbone.get("init_cfg"):
        mcfg.backbone.init_cfg = None

    def plain_bn(d):
        if isinstance(d, dict):
            for k, v in d.items():
                if k == "norm_cfg" and isinstance(v, dict) and v.get("type") == "SyncBN":
                    v["type"] = "BN"
                else:
                    plain_bn(v)
        elif isinstance(d, list):
            for v in d:
                plain_bn(v)

    plain_bn(mcfg)
    for head in ("decode_head", "auxiliary_head"):
        mcfg[head].num_classes = num_classes
    return dump, MODELS.build(mcfg), cfg


def make_case(name: str) -> dict:
    from mmengine.optim import PolyLR, build_optim_wrapper
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules

    register_all_modules()
    config, k, n, h, w, seed = CASES[name]
    dump, model, cfg = build(config, k)
    calib = (2, 3, max(h, 64), max(w, 64))
    dump.randomise_(model, seed, calib)
    for m in model.modules():  # randomise_ leaves BN in cumulative mode; training uses momentum 0.1 (the BN default)
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.1
    model.train()
    initial = {kk: v.detach().clone() for kk, v in model.state_dict().items()}

    g = torch.Generator().manual_seed(seed + 100)
    x = torch.randn(n, 3, h, w, generator=g)
    label = torch.randint(0, k, (n, h, w), generator=g)
    label[torch.rand(n, h, w, generator=g) < 0.15] = 255   # some ignored pixels
    label[:, :, -5:] = 255                                   # and a padded-looking border
    samples = []
    for i in range(n):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=label[i][None])
        s.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        samples.append(s)

    # the recipe of every SGD entry: configs/_base_/schedules/schedule_80k.py
    optim_wrapper = build_optim_wrapper(model, dict(type="OptimWrapper", optimizer=dict(
        type="SGD", lr=0.01, momentum=0.9, weight_decay=0.0005), clip_grad=None))
    scheduler = PolyLR(optim_wrapper.optimizer, eta_min=1e-4, power=0.9, begin=0, end=ITERS, by_epoch=False)

    losses, lrs = [], []
    for step in range(STEPS):
        lrs.append(optim_wrapper.optimizer.param_groups[0]["lr"])
        torch.manual_seed(DROPOUT_SEED + step)
        loss_dict = model.loss(x, samples)
        total, _ = model.parse_losses(loss_dict)
        losses.append([loss_dict["decode.loss_ce"].item(), loss_dict["aux.loss_ce"].item(), total.item()])
        optim_wrapper.update_params(total)
        scheduler.step()

    final = {kk: v.detach().clone() for kk, v in model.state_dict().items()}
    params = dict(model.named_parameters())
    norms = {kk: v.double().norm().item() for kk, v in final.items() if v.is_floating_point()}
    delta_norms = {kk: (final[kk].double() - initial[kk].double()).norm().item() for kk in params}
    info = dict(config=config, num_classes=k, batch=n, height=h, width=w, seed=seed, calib_shape=list(calib),
                steps=STEPS, iters=ITERS, dropout_seed=DROPOUT_SEED, lr=0.01, momentum=0.9, weight_decay=0.0005,
                min_lr=1e-4, power=0.9, aux_weight=0.4, align_corners=bool(model.decode_head.align_corners))
    return {"info": json.dumps(info), "input": x, "label": label, "losses": torch.tensor(losses, dtype=torch.float64),
            "lrs": torch.tensor(lrs, dtype=torch.float64), "norms": json.dumps(norms),
            "delta_norms": json.dumps(delta_norms), "tensors": {kk: final[kk] for kk in FULL_TENSORS}}


def main(argv: list[str]) -> None:
    os.makedirs(OUT, exist_ok=True)
    for name in argv or list(CASES):
        golden = make_case(name)
        path = os.path.join(OUT, name + ".pt")
        torch.save(golden, path)
        print(name, "losses per step (decode, aux, total):", golden["losses"].tolist(), "lrs:", golden["lrs"].tolist())


if __name__ == "__main__":
    main(sys.argv[1:])
