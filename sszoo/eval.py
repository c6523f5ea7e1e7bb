"""The evaluator: a zoo model on a dataset with the reference test protocol, and its command line.

    python -m sszoo.eval --model pspnet_r101_d8_cityscapes --data data/cityscapes --precision fp16
    torchrun --nproc_per_node=8 -m sszoo.eval --model ... --data ...

Every image is evaluated exactly once, also under torchrun (each process takes every N-th image; the
confusion matrices are summed). See docs/eval.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import platform
import sys
import time
from typing import Any, Optional, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from . import distributed as dist_utils
from .atomic import write_text
from .cliargs import parse_pair
from .inference import PRECISIONS, Protocol, infer
from .metrics import SegMetrics


def _collate(items: list[dict]) -> list[dict]:
    return items  # images differ in size: the inference helper batches what it can


class _Progress:
    """A one-line progress bar on stderr: count, images/s and the running mIoU."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.start, self.last = total, enabled, time.perf_counter(), 0.0

    def update(self, done: int, miou: float, force: bool = False) -> None:
        now = time.perf_counter()
        if not self.enabled or (not force and now - self.last < 0.5):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        width = 30
        fill = int(width * done / max(self.total, 1))
        sys.stderr.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {done}/{self.total}  {rate:.2f} img/s  "
                         f"mIoU {miou:.2f}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def evaluate(model: torch.nn.Module, dataset: Dataset, protocol: Optional[Protocol] = None, *,
             precision: str = "fp32", batch_size: int = 1, workers: int = 0,
             device: Optional[str | torch.device] = None, limit: Optional[int] = None, tta: bool = False,
             progress: bool = True) -> dict:
    """Evaluate ``model`` on ``dataset`` (items ``{"image", "label", "path"}`` with ``.info``).

    Under torch.distributed each process evaluates every world_size-th image and the confusion matrices
    are summed, so every image counts exactly once and all processes return the same numbers.

    Args:
        model: a segmentor (normalised input -> logits at input size).
        dataset: e.g. :func:`sszoo.data.build_dataset`; ``dataset.info`` gives the classes.
        protocol: the test protocol; default the model entry's.
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"`` autocast.
        batch_size: images per loader batch (batched forward where resized sizes are equal).
        workers: DataLoader worker processes for decoding.
        device: default CUDA when available.
        limit: evaluate only the first ``limit`` images.
        tta: multi-scale + flip.
        progress: show a progress bar (rank 0 only).

    Returns:
        ``mIoU``, ``mAcc``, ``aAcc`` (percent), per-class ``IoU``/``Acc`` lists, ``classes``,
        ``per_class`` rows (IoU, Acc and the pixel counts intersect, union, pred, label),
        ``num_images``, ``out_of_range`` and ``timings``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    info = getattr(dataset, "info", None)
    if info is None:
        raise TypeError("the dataset needs an .info (a sszoo.registry.DatasetInfo); use sszoo.data.build_dataset")
    num_classes = int(getattr(model, "num_classes", info.num_classes))
    if num_classes != info.num_classes:
        raise ValueError(f"the model predicts {num_classes} classes but dataset {info.key} has {info.num_classes}; "
                         "pick the dataset the model was trained on (--dataset) or a model for this one")
    if protocol is None:
        entry = getattr(model, "entry", None)
        if entry is None:
            raise ValueError("no protocol given and the model has no zoo entry; pass sszoo.inference.Protocol(...)")
        protocol = Protocol.from_entry(entry)
    dev = torch.device(device) if device is not None else \
        torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(dev).eval()
    if dev.type == "cuda":
        model.to(memory_format=torch.channels_last)

    n = len(dataset) if limit is None else min(limit, len(dataset))
    mine = dist_utils.shard(n)
    loader = DataLoader(Subset(dataset, mine), batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=_collate, pin_memory=dev.type == "cuda",
                        persistent_workers=False)
    metrics = SegMetrics(info.num_classes, info.ignore_index, device=dev)
    bar = _Progress(len(mine), progress and dist_utils.is_main())
    done = 0
    t0 = time.perf_counter()
    infer_s = 0.0
    for batch in loader:
        images = [item["image"] for item in batch]
        ti = time.perf_counter()
        preds = infer(model, images, protocol, output="labels", precision=precision, tta=tta, device=dev,
                      batch_size=max(batch_size, 1))
        for item, pred in zip(batch, preds):
            metrics.update(pred, item["label"].to(dev, non_blocking=True))
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        infer_s += time.perf_counter() - ti
        done += len(batch)
        bar.update(done, metrics.compute()["mIoU"] if progress and dist_utils.is_main() else math.nan)
    total_s = time.perf_counter() - t0
    bar.update(done, metrics.compute()["mIoU"], force=True)
    bar.close()

    counts = dist_utils.all_reduce_sum(torch.tensor([done], dtype=torch.int64,
                                                     device=dev if dev.type == "cuda" else "cpu"))
    metrics.all_reduce()
    res = metrics.compute()
    areas = {k: [int(v) for v in t.tolist()] for k, t in metrics.areas().items()}
    num_images = int(counts.item())
    res.update({
        "classes": list(info.class_names),
        # pixel counts beside the ratios, as MMSegmentation's intersect_and_union sums them
        "per_class": [{"class": c, "IoU": iou, "Acc": acc, "intersect": i, "union": u, "pred": p, "label": lab}
                      for c, iou, acc, i, u, p, lab in zip(info.class_names, res["IoU"], res["Acc"],
                                                           areas["intersect"], areas["union"], areas["pred"],
                                                           areas["label"])],
        "num_images": num_images,
        "timings": {"total_s": total_s, "inference_s": infer_s,
                    "images_per_s": num_images / total_s if total_s > 0 else math.nan,
                    "world_size": dist_utils.world_size()},
    })
    return res


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m sszoo.eval`` argument parser."""
    ap = argparse.ArgumentParser(prog="python -m sszoo.eval",
                                 description="Evaluate a zoo model with the reference test protocol.")
    ap.add_argument("--model", required=True, help="zoo name, e.g. pspnet_r101_d8_cityscapes (see sszoo.list_models)")
    ap.add_argument("--data", required=True, help="dataset root in its standard layout (see docs/eval.md)")
    ap.add_argument("--weights", default=None,
                    help="checkpoint: local path, http(s) URL or hf-hub:org/repo[@rev]; default the entry's published weights")
    ap.add_argument("--dataset", default=None, help="dataset key; default the model entry's (e.g. cityscapes, ade20k)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32")
    ap.add_argument("--mode", choices=["whole", "slide"], default=None, help="default the entry's test mode")
    ap.add_argument("--scale", type=functools.partial(parse_pair, form="LONGxSHORT", example="2048x1024"), default=None,
                    help="test Resize scale LONGxSHORT (keep ratio), default the entry's, e.g. 2048x1024")
    ap.add_argument("--crop", type=functools.partial(parse_pair, form="HxW"), default=None, help="slide window HxW (default the entry's)")
    ap.add_argument("--stride", type=functools.partial(parse_pair, form="HxW"), default=None, help="slide stride HxW (default the entry's)")
    ap.add_argument("--tta", action="store_true", help="multi-scale (0.5-1.75) + flip testing")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--limit", type=int, default=None, help="evaluate the first N images only")
    ap.add_argument("--device", default=None, help="cuda, cuda:1 or cpu (default cuda when available)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    return ap


def _versions() -> dict:
    import torchvision

    from . import __version__
    return {"sszoo": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version(),
            "cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def format_table(res: dict) -> str:
    """The per-class table: class, IoU, Acc (percent)."""
    w = max([len(c) for c in res["classes"]] + [5])
    lines = [f"{'class':<{w}}  {'IoU':>6}  {'Acc':>6}", "-" * (w + 16)]
    for row in res["per_class"]:
        lines.append(f"{row['class']:<{w}}  {row['IoU']:6.2f}  {row['Acc']:6.2f}")
    lines.append("-" * (w + 16))
    lines.append(f"{'mean':<{w}}  {res['mIoU']:6.2f}  {res['mAcc']:6.2f}   aAcc {res['aAcc']:.2f}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """``python -m sszoo.eval``: returns the results dict (also written to ``--out``)."""
    a = build_parser().parse_args(argv)
    import sszoo
    from .data import build_dataset

    if a.batch_size < 1 or a.workers < 0 or (a.limit is not None and a.limit < 1):
        raise SystemExit("--batch-size and --limit must be at least 1, --workers at least 0")
    rank, world, dev = dist_utils.init_from_env(a.device)
    try:
        entry = sszoo.get_entry(a.model)
        pretrained: Any = a.weights if a.weights else True
        model = sszoo.create_model(a.model, pretrained=pretrained, aux=False)
        protocol = Protocol.from_entry(entry)
        changes: dict = {}
        if a.scale:
            changes["scale"] = a.scale
        if a.crop:
            changes["crop"] = a.crop
        if a.stride:
            changes["stride"] = a.stride
        if a.mode:
            changes["mode"] = a.mode
        if changes.get("mode", protocol.mode) == "slide" and not (changes.get("crop") or protocol.crop):
            raise SystemExit(f"{entry.name} is tested whole-image; slide mode needs --crop HxW and --stride HxW")
        protocol = protocol.with_(**changes)
        key = a.dataset or entry.dataset.key
        dataset = build_dataset(key, a.data, a.split)
        res = evaluate(model, dataset, protocol, precision=a.precision, batch_size=a.batch_size,
                       workers=a.workers, device=dev, limit=a.limit, tta=a.tta, progress=not a.quiet)
        reported = entry.reported.miou_msflip if a.tta else entry.reported.miou
        res["model"] = entry.name
        res["dataset"] = {"key": key, "root": os.path.abspath(a.data), "split": a.split}
        res["reported_mIoU"] = reported
        res["difference"] = res["mIoU"] - reported if reported is not None else None
        res["settings"] = {"protocol": dataclasses.asdict(protocol), "precision": a.precision, "tta": a.tta,
                           "batch_size": a.batch_size, "workers": a.workers, "device": str(dev),
                           "limit": a.limit, "weights": a.weights or entry.weights.url}
        res["versions"] = _versions()
        if dist_utils.is_main():
            if not a.quiet:
                print(format_table(res))
            rep = f"{reported:.2f}" if reported is not None else "n/a"
            diff = f" ({res['difference']:+.2f})" if reported is not None else ""
            print(f"mIoU measured {res['mIoU']:.2f} vs reported {rep}{diff}  [{res['num_images']} images, "
                  f"{res['timings']['images_per_s']:.2f} img/s, {a.precision}, {protocol.mode}"
                  f"{', ms+flip' if a.tta else ''}]")
            if res["out_of_range"]:
                print(f"warning: {res['out_of_range']} labelled pixels hold values outside 0..{len(res['classes']) - 1} "
                      "and are not the ignore index 255; check the label mapping (see docs/eval.md)", file=sys.stderr)
            if a.out:
                write_text(json.dumps(res, indent=1, default=str), a.out)
        return res
    finally:
        dist_utils.cleanup()


def console_main() -> int:
    """``sszoo-eval``: run :func:`main` and exit 0 (``main`` returns a dict, which ``sys.exit`` would treat as failure)."""
    main()
    return 0


if __name__ == "__main__":
    main()
