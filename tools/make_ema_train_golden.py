"""EMANet's train-time behaviour from MMSegmentation 1.2.2, for tests/test_ema_head.py.

    /path/to/oracle/bin/python tools/make_ema_train_golden.py   # writes tests/golden/heads/ema_train.pt

A small EMAHead (plain BN, seeded weights and bases) runs two training steps in float64 on seeded
features and labels (dropout on, its masks drawn after a fixed seed) and then one eval forward. Kept per
training step: the head's logits, its loss (``loss_by_feat``), the gradient of every parameter (None for
the frozen ``ema_mid_conv``) and the state after the step (the moving-average bases, the BN statistics).
"""
from __future__ import annotations

import os

import torch
from mmengine.structures import PixelData
from mmseg.models.decode_heads.ema_head import EMAHead
from mmseg.structures import SegDataSample

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "golden", "heads", "ema_train.pt")

# small enough to store; in_index 1 of two maps, several bases and EM stages, a label larger than the logits
HEAD = dict(in_channels=16, channels=8, ema_channels=12, num_bases=5, num_stages=3, momentum=0.1, num_classes=4,
            in_index=1, dropout_ratio=0.1, align_corners=False)
FEAT_SHAPE = (2, 16, 9, 11)
LABEL_SHAPE = (2, 33, 41)
FORWARD_SEEDS = (101, 102, 103)  # torch.manual_seed before each forward: the dropout masks


def main() -> None:
    torch.manual_seed(0)
    head = EMAHead(norm_cfg=dict(type="BN", requires_grad=True), **HEAD)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # random, not the reference's init, so that every layer matters
        for name, p in head.named_parameters():
            offset = 1.0 if name.endswith("bn.weight") else 0.0
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.dim() > 1 else 0.1) + offset)
    head.double()
    init = {k: v.clone() for k, v in head.state_dict().items()}
    inputs = [[torch.randn(FEAT_SHAPE, generator=g).double() for _ in range(2)] for _ in FORWARD_SEEDS]
    labels = [torch.randint(0, HEAD["num_classes"], LABEL_SHAPE, generator=g) for _ in range(2)]
    for label in labels:
        label[:, :5, :7] = 255  # some ignored pixels

    steps = []
    head.train()
    for feats, label, seed in zip(inputs[:2], labels, FORWARD_SEEDS[:2]):
        samples = [SegDataSample(gt_sem_seg=PixelData(data=lab[None])) for lab in label]
        torch.manual_seed(seed)
        logits = head(feats)
        loss = head.loss_by_feat(logits, samples)["loss_ce"]
        head.zero_grad()
        loss.backward()
        steps.append(dict(logits=logits.detach().clone(), loss=loss.detach().clone(),
                          grads={n: None if p.grad is None else p.grad.clone() for n, p in head.named_parameters()},
                          state={k: v.clone() for k, v in head.state_dict().items()}))
    head.eval()
    with torch.no_grad():
        torch.manual_seed(FORWARD_SEEDS[-1])
        eval_logits = head(inputs[-1])
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    torch.save(dict(head=HEAD, init=init, inputs=inputs[:2], labels=labels, forward_seeds=FORWARD_SEEDS[:2],
                    steps=steps, eval_input=inputs[-1], eval_seed=FORWARD_SEEDS[-1], eval_logits=eval_logits), OUT)
    print(OUT, [float(s["loss"]) for s in steps])


if __name__ == "__main__":
    main()
