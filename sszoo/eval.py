"""The evaluator: a zoo model on a dataset with the reference test protocol, and its command line.

    python -m sszoo.eval --model pspnet_r101_d8_cityscapes --data data/cityscapes --precision fp16
    python -m sszoo.eval --model faster_rcnn_r50_fpn_fp16_1x_coco --data data/coco   # box AP (docs/detection.md)
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
from .cliargs import check_device, default_workers, one_line, one_line_warnings, parse_pair
from .inference import PRECISIONS, Protocol, infer
from .metrics import SegMetrics


def _collate(items: list[dict]) -> list[dict]:
    return items  # images differ in size: the inference helper batches what it can


class _Progress:
    """Progress on stderr: count, images/s and the running mIoU. On a terminal one line redrawn with
    carriage returns; otherwise (a log file, CI) a plain line at every tenth of the work."""

    def __init__(self, total: int, enabled: bool, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.total, self.enabled, self.start, self.last = total, enabled, time.perf_counter(), 0.0
        self.tty = bool(getattr(self.stream, "isatty", None) and self.stream.isatty())
        self.next_line, self.last_done = 1, -1  # the tenth of the work whose line is due next (non-terminals)

    def update(self, done: int, miou: float, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        rate = done / max(now - self.start, 1e-9)
        score = f"mIoU {miou:.2f}" if not math.isnan(miou) else "mIoU -"
        if self.tty:
            if not force and now - self.last < 0.5:
                return
            self.last = now
            width = 30
            fill = int(width * done / max(self.total, 1))
            self.stream.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {done}/{self.total}  {rate:.2f} img/s  {score}")
        else:
            tenth = (10 * done) // max(self.total, 1)
            if (tenth < self.next_line and not force) or done == self.last_done:
                return
            self.next_line, self.last_done = tenth + 1, done
            self.stream.write(f"eval: {done}/{self.total} images  {rate:.2f} img/s  {score}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")


def evaluate(model: torch.nn.Module, dataset: Dataset, protocol: Optional[Protocol] = None, *,
             precision: str = "fp32", batch_size: int = 1, workers: int = 0,
             device: Optional[str | torch.device] = None, limit: Optional[int] = None, tta: bool = False,
             progress: bool = True, save_predictions: Optional[str] = None, save_format: str = "trainids") -> dict:
    """Evaluate ``model`` on ``dataset`` (items ``{"image", "label", "path", "stem"}`` with ``.info``).

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
        save_predictions: a folder to write every prediction to, in ``save_format`` (see
            :mod:`sszoo.data.formats`: ``cityscapes``, ``ade20k``, ``voc`` or ``trainids``).
        save_format: the file format of ``save_predictions``.

    Items whose ``label`` is ``None`` (a test split) are predicted (and saved) without metrics.

    Returns:
        ``mIoU``, ``mAcc``, ``aAcc`` (percent), per-class ``IoU``/``Acc`` lists, ``classes``,
        ``per_class`` rows (IoU, Acc and the pixel counts intersect, union, pred, label),
        ``num_images``, ``num_labelled``, ``out_of_range`` and ``timings``; for Cityscapes also
        ``category_IoU`` (cityscapesScripts' 7 categories) and ``mIoU_category``; with
        ``save_predictions`` a ``predictions`` record (folder, format, count). Without any label the
        metrics are NaN.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    from .data.formats import check_format, encode_prediction, prediction_path
    from .data.io import atomic_write_png
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
    if save_predictions is not None:
        check_format(save_format, info.key, num_classes)
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
    done = labelled = saved = 0
    t0 = time.perf_counter()
    infer_s = 0.0
    for batch in loader:
        images = [item["image"] for item in batch]
        ti = time.perf_counter()
        preds = infer(model, images, protocol, output="labels", precision=precision, tta=tta, device=dev,
                      batch_size=max(batch_size, 1), progress=False)
        for item, pred in zip(batch, preds):
            if item["label"] is not None:
                metrics.update(pred, item["label"].to(dev, non_blocking=True))
                labelled += 1
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        infer_s += time.perf_counter() - ti
        if save_predictions is not None:
            for item, pred in zip(batch, preds):
                stem = item.get("stem") or os.path.splitext(os.path.basename(item["path"]))[0]
                atomic_write_png(encode_prediction(pred.cpu().numpy(), save_format, num_classes),
                                 prediction_path(save_predictions, stem, save_format))
                saved += 1
        done += len(batch)
        bar.update(done, metrics.compute()["mIoU"] if progress and dist_utils.is_main() else math.nan)
    total_s = time.perf_counter() - t0
    bar.update(done, metrics.compute()["mIoU"], force=True)
    bar.close()

    counts = dist_utils.all_reduce_sum(torch.tensor([done, labelled, saved], dtype=torch.int64,
                                                     device=dev if dev.type == "cuda" else "cpu"))
    metrics.all_reduce()
    res = metrics.compute()
    areas = {k: [int(v) for v in t.tolist()] for k, t in metrics.areas().items()}
    num_images, num_labelled, num_saved = (int(v) for v in counts.tolist())
    if info.key == "cityscapes" and metrics.matrix is not None:
        cat = cityscapes_category_iou(metrics.matrix)
        res["category_IoU"] = cat
        res["mIoU_category"] = _nanmean_list(list(cat.values()))
    if save_predictions is not None:
        res["predictions"] = {"dir": os.path.abspath(save_predictions), "format": save_format, "files": num_saved}
    res.update({
        "classes": list(info.class_names),
        # pixel counts beside the ratios, as MMSegmentation's intersect_and_union sums them
        "per_class": [{"class": c, "IoU": iou, "Acc": acc, "intersect": i, "union": u, "pred": p, "label": lab}
                      for c, iou, acc, i, u, p, lab in zip(info.class_names, res["IoU"], res["Acc"],
                                                           areas["intersect"], areas["union"], areas["pred"],
                                                           areas["label"])],
        "num_images": num_images,
        "num_labelled": num_labelled,
        "timings": {"total_s": total_s, "inference_s": infer_s,
                    "images_per_s": num_images / total_s if total_s > 0 else math.nan,
                    "world_size": dist_utils.world_size()},
    })
    return res


def cityscapes_category_iou(matrix: torch.Tensor) -> dict[str, float]:
    """cityscapesScripts' category IoU (percent) from a (K+1) x K confusion matrix of the 19 train ids.

    As its ``getIouScoreForCategory``: tp = labels and predictions both in the category, fn = labels in
    it minus tp, fp = predictions in it on pixels labelled with another category's class (ignored
    pixels are not in the matrix; the out-of-range row is left out, as ignored labels are there).
    NaN where the category is neither labelled nor predicted.
    """
    from .data.datasets import CITYSCAPES_CATEGORIES
    m = matrix.double().cpu()[:19]
    out = {}
    for name, ids in CITYSCAPES_CATEGORIES.items():
        inside = torch.zeros(19, dtype=torch.bool)
        inside[list(ids)] = True
        tp = float(m[inside][:, inside].sum())
        fn = float(m[inside].sum()) - tp
        fp = float(m[~inside][:, inside].sum())
        denom = tp + fp + fn
        out[name] = tp / denom * 100 if denom > 0 else math.nan
    return out


def _nanmean_list(values: list[float]) -> float:
    ok = [v for v in values if not math.isnan(v)]
    return sum(ok) / len(ok) if ok else math.nan


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by ``None`` (JSON ``null``: bare ``NaN`` is not JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def _scale_arg(text: str) -> Any:
    """``--scale``: LONGxSHORT, or ``none`` (the image's own size), kept apart from "not given" (None)."""
    if text.lower() == "none":
        return _NO_SCALE
    return parse_pair(text, form="LONGxSHORT (or 'none')", example="2048x1024")


_NO_SCALE = "none"


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m sszoo.eval`` argument parser."""
    from .data.datasets import GT_CHOICES
    from .data.formats import FORMATS

    ap = argparse.ArgumentParser(prog="python -m sszoo.eval",
                                 description="Evaluate a zoo model with the reference test protocol.")
    ap.add_argument("--model", required=True, help="zoo name, e.g. pspnet_r101_d8_cityscapes (see sszoo.list_models)")
    ap.add_argument("--data", required=True, help="dataset root in its standard layout (see docs/eval.md)")
    weights = ap.add_mutually_exclusive_group()
    weights.add_argument("--weights", default=None,
                         help="checkpoint: local path, http(s) URL or hf-hub:org/repo[@rev]; default the entry's "
                              "published weights")
    weights.add_argument("--random-weights", action="store_true",
                         help="random weights (only to try the pipeline offline; the numbers mean nothing)")
    ap.add_argument("--dataset", default=None, help="dataset key; default the model entry's (e.g. cityscapes, ade20k)")
    ap.add_argument("--split", default="val",
                    help="dataset split to evaluate (default val; 'test' has no labels: use it with --save-predictions)")
    ap.add_argument("--gt", choices=GT_CHOICES, default="auto",
                    help="Cityscapes ground truth: labelTrainIds or labelIds files; auto (default) takes "
                         "*_labelTrainIds.png where it exists, else *_labelIds.png. The one used is printed")
    ap.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32", help="autocast precision (default fp32)")
    ap.add_argument("--mode", choices=["whole", "slide"], default=None, help="default the entry's test mode")
    ap.add_argument("--scale", type=_scale_arg, default=None,
                    help="test Resize scale LONGxSHORT (keep ratio), e.g. 2048x1024, or 'none' for each image's own "
                         "size; default the entry's")
    ap.add_argument("--crop", type=functools.partial(parse_pair, form="HxW"), default=None, help="slide window HxW (default the entry's)")
    ap.add_argument("--stride", type=functools.partial(parse_pair, form="HxW"), default=None, help="slide stride HxW (default the entry's)")
    ap.add_argument("--tta", action="store_true", help="multi-scale (0.5-1.75) + flip testing")
    ap.add_argument("--batch-size", type=int, default=1,
                    help="images per forward pass where their resized sizes agree, and sliding windows per pass "
                         "(default 1, the reference's order of float operations)")
    ap.add_argument("--workers", type=int, default=default_workers(),
                    help=f"data loader processes decoding images; 0 decodes in the main process (default "
                         f"min(4, CPUs) = {default_workers()} here)")
    ap.add_argument("--limit", type=int, default=None, help="evaluate the first N images only")
    ap.add_argument("--device", default=None, help="cuda, cuda:1 or cpu (default cuda when available)")
    ap.add_argument("--out", default=None, help="write the results as JSON here (NaN written as null)")
    ap.add_argument("--save-predictions", default=None, metavar="DIR",
                    help="write every prediction into DIR in --format, for the benchmark's official scripts / "
                         "test server")
    ap.add_argument("--format", choices=FORMATS, default=None,
                    help="--save-predictions format: cityscapes (*_labelIds.png), ade20k (class + 1), voc (palette "
                         "PNG), trainids (raw class ids); default the dataset's own, else trainids")
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
    if "category_IoU" in res:  # Cityscapes: cityscapesScripts' categories beside the classes
        lines += ["", f"{'category':<{w}}  {'IoU':>6}", "-" * (w + 8)]
        lines += [f"{name:<{w}}  {iou:6.2f}" for name, iou in res["category_IoU"].items()]
        lines += ["-" * (w + 8), f"{'mean':<{w}}  {res['mIoU_category']:6.2f}"]
    return "\n".join(lines)


def _fail(message: str) -> None:
    print(f"sszoo.eval: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _reported(a: argparse.Namespace, entry: Any, key: str, dataset: Any, changes: dict) -> tuple[Optional[float], str]:
    """The entry's reported mIoU when it applies to this run, else (None, why not)."""
    from .data.synthetic import MARKER
    reported = entry.reported.miou_msflip if a.tta else entry.reported.miou
    why = ""
    if a.random_weights:
        why = "random weights"
    elif a.weights:
        why = "weights other than the entry's published ones"
    elif key != entry.dataset.key:
        why = f"dataset {key}, not the entry's {entry.dataset.key}"
    elif os.path.isfile(os.path.join(dataset.root, MARKER)) or os.path.isfile(os.path.join(a.data, MARKER)):
        why = "synthetic data (sszoo.data.synthetic)"
    elif a.split != "val":
        why = f"split {a.split}; the published numbers are on val"
    elif a.limit is not None:
        why = f"--limit {a.limit}: part of the split"
    elif changes:
        why = "a test protocol other than the entry's (" + ", ".join(f"--{k}" for k in sorted(changes)) + ")"
    elif reported is None:
        why = f"{entry.name} reports no {'ms+flip ' if a.tta else ''}mIoU"
    return (reported, "") if not why else (None, why)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """``python -m sszoo.eval``: returns the results dict (also written to ``--out``).

    Bad input (a missing or empty data folder, an unknown model or dataset, a checkpoint that is not one
    or does not fit, a device this machine lacks, a size too large for memory, an unreadable image)
    exits with status 2 and one line saying what to fix.
    """
    a = build_parser().parse_args(argv)
    from .data import DataError, build_dataset
    from .data.formats import default_format
    from .hub import CacheCorruptError, CheckpointError, DownloadError
    from .inference import InferenceSizeError
    from .predict import load_model
    from .registry import get_entry

    if a.batch_size < 1 or a.workers < 0 or (a.limit is not None and a.limit < 1):
        _fail("--batch-size and --limit must be at least 1, --workers at least 0")
    if a.format is not None and a.save_predictions is None:
        _fail("--format chooses the file format of --save-predictions DIR; pass that too")
    user_errors = (DataError, KeyError, ValueError, TypeError, OSError, CheckpointError, DownloadError,
                   CacheCorruptError, InferenceSizeError)
    try:
        check_device(a.device)
        entry = get_entry(a.model)
        if getattr(entry, "task", "segmentation") == "detection":  # COCO box / mask AP: sszoo.detection.evaluate
            from .detection.evaluate import eval_main
            return eval_main(a, entry, _fail)
        key = a.dataset or entry.dataset.key
        # the data first: a wrong folder fails before any download
        labels = "none" if a.split == "test" else ("optional" if a.save_predictions else "required")
        dataset = build_dataset(key, a.data, a.split, labels=labels, gt=a.gt)
        if not dataset.has_labels and a.save_predictions is None:
            _fail(f"split {a.split!r} has no labels to evaluate against; pass --save-predictions DIR to write "
                  "the predictions for the benchmark's server")
        fmt = a.format or default_format(key)
    except user_errors as e:
        _fail(one_line(e))
    rank, world, dev = dist_utils.init_from_env(a.device)
    try:
        with one_line_warnings("sszoo.eval"):
            try:
                weights: Any = False if a.random_weights else (a.weights or True)
                model = load_model(entry.name, weights)
                protocol = Protocol.from_entry(entry)
                changes: dict = {}
                if a.scale is not None:
                    changes["scale"] = None if a.scale == _NO_SCALE else a.scale
                if a.crop:
                    changes["crop"] = a.crop
                if a.stride:
                    changes["stride"] = a.stride
                if a.mode:
                    changes["mode"] = a.mode
                if changes.get("mode", protocol.mode) == "slide" and not (changes.get("crop") or protocol.crop):
                    _fail(f"{entry.name} is tested whole-image; slide mode needs --crop HxW and --stride HxW")
                protocol = protocol.with_(**changes)
                if dist_utils.is_main() and not a.quiet:
                    print(f"{dataset.info.title} {a.split}: {len(dataset)} images under {dataset.root}; "
                          f"ground truth: {dataset.label_note}", file=sys.stderr)
                res = evaluate(model, dataset, protocol, precision=a.precision, batch_size=a.batch_size,
                               workers=a.workers, device=dev, limit=a.limit, tta=a.tta, progress=not a.quiet,
                               save_predictions=a.save_predictions, save_format=fmt)
            except torch.cuda.OutOfMemoryError as e:
                _fail(f"out of memory on {dev} ({one_line(e)[:200]}); use a smaller --scale or --batch-size 1")
            except user_errors as e:
                _fail(one_line(e))
        published = Protocol.from_entry(entry)   # options that repeat the entry's own values change nothing
        changed = {k: v for k, v in changes.items() if getattr(published, k) != v}
        reported, why = _reported(a, entry, key, dataset, changed)
        res["model"] = entry.name
        res["dataset"] = {"key": key, "root": os.path.abspath(a.data), "split": a.split,
                          "labels": dataset.label_note}
        res["reported_mIoU"] = reported
        res["difference"] = res["mIoU"] - reported if reported is not None else None
        res["reported_note"] = why or None
        res["settings"] = {"protocol": dataclasses.asdict(protocol), "precision": a.precision, "tta": a.tta,
                           "batch_size": a.batch_size, "workers": a.workers, "device": str(dev),
                           "limit": a.limit,
                           "weights": "random" if a.random_weights else (a.weights or entry.weights.url)}
        res["versions"] = _versions()
        if dist_utils.is_main():
            run = (f"[{res['num_images']} images, {res['timings']['images_per_s']:.2f} img/s, {a.precision}, "
                   f"{protocol.mode}{', ms+flip' if a.tta else ''}]")
            if res["num_labelled"]:
                if not a.quiet:
                    print(format_table(res))
                if reported is not None:
                    print(f"mIoU measured {res['mIoU']:.2f} vs reported {reported:.2f} ({res['difference']:+.2f})  {run}")
                else:
                    print(f"mIoU measured {res['mIoU']:.2f} (no reported number applies: {why})  {run}")
                if "mIoU_category" in res:
                    print(f"category mIoU {res['mIoU_category']:.2f} (Cityscapes' 7 categories)")
            if a.save_predictions:
                pr = res["predictions"]
                print(f"wrote {pr['files']} predictions in the {pr['format']} format to {pr['dir']}"
                      + ("" if res["num_labelled"] else f" (split {a.split} has no labels: no metrics)"))
            if res["out_of_range"]:
                print(f"warning: {res['out_of_range']} labelled pixels hold values outside 0..{len(res['classes']) - 1} "
                      "and are not the ignore index 255; check the label mapping (see docs/eval.md)", file=sys.stderr)
            if a.out:
                write_text(json.dumps(json_safe(res), indent=1, default=str, allow_nan=False), a.out)
        return res
    finally:
        dist_utils.cleanup()


def console_main() -> int:
    """``sszoo-eval``: run :func:`main` and exit 0 (``main`` returns a dict, which ``sys.exit`` would treat as failure)."""
    main()
    return 0


if __name__ == "__main__":
    sys.exit(console_main())
