"""Segmentation metrics from a confusion matrix accumulated on the device.

The definitions are MMSegmentation's ``IoUMetric``: per class, intersection / union and intersection /
label area; mIoU and mAcc are the means over classes whose value is defined (a class that is neither
predicted nor labelled has no IoU; a class never labelled has no accuracy); aAcc is correct pixels over
labelled pixels. Pixels labelled ``ignore_index`` are excluded.

Labels outside ``0..num_classes-1`` that are not the ignore index (say 200 in a 19-class set) are
handled as the reference does: such a pixel belongs to no class's label area, but its prediction still
counts in the predicted class's area, so it lowers that class's IoU. They are counted in
``out_of_range`` so that a wrong label mapping shows up.
"""
from __future__ import annotations

import math
from typing import Optional, Union

import torch


class SegMetrics:
    """Accumulates a (K+1) x K confusion matrix: rows are labels (row K = out-of-range labels), columns predictions.

    Args:
        num_classes: K.
        ignore_index: label value excluded from every count.
        device: where the matrix lives; default the device of the first update.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, device: Union[str, torch.device, None] = None) -> None:
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix: Optional[torch.Tensor] = None
        if device is not None:
            self.matrix = self._zeros(torch.device(device))

    def _zeros(self, device: torch.device) -> torch.Tensor:
        return torch.zeros((self.num_classes + 1, self.num_classes), dtype=torch.int64, device=device)

    def reset(self) -> None:
        """Forget everything accumulated."""
        if self.matrix is not None:
            self.matrix.zero_()

    def update(self, pred: torch.Tensor, label: torch.Tensor) -> None:
        """Add predictions and labels of the same shape (any number of images, integer class ids)."""
        if not isinstance(pred, torch.Tensor) or not isinstance(label, torch.Tensor):
            raise TypeError("pred and label must be torch tensors of integer class ids")
        if pred.shape != label.shape:
            raise ValueError(f"pred shape {tuple(pred.shape)} differs from label shape {tuple(label.shape)}; "
                             "resize predictions to the label's size first (sszoo.inference.infer does)")
        if pred.is_floating_point() or label.is_floating_point():
            raise TypeError("pred and label must hold integer class ids (take argmax of logits first)")
        if self.matrix is None:
            self.matrix = self._zeros(pred.device)
        k = self.num_classes
        pred = pred.to(self.matrix.device).reshape(-1).long()
        label = label.to(self.matrix.device).reshape(-1).long()
        if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= k):
            raise ValueError(f"predictions must be class ids in 0..{k - 1}; got values in "
                             f"{int(pred.min())}..{int(pred.max())}")
        keep = label != self.ignore_index
        pred, label = pred[keep], label[keep]
        label = torch.where((label < 0) | (label >= k), torch.full_like(label, k), label)
        self.matrix += torch.bincount(label * k + pred, minlength=(k + 1) * k).view(k + 1, k)

    def all_reduce(self) -> None:
        """Sum the matrix over all processes of the default torch.distributed group (no-op without one)."""
        import torch.distributed as dist
        if not (dist.is_available() and dist.is_initialized()):
            return
        if self.matrix is None:
            dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" \
                else torch.device("cpu")
            self.matrix = self._zeros(dev)
        dist.all_reduce(self.matrix, op=dist.ReduceOp.SUM)

    @property
    def out_of_range(self) -> int:
        """Labelled pixels whose label is neither a class id nor the ignore index."""
        return 0 if self.matrix is None else int(self.matrix[self.num_classes].sum())

    def areas(self) -> dict[str, torch.Tensor]:
        """Per-class float64 areas: intersect, union, pred, label (as MMSegmentation's intersect_and_union)."""
        m = (self.matrix if self.matrix is not None else self._zeros(torch.device("cpu"))).double().cpu()
        k = self.num_classes
        intersect = torch.diagonal(m[:k])
        pred = m.sum(0)
        label = m[:k].sum(1)
        return {"intersect": intersect, "union": pred + label - intersect, "pred": pred, "label": label}

    def compute(self) -> dict:
        """``mIoU``, ``mAcc``, ``aAcc`` and per-class ``IoU``/``Acc`` lists, in percent (NaN = undefined)."""
        a = self.areas()
        with torch.no_grad():
            iou = a["intersect"] / a["union"]          # 0/0 -> NaN: class absent from labels and predictions
            acc = a["intersect"] / a["label"]          # x/0 -> NaN or inf; never labelled -> undefined
            acc = torch.where(a["label"] > 0, acc, torch.full_like(acc, float("nan")))
        total = float(a["label"].sum())
        return {
            "mIoU": _nanmean(iou) * 100,
            "mAcc": _nanmean(acc) * 100,
            "aAcc": float(a["intersect"].sum()) / total * 100 if total > 0 else float("nan"),
            "IoU": [float(v) * 100 for v in iou],
            "Acc": [float(v) * 100 for v in acc],
            "out_of_range": self.out_of_range,
        }


def _nanmean(v: torch.Tensor) -> float:
    ok = ~torch.isnan(v)
    return float(v[ok].mean()) if bool(ok.any()) else math.nan
