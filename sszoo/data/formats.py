"""Prediction files in the formats the benchmarks' official scripts and test servers read.

``python -m sszoo.eval --save-predictions DIR --format F`` writes one PNG per image:

* ``cityscapes``: ``DIR/<city>/<name>_labelIds.png``, the official label ids (train id -> label id through
  cityscapesScripts' ``labels.py``), which ``evalPixelLevelSemanticLabeling`` and the test server read;
* ``ade20k``: ``DIR/<name>.png`` with class index + 1 (1..150; 0 would be "other"), as the ADE20K scene
  parsing challenge's ground truth and MMSegmentation's ``format_results`` store them;
* ``voc``: ``DIR/<name>.png``, a palette PNG of class indices with the VOC devkit's colour map
  (``VOCdevkit/VOCcode/VOClabelcolormap.m``), as ``SegmentationClass`` and the evaluation server expect;
* ``trainids``: ``DIR/<relative name>.png``, the raw class indices (8-bit grey; 16-bit beyond 256 classes).
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

from .datasets import CITYSCAPES_ID_TO_TRAINID
from .io import DataError

FORMATS = ("cityscapes", "ade20k", "voc", "trainids")
# the dataset keys whose label space each benchmark format encodes
FORMAT_DATASETS = {"cityscapes": ("cityscapes",), "ade20k": ("ade20k",), "voc": ("voc12aug",)}


def default_format(dataset_key: str) -> str:
    """The benchmark's own format for a dataset, ``trainids`` for datasets without one here."""
    for fmt, keys in FORMAT_DATASETS.items():
        if dataset_key in keys:
            return fmt
    return "trainids"


def check_format(fmt: str, dataset_key: str, num_classes: int) -> None:
    """Raise :class:`DataError` when ``fmt`` does not encode this dataset's label space."""
    if fmt not in FORMATS:
        raise DataError(f"unknown prediction format {fmt!r}; choose one of {', '.join(FORMATS)}")
    keys = FORMAT_DATASETS.get(fmt)
    if keys is not None and dataset_key not in keys:
        raise DataError(f"--format {fmt} encodes {keys[0]}'s classes, but the predictions are for {dataset_key}; "
                        f"use --format {default_format(dataset_key)}")
    want = {"cityscapes": 19, "ade20k": 150, "voc": 21}.get(fmt)
    if want is not None and num_classes != want:
        raise DataError(f"--format {fmt} needs the benchmark's {want} classes; the model predicts {num_classes}")


def cityscapes_trainid_to_id() -> np.ndarray:
    """A 256-entry table from Cityscapes train ids to label ids (0, "unlabeled", elsewhere)."""
    lut = np.zeros(256, np.uint8)
    for label_id, train_id in CITYSCAPES_ID_TO_TRAINID.items():
        lut[train_id] = label_id
    return lut


def voc_colormap(n: int = 256) -> np.ndarray:
    """The VOC devkit's colour map (VOClabelcolormap.m): the bits of the class index spread over R, G, B."""
    cmap = np.zeros((n, 3), np.uint8)
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


def prediction_path(out_dir: str, stem: str, fmt: str) -> str:
    """Where the prediction of the image named ``stem`` (relative to the split's image folder, without the
    image suffix, e.g. ``frankfurt/frankfurt_000000_000019``) goes."""
    suffix = "_labelIds.png" if fmt == "cityscapes" else ".png"
    return os.path.join(out_dir, stem + suffix)


def encode_prediction(labels: np.ndarray, fmt: str, num_classes: int) -> Image.Image:
    """The PNG image of an H x W map of class indices in format ``fmt``."""
    lab = np.asarray(labels)
    if fmt == "cityscapes":
        return Image.fromarray(cityscapes_trainid_to_id()[lab.astype(np.uint8)])
    if fmt == "ade20k":
        return Image.fromarray((lab.astype(np.int64) + 1).astype(np.uint8))
    if fmt == "voc":
        im = Image.fromarray(lab.astype(np.uint8), mode="P")
        im.putpalette(voc_colormap().ravel().tolist())
        return im
    if fmt == "trainids":
        return Image.fromarray(lab.astype(np.uint8 if num_classes <= 256 else np.uint16))
    raise DataError(f"unknown prediction format {fmt!r}; choose one of {', '.join(FORMATS)}")
