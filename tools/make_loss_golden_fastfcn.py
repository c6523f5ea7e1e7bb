"""Golden training losses of FastFCN (JPU neck + PSP decode head + FCN auxiliary head on the neck's
pass-through stage), computed by MMSegmentation 1.2.2 for tests/test_fastfcn_loss.py.

    /work/oracle/bin/python tools/make_loss_golden_fastfcn.py     (writes tests/golden/heads/fastfcn_jpu_psp_loss.pt)

The logits parity goldens only exercise the decode head; the auxiliary head reads the JPU neck's second
output (the backbone's stage 3, passed through), which only the training loss sees. The model has the
oracle's seeded weights (tools/oracle_dump64.py's randomise64_) and runs in eval mode in float64 (no
dropout draws), so sszoo's weighted losses must equal these to rounding.
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from mmseg_arch import arch_from_mmseg  # noqa: E402
from oracle_dump64 import randomise64_  # noqa: E402
from oracle_models import _plain_bn, dump_module  # noqa: E402
from mmengine import Config  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402
from mmseg.utils import register_all_modules  # noqa: E402

CONFIG = "fastfcn_r50-d32_jpu_psp_4xb2-80k_cityscapes-512x1024"
OUT = os.path.join(os.path.dirname(HERE), "tests", "golden", "heads", "fastfcn_jpu_psp_loss.pt")
SEED, NUM_CLASSES, H, W = 0, 5, 41, 57  # small: stride 32 still leaves 2 x 2 maps


def main() -> None:
    register_all_modules()
    cfg = Config.fromfile(dump_module().find_config(CONFIG))
    mcfg = cfg.model
    mcfg.pop("pretrained", None)
    mcfg.backbone.init_cfg = None
    _plain_bn(mcfg)
    mcfg.decode_head.num_classes = NUM_CLASSES
    mcfg.auxiliary_head.num_classes = NUM_CLASSES
    torch.manual_seed(SEED)
    model = MODELS.build(mcfg)
    calib_shape = (2, 3, H, W)
    randomise64_(model, SEED, calib_shape)
    model.eval()
    g = torch.Generator().manual_seed(SEED + 1)
    x = torch.randn(2, 3, H, W, generator=g).double()
    label = torch.randint(0, NUM_CLASSES, (2, H, W), generator=g)
    label[:, :5] = 255  # some ignored pixels
    samples = []
    for lab in label:
        s = SegDataSample(metainfo=dict(img_shape=(H, W), ori_shape=(H, W), pad_shape=(H, W)))
        s.gt_sem_seg = PixelData(data=lab[None])
        samples.append(s)
    with torch.no_grad():
        losses = model.loss(x, samples)
    info = dict(config=CONFIG, seed=SEED, num_classes=NUM_CLASSES, calib_shape=list(calib_shape),
                arch=arch_from_mmseg(mcfg.to_dict()))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    torch.save({"input": x, "label": label, "decode": losses["decode.loss_ce"].double(),
                "aux": losses["aux.loss_ce"].double(), "info": json.dumps(info)}, OUT)
    print({k: float(v) for k, v in losses.items() if "loss" in k})


if __name__ == "__main__":
    main()
