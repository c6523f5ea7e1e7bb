"""Goldens of PointRend's point head, made with MMSegmentation 1.2.2's PointHead (run with the oracle).

    /path/to/oracle/bin/python tools/make_point_head_golden.py

For small PointHeads with seeded weights and random fine features and coarse logits:

* ``loss``: with random labels (some ignored), ``PointHead.loss`` samples the training points (uncertainty-based,
  torch's global RNG seeded) and returns the point cross-entropy.
* ``predict``: the subdivision inference in float64 with fewer points than pixels, so that the uncertainty
  selection decides which pixels are re-predicted (the model-parity goldens refine every pixel, see
  tools/make_golden.py).

tests/test_point_head.py feeds the same inputs, weights and seed to sszoo's PointHead and compares.
Writes tests/golden/heads/point_head.pt.
"""
import os
import sys

import torch
from mmengine import ConfigDict
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from oracle_dump64 import _point_sample_in_input_dtype  # noqa: E402

OUT = os.path.join(os.path.dirname(HERE), "tests", "golden", "heads", "point_head.pt")

# name: (align_corners, batch, feature h, w, label H, W, num_points, oversample_ratio, importance_sample_ratio)
LOSS_CASES = {
    "plain": (False, 2, 13, 17, 52, 68, 96, 3, 0.75),
    "align_corners": (True, 1, 11, 14, 41, 53, 50, 2.5, 0.5),
}
# name: (align_corners, batch, feature h, w, subdivision_steps, subdivision_num_points, scale_factor)
PREDICT_CASES = {
    "plain": (False, 2, 9, 13, 2, 150, 2),
    "align_corners": (True, 1, 7, 11, 3, 97, 2),
}


def point_head(align_corners: bool, g: torch.Generator):
    head = MODELS.build(dict(type="PointHead", in_channels=[16], in_index=[0], channels=24, num_fcs=3,
                             coarse_pred_each_layer=True, dropout_ratio=-1, num_classes=5,
                             align_corners=align_corners,
                             loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0)))
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return head


def main() -> None:
    register_all_modules()
    _point_sample_in_input_dtype()  # float64 features with float32 test points
    out = {"loss": {}, "predict": {}}
    for i, (name, (ac, n, h, w, H, W, num_points, over, imp)) in enumerate(LOSS_CASES.items()):
        g = torch.Generator().manual_seed(100 + i)
        head = point_head(ac, g)
        feat = torch.randn(n, 16, h, w, generator=g)
        coarse = 2 * torch.randn(n, 5, h, w, generator=g)
        label = torch.randint(0, 5, (n, H, W), generator=g)
        label[torch.rand(n, H, W, generator=g) < 0.2] = 255
        samples = []
        for j in range(n):
            s = SegDataSample()
            s.gt_sem_seg = PixelData(data=label[j][None])
            samples.append(s)
        train_cfg = dict(num_points=num_points, oversample_ratio=over, importance_sample_ratio=imp)
        torch.manual_seed(7 + i)
        losses = head.loss([feat], coarse, samples, ConfigDict(train_cfg))
        out["loss"][name] = dict(state_dict=head.state_dict(), feat=feat, coarse=coarse, label=label, seed=7 + i,
                                 align_corners=ac, train_cfg=train_cfg, loss=losses["pointloss_ce"].detach())
        print("loss", name, {k: float(v.detach()) for k, v in losses.items()})
    for i, (name, (ac, n, h, w, steps, num_points, scale)) in enumerate(PREDICT_CASES.items()):
        g = torch.Generator().manual_seed(200 + i)
        head = point_head(ac, g).double().eval()
        feat = torch.randn(n, 16, h, w, generator=g).double()
        coarse = 2 * torch.randn(n, 5, h, w, generator=g).double()
        test_cfg = dict(subdivision_steps=steps, subdivision_num_points=num_points, scale_factor=scale)
        size = (h * scale ** steps, w * scale ** steps)  # the refined size: predict_by_feat's resize is the identity
        metas = [dict(img_shape=size, ori_shape=size, pad_shape=size)] * n
        with torch.no_grad():
            logits = head.predict([feat], coarse, metas, ConfigDict(test_cfg))
        out["predict"][name] = dict(state_dict=head.state_dict(), feat=feat, coarse=coarse, align_corners=ac,
                                    test_cfg=test_cfg, logits=logits)
        print("predict", name, tuple(logits.shape))
    torch.save(out, OUT)


if __name__ == "__main__":
    main()
