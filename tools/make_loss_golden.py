"""Golden values of the loss terms and pixel sampler in sszoo.models.losses, computed by MMSegmentation 1.2.2.

    /work/oracle/bin/python tools/make_loss_golden.py     (writes tests/golden/heads/losses.pt)

Seeded float64 logits and labels (with ignored pixels) go through the reference's own loss modules:
CrossEntropyLoss (softmax; class weights; the sigmoid form with K classes and with one), OhemCrossEntropy,
DiceLoss, BoundaryLoss, and OHEMPixelSampler with and without a threshold. tests/test_losses.py recomputes
each with sszoo's functions.

One exception is recorded rather than run: with ``class_weight`` and an ignored pixel, 1.2.2's
``cross_entropy`` raises IndexError (it indexes the weights with the ignore label), so the class-weighted
golden uses the same per-pixel losses divided by the pixel count (``avg_factor=label.numel()``), the
normalisation of MMSegmentation 0.x with which the class-weighted checkpoints were trained.
"""
import os
import types

import torch
from mmseg.models.losses import BoundaryLoss, CrossEntropyLoss, DiceLoss, OhemCrossEntropy
from mmseg.models.losses.cross_entropy_loss import cross_entropy
from mmseg.structures.sampler import OHEMPixelSampler

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "golden", "heads", "losses.pt")
N, K, H, W = 2, 5, 13, 17
CLASS_WEIGHT = [0.8, 1.3, 2.1, 0.5, 1.7]


def main() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(N, K, H, W, generator=g, dtype=torch.float64) * 2
    label = torch.randint(0, K, (N, H, W), generator=g)
    label[torch.rand(N, H, W, generator=g) < 0.15] = 255
    binary_logits = torch.randn(N, 1, H, W, generator=g, dtype=torch.float64)
    binary_label = torch.randint(0, 2, (N, H, W), generator=g)
    binary_label[0, :2] = 255
    boundary = (torch.rand(N, H, W, generator=g) < 0.2).long()
    out = dict(logits=logits, label=label, binary_logits=binary_logits, binary_label=binary_label, boundary_map=boundary,
               class_weight=torch.tensor(CLASS_WEIGHT, dtype=torch.float64))

    out["ce"] = CrossEntropyLoss()(logits, label, ignore_index=255)
    try:
        CrossEntropyLoss(class_weight=CLASS_WEIGHT)(logits, label, ignore_index=255)
        raise SystemExit("1.2.2's class-weighted cross-entropy no longer fails on ignored pixels: update sszoo")
    except IndexError:
        pass
    out["ce_class_weight"] = cross_entropy(logits, label, class_weight=logits.new_tensor(CLASS_WEIGHT),
                                           ignore_index=255, avg_factor=label.numel())
    out["sigmoid_ce"] = CrossEntropyLoss(use_sigmoid=True)(logits, label, ignore_index=255)
    out["sigmoid_ce_binary"] = CrossEntropyLoss(use_sigmoid=True)(binary_logits, binary_label, ignore_index=255)
    out["ohem_ce"] = OhemCrossEntropy(thres=0.5, min_kept=40)(logits, label)
    out["ohem_ce_class_weight"] = OhemCrossEntropy(thres=0.9, min_kept=300, class_weight=CLASS_WEIGHT)(logits, label)
    out["dice"] = DiceLoss()(logits, label)
    out["boundary"] = BoundaryLoss()(binary_logits, boundary)

    context = types.SimpleNamespace(ignore_index=255, loss_decode=CrossEntropyLoss())
    for name, thresh, kept in (("sampler_thresh", 0.4, 30), ("sampler_thresh_many", 0.4, 200),
                               ("sampler_topk", None, 30)):
        weight = OHEMPixelSampler(context, thresh=thresh, min_kept=kept).sample(logits, label.unsqueeze(1))
        out[name] = weight
        out[name + "_ce"] = CrossEntropyLoss()(logits, label, weight=weight, ignore_index=255)
    torch.save(out, OUT)
    print("wrote", OUT, {k: float(v) for k, v in out.items() if v.dim() == 0})


if __name__ == "__main__":
    main()
