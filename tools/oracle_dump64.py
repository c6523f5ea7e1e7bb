"""Reference forward of an MMSegmentation 1.2.2 model in float64, for machine-independent golden files.

    ORACLE_PYTHON tools/oracle_dump64.py CONFIG OUT [--height --width --batch --seed --mode --crop --stride
                                                     --num-classes]

The same model, seeded weights and input as ../shared/tools/mmseg_oracle_dump.py (whose helpers it
imports), with one difference: BatchNorm calibration and the forward run in float64, and the calibrated
statistics are rounded to float32, so the weights are exactly float32 numbers that sszoo regenerates bit
for bit (tests/oracle_weights.py) and the reference logits carry no float32 rounding.

Why: random deep networks amplify rounding. In float32 the logits of a random ResNet-101 change by about
1e-4 of their scale between two CPUs (other kernels, other summation order), which is the parity bound
itself; a float32 golden made on one machine then fails on another for no fault of the model code. In
float64 the same amplification leaves about 1e-12.

Writes OUT/input.pt (float64), OUT/logits.pt (float64) and OUT/info.json (as the shared script, plus
``dtype``, ``calib_shape``, ``n_params`` and ``arch``, sszoo's architecture record from tools/mmseg_arch.py);
no checkpoint: the weights are regenerated from the seed. Buffers that are neither parameters nor BatchNorm
statistics (EMANet's bases, drawn from the global generator while the model is built) cannot be
regenerated that way: those few go to OUT/buffers.pt (buffers that the constructor makes alike under any
seed, such as Swin's relative position index, do not).
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mmseg_arch import arch_from_mmseg  # noqa: E402
from oracle_models import _plain_bn, dump_module  # noqa: E402
from mmengine import Config  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from mmseg.utils import register_all_modules  # noqa: E402


def _point_sample_in_input_dtype() -> None:
    """PointRend's head makes its test points in float32 and grid_sample needs them in the features' dtype:
    in float64 cast them (a no-op in float32, where the reference runs as published)."""
    from mmseg.models.decode_heads import point_head

    original = point_head.point_sample
    if getattr(original, "casts_points", False):
        return

    def point_sample(input, points, *args, **kwargs):
        return original(input, points.to(input.dtype), *args, **kwargs)

    point_sample.casts_points = True
    point_head.point_sample = point_sample


def _matrix_decomposition_in_input_dtype() -> None:
    """SegNeXt's NMF draws its initial bases with ``torch.rand`` in the default dtype (float32) and multiplies
    them with the map, which fails on a float64 map: in float64 cast the normalised bases to the map's dtype
    as the iterations start (a no-op in float32). The draw itself (its numbers and its place in the global
    generator's sequence) is unchanged; sszoo's NMF2D casts at the same point."""
    from mmseg.models.decode_heads import ham_head

    base = ham_head.Matrix_Decomposition_2D_Base
    original = base.local_inference
    if getattr(original, "casts_bases", False):
        return

    def local_inference(self, x, bases):
        return original(self, x, bases.to(x.dtype))

    local_inference.casts_bases = True
    base.local_inference = local_inference


def draw_parameters(module, g: torch.Generator) -> None:
    """The shared script's seeded parameters, drawn in registration order: He-scaled weights, BN affine a
    little off identity."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / p[0].numel()) ** 0.5)
            elif name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def randomise64_(model, seed, calib_shape):
    """The shared script's seeded weights (drawn in float32), BN statistics measured in float64, rounded to float32."""
    g = torch.Generator().manual_seed(seed)
    draw_parameters(model, g)
    with torch.no_grad():
        model.double()
        bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        model.eval()
        for m in bns:
            m.train()
        calib = torch.randn(calib_shape, generator=g).double()
        metas = [dict(img_shape=calib_shape[2:], ori_shape=calib_shape[2:], pad_shape=calib_shape[2:],
                      padding_size=[0, 0, 0, 0])] * calib_shape[0]
        torch.manual_seed(seed + 3)
        model.encode_decode(calib, metas)
        model.eval()
        for m in bns:
            m.running_mean.copy_(m.running_mean.float().double())
            m.running_var.copy_(m.running_var.float().double())


def state_buffers(model, sd):
    """The state-dict buffers other than BatchNorm's statistics, as float32 (their values are float32 numbers)."""
    params = {k for k, _ in model.named_parameters()}
    bn = {f"{name}.{b}" for name, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
          for b in ("running_mean", "running_var", "num_batches_tracked")}
    return {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items() if k not in params and k not in bn}


def seed_dependent(buffers, mcfg, seed):
    """The ``buffers`` that depend on the random state the model is built under (EMANet's bases): those
    whose value a second build under another seed repeats are made by the constructor (Swin's
    ``relative_position_index``); sszoo's constructor makes them too, so they stay out of the golden."""
    if not buffers:
        return buffers
    torch.manual_seed(seed + 4)
    again = MODELS.build(mcfg).state_dict()
    return {k: v for k, v in buffers.items() if not torch.equal(again[k].to(v.dtype), v)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("out")
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--width", type=int, default=96)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mode", choices=["whole", "slide"], default="whole")
    ap.add_argument("--crop", type=int, default=None)
    ap.add_argument("--stride", type=int, default=None)
    ap.add_argument("--num-classes", type=int, default=None)
    ap.add_argument("--img-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                    help="build a fixed-size backbone (BEiT, MAE) for H x W inputs instead of its config's size "
                         "(the full-width network at a golden-sized input); recorded as CONFIG@HxW, no zoo entry")
    a = ap.parse_args()
    if a.mode == "slide" and not (a.crop and a.stride):
        ap.error("--mode slide needs --crop and --stride")

    D = dump_module()  # the shared oracle script: config lookup, fixed-size checks, head lists
    register_all_modules()
    _point_sample_in_input_dtype()
    _matrix_decomposition_in_input_dtype()
    cfg = Config.fromfile(D.find_config(a.config))
    mcfg = cfg.model
    mcfg.pop("pretrained", None)
    for k in ("backbone", "image_encoder", "text_encoder"):
        if isinstance(mcfg.get(k), dict) and mcfg[k].get("init_cfg"):
            mcfg[k].init_cfg = None

    _plain_bn(mcfg)
    if a.img_size:
        mcfg.backbone.img_size = tuple(a.img_size)
    if a.num_classes:
        for head in ("decode_head", "auxiliary_head"):
            for h in (mcfg.get(head) if isinstance(mcfg.get(head), list) else [mcfg.get(head)]):
                # STDC's detail head is binary (boundary or not) whatever the segmentation's class count
                if isinstance(h, dict) and h.get("type") == "IterativeDecodeHead":
                    # K-Net's head takes no class count: its kernel generator and update heads have one
                    for inner in [h.kernel_generate_head] + list(h.kernel_update_head):
                        inner.num_classes = a.num_classes
                elif isinstance(h, dict) and h.get("type") != "STDCHead":
                    h.num_classes = a.num_classes
    fixed = D.check_input_size(mcfg, a)
    tc = dict(mcfg.get("test_cfg") or {})
    tc.pop("crop_size", None), tc.pop("stride", None)
    if a.mode == "slide":
        tc.update(mode="slide", crop_size=(a.crop, a.crop), stride=(a.stride, a.stride))
    else:
        tc.update(mode="whole")
    mcfg.test_cfg = tc
    torch.manual_seed(a.seed)
    model = MODELS.build(mcfg)
    calib_hw = fixed if fixed else (max(a.height, 64), max(a.width, 64))
    calib_shape = (2, 3) + tuple(calib_hw)
    randomise64_(model, a.seed, calib_shape)

    g = torch.Generator().manual_seed(a.seed + 1)
    x = torch.randn(a.batch, 3, a.height, a.width, generator=g).double()
    metas = [dict(img_shape=(a.height, a.width), ori_shape=(a.height, a.width), pad_shape=(a.height, a.width),
                  padding_size=[0, 0, 0, 0])] * a.batch
    with torch.no_grad():
        torch.manual_seed(a.seed + 2)
        logits = model.slide_inference(x, metas) if a.mode == "slide" else model.encode_decode(x, metas)
    os.makedirs(a.out, exist_ok=True)
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith("data_preprocessor")}
    torch.save(x, os.path.join(a.out, "input.pt"))
    buffers = seed_dependent(state_buffers(model, sd), mcfg, a.seed)
    if buffers:  # state the seed does not regenerate (EMANet's bases, drawn while the model is built)
        torch.save(buffers, os.path.join(a.out, "buffers.pt"))
    torch.save(logits, os.path.join(a.out, "logits.pt"))
    heads = D.as_list(model.decode_head)
    aux = D.as_list(model.auxiliary_head) if getattr(model, "auxiliary_head", None) is not None else []
    import mmseg
    config = a.config + (f"@{a.img_size[0]}x{a.img_size[1]}" if a.img_size else "")  # not a zoo entry's size
    info = dict(config=config, mode=a.mode, height=a.height, width=a.width, batch=a.batch, seed=a.seed,
                crop=a.crop, stride=a.stride, num_classes=int(logits.shape[1]),
                align_corners=bool(heads[-1].align_corners), n_keys=len(sd),
                n_params=sum(p.numel() for p in model.parameters()),
                mean=list(cfg.model.data_preprocessor.get("mean", [])),
                std=list(cfg.model.data_preprocessor.get("std", [])),
                forward_seed=a.seed + 2, calib_seed=a.seed + 3, calib_shape=list(calib_shape), dtype="float64",
                segmentor=type(model).__name__, backbone=type(D.backbone_of(model)).__name__,
                decode_head=[type(h).__name__ for h in heads], auxiliary_head=[type(h).__name__ for h in aux],
                torch_version=torch.__version__, mmseg_version=mmseg.__version__)
    try:  # sszoo's record of this architecture, so that a case can be built before its zoo entry exists
        info["arch"] = arch_from_mmseg(mcfg.to_dict())
    except KeyError as e:
        print(f"note: {e}", file=sys.stderr)
    with open(os.path.join(a.out, "info.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps({k: info[k] for k in ("config", "num_classes", "n_keys", "n_params")}))


if __name__ == "__main__":
    main()
