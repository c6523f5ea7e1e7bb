"""Golden training losses of DDRHead and PIDHead and GenerateEdge's boundary labels, computed by
MMSegmentation 1.2.2 for tests/test_ddrnet_pidnet.py.

    /work/oracle/bin/python tools/make_loss_golden_ddr_pid.py   (writes tests/golden/heads/ddr_pid_losses.pt)

The heads' ``loss_by_feat`` runs on random float64 logits at 1/8 of a blocky random label with ignored
pixels (a band and scattered pixels), once with the published configs' ``loss_decode`` (19 Cityscapes
classes, class weights, OHEM with min_kept 131072 > pixels) and once with a small ``min_kept`` and a lower
threshold so that OHEM's selection bites. PIDHead's boundary labels are ``GenerateEdge(edge_width=4)`` of
each label, as the training pipeline makes them; edge widths 3 and 5 are kept too for the edge helper's test.

MMSegmentation 1.2.2's class-weighted ``CrossEntropyLoss`` (PIDHead's ``loss_sem_p``) divides by the sum of
the class weights of the label's pixels, which it looks up with the label itself: a label holding the ignore
index 255 raises ``IndexError`` there (open-mmlab/mmsegmentation issues #3492, #3734). So PIDHead's losses are
recorded twice: on the label without ignored pixels (all four terms), and on the label with them, where
``loss_sem_p`` is left out (the reference raises; the three other terms are computed with it stubbed out).
"""
import copy
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from oracle_models import _plain_bn, dump_module  # noqa: E402
from mmengine import Config  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.datasets.transforms import GenerateEdge  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402
from mmseg.utils import register_all_modules  # noqa: E402

OUT = os.path.join(os.path.dirname(HERE), "tests", "golden", "heads", "ddr_pid_losses.pt")
CONFIGS = {"ddr": "ddrnet_23-slim_in1k-pre_2xb6-120k_cityscapes-1024x1024",
           "pid": "pidnet-s_2xb6-120k_1024x1024-cityscapes"}
SEED, N, K, H, W = 0, 2, 19, 61, 77
h, w = -(-H // 8), -(-W // 8)


def label_batch(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    coarse = torch.randint(0, K, (N, 1, 7, 9), generator=g).double()
    full = F.interpolate(coarse, size=(H, W), mode="nearest")[:, 0].long()
    label = full.clone()
    label[:, 50:54, :30] = 255  # an ignored band
    label[torch.rand(label.shape, generator=g) < 0.03] = 255  # scattered ignored pixels
    return label, full


class _Zero(torch.nn.Module):
    """Stands in for the loss the reference cannot compute on this label."""

    def forward(self, score, *args, **kwargs):
        return score.new_zeros(())


def edges(label: torch.Tensor, width: int) -> torch.Tensor:
    t = GenerateEdge(edge_width=width)
    return torch.stack([torch.from_numpy(t.transform({"img_shape": (H, W), "gt_seg_map": lab.numpy().astype(np.uint8)})
                                         ["gt_edge_map"]) for lab in label])


def head(kind: str, loss_decode):
    cfg = Config.fromfile(dump_module().find_config(CONFIGS[kind])).model
    _plain_bn(cfg)
    hcfg = copy.deepcopy(cfg.decode_head)
    hcfg.loss_decode = loss_decode if loss_decode is not None else hcfg.loss_decode
    return MODELS.build(hcfg), [dict(x) for x in hcfg.loss_decode]


def small_ohem(loss_decode):
    out = []
    for d in loss_decode:
        d = dict(d)
        if d["type"] == "OhemCrossEntropy":
            d.update(min_kept=500, thres=0.6)
        out.append(d)
    return out


def main() -> None:
    register_all_modules()
    g = torch.Generator().manual_seed(SEED)
    label, full = label_batch(g)
    edge = {wd: edges(label, wd) for wd in (3, 4, 5)}
    edge_full = edges(full, 4)
    logits = {"ddr": [4.0 * torch.randn(N, K, h, w, generator=g).double() for _ in range(2)],
              "pid": [4.0 * torch.randn(N, K, h, w, generator=g).double() for _ in range(2)]
              + [2.0 * torch.randn(N, 1, h, w, generator=g).double()]}
    def samples(labels, edge_maps):
        out = []
        for lab, ed in zip(labels, edge_maps):
            s = SegDataSample(metainfo=dict(img_shape=(H, W), ori_shape=(H, W), pad_shape=(H, W)))
            s.gt_sem_seg = PixelData(data=lab[None])
            s.gt_edge_map = PixelData(data=ed[None])
            out.append(s)
        return out

    results = {}
    for kind in ("ddr", "pid"):
        published = head(kind, None)[1]
        for variant, ld in (("config", None), ("small_ohem", small_ohem(published))):
            for which, labels, edge_maps in (("ignore", label, edge[4]), ("full", full, edge_full)):
                if kind == "ddr" and which == "full":
                    continue
                m, specs = head(kind, ld)
                stubbed = kind == "pid" and which == "ignore"
                if stubbed:
                    m.loss_decode[0] = _Zero()
                with torch.no_grad():
                    losses = m.loss_by_feat(tuple(logits[kind]), samples(labels, edge_maps))
                losses = {k: v.double() for k, v in losses.items() if k.startswith("loss_")}
                if stubbed:
                    del losses["loss_sem_p"]
                key = f"{kind}_{variant}_{which}"
                results[key] = dict(loss_decode=json.dumps(specs), align_corners=bool(m.align_corners), label=which,
                                    losses=losses)
                print(key, {k: round(float(v), 6) for k, v in losses.items()})
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    torch.save(dict(label=label.to(torch.uint8), label_full=full.to(torch.uint8), edge_full=edge_full,
                    edge={str(k): v for k, v in edge.items()},
                    logits=logits, results=results, info=json.dumps(dict(configs=CONFIGS, seed=SEED))), OUT)
    print(OUT, os.path.getsize(OUT))


if __name__ == "__main__":
    main()
