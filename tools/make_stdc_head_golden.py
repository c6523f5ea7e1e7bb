"""Golden training numbers of STDC's heads, computed by MMSegmentation 1.2.2 for tests/test_stdc_icnet.py.

    /work/oracle/bin/python tools/make_stdc_head_golden.py     (writes tests/golden/heads/stdc_head.pt)

The logits goldens never see the training-only parts of STDC:

- the STDCHead's boundary ("detail") targets, made from the label with a Laplacian at strides 1, 2, 4:
  captured from the reference's ``STDCHead.loss_by_feat`` on two real Cityscapes label crops (odd sizes,
  with ignored pixels), once with the head in float32 (as it trains) and once in float64;
- its loss terms (sigmoid cross-entropy + Dice) on seeded float64 logits;
- the OHEM pixel sampler of the decode/auxiliary FCN heads (``thresh`` 0.7): its pixel weights and the
  head's loss, with the config's ``min_kept`` 10000 (the kept-count bound decides) and with 1000 (the
  probability threshold decides), on seeded logits leaning towards the label;
- an STDCNet with ``bottleneck_type`` "add" (no published config uses it; narrow channels, seeded weights,
  default BatchNorm statistics): its three outputs in float64 and its state-dict keys (the shared downsample
  module appears twice);
- the whole STDC1 model's weighted training losses (``model.loss`` in eval mode, float64, the oracle's
  seeded weights): OHEM decode + 2 OHEM auxiliary heads with align_corners False + the STDCHead's terms.
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from mmseg_arch import arch_from_mmseg  # noqa: E402
from oracle_dump64 import draw_parameters, randomise64_  # noqa: E402
from oracle_models import _plain_bn, dump_module  # noqa: E402
from mmengine import Config  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.models.decode_heads.decode_head import BaseDecodeHead  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402
from mmseg.utils import register_all_modules  # noqa: E402

CONFIG = "stdc1_4xb12-80k_cityscapes-512x1024"
OUT = os.path.join(ROOT, "tests", "golden", "heads", "stdc_head.pt")
GT = os.path.join(ROOT, "tests", "golden", "eval", "cityscapes", "gtFine", "val")
LABELS = ("frankfurt/frankfurt_000000_000019_gtFine_labelTrainIds.png",
          "lindau/lindau_000001_000019_gtFine_labelTrainIds.png")
H, W = 77, 131  # odd: the stride-2/4 Laplacian maps do not tile the label
SEED = 0


def real_labels() -> torch.Tensor:
    crops = []
    for i, name in enumerate(LABELS):
        a = np.array(Image.open(os.path.join(GT, name)))
        top, left = (i * 11) % (a.shape[0] - H + 1), (i * 37) % (a.shape[1] - W + 1)
        crops.append(torch.from_numpy(a[top:top + H, left:left + W].astype(np.int64)))
    return torch.stack(crops)


def samples_of(label: torch.Tensor) -> list:
    out = []
    for lab in label:
        s = SegDataSample(metainfo=dict(img_shape=(H, W), ori_shape=(H, W), pad_shape=(H, W)))
        s.gt_sem_seg = PixelData(data=lab[None])
        out.append(s)
    return out


def captured_targets(head, logits, label):
    """The STDCHead's boundary targets (the labels it hands to FCNHead's loss) and its losses."""
    seen = {}
    original = BaseDecodeHead.loss_by_feat

    def spy(self, seg_logits, batch_data_samples):
        seen["targets"] = torch.stack([s.gt_sem_seg.data[0] for s in batch_data_samples])
        return original(self, seg_logits, batch_data_samples)

    BaseDecodeHead.loss_by_feat = spy
    try:
        losses = head.loss_by_feat(logits, samples_of(label))
    finally:
        BaseDecodeHead.loss_by_feat = original
    return seen["targets"], losses


def main() -> None:
    register_all_modules()
    cfg = Config.fromfile(dump_module().find_config(CONFIG))
    mcfg = cfg.model
    mcfg.pop("pretrained", None)
    mcfg.backbone.backbone_cfg.init_cfg = None
    _plain_bn(mcfg)
    label = real_labels()
    g = torch.Generator().manual_seed(SEED + 5)
    h8, w8 = -(-H // 8), -(-W // 8)

    # the STDCHead: targets in float32 and float64, loss terms in float64
    head = MODELS.build(dict(mcfg.auxiliary_head[2]))
    targets32, _ = captured_targets(head, torch.zeros(2, 2, h8, w8), label)
    head = head.double()
    stdc_logits = torch.randn(2, 2, h8, w8, generator=g).double() * 2
    targets64, stdc_losses = captured_targets(head, stdc_logits, label)

    # the OHEM sampler of the decode head (an FCNHead with OHEMPixelSampler(thresh=0.7, min_kept=10000))
    onehot = torch.nn.functional.one_hot(label.clamp(max=18), 19).permute(0, 3, 1, 2).double()
    lean = torch.nn.functional.interpolate(onehot, size=(h8, w8), mode="bilinear", align_corners=False)
    ohem_logits = (torch.randn(2, 19, h8, w8, generator=g).double() + 6 * lean).contiguous()
    ohem = {}
    for min_kept in (10000, 1000):
        hcfg = dict(mcfg.decode_head)
        hcfg["sampler"] = dict(hcfg["sampler"], min_kept=min_kept)
        dhead = MODELS.build(hcfg).double()
        resized = torch.nn.functional.interpolate(ohem_logits, size=(H, W), mode="bilinear",
                                                  align_corners=dhead.align_corners)
        weight = dhead.sampler.sample(resized, label[:, None])
        loss = dhead.loss_by_feat(ohem_logits, samples_of(label))["loss_ce"]
        ohem[min_kept] = dict(weight=weight.to(torch.uint8), loss=loss.double(), kept=int(weight.sum()))

    # the whole model's training losses
    torch.manual_seed(SEED)
    model = MODELS.build(mcfg)
    calib_shape = (2, 3, H, W)
    randomise64_(model, SEED, calib_shape)
    model.eval()
    x = torch.randn(2, 3, H, W, generator=torch.Generator().manual_seed(SEED + 1)).double()  # not stored: re-drawn
    with torch.no_grad():
        model_losses = {k: v.double() for k, v in model.loss(x, samples_of(label)).items() if "loss" in k}

    # an STDCNet of "add" modules
    add_cfg = dict(type="STDCNet", stdc_type="STDCNet2", in_channels=3, channels=(8, 16, 32, 64, 128),
                   bottleneck_type="add", norm_cfg=dict(type="BN"), act_cfg=dict(type="ReLU"), num_convs=4,
                   with_final_conv=False)
    add_net = MODELS.build(add_cfg)
    draw_parameters(add_net, torch.Generator().manual_seed(SEED + 7))
    add_net = add_net.double().eval()
    add_x = torch.randn(1, 3, 45, 59, generator=torch.Generator().manual_seed(SEED + 8)).double()
    with torch.no_grad():
        add_outs = [o.clone() for o in add_net(add_x)]
    add = dict(config=add_cfg, seed=SEED + 7, input_seed=SEED + 8, input_shape=[1, 3, 45, 59],
               keys=list(add_net.state_dict()))

    info = dict(config=CONFIG, add=add, seed=SEED, calib_shape=list(calib_shape), input_seed=SEED + 1,
                input_shape=[2, 3, H, W], arch=arch_from_mmseg(mcfg.to_dict()),
                ohem_kept={str(k): v["kept"] for k, v in ohem.items()}, labels=list(LABELS))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    torch.save({"label": label.to(torch.uint8), "targets32": targets32.to(torch.uint8),
                "targets64": targets64.to(torch.uint8), "stdc_logits": stdc_logits,
                "stdc_losses": {k: v.double() for k, v in stdc_losses.items() if "loss" in k},
                "ohem_logits": ohem_logits,
                "ohem": {str(k): dict(weight=v["weight"], loss=v["loss"]) for k, v in ohem.items()},
                "add_outputs": add_outs, "model_losses": model_losses, "info": json.dumps(info)}, OUT)
    print(json.dumps(dict(stdc={k: float(v) for k, v in stdc_losses.items() if "loss" in k},
                          boundary_pixels=int(targets32.sum()), f32_vs_f64=int((targets32 != targets64).sum()),
                          ohem={k: (v["kept"], float(v["loss"])) for k, v in ohem.items()},
                          model={k: float(v) for k, v in model_losses.items()})))


if __name__ == "__main__":
    main()
