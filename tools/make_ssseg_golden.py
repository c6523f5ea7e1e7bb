"""Golden logits from sssegmentation 1.7.0 for the hub's sssegmentation-conversion tests.

Run it in a separate environment that has torch and sssegmentation's pure-Python sources (its CUDA
ops are not needed for these four methods)::

    python3 -m venv /work/ssseg-ref && /work/ssseg-ref/bin/pip install torch==2.13.0 numpy \
        pandas opencv-python-headless pillow scipy tqdm dill matplotlib
    pip download --no-deps sssegmentation==1.7.0 && tar xzf sssegmentation-1.7.0.tar.gz -C /tmp/ssseg
    /work/ssseg-ref/bin/python tools/make_ssseg_golden.py --ssseg-src /tmp/ssseg/sssegmentation-1.7.0

For each case it builds sssegmentation's own segmentor (its FCN, PSPNet, Deeplabv3, Deeplabv3Plus
classes with its ResNet), fills it with seeded weights (tests/hub_ssseg_weights.py), runs it in eval
mode and writes ``tests/golden/ssseg/<case>.pt`` with the input, the decode logits at feature
resolution and resized to the input (as sssegmentation's inference does), the auxiliary logits, and the
checkpoint's key/shape list. No weights are stored: the tests rebuild them from the seed.

sssegmentation imports torchvision at module level for its SAM segmentors; this environment has no
torchvision, so the script registers an inert placeholder module that raises if anything calls it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import types

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
from hub_ssseg_weights import seeded_state_dict  # noqa: E402

# name: (method class, depth, outstride, feats channels, aux channels, num_classes, (h, w), seed, registry entry)
CASES = {
    "fcn_r50_d8": ("FCN", 50, 8, 512, 512, 19, (49, 65), 1, "fcn_r50_d8_cityscapes.ssseg"),
    "pspnet_r50_d8": ("PSPNet", 50, 8, 512, 512, 19, (49, 65), 2, "pspnet_r50_d8_cityscapes.ssseg"),
    "deeplabv3_r50_d8": ("Deeplabv3", 50, 8, 512, 512, 19, (49, 65), 3, "deeplabv3_r50_d8_cityscapes.ssseg"),
    "deeplabv3plus_r50_d8": ("Deeplabv3Plus", 50, 8, 512, 512, 19, (49, 65), 4, "deeplabv3plus_r50_d8_cityscapes.ssseg"),
    "fcn_r18_d16": ("FCN", 18, 16, 32, 32, 5, (45, 61), 5, None),
    "pspnet_r18_d16": ("PSPNet", 18, 16, 32, 32, 5, (45, 61), 6, None),
    "deeplabv3_r18_d16": ("Deeplabv3", 18, 16, 32, 32, 5, (45, 61), 7, None),
    "deeplabv3plus_r18_d16": ("Deeplabv3Plus", 18, 16, 32, 32, 5, (45, 61), 8, None),
}


def _placeholder_torchvision() -> None:
    def refuse(*args, **kwargs):
        raise RuntimeError("torchvision placeholder: not available in the reference environment")

    class Refuse:
        def __init__(self, *args, **kwargs):
            refuse()

    for name in ("torchvision", "torchvision.ops", "torchvision.ops.boxes", "torchvision.transforms",
                 "torchvision.transforms.functional"):
        mod = types.ModuleType(name)
        mod.__getattr__ = lambda attr: Refuse if attr[:1].isupper() else refuse  # type: ignore[attr-defined]
        sys.modules[name] = mod


def segmentor_cfg(method: str, depth: int, outstride: int, feats: int, aux: int, num_classes: int) -> dict:
    """sssegmentation's SEGMENTOR_CFG as its configs write it (base_cfg.py of each method)."""
    wide = depth >= 50
    c4, c3, c1 = (2048, 1024, 256) if wide else (512, 256, 64)
    rates = [1, 12, 24, 36] if outstride == 8 else [1, 6, 12, 18]
    head: dict = {"in_channels": c4, "feats_channels": feats, "dropout": 0.1}
    indices = (2, 3)
    if method == "PSPNet":
        head["pool_scales"] = [1, 2, 3, 6]
    elif method == "Deeplabv3":
        head["dilations"] = rates
    elif method == "Deeplabv3Plus":
        head.update(in_channels=[c1, c4], shortcut_channels=48, dilations=rates)
        indices = (0, 1, 2, 3)
    return {
        "type": method, "num_classes": num_classes, "align_corners": False,
        "norm_cfg": {"type": "BatchNorm2d"}, "act_cfg": {"type": "ReLU", "inplace": True},
        "backbone": {"type": "ResNet", "structure_type": f"resnet{depth}conv3x3stem", "depth": depth,
                     "outstride": outstride, "use_conv3x3_stem": True, "pretrained": False,
                     "selected_indices": indices},
        "head": head,
        "auxiliary": {"in_channels": c3, "out_channels": aux, "dropout": 0.1},
        "losses": {},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ssseg-src", default="/tmp/ssseg/sssegmentation-1.7.0")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "golden", "ssseg"))
    args = ap.parse_args()
    _placeholder_torchvision()
    sys.path.insert(0, args.ssseg_src)
    from ssseg.modules.models.segmentors import BuildSegmentor
    from ssseg.modules.utils import SSSegInputStructure
    os.makedirs(args.out, exist_ok=True)
    torch.set_grad_enabled(False)
    for case, (method, depth, os_, feats, aux, k, (h, w), seed, entry) in CASES.items():
        cfg = segmentor_cfg(method, depth, os_, feats, aux, k)
        model = BuildSegmentor(segmentor_cfg=cfg, mode="TEST")
        own = model.state_dict()
        keys = [(name, tuple(t.shape)) for name, t in own.items()]
        model.load_state_dict(seeded_state_dict(keys, seed), strict=True)
        model.eval()
        x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(1000 + seed))
        out = model(SSSegInputStructure(images=x, mode="TEST"))
        feat_logits = out.seg_logits
        logits = F.interpolate(feat_logits, size=(h, w), mode="bilinear", align_corners=False)
        feats_list = model.transforminputs(model.backbone_net(x), selected_indices=cfg["backbone"]["selected_indices"])
        aux_logits = model.auxiliary_decoder(feats_list[-2])
        info = dict(case=case, method=method, depth=depth, outstride=os_, feats_channels=feats, aux_channels=aux,
                    num_classes=k, seed=seed, entry=entry, ssseg_version="1.7.0", torch=torch.__version__,
                    keys=keys, ssseg_cfg=cfg)
        torch.save({"input": x, "logits": logits, "feat_logits": feat_logits, "aux_logits": aux_logits,
                    "info": json.dumps(info)}, os.path.join(args.out, case + ".pt"))
        print(f"{case}: {len(keys)} keys, logits {tuple(logits.shape)}, |logits|max {logits.abs().max():.3f}")


if __name__ == "__main__":
    main()
