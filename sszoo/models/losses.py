"""Training losses of the heads, as MMSegmentation computes them.

A head trains with plain cross-entropy unless its config lists ``losses`` (:class:`LossSpec`, one per entry of
the reference's ``loss_decode``) and optionally a pixel ``sampler`` (:class:`PixelSampler`, the reference's
``OHEMPixelSampler``). Every function here takes logits already at the label's size unless it says otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from .layers import resize

_EPS = torch.finfo(torch.float32).eps
LOSS_KINDS = ("ce", "ohem_ce", "dice", "boundary")


@dataclass(frozen=True)
class LossSpec:
    """One loss term of a head (one entry of MMSegmentation's ``loss_decode``).

    ``kind``: "ce" (``CrossEntropyLoss``; ``use_sigmoid`` for its one-hot binary form), "ohem_ce"
    (``OhemCrossEntropy``: ``thres``, ``min_kept``), "dice" (``DiceLoss``, sigmoid, V-Net form, eps 1e-3) or
    "boundary" (``BoundaryLoss``). ``weight`` is the reference's ``loss_weight``; ``name`` its ``loss_name``.
    """

    kind: str = "ce"
    weight: float = 1.0
    class_weight: Optional[tuple[float, ...]] = None
    use_sigmoid: bool = False
    thres: float = 0.7
    min_kept: int = 100000
    name: str = ""

    def __post_init__(self) -> None:
        if self.name is None:  # records that wrote no loss name
            object.__setattr__(self, "name", "")
        if self.kind not in LOSS_KINDS:
            raise ValueError(f"unknown loss kind {self.kind!r}; expected one of {LOSS_KINDS}")


@dataclass(frozen=True)
class PixelSampler:
    """MMSegmentation's ``OHEMPixelSampler``: train on the hard pixels only.

    With ``thresh``: the pixels whose probability of their true class is below ``max(thresh, the
    (min_kept x batch)-th smallest probability)``. Without: the ``min_kept x batch`` pixels of largest
    cross-entropy.
    """

    thresh: Optional[float] = 0.7
    min_kept: int = 100000


def loss_precision(t: torch.Tensor) -> torch.Tensor:
    """Logits for a loss: half precision (autocast) upcast to float32, float32 and float64 as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _class_weight(class_weight, like: torch.Tensor) -> Optional[torch.Tensor]:
    if class_weight is None or isinstance(class_weight, torch.Tensor):
        return class_weight
    return like.new_tensor(class_weight)


def seg_cross_entropy(logits: torch.Tensor, label: torch.Tensor, *, align_corners: bool,
                      ignore_index: int = 255, class_weight=None,
                      pixel_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The reference's segmentation loss for one head.

    ``logits`` N x K x h x w at feature resolution are resized to the label's H x W; the per-pixel
    cross-entropy (0 at ignored pixels, times ``class_weight[label]`` and ``pixel_weight`` when given) is summed
    and divided by the number of *all* label pixels (``CrossEntropyLoss`` with ``avg_non_ignore=False``).

    With ``class_weight`` MMSegmentation 1.2.2 divides by the sum of the class weights of all label pixels
    instead, and that code raises ``IndexError`` on any ignored pixel (it indexes the weights with 255), so
    no 1.2.2 run with class weights trained on data with ignored pixels. sszoo keeps the division by the pixel
    count, the normalisation of MMSegmentation 0.x with which those checkpoints (CGNet) were trained.
    """
    if logits.shape[-2:] != label.shape[-2:]:
        logits = resize(logits, label.shape[-2:], align_corners)
    logits = loss_precision(logits)
    per_pixel = F.cross_entropy(logits, label, weight=_class_weight(class_weight, logits),
                                ignore_index=ignore_index, reduction="none")
    if pixel_weight is not None:
        per_pixel = per_pixel * pixel_weight.to(per_pixel.dtype)
    return per_pixel.sum() / (label.numel() + _EPS)


def sigmoid_seg_cross_entropy(logits: torch.Tensor, label: torch.Tensor, *, ignore_index: int = 255,
                              class_weight=None, pixel_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``CrossEntropyLoss(use_sigmoid=True)`` on N x K x H x W logits (at the label's size) and an N x H x W label.

    K = 1: a binary map, the label's 0/1 are the targets. K > 1: the label becomes one-hot targets.
    Either way each element's binary cross-entropy (``class_weight`` as the positive weight) is masked at
    ignored pixels (and multiplied by ``pixel_weight``) and the sum divided by the number of *all* elements.
    """
    logits = loss_precision(logits)
    valid = (label >= 0) & (label != ignore_index)
    if logits.shape[1] == 1:
        logits = logits[:, 0]
        target = torch.where(valid, label, torch.zeros_like(label)).to(logits.dtype)
        weight = valid.to(logits.dtype)
    else:
        target = F.one_hot(torch.where(valid, label, torch.zeros_like(label)), logits.shape[1])
        target = (target.permute(0, 3, 1, 2) * valid.unsqueeze(1)).to(logits.dtype)
        weight = valid.unsqueeze(1).expand_as(logits).to(logits.dtype)
        if pixel_weight is not None:
            pixel_weight = pixel_weight.unsqueeze(1)
    if pixel_weight is not None:
        weight = weight * pixel_weight.to(logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=_class_weight(class_weight, logits),
                                              reduction="none")
    return (loss * weight).mean()


def ohem_cross_entropy(logits: torch.Tensor, label: torch.Tensor, *, thres: float = 0.7, min_kept: int = 100000,
                       class_weight=None, ignore_index: int = 255) -> torch.Tensor:
    """MMSegmentation's ``OhemCrossEntropy`` (from PIDNet) on logits at the label's size.

    The valid pixels are sorted by the probability of their true class; those below
    ``max(thres, p[min(min_kept, n - 1)])`` keep their (class-weighted) cross-entropy, and the loss is the
    mean over them (NaN if none is kept, as the reference; 0 if no pixel is valid).
    """
    logits = loss_precision(logits)
    min_kept = max(1, int(min_kept))
    per_pixel = F.cross_entropy(logits, label, weight=_class_weight(class_weight, logits), ignore_index=ignore_index,
                                reduction="none").reshape(-1)
    valid = label.reshape(-1) != ignore_index
    target = torch.where(label == ignore_index, torch.zeros_like(label), label)
    prob = F.softmax(logits, dim=1).gather(1, target.unsqueeze(1)).reshape(-1)[valid]
    prob, order = prob.sort()
    if prob.numel() == 0:
        return logits.new_zeros(())
    threshold = torch.clamp(prob[min(min_kept, prob.numel() - 1)], min=thres)
    kept = per_pixel[valid][order][prob < threshold]
    return kept.mean()


def dice_loss(logits: torch.Tensor, label: torch.Tensor, *, eps: float = 1e-3) -> torch.Tensor:
    """MMSegmentation 1.2.2's ``DiceLoss`` (sigmoid activation, V-Net form ``1 - 2ab / (a^2 + eps + b^2 + eps)``
    per image over all K x H x W elements, averaged over the batch). Labels outside ``[0, K)`` (the ignore
    index) have no one-hot target, exactly as the reference's clamp-and-drop expansion."""
    prob = loss_precision(logits).sigmoid()
    k = prob.shape[1]
    onehot = F.one_hot(label.clamp(0, k), k + 1)[..., :k].permute(0, 3, 1, 2).float()
    p, t = prob.flatten(1), onehot.flatten(1)
    # the reference's targets are float32, so their sum of squares plus eps is rounded to float32 (also in a
    # float64 run)
    d = 2 * (p * t).sum(1) / (((p * p).sum(1) + eps) + ((t * t).sum(1) + eps))
    return (1 - d).mean()


def boundary_loss(logits: torch.Tensor, boundary: torch.Tensor) -> torch.Tensor:
    """MMSegmentation's ``BoundaryLoss`` (from PIDNet): binary cross-entropy of N x 1 x H x W boundary logits
    against a 0/1 map, positives weighted by the negatives' share and negatives by the positives' share, mean
    over all pixels (values other than 0 and 1 get weight 0)."""
    x = loss_precision(logits).permute(0, 2, 3, 1).reshape(1, -1)
    t = boundary.reshape(1, -1).to(x.dtype)
    pos, neg = t == 1, t == 0
    n_pos, n_neg = pos.sum(), neg.sum()
    total = n_pos + n_neg
    weight = torch.zeros_like(x)
    weight = torch.where(pos, n_neg / total, weight)
    weight = torch.where(neg, n_pos / total, weight)
    return F.binary_cross_entropy_with_logits(x, t, weight, reduction="mean")


def ohem_pixel_weights(logits: torch.Tensor, label: torch.Tensor, sampler: PixelSampler, *,
                       ignore_index: int = 255) -> torch.Tensor:
    """The 0/1 pixel weights of MMSegmentation's ``OHEMPixelSampler`` (with a threshold) for logits at the
    label's size: 1 where the true class's probability is below ``max(thresh, p[min(min_kept * N, n - 1)])``."""
    with torch.no_grad():
        logits = loss_precision(logits)
        valid = label != ignore_index
        kept = sampler.min_kept * label.shape[0]
        if sampler.thresh is None:  # the pixels of largest loss (the head's cross-entropy, 0 where ignored)
            per_pixel = F.cross_entropy(logits, label, ignore_index=ignore_index, reduction="none")
            order = per_pixel[valid].sort(descending=True)[1]
            chosen = torch.zeros_like(per_pixel[valid])
            chosen[order[:kept]] = 1.0
            weight = torch.zeros_like(per_pixel)
            weight[valid] = chosen
            return weight
        target = torch.where(valid, label, torch.zeros_like(label))
        prob = F.softmax(logits, dim=1).gather(1, target.unsqueeze(1)).squeeze(1)
        valid_prob = prob[valid]
        weight = torch.zeros_like(prob)
        if valid_prob.numel() == 0:
            return weight
        sorted_prob = valid_prob.sort()[0]
        threshold = max(float(sorted_prob[min(kept, sorted_prob.numel() - 1)]), sampler.thresh)
        weight[valid] = (valid_prob < threshold).to(weight.dtype)
        return weight


def spec_losses(specs: tuple[LossSpec, ...], logits: torch.Tensor, label: torch.Tensor, *, align_corners: bool,
                ignore_index: int = 255, sampler: Optional[PixelSampler] = None) -> dict[str, torch.Tensor]:
    """The loss terms of one head's ``specs`` for its logits at feature resolution (resized here to the label),
    each multiplied by its spec's weight. Terms of the same name add up, as in the reference."""
    logits = loss_precision(resize(logits, label.shape[-2:], align_corners))
    pixel_weight = ohem_pixel_weights(logits, label, sampler, ignore_index=ignore_index) if sampler else None
    out: dict[str, torch.Tensor] = {}
    for i, s in enumerate(specs):
        if s.kind == "ce" and s.use_sigmoid:
            term = sigmoid_seg_cross_entropy(logits, label, ignore_index=ignore_index, class_weight=s.class_weight,
                                             pixel_weight=pixel_weight)
        elif s.kind == "ce":
            term = seg_cross_entropy(logits, label, align_corners=align_corners, ignore_index=ignore_index,
                                     class_weight=s.class_weight, pixel_weight=pixel_weight)
        elif s.kind == "ohem_ce":
            term = ohem_cross_entropy(logits, label, thres=s.thres, min_kept=s.min_kept,
                                      class_weight=s.class_weight, ignore_index=ignore_index)
        elif s.kind == "dice":
            term = dice_loss(logits, label)
        else:
            raise ValueError(f"a {s.kind!r} loss needs its head's own targets; the head must override loss()")
        name = s.name or f"{s.kind}{i}"
        out[name] = out[name] + s.weight * term if name in out else s.weight * term
    return out
