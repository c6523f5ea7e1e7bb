"""Box AP / mask AP of a zoo detector on a COCO-layout set: the ``python -m sszoo.eval`` path of detection entries.

    python -m sszoo.eval --model faster_rcnn_r50_fpn_fp16_1x_coco --data data/coco [--precision fp16]
    torchrun --nproc_per_node=8 -m sszoo.eval --model mask_rcnn_r50_fpn_fp16_1x_coco --data data/coco

Each image goes through MMDetection's test pipeline (:mod:`sszoo.detection.coco`), one image per forward
(MMDetection's test batch size); results are mapped back to the original image (``rescale=True``) and scored
by pycocotools as MMDetection's ``CocoMetric``. Under torchrun every process takes every N-th image and the
result records are gathered on rank 0.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import Any, Optional

import torch

from .. import distributed as dist_utils
from ..inference import PRECISIONS
from .coco import CocoDetectionSet, coco_ap, load_input, to_coco_results


def evaluate_detector(model: torch.nn.Module, dataset: CocoDetectionSet, *, precision: str = "fp32",
                      device: torch.device | str = "cpu", limit: Optional[int] = None,
                      progress: bool = False, scale: tuple[int, int] = (1333, 800)) -> dict[str, Any]:
    """Run ``model`` on every image of ``dataset`` (the first ``limit``) and score it; returns a dict with
    ``bbox`` (and ``segm``) AP tables in percent, counts and timings. ``scale`` is the keep-ratio resize
    bound (long, short), MMDetection's (1333, 800) by default."""
    device = torch.device(device)
    model = model.to(device).eval()
    cfg = model.cfg
    images = dataset.images[:limit] if limit is not None else dataset.images
    mine = [images[i] for i in dist_utils.shard(len(images))] if dist_utils.world_size() > 1 else images
    dtype = PRECISIONS[precision]
    bbox, segm = [], []
    t0 = time.time()
    for n, im in enumerate(mine):
        x, meta = load_input(dataset.image_path(im), scale=scale, mean=cfg.mean, std=cfg.std)
        if (meta["ori_shape"][0], meta["ori_shape"][1]) != (im.height, im.width):
            raise ValueError(f"image {dataset.image_path(im)} is {meta['ori_shape'][1]}x{meta['ori_shape'][0]} but "
                             f"{dataset.ann_file} says {im.width}x{im.height}")
        ctx = (torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext())
        with ctx:
            pred = model.predict([x.to(device)], [meta])[0]
        pred = {k: (v.float() if v.is_floating_point() else v) for k, v in pred.items()}
        b, s = to_coco_results(pred, im.id, dataset.cat_ids)
        bbox += b
        segm += s
        if progress and dist_utils.is_main():
            print(f"\r{n + 1}/{len(mine)} images", end="", file=sys.stderr, flush=True)
    if progress and dist_utils.is_main():
        print(file=sys.stderr)
    seconds = time.time() - t0
    if dist_utils.world_size() > 1:
        gathered: list = [None] * dist_utils.world_size()
        torch.distributed.all_gather_object(gathered, (bbox, segm))
        bbox = [r for g in gathered for r in g[0]]
        segm = [r for g in gathered for r in g[1]]
    img_ids = [im.id for im in images]
    res: dict[str, Any] = {"num_images": len(images), "num_detections": len(bbox),
                           "bbox": coco_ap(dataset.ann_file, bbox, "bbox", img_ids, dataset.cat_ids)}
    if cfg.with_mask:
        res["segm"] = coco_ap(dataset.ann_file, segm, "segm", img_ids, dataset.cat_ids)
    res["timings"] = {"seconds": seconds, "images_per_s": len(mine) / seconds if seconds > 0 else float("nan")}
    return res


def _why_not_reported(a, entry, dataset: CocoDetectionSet) -> str:
    from .synthetic import MARKER
    if a.random_weights:
        return "random weights"
    if a.weights:
        return "weights other than the entry's published ones"
    if os.path.isfile(os.path.join(dataset.root, MARKER)):
        return "synthetic data (sszoo.detection.synthetic)"
    if a.split != "val":
        return f"split {a.split}; the published numbers are on val2017"
    if a.limit is not None:
        return f"--limit {a.limit}: part of the split"
    return ""


def eval_main(a, entry, fail) -> dict[str, Any]:
    """``python -m sszoo.eval`` for a detection entry (``a``: the parsed arguments; ``fail(msg)`` exits 2).
    Segmentation-only options (``--mode``, ``--scale``, ``--tta``, ``--save-predictions``, ...) are refused."""
    from ..factory import create_model

    unsupported = [f"--{k.replace('_', '-')}" for k in ("mode", "scale", "crop", "stride", "save_predictions",
                                                         "format", "dataset")
                   if getattr(a, k, None) not in (None, False)] + (["--tta"] if getattr(a, "tta", False) else [])
    if unsupported:
        fail(f"{', '.join(unsupported)} apply to segmentation entries; {entry.name} is a detector")
    split = "val2017" if a.split == "val" else a.split
    dataset = CocoDetectionSet(a.data, split, class_names=entry.dataset.class_names)  # the data first
    rank, world, dev = dist_utils.init_from_env(a.device)
    try:
        weights: Any = False if a.random_weights else (a.weights or True)
        model = create_model(entry.name, pretrained=weights)
        if dist_utils.is_main() and not a.quiet:
            print(f"COCO {split}: {len(dataset)} images under {dataset.root}", file=sys.stderr)
        res = evaluate_detector(model, dataset, precision=a.precision, device=dev, limit=a.limit,
                                progress=not a.quiet)
        why = _why_not_reported(a, entry, dataset)
        res["model"] = entry.name
        res["dataset"] = {"key": "coco", "root": os.path.abspath(a.data), "split": split}
        res["reported"] = {"bbox_AP": entry.reported.box_ap, "segm_AP": entry.reported.mask_ap}
        res["reported_note"] = why or None
        res["settings"] = {"precision": a.precision, "device": str(dev), "limit": a.limit,
                           "weights": "random" if a.random_weights else (a.weights or entry.weights.url)}
        if dist_utils.is_main():
            run = f"[{res['num_images']} images, {res['timings']['images_per_s']:.2f} img/s, {a.precision}]"
            for key, label, rep in (("bbox", "box AP", entry.reported.box_ap), ("segm", "mask AP", entry.reported.mask_ap)):
                if key not in res:
                    continue
                got = res[key]["AP"]
                if rep is not None and not why:
                    print(f"{label} measured {got:.1f} vs reported {rep:.1f} ({got - rep:+.1f})  {run}")
                else:
                    print(f"{label} measured {got:.1f} (no reported number applies: {why or 'none published'})  {run}")
            if a.out:
                from ..atomic import write_text
                write_text(json.dumps(res, indent=1, default=str), a.out)
        return res
    finally:
        dist_utils.cleanup()
