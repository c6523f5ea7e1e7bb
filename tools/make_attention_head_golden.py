"""Golden training-mode outputs and losses of the CCNet, DANet, ANN and ISANet heads, made with
MMSegmentation 1.2.2's own heads (run with the oracle environment's python):

    /work/oracle/bin/python tools/make_attention_head_golden.py

Each head is built small (few channels) with BN, given seeded random weights (every parameter, so the
attention ``gamma`` scales are non-zero), put in training mode (BatchNorm on batch statistics, Dropout2d
active) and run in float64 on seeded random features; then its ``loss_by_feat`` is computed against a
seeded label with ignored (255) pixels. The Dropout2d keep masks are drawn from a seeded generator and
stored in call order, so the test replays exactly the reference's masks (and checks that the same number
of dropout calls happen, in the same order and shapes). The inference logits (eval mode) are stored too.

Written to tests/golden/heads/attention_heads.pt (state dicts, inputs, outputs, losses: a few hundred kB).
tests/test_attention_heads.py compares sszoo's heads against it.
"""
from __future__ import annotations

import json
import os
import warnings

warnings.filterwarnings("ignore")

import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_train_golden import recorded_dropout2d  # noqa: E402  (seeded, recorded Dropout2d masks)
from oracle_dump64 import draw_parameters  # noqa: E402  (the oracle's seeded parameter draw)
OUT = os.path.join(os.path.dirname(HERE), "tests", "golden", "heads", "attention_heads.pt")
NUM_CLASSES = 5
LABEL_SIZE = (37, 45)  # larger than the features and odd: the losses resize the logits to it

# name: (MMSegmentation head type, its kwargs, sszoo kind + kwargs, feature shapes (C, H, W) of 4 stages)
CASES = {
    "cc": ("CCHead", dict(in_channels=16, channels=16, recurrence=2, align_corners=False),
           dict(kind="cc", in_channels=16, channels=16, in_index=3, recurrence=2)),
    "da": ("DAHead", dict(in_channels=16, channels=16, pam_channels=8, align_corners=True),
           dict(kind="da", in_channels=16, channels=16, in_index=3, pam_channels=8)),
    "ann": ("ANNHead", dict(in_channels=[8, 16], in_index=[2, 3], channels=16, project_channels=8,
                            query_scales=(1,), key_pool_scales=(1, 3, 6, 8), align_corners=False),
            dict(kind="ann", in_channels=(8, 16), in_index=(2, 3), channels=16, project_channels=8,
                 query_scales=(1,), key_pool_scales=(1, 3, 6, 8))),
    "isa": ("ISAHead", dict(in_channels=16, channels=16, isa_channels=8, down_factor=(4, 4), align_corners=False),
            dict(kind="isa", in_channels=16, channels=16, in_index=3, isa_channels=8, down_factor=(4, 4))),
}
FEATURE_SHAPES = [(4, 18, 22), (6, 9, 11), (8, 9, 11), (16, 9, 11)]  # 9 x 11: ISA pads to 12 x 12


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Every parameter drawn in registration order (tests/oracle_weights.py's distribution)."""
    draw_parameters(module, torch.Generator().manual_seed(seed))


def main() -> None:
    import mmseg.models  # noqa: F401  (registers the heads)
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    torch.set_num_threads(1)
    golden = {}
    for i, (name, (mm_type, mm_kwargs, ss_cfg)) in enumerate(CASES.items()):
        head = MODELS.build(dict(type=mm_type, num_classes=NUM_CLASSES, dropout_ratio=0.3,
                                 norm_cfg=dict(type="BN", requires_grad=True), **mm_kwargs))
        randomise(head, seed=100 + i)
        head = head.double()
        g = torch.Generator().manual_seed(200 + i)
        feats = [torch.randn((2, *s), generator=g, dtype=torch.float64) for s in FEATURE_SHAPES]
        label = torch.randint(0, NUM_CLASSES, (2, *LABEL_SIZE), generator=g)
        label[torch.rand(label.shape, generator=g) < 0.2] = 255
        state = {k: v.clone() for k, v in head.state_dict().items()}  # before training mode moves BN stats
        head.eval()
        with torch.no_grad():
            logits = head.forward(feats)
            logits = logits[0] if isinstance(logits, tuple) else logits
        head.train()
        masks: list = []
        with recorded_dropout2d(300 + i, masks):
            out = head(feats)
        samples = [SegDataSample(gt_sem_seg=PixelData(data=label[b:b + 1])) for b in range(label.shape[0])]
        losses = head.loss_by_feat(out, samples)
        outs = list(out) if isinstance(out, tuple) else [out]
        golden[name] = dict(
            config=json.dumps(dict(ss_cfg, dropout=0.3)), num_classes=NUM_CLASSES,
            align_corners=bool(mm_kwargs["align_corners"]), state_dict=state, features=feats, label=label,
            dropout_masks=masks, train_outputs=[o.detach() for o in outs], eval_logits=logits,
            losses={k: v.detach().double() for k, v in losses.items() if k.endswith("loss_ce")})
        print(name, [tuple(o.shape) for o in outs], {k: round(float(v), 6) for k, v in losses.items()}, len(masks))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    torch.save(golden, OUT)


if __name__ == "__main__":
    main()
