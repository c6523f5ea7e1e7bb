"""Small synthetic segmentation datasets with learnable structure, in the real on-disk layouts.

Each image is a street-like scene: a sky band on top, a ground band at the bottom, two "stuff" regions in
between split at a random column, and a few objects (boxes and ellipses) on the ground. Every class has
its own colour (the dataset's palette colour, jittered per image), its own texture (stripes, speckle or
a gradient) and its own place in the layout, so a small network learns it in a minute of CPU training,
while per-pixel noise and jitter keep it from being trivial.

Command line::

    python -m sszoo.data.synthetic ROOT --layout cityscapes|ade20k|voc --num N [--size WxH] [--split val]
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
from typing import Optional, Sequence, Union

import json

import numpy as np
import torch
from PIL import Image

from ..atomic import write_text
from ..cliargs import parse_pair
from ..registry import get_dataset
from .datasets import CITYSCAPES_ID_TO_TRAINID
from .io import atomic_write_png

# Scene roles -> class index in each layout's label space (train ids for Cityscapes, 0-based ADE/VOC classes).
# roles: sky, ground, stuff_a, stuff_b, object_a, object_b
ROLES = ("sky", "ground", "stuff_a", "stuff_b", "object_a", "object_b")
CLASSES = {
    "cityscapes": (10, 0, 2, 8, 13, 11),   # sky, road, building, vegetation, car, person
    "ade20k": (2, 3, 1, 4, 20, 12),        # sky, floor, building, tree, car, person
    "voc": (0, 0, 0, 0, 7, 15),            # background (everything but objects), car, person
}
DATASET_KEY = {"cityscapes": "cityscapes", "ade20k": "ade20k", "voc": "voc12aug"}
SizeArg = Union[tuple[int, int], Sequence[tuple[int, int]]]
# working memory of _scene per pixel: float32 image and noise, int64 role map and grids, textures
_BYTES_PER_PIXEL = 96
# written into every generated dataset's folder: sszoo.eval reports no published number on such data
MARKER = "sszoo_synthetic.json"
# Cityscapes label ids whose pixels carry instance ids (labels.py hasInstances, among the scene's classes)
_CS_INSTANCE_IDS = (24, 25, 26, 27, 28, 31, 32, 33)


def _texture(role: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A per-role brightness pattern in [-1, 1] (H x W)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if role == "sky":
        return (yy / max(h, 1)) * 2 - 1                       # vertical gradient
    if role == "ground":
        return np.zeros((h, w), np.float32)                   # flat
    if role == "stuff_a":
        period = rng.uniform(6, 10)
        return np.sign(np.sin(2 * np.pi * yy / period)).astype(np.float32)   # horizontal stripes
    if role == "stuff_b":
        return rng.uniform(-1, 1, size=(h, w)).astype(np.float32)             # speckle
    if role == "object_a":
        period = rng.uniform(5, 8)
        return np.sign(np.sin(2 * np.pi * xx / period)).astype(np.float32)   # vertical stripes
    return np.sign(np.sin(2 * np.pi * (xx + yy) / 7.0)).astype(np.float32)   # diagonal


def make_scene(w: int, h: int, rng: np.random.Generator, palette: Sequence[Sequence[int]],
               classes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic image (H x W x 3 uint8) and its label map of class indices (H x W, uint8)."""
    img, label, _ = _scene(w, h, rng, palette, classes)
    return img, label


def _scene(w: int, h: int, rng: np.random.Generator, palette: Sequence[Sequence[int]],
           classes: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`make_scene` plus the object each pixel belongs to (H x W int32, 0 = none, 1.. in drawing order)."""
    role_map = np.zeros((h, w), np.int64)                      # role index per pixel
    objects = np.zeros((h, w), np.int32)
    sky_end = int(h * rng.uniform(0.2, 0.35))
    ground_start = int(h * rng.uniform(0.6, 0.75))
    split_col = int(w * rng.uniform(0.3, 0.7))
    role_map[:sky_end] = 0
    role_map[sky_end:ground_start, :split_col] = 2
    role_map[sky_end:ground_start, split_col:] = 3
    role_map[ground_start:] = 1
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(int(rng.integers(1, 4))):                  # boxes standing on the ground
        bw, bh = int(w * rng.uniform(0.12, 0.25)), int(h * rng.uniform(0.1, 0.2))
        x0 = int(rng.integers(0, max(w - bw, 1)))
        y1 = int(rng.integers(ground_start, h + 1))
        role_map[max(y1 - bh, 0):y1, x0:x0 + bw] = 4
        objects[max(y1 - bh, 0):y1, x0:x0 + bw] = objects.max() + 1
    for _ in range(int(rng.integers(1, 3))):                  # upright ellipses
        cx, cy = rng.uniform(0, w), rng.uniform(sky_end, h)
        rx, ry = w * rng.uniform(0.03, 0.06), h * rng.uniform(0.1, 0.18)
        inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
        role_map[inside] = 5
        objects[inside] = objects.max() + 1

    img = np.zeros((h, w, 3), np.float32)
    for r, role in enumerate(ROLES):
        mask = role_map == r
        if not mask.any():
            continue
        colour = np.asarray(palette[classes[r]], np.float32) + rng.normal(0, 10, 3)
        tex = _texture(role, h, w, rng)
        img[mask] = colour + 25.0 * tex[mask][:, None]
    img += rng.normal(0, 8, img.shape)                         # sensor noise
    label = np.asarray(classes, np.uint8)[role_map]
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), label, objects


def _sizes(size: SizeArg, num: int) -> list[tuple[int, int]]:
    if len(size) == 2 and all(isinstance(v, (int, np.integer)) for v in size):
        sizes = [tuple(size)]
    else:
        sizes = [tuple(s) for s in size]
    for s in sizes:
        if len(s) != 2 or min(s) < 8:
            raise ValueError(f"image sizes are (width, height) pairs of at least 8 pixels, got {s!r}")
    from ..inference import available_bytes
    free = available_bytes(torch.device("cpu"))
    for w, h in sizes:
        need = w * h * _BYTES_PER_PIXEL
        if free is not None and need > free:
            raise ValueError(f"a {w}x{h} scene needs about {need / 2**30:.0f} GiB of memory to draw but "
                             f"{free / 2**30:.1f} GiB are free; use a smaller --size")
    return [sizes[i % len(sizes)] for i in range(num)]


def _palette_png(label: np.ndarray, palette: Sequence[Sequence[int]]) -> Image.Image:
    im = Image.fromarray(label, mode="P")
    flat = [c for rgb in palette for c in rgb]
    flat += [0] * (768 - len(flat))
    flat[255 * 3: 255 * 3 + 3] = [224, 224, 192]   # VOC draws its ignore border in this colour
    im.putpalette(flat)
    return im


def generate(root: str, layout: str, num: int, size: SizeArg = (256, 128), seed: int = 0, split: str = "val",
             *, label_ids: bool = True, train_ids: bool = True) -> list[str]:
    """Write ``num`` synthetic images and labels under ``root`` in a real dataset layout.

    Args:
        root: the dataset root (created if needed), e.g. ``data/cityscapes``.
        layout: ``"cityscapes"`` (``leftImg8bit``/``gtFine``, train ids), ``"ade20k"``
            (``ADEChallengeData2016``, labels stored +1 with 0 = other) or ``"voc"``
            (``VOCdevkit/VOC2012``, palette PNGs with a 255 border around objects, split lists).
        num: number of images.
        size: (width, height), or a list of sizes used in turn (odd sizes exercise the resize rounding).
        seed: the random seed; the same seed writes the same files.
        split: ``"train"`` or ``"val"`` (``"val"`` is written as ``validation`` for ADE20K).
        label_ids, train_ids: Cityscapes only: which label files to write (``*_gtFine_labelIds.png``
            with the official ids, ``*_gtFine_labelTrainIds.png`` with train ids). With ``label_ids`` the
            ``*_gtFine_instanceIds.png`` files are written too (16-bit: label id x 1000 + instance number on
            cars and people, the label id elsewhere), so cityscapesScripts' evaluation runs on the set as is.

    A file ``sszoo_synthetic.json`` in the dataset's folder marks the data as generated.

    Returns:
        the image paths written, in order.
    """
    if layout not in CLASSES:
        raise ValueError(f"unknown layout {layout!r}; choose one of {sorted(CLASSES)}")
    if num < 1:
        raise ValueError(f"num must be at least 1, got {num}")
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    info = get_dataset(DATASET_KEY[layout])
    classes = CLASSES[layout]
    trainid_to_id = {v: k for k, v in CITYSCAPES_ID_TO_TRAINID.items()}
    written = []
    names = []
    for i, (w, h) in enumerate(_sizes(size, num)):
        rng = np.random.default_rng([seed, i, 0 if split == "val" else 1])
        img, lab, objects = _scene(w, h, rng, info.palette, classes)
        if layout == "cityscapes":
            city = ("frankfurt", "lindau", "munster")[i % 3] if split == "val" else ("aachen", "bochum")[i % 2]
            stem = f"{city}_{i:06d}_000019"
            ip = os.path.join(root, "leftImg8bit", split, city, stem + "_leftImg8bit.png")
            atomic_write_png(Image.fromarray(img), ip)
            base = os.path.join(root, "gtFine", split, city, stem)
            if train_ids:
                atomic_write_png(Image.fromarray(lab), base + "_gtFine_labelTrainIds.png")
            if label_ids:
                lut = np.zeros(256, np.uint8)     # unlabeled (id 0) for anything without a train id
                for t, k in trainid_to_id.items():
                    lut[t] = k
                ids = lut[lab]
                atomic_write_png(Image.fromarray(ids), base + "_gtFine_labelIds.png")
                atomic_write_png(Image.fromarray(_instance_ids(ids, objects)), base + "_gtFine_instanceIds.png")
        elif layout == "ade20k":
            sub = "validation" if split == "val" else "training"
            stem = f"ADE_{'val' if split == 'val' else 'train'}_{i + 1:08d}"
            d = os.path.join(root, "ADEChallengeData2016")
            ip = os.path.join(d, "images", sub, stem + ".jpg")
            atomic_write_png(Image.fromarray(img), ip)
            stored = lab.astype(np.int64) + 1
            # a thin "other" (0) frame at the left edge: reduce_zero_label turns it into ignore
            stored[:, : max(1, w // 40)] = 0
            atomic_write_png(Image.fromarray(stored.astype(np.uint8)), os.path.join(d, "annotations", sub, stem + ".png"))
        else:  # voc
            stem = f"2007_{i:06d}" if split == "val" else f"2008_{i:06d}"
            d = os.path.join(root, "VOCdevkit", "VOC2012")
            ip = os.path.join(d, "JPEGImages", stem + ".jpg")
            atomic_write_png(Image.fromarray(img), ip)
            border = _object_border(lab)
            voc = lab.copy()
            voc[border] = 255
            atomic_write_png(_palette_png(voc, info.palette), os.path.join(d, "SegmentationClass", stem + ".png"))
            if split == "train":  # the augmented set stores grey PNGs without the border
                atomic_write_png(Image.fromarray(lab), os.path.join(d, "SegmentationClassAug", stem + ".png"))
            names.append(stem)
        written.append(ip)
    base_dir = {"cityscapes": root, "ade20k": os.path.join(root, "ADEChallengeData2016"),
                "voc": os.path.join(root, "VOCdevkit", "VOC2012")}[layout]
    write_text(json.dumps({"generator": "sszoo.data.synthetic", "layout": layout, "seed": seed}) + "\n",
               os.path.join(base_dir, MARKER))
    if layout == "voc":
        sets = os.path.join(root, "VOCdevkit", "VOC2012", "ImageSets", "Segmentation")
        os.makedirs(sets, exist_ok=True)
        lists = [split] + (["train_aug", "aug"] if split == "train" else [])
        for name in lists:
            write_text("".join(n + "\n" for n in names), os.path.join(sets, f"{name}.txt"))
    return written


def _instance_ids(ids: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """Cityscapes instanceIds: label id x 1000 + a per-class instance number on instance classes, else the id."""
    out = ids.astype(np.uint16)
    count: dict[int, int] = {}
    for obj in range(1, int(objects.max()) + 1):
        mask = objects == obj
        if not mask.any():
            continue  # drawn over by a later object
        label_id = int(np.bincount(ids[mask]).argmax())
        if label_id in _CS_INSTANCE_IDS:
            out[mask & (ids == label_id)] = label_id * 1000 + count.get(label_id, 0)
            count[label_id] = count.get(label_id, 0) + 1
    return out


def _object_border(lab: np.ndarray) -> np.ndarray:
    """Pixels where the class changes within one pixel (VOC marks object outlines as 255)."""
    edge = np.zeros(lab.shape, bool)
    edge[:-1] |= lab[:-1] != lab[1:]
    edge[1:] |= lab[:-1] != lab[1:]
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    edge[:, 1:] |= lab[:, :-1] != lab[:, 1:]
    return edge


def main(argv: Optional[list[str]] = None) -> int:
    """Command line entry: write a synthetic dataset and print where it went."""
    ap = argparse.ArgumentParser(prog="python -m sszoo.data.synthetic", description=__doc__.split("\n\n")[0])
    ap.add_argument("root", help="dataset root to write (e.g. data/cityscapes)")
    ap.add_argument("--layout", choices=sorted(CLASSES), required=True)
    ap.add_argument("--num", type=int, required=True, help="number of images (at least 1)")
    ap.add_argument("--size", type=functools.partial(parse_pair, form="WxH", example="256x128"), action="append",
                    help="WxH (default 256x128); repeat for several sizes used in turn")
    ap.add_argument("--split", choices=["train", "val"], default="val")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    try:
        paths = generate(a.root, a.layout, a.num, size=a.size or (256, 128), seed=a.seed, split=a.split)
    except (ValueError, OSError) as e:
        print(f"{ap.prog}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"wrote {len(paths)} {a.layout} {a.split} images under {a.root} "
          f"(open with sszoo.data.build_dataset({DATASET_KEY[a.layout]!r}, {a.root!r}, {a.split!r}))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
