"""A synthetic COCO-layout detection set for tests and smoke runs (no download).

``generate_coco(root, num=4)`` writes ``root/annotations/instances_val2017.json`` and ``root/val2017/*.png``:
textured backgrounds with a few filled ellipses and rectangles of random COCO categories (COCO's real,
non-contiguous category ids and names), each annotated with a polygon, its area, its box and ``iscrowd`` 0.
``fake_predictions`` makes detector-like outputs for those images (jittered true boxes and masks, some
misses and false positives) to exercise the evaluator. Both are deterministic for a seed.

    python -m sszoo.detection.synthetic DIR --num 8 --seed 0
"""
from __future__ import annotations

import argparse
import json
import math
import os
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image

MARKER = "SSZOO_SYNTHETIC_COCO"  # a file in the root: the evaluator then reports no published number
# COCO's 80 category ids (1..90 with gaps), in the order of MMDetection's class names
COCO_CAT_IDS = ([*range(1, 12)] + [*range(13, 26)] + [27, 28] + [*range(31, 45)] + [*range(46, 66)] + [67, 70]
                + [*range(72, 83)] + [*range(84, 91)])


def _coco_names() -> list[str]:
    from ..registry.detection import det_zoo
    ds = det_zoo().datasets.get("coco")
    return list(ds.class_names) if ds is not None else [f"class{i}" for i in range(80)]


def _polygon(kind: str, x: float, y: float, w: float, h: float) -> list[float]:
    if kind == "rect":
        pts = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    else:
        pts = [(x + w / 2 + w / 2 * math.cos(t), y + h / 2 + h / 2 * math.sin(t))
               for t in np.linspace(0, 2 * math.pi, 16, endpoint=False)]
    return [round(float(v), 2) for p in pts for v in p]


def _area(poly: Sequence[float]) -> float:
    xs, ys = np.array(poly[0::2]), np.array(poly[1::2])
    return float(0.5 * abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))))


def _raster(poly: Sequence[float], h: int, w: int) -> np.ndarray:
    from pycocotools import mask as mask_util
    return mask_util.decode(mask_util.merge(mask_util.frPyObjects([list(poly)], h, w))).astype(bool)


def generate_coco(root: str, num: int = 4, sizes: Optional[Sequence[tuple[int, int]]] = None, seed: int = 0,
                  split: str = "val2017", max_objects: int = 4) -> str:
    """Write the set; returns the annotation file's path. ``sizes`` are (width, height) per image (default:
    odd sizes between 97 and 203 px)."""
    rng = np.random.default_rng(seed)
    names = _coco_names()
    img_dir = os.path.join(root, split)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    images, anns = [], []
    for i in range(num):
        w, h = sizes[i] if sizes else (int(rng.integers(48, 101)) * 2 + 1, int(rng.integers(48, 101)) * 2 + 1)
        img = (rng.integers(0, 64, (h, w, 3)) + np.array(rng.integers(0, 160, 3))).astype(np.uint8)
        for _ in range(int(rng.integers(1, max_objects + 1))):
            bw, bh = float(rng.uniform(0.15, 0.6) * w), float(rng.uniform(0.15, 0.6) * h)
            x, y = float(rng.uniform(0, w - bw)), float(rng.uniform(0, h - bh))
            kind = "rect" if rng.random() < 0.5 else "ellipse"
            label = int(rng.integers(0, len(COCO_CAT_IDS)))
            poly = _polygon(kind, x, y, bw, bh)
            m = _raster(poly, h, w)
            img[m] = np.array(rng.integers(0, 256, 3), dtype=np.uint8)
            xs, ys = poly[0::2], poly[1::2]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": COCO_CAT_IDS[label],
                         "segmentation": [poly], "area": _area(poly),
                         "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)], "iscrowd": 0})
        name = f"{i + 1:012d}.png"
        Image.fromarray(img).save(os.path.join(img_dir, name))
        images.append({"id": i + 1, "file_name": name, "height": h, "width": w})
    cats = [{"id": c, "name": n, "supercategory": "thing"} for c, n in zip(COCO_CAT_IDS, names)]
    with open(os.path.join(root, MARKER), "w") as f:
        f.write("written by sszoo.detection.synthetic; not COCO\n")
    path = os.path.join(root, "annotations", f"instances_{split}.json")
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": anns, "categories": cats}, f)
    return path


def fake_predictions(ann_file: str, seed: int = 0, with_masks: bool = True) -> dict[int, dict[str, torch.Tensor]]:
    """Detector-like outputs per image id (labels 0-based in COCO_CAT_IDS order): each true object found with
    probability 0.8 with a jittered box (and mask), plus false positives; random scores."""
    rng = np.random.default_rng(seed + 1000)
    data = json.load(open(ann_file))
    label_of = {c: i for i, c in enumerate(COCO_CAT_IDS)}
    out = {}
    for im in data["images"]:
        h, w = im["height"], im["width"]
        boxes, scores, labels, masks = [], [], [], []
        objs = [a for a in data["annotations"] if a["image_id"] == im["id"]]
        fps = [{"bbox": [float(rng.uniform(0, w / 2)), float(rng.uniform(0, h / 2)), float(rng.uniform(8, w / 2)),
                         float(rng.uniform(8, h / 2))], "category_id": int(rng.choice(COCO_CAT_IDS))}
               for _ in range(int(rng.integers(0, 4)))]
        for a in objs + fps:
            if a in objs and rng.random() > 0.8:
                continue
            x, y, bw, bh = a["bbox"]
            j = rng.normal(0, 0.08, 4) * [bw, bh, bw, bh]
            x1, y1 = max(0.0, x + j[0]), max(0.0, y + j[1])
            x2, y2 = min(float(w), x + bw + j[2]), min(float(h), y + bh + j[3])
            if x2 - x1 < 1 or y2 - y1 < 1:
                continue
            boxes.append([x1, y1, x2, y2])
            scores.append(float(rng.uniform(0.05, 1.0)))
            lab = label_of[a["category_id"]] if rng.random() < 0.9 else int(rng.integers(0, len(COCO_CAT_IDS)))
            labels.append(lab)
            if with_masks:
                poly = _polygon("ellipse" if rng.random() < 0.5 else "rect", x1, y1, x2 - x1, y2 - y1)
                masks.append(_raster(poly, h, w))
        order = np.argsort(-np.array(scores), kind="stable") if scores else np.zeros(0, dtype=int)
        pred = {"boxes": torch.tensor(np.array(boxes, dtype=np.float32).reshape(-1, 4)[order]),
                "scores": torch.tensor(np.array(scores, dtype=np.float32)[order]),
                "labels": torch.tensor(np.array(labels, dtype=np.int64)[order])}
        if with_masks:
            pred["masks"] = torch.from_numpy(np.array(masks, dtype=bool).reshape(-1, h, w)[order])
        out[im["id"]] = pred
    return out


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root")
    ap.add_argument("--num", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    print(generate_coco(a.root, a.num, seed=a.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
