"""Training losses of the mask-classification heads (MaskFormer, Mask2Former), as MMSegmentation 1.2.2 trains
them through MMDetection 3.3.0's ``MaskFormerHead`` / ``Mask2FormerHead.loss_by_feat``.

For every decoder layer (the last one gives ``loss_cls``/``loss_mask``/``loss_dice``, the earlier ones the
auxiliary ``d{i}.loss_*`` terms):

1. targets: each image's label map becomes one binary mask per class present in it (MMSegmentation's
   ``_seg_data_to_instance_data``: ``torch.unique`` of the map, the ignore index dropped; an all-ignored image
   has no target);
2. matching: a Hungarian assignment (:func:`linear_sum_assignment`, the algorithm of SciPy's
   ``linear_sum_assignment``, here in NumPy) of queries to targets on MMDetection's ``HungarianAssigner``
   costs — Mask2Former: ``ClassificationCost`` (-softmax probability of the target class) + sigmoid
   ``CrossEntropyLossCost`` + ``DiceCost`` on masks point-sampled at ``num_points`` uniform random points;
   MaskFormer: ``ClassificationCost`` + binary ``FocalLossCost`` + ``DiceCost`` on the targets
   nearest-downsampled to the predictions' size;
3. losses: softmax cross-entropy over the K + 1 classes (the "no object" class K for unmatched queries,
   class weight ``no_object_weight``), divided by the sum of the targets' class weights; for the matched
   queries, Mask2Former's sigmoid BCE and Dice loss on points drawn by
   ``get_uncertain_point_coords_with_randomness`` (``oversample_ratio`` x ``num_points`` uniform candidates,
   the ``importance_sample_ratio`` share with the smallest ``|logit|`` kept, the rest drawn uniformly), or
   MaskFormer's sigmoid focal loss (target ``1 - mask`` through the reference's one-hot, i.e. the mask) and
   Dice loss on the predictions bilinearly upsampled to the label's size; both divided by the number of
   targets in the batch (each image counts at least 1; in distributed training the mean of that count over
   the processes, as MMDetection's ``reduce_mean``).

Random numbers (Mask2Former only) are drawn from torch's global generator with ``torch.rand`` in the
reference's order: for each decoder layer in turn, one ``(1, num_points, 2)`` draw per image (the matching
points, also for an image without targets), then, if any query is matched, ``(n, oversample x num_points, 2)``
and ``(n, num_points - importance x num_points, 2)`` for the n matched queries of the batch. The reference
draws them in torch's default dtype (float32 in training); sszoo draws them in the working dtype of the
predictions (half precision upcast to float32), which is the same in every float32 or mixed-precision run and
lets a float64 run be checked against a float64 reference.

Numerics: the reference casts its targets (and the ``CrossEntropyLossCost`` inputs) with ``.float()``; sszoo
casts them to the working dtype instead, which is that same cast in a float32 run, and float64 in a float64 run
(the golden runs the reference with ``.float()`` meaning float64, see tools/make_mask2former_loss_golden.py).
The losses are 0-d tensors (the reference's are 1-element tensors of shape (1,)). MaskFormer's focal loss
follows MMDetection's CPU formula (``py_sigmoid_focal_loss``); on CUDA the reference runs mmcv's fused
``sigmoid_focal_loss`` kernel, the same formula in float32.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..distributed import world_size

_EPS = torch.finfo(torch.float32).eps  # MMDetection's weight_reduce_loss adds it to every avg_factor
MASK_LOSS_KINDS = ("mask2former", "maskformer")


@dataclass(frozen=True)
class MaskClassificationLoss:
    """The loss and matcher settings of a MaskFormer / Mask2Former head (its ``loss_*`` and ``train_cfg``).

    ``kind`` "mask2former": point-sampled BCE mask loss and Dice, matched with ClassificationCost +
    CrossEntropyLossCost + DiceCost; "maskformer": full-resolution focal mask loss and Dice, matched with
    ClassificationCost + FocalLossCost + DiceCost. Defaults: MMSegmentation's Mask2Former configs.
    """

    kind: str = "mask2former"
    cls_weight: float = 2.0          # loss_cls.loss_weight
    mask_weight: float = 5.0         # loss_mask.loss_weight
    dice_weight: float = 5.0         # loss_dice.loss_weight
    no_object_weight: float = 0.1    # the last entry of loss_cls.class_weight (the others are 1.0)
    dice_eps: float = 1.0            # loss_dice.eps (naive Dice)
    cost_cls: float = 2.0            # ClassificationCost.weight
    cost_mask: float = 5.0           # CrossEntropyLossCost.weight / FocalLossCost.weight
    cost_dice: float = 5.0           # DiceCost.weight
    cost_dice_eps: float = 1.0       # DiceCost.eps
    num_points: int = 12544          # train_cfg (Mask2Former)
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    focal_alpha: float = 0.25        # loss_mask (MaskFormer's FocalLoss) and FocalLossCost
    focal_gamma: float = 2.0
    focal_cost_eps: float = 1e-12    # FocalLossCost.eps

    def __post_init__(self) -> None:
        if self.kind not in MASK_LOSS_KINDS:
            raise ValueError(f"unknown mask loss kind {self.kind!r}; expected one of {MASK_LOSS_KINDS}")
        if self.oversample_ratio < 1 or not 0 <= self.importance_sample_ratio <= 1:
            raise ValueError("oversample_ratio must be >= 1 and importance_sample_ratio in [0, 1]")


# MMSegmentation's MaskFormer configs (loss weights 1 / 20 / 1, the same as cost weights)
MASKFORMER_LOSS = MaskClassificationLoss(kind="maskformer", cls_weight=1.0, mask_weight=20.0, dice_weight=1.0,
                                         cost_cls=1.0, cost_mask=20.0, cost_dice=1.0)


# ----------------------------------------------------------------------------------------------------------------
# Hungarian assignment


def linear_sum_assignment(cost: Union[np.ndarray, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment of a rectangular cost matrix: ``(rows, cols)`` int64 arrays, rows ascending.

    The shortest-augmenting-path algorithm (Jonker-Volgenant, in Crouse's rectangular form) that
    ``scipy.optimize.linear_sum_assignment`` implements, in NumPy float64 with the same scan order and tie
    rules (a matrix with more rows than columns is solved transposed; candidate columns are scanned from the
    last; among equally short paths an unassigned column is preferred), so it returns SciPy's assignment,
    also for most tied matrices. Raises ``ValueError`` on NaN or -inf entries and on infeasible matrices.
    """
    c = cost.detach().cpu().double().numpy() if isinstance(cost, torch.Tensor) else np.asarray(cost, np.float64)
    if c.ndim != 2:
        raise ValueError(f"expected a matrix, got shape {c.shape}")
    if c.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if np.isnan(c).any() or np.isneginf(c).any():
        raise ValueError("matrix contains invalid numeric entries")
    transpose = c.shape[1] < c.shape[0]
    if transpose:
        c = np.ascontiguousarray(c.T)
    nr, nc = c.shape
    u, v = np.zeros(nr), np.zeros(nc)
    col4row = np.full(nr, -1, np.int64)
    row4col = np.full(nc, -1, np.int64)
    path = np.full(nc, -1, np.int64)
    for cur in range(nr):
        short = np.full(nc, np.inf)
        seen_rows = np.zeros(nr, bool)
        seen_cols = np.zeros(nc, bool)
        remaining = np.arange(nc - 1, -1, -1)  # reversed, so a constant matrix gives the identity (as SciPy)
        n_rem, min_val, i, sink = nc, 0.0, cur, -1
        while sink < 0:
            seen_rows[i] = True
            js = remaining[:n_rem]
            reduced = min_val + c[i, js] - u[i] - v[js]  # SciPy's order of operations
            better = reduced < short[js]
            path[js[better]] = i
            short[js] = np.where(better, reduced, short[js])
            vals = short[js]
            lowest = vals.min()
            if lowest == np.inf:
                raise ValueError("cost matrix is infeasible")
            # a sequential scan keeps the first minimum unless a later minimum's column is unassigned
            ties = np.flatnonzero(vals == lowest)
            free = ties[row4col[js[ties]] < 0]
            index = int(free[-1]) if free.size else int(ties[0])
            min_val = float(lowest)
            j = int(js[index])
            if row4col[j] < 0:
                sink = j
            else:
                i = int(row4col[j])
            seen_cols[j] = True
            n_rem -= 1
            remaining[index] = remaining[n_rem]
        u[cur] += min_val
        others = seen_rows.copy()
        others[cur] = False
        rows = np.flatnonzero(others)
        u[rows] += min_val - short[col4row[rows]]
        cols = np.flatnonzero(seen_cols)
        v[cols] -= min_val - short[cols]
        j = sink
        while True:  # augment along the path back to the current row
            i = int(path[j])
            row4col[j] = i
            col4row[i], j = j, int(col4row[i])
            if i == cur:
                break
    if transpose:
        order = np.argsort(col4row, kind="stable")
        return col4row[order].astype(np.int64), order.astype(np.int64)
    return np.arange(nr, dtype=np.int64), col4row.copy()


# ----------------------------------------------------------------------------------------------------------------
# targets, point sampling, matching costs


def semantic_to_instances(label: torch.Tensor, ignore_index: int = 255) -> tuple[torch.Tensor, torch.Tensor]:
    """One image's label map H x W (or 1 x H x W) as (classes G, masks G x H x W long): one binary mask per class
    present, the ignore index excluded, classes in ``torch.unique(sorted=False)``'s order as MMSegmentation."""
    label = label.reshape(label.shape[-2:])
    classes = torch.unique(label, sorted=False)
    classes = classes[classes != ignore_index]
    if classes.numel() == 0:
        return classes, label.new_zeros((0,) + tuple(label.shape), dtype=torch.long)
    return classes, (label[None] == classes[:, None, None]).long()


def point_sample(maps: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """mmcv's ``point_sample``: bilinear values of ``maps`` N x C x H x W at ``points`` N x P x 2 ((x, y) in
    [0, 1], ``align_corners=False``, zeros outside) -> N x C x P."""
    return F.grid_sample(maps, points.unsqueeze(2) * 2.0 - 1.0, align_corners=False).squeeze(3)


def uncertain_point_coords(mask_logits: torch.Tensor, num_points: int, oversample_ratio: float,
                           importance_sample_ratio: float) -> torch.Tensor:
    """MMDetection's ``get_uncertain_point_coords_with_randomness`` for class-agnostic masks n x 1 x h x w:
    n x num_points x 2 points, the most uncertain (smallest ``|logit|``) of ``oversample_ratio x num_points``
    uniform draws first, then fresh uniform draws (two ``torch.rand`` calls, in this order)."""
    n = mask_logits.shape[0]
    num_sampled = int(num_points * oversample_ratio)
    coords = torch.rand(n, num_sampled, 2, device=mask_logits.device, dtype=mask_logits.dtype)
    uncertainty = -point_sample(mask_logits, coords)[:, 0].abs()
    num_uncertain = int(importance_sample_ratio * num_points)
    idx = torch.topk(uncertainty, k=num_uncertain, dim=1)[1]
    coords = torch.gather(coords, 1, idx.unsqueeze(-1).expand(-1, -1, 2))
    num_random = num_points - num_uncertain
    if num_random > 0:
        coords = torch.cat([coords, torch.rand(n, num_random, 2, device=mask_logits.device,
                                               dtype=mask_logits.dtype)], dim=1)
    return coords


def _dice_cost(pred_logits: torch.Tensor, gt: torch.Tensor, eps: float) -> torch.Tensor:
    """``DiceCost(pred_act=True, naive_dice=True)``: 1 - (2 p.g + eps) / (sum p + sum g + eps), Q x G."""
    p = pred_logits.sigmoid().flatten(1)
    g = gt.flatten(1)
    num = 2 * torch.einsum("nc,mc->nm", p, g)
    den = p.sum(-1)[:, None] + g.sum(-1)[None, :]
    return 1 - (num + eps) / (den + eps)


def _bce_cost(pred_logits: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """``CrossEntropyLossCost(use_sigmoid=True)``: the mean over points of the binary cross-entropy, Q x G."""
    x, g = pred_logits.flatten(1), gt.flatten(1)
    pos = F.binary_cross_entropy_with_logits(x, torch.ones_like(x), reduction="none")
    neg = F.binary_cross_entropy_with_logits(x, torch.zeros_like(x), reduction="none")
    return (torch.einsum("nc,mc->nm", pos, g) + torch.einsum("nc,mc->nm", neg, 1 - g)) / x.shape[1]


def _focal_cost(pred_logits: torch.Tensor, gt: torch.Tensor, alpha: float, gamma: float,
                eps: float) -> torch.Tensor:
    """``FocalLossCost(binary_input=True)``: the mean over pixels of the focal loss, Q x G."""
    p = pred_logits.flatten(1).sigmoid()
    g = gt.flatten(1)
    neg = -(1 - p + eps).log() * (1 - alpha) * p.pow(gamma)
    pos = -(p + eps).log() * alpha * (1 - p).pow(gamma)
    return (torch.einsum("nc,mc->nm", pos, g) + torch.einsum("nc,mc->nm", neg, 1 - g)) / p.shape[1]


def match_cost(cfg: MaskClassificationLoss, cls_score: torch.Tensor, mask_pred: torch.Tensor,
               gt_classes: torch.Tensor, gt_masks: torch.Tensor) -> torch.Tensor:
    """The HungarianAssigner's Q x G cost of one image: ``cls_score`` Q x (K + 1), ``mask_pred`` Q x ... and
    ``gt_masks`` G x ... (the same trailing shape: sampled points or pixels, in the working dtype)."""
    cls = -cls_score.softmax(-1)[:, gt_classes] * cfg.cost_cls
    if cfg.kind == "mask2former":
        mask = _bce_cost(mask_pred, gt_masks) * cfg.cost_mask
    else:
        mask = _focal_cost(mask_pred, gt_masks, cfg.focal_alpha, cfg.focal_gamma, cfg.focal_cost_eps) * cfg.cost_mask
    dice = _dice_cost(mask_pred, gt_masks, cfg.cost_dice_eps) * cfg.cost_dice
    return torch.stack([cls, mask, dice]).sum(0)


def assign_queries(cfg: MaskClassificationLoss, cls_score: torch.Tensor, mask_pred: torch.Tensor,
                   gt_classes: torch.Tensor, gt_masks: torch.Tensor) -> torch.Tensor:
    """One image's assignment as the reference's ``assigned_gt_inds``: for each query 0 (no object) or
    1 + the index of its target. Mask2Former draws its matching points here (one ``torch.rand``, also for an
    image without targets)."""
    num_queries = cls_score.shape[0]
    work = mask_pred.dtype
    if cfg.kind == "mask2former":
        coords = torch.rand((1, cfg.num_points, 2), device=mask_pred.device, dtype=work)
        if gt_classes.numel() == 0:
            return torch.zeros(num_queries, dtype=torch.long, device=cls_score.device)
        pred = point_sample(mask_pred.unsqueeze(1), coords.repeat(num_queries, 1, 1))[:, 0]
        gt = point_sample(gt_masks.unsqueeze(1).to(work), coords.repeat(gt_masks.shape[0], 1, 1))[:, 0]
    else:
        if gt_classes.numel() == 0:
            return torch.zeros(num_queries, dtype=torch.long, device=cls_score.device)
        pred = mask_pred
        gt = F.interpolate(gt_masks.unsqueeze(1).to(work), mask_pred.shape[-2:], mode="nearest")[:, 0].long()
        gt = gt.to(work)
    cost = match_cost(cfg, cls_score, pred, gt_classes, gt)
    rows, cols = linear_sum_assignment(cost.detach())
    assigned = torch.zeros(num_queries, dtype=torch.long, device=cls_score.device)
    assigned[torch.from_numpy(rows).to(assigned.device)] = torch.from_numpy(cols).to(assigned.device) + 1
    return assigned


# ----------------------------------------------------------------------------------------------------------------
# the losses


def _reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """MMDetection's ``reduce_mean``: each process's value divided by the world size, then summed (``t`` itself
    in a single process)."""
    n = world_size()
    if n == 1:
        return t
    t = t.clone() / n
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
    return t


def _work_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else t.dtype


def _layer_losses(cfg: MaskClassificationLoss, cls_scores: torch.Tensor, mask_preds: torch.Tensor,
                  targets: list[tuple[torch.Tensor, torch.Tensor]],
                  record: Optional[list]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss_cls, loss_mask, loss_dice)`` of one decoder layer: cls_scores B x Q x (K + 1), mask_preds B x Q x
    h x w, targets one (classes, masks) per image."""
    num_classes = cls_scores.shape[-1] - 1
    labels, matched_preds, matched_masks, avg_factor = [], [], [], 0
    for b, (classes, masks) in enumerate(targets):
        assigned = assign_queries(cfg, cls_scores[b], mask_preds[b], classes, masks)
        if record is not None:
            record.append(assigned)
        pos = torch.nonzero(assigned > 0).squeeze(-1)
        gt_index = assigned[pos] - 1
        lab = torch.full((cls_scores.shape[1],), num_classes, dtype=torch.long, device=cls_scores.device)
        lab[pos] = classes[gt_index]
        labels.append(lab)
        matched_preds.append(mask_preds[b][pos])
        matched_masks.append(masks[gt_index])
        avg_factor += max(pos.numel(), 1)  # MaskPseudoSampler: an image counts at least one positive

    labels_t = torch.stack(labels).flatten()
    class_weight = cls_scores.new_tensor([1.0] * num_classes + [cfg.no_object_weight])
    ce = F.cross_entropy(cls_scores.flatten(0, 1), labels_t, weight=class_weight, reduction="none")
    loss_cls = cfg.cls_weight * (ce.sum() / (class_weight[labels_t].sum() + _EPS))

    # MMDetection's reduce_mean: under torch.distributed the mean over the processes of their target counts
    num_masks = _reduce_mean(cls_scores.new_tensor(float(avg_factor)))
    preds = torch.cat(matched_preds)
    masks = torch.cat(matched_masks)
    if masks.shape[0] == 0:  # nothing matched in the batch: zero losses that keep the graph
        return loss_cls, preds.sum(), preds.sum()
    work = preds.dtype
    if cfg.kind == "mask2former":
        with torch.no_grad():
            coords = uncertain_point_coords(preds.unsqueeze(1), cfg.num_points, cfg.oversample_ratio,
                                            cfg.importance_sample_ratio)
            target = point_sample(masks.unsqueeze(1).to(work), coords)[:, 0]
        logits = point_sample(preds.unsqueeze(1), coords)[:, 0]
        mask_terms = F.binary_cross_entropy_with_logits(logits.reshape(-1), target.reshape(-1), reduction="none")
        mask_denominator = num_masks * cfg.num_points
    else:
        target = masks.to(work)
        logits = F.interpolate(preds.unsqueeze(1), masks.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        x, t = logits.reshape(-1, 1), target.reshape(-1, 1)  # the reference's one-hot of 1 - mask is the mask
        p = x.sigmoid()
        pt = (1 - p) * t + p * (1 - t)
        focal_weight = (cfg.focal_alpha * t + (1 - cfg.focal_alpha) * (1 - t)) * pt.pow(cfg.focal_gamma)
        mask_terms = F.binary_cross_entropy_with_logits(x, t, reduction="none") * focal_weight
        mask_denominator = num_masks * masks.shape[-2] * masks.shape[-1]
    loss_mask = cfg.mask_weight * (mask_terms.sum() / (mask_denominator + _EPS))

    p = logits.sigmoid().flatten(1)
    t = target.flatten(1)
    dice = 1 - (2 * (p * t).sum(1) + cfg.dice_eps) / (p.sum(1) + t.sum(1) + cfg.dice_eps)
    loss_dice = cfg.dice_weight * (dice.sum() / (num_masks + _EPS))
    return loss_cls, loss_mask, loss_dice


def mask_classification_losses(all_cls_scores: Union[torch.Tensor, Sequence[torch.Tensor]],
                               all_mask_preds: Union[torch.Tensor, Sequence[torch.Tensor]],
                               label: torch.Tensor, ignore_index: int = 255,
                               cfg: MaskClassificationLoss = MaskClassificationLoss(), *,
                               assignments: Optional[list] = None) -> dict[str, torch.Tensor]:
    """The reference's ``loss_by_feat`` dict for every decoder layer's predictions.

    ``all_cls_scores``: L x B x Q x (K + 1) class logits (K classes + "no object"), a tensor or a sequence of
    L tensors; ``all_mask_preds``: L x B x Q x h x w mask logits; ``label``: B x H x W (or B x 1 x H x W) label
    maps, ``ignore_index`` excluded from the targets. Returns ``loss_cls``, ``loss_mask``, ``loss_dice`` of
    the last layer and ``d{i}.loss_cls`` ... of the others (i = 0 .. L - 2), each already times its weight.
    ``assignments``, when a list, receives each (layer, image)'s ``assigned_gt_inds`` (0 or 1 + target index)
    in that order. Draws random numbers for Mask2Former (see the module docstring).
    """
    label = label.reshape(label.shape[0], *label.shape[-2:])
    targets = [semantic_to_instances(lab, ignore_index) for lab in label]
    out: dict[str, torch.Tensor] = {}
    layers = list(zip(all_cls_scores, all_mask_preds))
    for i, (cls_scores, mask_preds) in enumerate(layers):
        work = _work_dtype(mask_preds)
        terms = _layer_losses(cfg, cls_scores.to(_work_dtype(cls_scores)), mask_preds.to(work), targets,
                              assignments)
        prefix = "" if i == len(layers) - 1 else f"d{i}."
        for name, value in zip(("loss_cls", "loss_mask", "loss_dice"), terms):
            out[prefix + name] = value
    # the reference's order: the last layer's terms first, then d0, d1, ...
    last = {k: out.pop(k) for k in ("loss_cls", "loss_mask", "loss_dice")}
    return {**last, **out}
