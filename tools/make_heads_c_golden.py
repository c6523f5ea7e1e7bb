"""Golden files for the unit tests of PSANet's mask operator and EncNet's training losses, made with the
MMSegmentation 1.2.2 / MMCV oracle (its compiled CPU ``psamask`` kernel and ``EncHead.loss_by_feat``).

    /path/to/oracle/bin/python tools/make_heads_c_golden.py

writes tests/golden/heads/psamask.pt (tests/test_psa_mask.py), tests/golden/heads/enc_loss.pt
(tests/test_enc_loss.py) and tests/golden/heads/heads_c_variants.pt (tests/test_heads_c_variants.py: the
options no published config uses, on tiny heads in float64).
"""
from __future__ import annotations

import os

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "golden", "heads")

# (batch, feature h, feature w, mask h, mask w): windows smaller than, larger than and of even size relative
# to the feature map, so that every clipping branch of the kernel is exercised
PSAMASK_SHAPES = [(2, 4, 6, 3, 5), (1, 5, 3, 4, 2), (1, 3, 4, 7, 9), (2, 1, 2, 3, 3)]


def psamask_golden() -> dict:
    from mmcv.ops import PSAMask

    g = torch.Generator().manual_seed(0)
    cases = []
    for n, h, w, mh, mw in PSAMASK_SHAPES:
        x = torch.randn(n, mh * mw, h, w, generator=g)
        outs = {t: PSAMask(t, (mh, mw))(x) for t in ("collect", "distribute")}
        cases.append(dict(input=x, mask_size=(mh, mw), **outs))
    return {"cases": cases}


def enc_loss_golden() -> dict:
    from mmengine.structures import PixelData
    from mmseg.models.decode_heads import EncHead
    from mmseg.structures import SegDataSample

    torch.manual_seed(0)
    num_classes = 5
    # dropout 0: the training forward is then deterministic; BN layers use batch statistics (training mode)
    head = EncHead(in_channels=[6, 8, 12], in_index=[0, 1, 2], channels=16, num_codes=4, num_classes=num_classes,
                   dropout_ratio=0.0, norm_cfg=dict(type="BN"), align_corners=False,
                   loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    head = head.double().train()
    feats = [torch.randn(2, c, 5, 7, generator=g, dtype=torch.float64) for c in (6, 8, 12)]
    # label: image 0 has classes {0, 2, 4} and ignored pixels, image 1 only class 3
    label = torch.full((2, 19, 23), 255, dtype=torch.long)
    label[0, :6] = 0
    label[0, 6:12] = 2
    label[0, 12:15, :5] = 4
    label[1] = 3
    label[1, :2, :3] = 255
    samples = []
    for i in range(2):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=label[i:i + 1])
        samples.append(s)
    logits, se_logits = head(feats)
    losses = head.loss_by_feat((logits, se_logits), samples)
    return {"state_dict": {k: v.detach().clone() for k, v in head.state_dict().items()}, "features": feats,
            "label": label, "logits": logits.detach(), "se_logits": se_logits.detach(),
            "loss_ce": losses["loss_ce"].detach(), "loss_se": losses["loss_se"].detach(),
            "num_classes": num_classes}


# (name, MMSegmentation head type, its keyword arguments besides the shared ones): options off the configs' path
VARIANTS = [
    ("enc_lateral", "EncHead", dict(in_channels=[6, 8, 12], in_index=[1, 2, 3], num_codes=4, add_lateral=True)),
    ("enc_no_se", "EncHead", dict(in_channels=[6, 8, 12], in_index=[1, 2, 3], num_codes=4, use_se_loss=False)),
    ("apc_no_fusion", "APCHead", dict(in_channels=12, pool_scales=(1, 3), fusion=False)),
    ("dm_even_fusion", "DMHead", dict(in_channels=12, filter_sizes=(2, 3, 4), fusion=True)),
    ("psa_collect", "PSAHead", dict(in_channels=12, mask_size=(5, 7), psa_type="collect")),
    ("psa_distribute", "PSAHead", dict(in_channels=12, mask_size=(3, 5), psa_type="distribute",
                                       normalization_factor=None, psa_softmax=False)),
    ("psa_collect_compact", "PSAHead", dict(in_channels=12, mask_size=(3, 4), psa_type="collect", compact=True)),
    ("psa_bi_compact", "PSAHead", dict(in_channels=12, mask_size=(3, 4), compact=True, shrink_factor=2)),
    ("psa_bi_noshrink", "PSAHead", dict(in_channels=12, mask_size=(5, 5), shrink_factor=1)),
]


def variants_golden() -> dict:
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules()
    g = torch.Generator().manual_seed(2)
    out = {}
    for name, kind, kwargs in VARIANTS:
        head = MODELS.build(dict(type=kind, channels=16, num_classes=5, dropout_ratio=0.1, norm_cfg=dict(type="BN"),
                                 align_corners=True, in_index=kwargs.pop("in_index", 3), **kwargs))
        with torch.no_grad():
            for p in head.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            for m in head.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                    m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
        head = head.double().eval()
        feats = [torch.randn(2, c, 6, 8, generator=g, dtype=torch.float64) for c in (4, 6, 8, 12)]
        with torch.no_grad():
            logits = head.predict(feats, [dict(img_shape=(6, 8))] * 2, dict())
        out[name] = {"state_dict": {k: v.clone() for k, v in head.state_dict().items()}, "features": feats,
                     "logits": logits}
    return out


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    torch.save(psamask_golden(), os.path.join(OUT, "psamask.pt"))
    torch.save(enc_loss_golden(), os.path.join(OUT, "enc_loss.pt"))
    torch.save(variants_golden(), os.path.join(OUT, "heads_c_variants.pt"))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
