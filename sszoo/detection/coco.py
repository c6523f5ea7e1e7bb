"""COCO detection data: the standard layout, MMDetection's test pipeline, and box / mask AP with pycocotools.

Layout (``root``)::

    annotations/instances_val2017.json
    val2017/000000000139.jpg ...

Test pipeline (MMDetection 3.3.0's ``coco_detection.py``): decode to RGB, ``Resize(scale=(1333, 800),
keep_ratio=True)`` (mmcv's keep-ratio size, int(side * f + 0.5), and OpenCV's bilinear resize, which
:mod:`sszoo.data.resize` reproduces), ``scale_factor = (new_w / w, new_h / h)``, normalise with the RGB mean
and std, and pad to 32 (the detector pads). Predictions are mapped back to the original image as MMDetection
does (``rescale=True``) and scored by ``pycocotools``' COCOeval, as MMDetection's ``CocoMetric``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ..data.io import DataError, read_image
from ..data.resize import rescale_size, resize_uint8_like_opencv

ANN_FILE = os.path.join("annotations", "instances_{split}.json")


class AnnotationError(DataError):
    """A COCO annotation file that is missing, not JSON, or not in COCO's instances format."""


@dataclass(frozen=True)
class CocoImage:
    id: int
    file_name: str
    height: int
    width: int


class CocoDetectionSet:
    """The images and categories of one COCO-layout split (annotations are read by pycocotools at scoring).

    Labels are MMDetection's: the index of a category in ``class_names`` order (its ``CocoDataset`` maps
    category ids by class name), falling back to ascending category id for other label sets."""

    def __init__(self, root: str, split: str = "val2017", class_names: Sequence[str] | None = None) -> None:
        self.root = os.fspath(root)
        self.split = split
        self.ann_file = os.path.join(self.root, ANN_FILE.format(split=split))
        self.image_dir = os.path.join(self.root, split)
        data = read_annotations(self.ann_file)
        cats = sorted(data["categories"], key=lambda c: c["id"])
        by_name = {c["name"]: c["id"] for c in cats}
        if class_names is not None and all(n in by_name for n in class_names):
            self.cat_ids = [by_name[n] for n in class_names]
        else:
            self.cat_ids = [c["id"] for c in cats]
        self.images = []
        for i, im in enumerate(data["images"]):
            try:
                self.images.append(CocoImage(int(im["id"]), str(im["file_name"]), int(im["height"]),
                                             int(im["width"])))
            except (KeyError, TypeError, ValueError) as e:
                raise AnnotationError(f"malformed annotation file {self.ann_file}: images[{i}] needs id, file_name, "
                                      f"height and width ({type(e).__name__}: {e})") from None
        if not os.path.isdir(self.image_dir):
            raise DataError(f"COCO image folder {self.image_dir} not found (expected the standard layout "
                            f"{ANN_FILE.format(split=split)} and {split}/ under {self.root})")

    def __len__(self) -> int:
        return len(self.images)

    def image_path(self, im: CocoImage) -> str:
        return os.path.join(self.image_dir, im.file_name)

    def __iter__(self) -> Iterator[CocoImage]:
        return iter(self.images)


def read_annotations(path: str) -> dict[str, Any]:
    """The parsed annotation file; raises :class:`AnnotationError` naming it when it cannot be used."""
    if not os.path.isfile(path):
        raise AnnotationError(f"COCO annotation file {path} not found")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AnnotationError(f"malformed annotation file {path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise AnnotationError(f"malformed annotation file {path}: expected a JSON object with images, "
                              "annotations and categories")
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        raise AnnotationError(f"malformed annotation file {path}: no list {', '.join(missing)}")
    for i, a in enumerate(data["annotations"]):
        if not isinstance(a, dict) or not {"image_id", "category_id", "bbox"} <= set(a) or len(a["bbox"]) != 4:
            raise AnnotationError(f"malformed annotation file {path}: annotations[{i}] needs image_id, "
                                  "category_id and a 4-number bbox")
    for i, c in enumerate(data["categories"]):
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise AnnotationError(f"malformed annotation file {path}: categories[{i}] needs id and name")
    return data


def preprocess(img: torch.Tensor, scale: Sequence[int] = (1333, 800), mean: Sequence[float] = (123.675, 116.28, 103.53),
               std: Sequence[float] = (58.395, 57.12, 57.375)) -> tuple[torch.Tensor, dict]:
    """A uint8 RGB 3 x H x W image as the detector's normalised input (unpadded) and its meta
    (``scale_factor`` (w, h), ``ori_shape`` (H, W), ``img_shape``)."""
    h, w = int(img.shape[1]), int(img.shape[2])
    nh, nw = rescale_size(h, w, scale, keep_ratio=True)
    resized = resize_uint8_like_opencv(img, (nh, nw)).to(torch.float32)
    x = (resized - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    return x, {"scale_factor": (nw / w, nh / h), "ori_shape": (h, w), "img_shape": (nh, nw)}


def load_input(path: str, **kwargs) -> tuple[torch.Tensor, dict]:
    """Read and preprocess one image file (errors name it: :class:`sszoo.data.io.ImageReadError`)."""
    return preprocess(read_image(path), **kwargs)


def to_coco_results(pred: dict[str, torch.Tensor], image_id: int, cat_ids: Sequence[int]
                    ) -> tuple[list[dict], list[dict]]:
    """COCO result records (bbox, and segm when ``pred`` has masks) of one image, as MMDetection's
    ``CocoMetric`` writes them: [x1, y1, x2 - x1, y2 - y1] boxes, float scores, RLE masks."""
    boxes = pred["boxes"].detach().cpu().double().numpy()
    scores = pred["scores"].detach().cpu().float().numpy()
    labels = pred["labels"].detach().cpu().numpy()
    bbox = [{"image_id": int(image_id), "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
             "score": float(s), "category_id": int(cat_ids[int(l)])} for b, s, l in zip(boxes, scores, labels)]
    segm = []
    if "masks" in pred:
        from pycocotools import mask as mask_util
        masks = pred["masks"].detach().cpu().numpy()
        for m, s, l in zip(masks, scores, labels):
            rle = mask_util.encode(np.asfortranarray(m[:, :, None].astype(np.uint8)))[0]
            rle["counts"] = rle["counts"].decode()
            segm.append({"image_id": int(image_id), "segmentation": rle, "score": float(s),
                         "category_id": int(cat_ids[int(l)])})
    return bbox, segm


def coco_ap(ann_file: str, results: list[dict], iou_type: str = "bbox", img_ids: Sequence[int] | None = None,
            cat_ids: Sequence[int] | None = None) -> dict[str, float]:
    """AP (percent) of ``results`` by pycocotools' COCOeval, with MMDetection's CocoMetric settings
    (maxDets 100/300/1000, every image and category of the set); keys ``AP``, ``AP50``, ``AP75``, ``APs``,
    ``APm``, ``APl``. An empty result list scores 0."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    keys = ("AP", "AP50", "AP75", "APs", "APm", "APl")
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_file)
        if not results:
            return {k: 0.0 for k in keys}
        if iou_type == "segm":
            # pycocotools derives the area and box of a result's RLE itself; results' boxes are not used
            results = [{k: v for k, v in r.items() if k != "bbox"} for r in results]
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iou_type)
        ev.params.catIds = list(cat_ids) if cat_ids is not None else gt.getCatIds()
        ev.params.imgIds = list(img_ids) if img_ids is not None else gt.getImgIds()
        ev.params.maxDets = [100, 300, 1000]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: round(float(v) * 100, 4) for k, v in zip(keys, ev.stats[:6])}
