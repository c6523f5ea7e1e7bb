"""Golden logits of SETR's heads over a shortened ViT-L, computed by MMSegmentation 1.2.2 for tests/test_vit.py.

    /work/oracle/bin/python tools/make_setr_golden.py     (writes tests/golden/heads/setr.pt)

The SETR configs are ViT-L (24 layers, 305M parameters): a whole-model golden would hold two of them in memory
(the weights, then the loaded checkpoint) and take far longer than the CI budget. Their layouts are checked by
tests/test_zoo_architectures.py; here the numerics: the ViT-L of the configs with 4 layers instead of 24 (width
1024, 16 heads, 512 x 512 training grid, bilinear position-embedding resize), on a 29 x 47 input (corner-padded
to 32 x 48, a 2 x 3 token grid), in float64 with the oracle's seeded parameters (drawn in registration order:
backbone, neck, decode head, auxiliary heads) and default BatchNorm statistics, through

- MLA: ``with_cls_token`` False, MLANeck, SETRMLAHead and the four FCN auxiliary heads (no convs) of
  setr_vit-l_mla_8xb2-160k_ade20k-512x512;
- naive: ``with_cls_token`` True, the SETRUPHead decode head (one 1x1 block, x4) and the first auxiliary head (two
  1x1 blocks, x4 each) of setr_vit-l_naive_8xb2-160k_ade20k-512x512;
- PUP: the same backbone, the decode head (four 3x3 blocks, x2 each) and the first auxiliary head (two 3x3 blocks)
  of setr_vit-l_pup_8xb2-160k_ade20k-512x512.

The input is regenerated from its seed; only logits are stored.
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from mmseg_arch import arch_from_mmseg  # noqa: E402
from oracle_dump64 import draw_parameters  # noqa: E402
from oracle_models import _plain_bn, dump_module  # noqa: E402
from mmengine import Config  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from mmseg.utils import register_all_modules  # noqa: E402

OUT = os.path.join(ROOT, "tests", "golden", "heads", "setr.pt")
CONFIGS = {"mla": "setr_vit-l_mla_8xb2-160k_ade20k-512x512", "naive": "setr_vit-l_naive_8xb2-160k_ade20k-512x512",
           "pup": "setr_vit-l_pup_8xb2-160k_ade20k-512x512"}
NUM_LAYERS, NUM_CLASSES, H, W, SEED = 4, 4, 29, 47, 0


def model_cfg(name: str):
    cfg = Config.fromfile(dump_module().find_config(name)).model
    cfg.pop("pretrained", None)
    cfg.backbone.init_cfg = None
    _plain_bn(cfg)
    cfg.backbone.update(num_layers=NUM_LAYERS, out_indices=list(range(NUM_LAYERS)))
    for h in [cfg.decode_head] + list(cfg.auxiliary_head):
        h.num_classes = NUM_CLASSES
    return cfg


def main() -> None:
    register_all_modules()
    cfgs = {k: model_cfg(v) for k, v in CONFIGS.items()}
    x = torch.randn(1, 3, H, W, generator=torch.Generator().manual_seed(SEED + 1)).double()
    g = torch.Generator().manual_seed(SEED)
    backbone = MODELS.build(cfgs["mla"].backbone)
    modules = {"backbone": backbone, "mla_neck": MODELS.build(cfgs["mla"].neck),
               "mla_decode": MODELS.build(cfgs["mla"].decode_head)}
    modules.update({f"mla_aux{i}": MODELS.build(h) for i, h in enumerate(cfgs["mla"].auxiliary_head)})
    for k in ("naive", "pup"):
        modules[f"{k}_decode"] = MODELS.build(cfgs[k].decode_head)
        modules[f"{k}_aux0"] = MODELS.build(cfgs[k].auxiliary_head[0])
    for m in modules.values():  # one generator, in this order (tests/test_vit.py draws the same)
        draw_parameters(m, g)
        m.double().eval()
    out = {}
    with torch.no_grad():
        backbone.with_cls_token = False  # the MLA configs'
        feats = modules["mla_neck"](backbone(x))
        out["mla_decode"] = modules["mla_decode"](feats)
        for i in range(4):
            out[f"mla_aux{i}"] = modules[f"mla_aux{i}"](feats)
        backbone.with_cls_token = True  # the naive and PUP configs'
        feats = backbone(x)
        for k in ("naive_decode", "naive_aux0", "pup_decode", "pup_aux0"):
            out[k] = modules[k](feats)
    info = dict(configs=CONFIGS, num_layers=NUM_LAYERS, num_classes=NUM_CLASSES, input_shape=[1, 3, H, W],
                seed=SEED, input_seed=SEED + 1, order=list(modules),
                arch={k: arch_from_mmseg(c.to_dict()) for k, c in cfgs.items()},
                keys={k: len(m.state_dict()) for k, m in modules.items()})
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    torch.save({"logits": out, "info": json.dumps(info)}, OUT)
    print({k: (tuple(v.shape), round(float(v.abs().max()), 3)) for k, v in out.items()})


if __name__ == "__main__":
    main()
