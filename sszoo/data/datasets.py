"""Segmentation datasets in their standard (MMSegmentation-prepared) on-disk layouts.

Every dataset yields ``{"image": uint8 3 x H x W RGB, "label": int64 H x W, "path": str}``. Labels are
read unchanged (never resized), then mapped to train ids: Cityscapes ``labelIds`` through the official
id -> trainId table when no ``labelTrainIds`` file exists, and ``reduce_zero_label`` (0 -> 255, the rest
minus one) where the dataset uses it. 255 is the ignore index.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..registry import DatasetInfo, get_dataset
from .io import DataError, read_image, read_label

IGNORE = 255

# Official Cityscapes label id -> train id (cityscapesScripts labels.py); every other id is ignored.
CITYSCAPES_ID_TO_TRAINID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
                            24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


# cityscapesScripts' categories of the 19 evaluated classes, by train id (labels.py), for category IoU
CITYSCAPES_CATEGORIES = {"flat": (0, 1), "construction": (2, 3, 4), "object": (5, 6, 7), "nature": (8, 9),
                         "sky": (10,), "human": (11, 12), "vehicle": (13, 14, 15, 16, 17, 18)}
# --gt choices: which Cityscapes label files to read
GT_CHOICES = ("auto", "labelTrainIds", "labelIds")


def cityscapes_lut() -> np.ndarray:
    """A 256-entry lookup table from Cityscapes label ids to train ids (255 elsewhere)."""
    lut = np.full(256, IGNORE, dtype=np.uint8)
    for k, v in CITYSCAPES_ID_TO_TRAINID.items():
        lut[k] = v
    return lut


@dataclass(frozen=True)
class Layout:
    """Where one dataset keeps its images and labels, relative to its root folder.

    ``img_dir``/``ann_dir`` may contain ``{split}``, replaced through ``split_names``. With ``split_file``
    the sample list comes from a text file of stems (PASCAL style); otherwise from the images found.
    """

    roots: tuple[str, ...]             # sub-folders the root may be given above, tried in order ("" = root itself)
    img_dir: str
    ann_dir: str
    img_suffix: str
    ann_suffix: str
    split_names: dict[str, str] = field(default_factory=dict)
    split_file: Optional[str] = None
    recursive: bool = False            # images in per-city sub-folders (Cityscapes)
    alt_ann_suffix: Optional[str] = None  # fallback label file, mapped by alt_lut
    alt_lut: Optional[Callable[[], np.ndarray]] = None
    split_ann_dir: dict[str, str] = field(default_factory=dict)  # a split with its own label folder (VOC aug)

    def describe(self, split: str) -> str:
        """The expected files of ``split``, on one line."""
        s = self.split_names.get(split, split)
        img = os.path.join(self.img_dir.format(split=s), ("<city>/" if self.recursive else "") + "*" + self.img_suffix)
        ann_dir = self.split_ann_dir.get(split, self.ann_dir)
        ann = os.path.join(ann_dir.format(split=s), ("<city>/" if self.recursive else "") + "*" + self.ann_suffix)
        parts = [img, ann]
        if self.split_file:
            parts.append(f"{self.split_file.format(split=s)} (one image name per line)")
        return ", ".join(parts)


_SPLITS_TV = {"train": "train", "val": "val", "test": "test"}

LAYOUTS: dict[str, Layout] = {
    "cityscapes": Layout(("", "cityscapes"), "leftImg8bit/{split}", "gtFine/{split}", "_leftImg8bit.png",
                         "_gtFine_labelTrainIds.png", _SPLITS_TV, recursive=True,
                         alt_ann_suffix="_gtFine_labelIds.png", alt_lut=cityscapes_lut),
    "ade20k": Layout(("", "ADEChallengeData2016", "ade/ADEChallengeData2016"), "images/{split}",
                     "annotations/{split}", ".jpg", ".png",
                     {"train": "training", "val": "validation", "training": "training", "validation": "validation",
                      "test": "testing", "testing": "testing"}),
    "voc12aug": Layout(("", "VOC2012", "VOCdevkit/VOC2012", "VOCdevkit/VOC2012".lower()), "JPEGImages",
                       "SegmentationClass", ".jpg", ".png",
                       {"train": "train", "val": "val", "trainval": "trainval", "aug": "aug",
                        "train_aug": "train_aug", "test": "test"},
                       split_file="ImageSets/Segmentation/{split}.txt",
                       split_ann_dir={"aug": "SegmentationClassAug", "train_aug": "SegmentationClassAug"}),
    "pascal_context": Layout(("", "VOC2010", "VOCdevkit/VOC2010"), "JPEGImages", "SegmentationClassContext",
                             ".jpg", ".png", _SPLITS_TV, split_file="ImageSets/SegmentationContext/{split}.txt"),
    "coco_stuff10k": Layout(("", "coco_stuff10k"), "images/{split}", "annotations/{split}", ".jpg",
                            "_labelTrainIds.png", {"train": "train2014", "val": "test2014", "test": "test2014"}),
    "coco_stuff164k": Layout(("", "coco_stuff164k"), "images/{split}", "annotations/{split}", ".jpg",
                             "_labelTrainIds.png", {"train": "train2017", "val": "val2017"}),
    "loveda": Layout(("", "loveDA"), "img_dir/{split}", "ann_dir/{split}", ".png", ".png", _SPLITS_TV),
    "potsdam": Layout(("", "potsdam"), "img_dir/{split}", "ann_dir/{split}", ".png", ".png", _SPLITS_TV),
    "vaihingen": Layout(("", "vaihingen"), "img_dir/{split}", "ann_dir/{split}", ".png", ".png", _SPLITS_TV),
    "isaid": Layout(("", "iSAID"), "img_dir/{split}", "ann_dir/{split}", ".png", "_instance_color_RGB.png",
                    _SPLITS_TV),
    "mapillary_v1": Layout(("", "mapillary"), "{split}/images", "{split}/v1.2/labels", ".jpg", ".png",
                           {"train": "training", "val": "validation"}),
}
LAYOUTS["pascal_context59"] = LAYOUTS["pascal_context"]


class SegDataset(Dataset):
    """A list of (image, label) file pairs with the dataset's label conventions.

    Args:
        info: the dataset's classes and label conventions.
        samples: (image path, label path) pairs.
        label_lut: optional per-sample 256-entry lookup tables applied before ``reduce_zero_label``
            (``None`` entries mean "no mapping").
        reduce_zero_label: override ``info.reduce_zero_label``.
    """

    def __init__(self, info: DatasetInfo, samples: Sequence[tuple[str, Optional[str]]],
                 label_luts: Optional[Sequence[Optional[np.ndarray]]] = None,
                 reduce_zero_label: Optional[bool] = None, root: str = "", split: str = "",
                 stems: Optional[Sequence[str]] = None, label_note: str = "") -> None:
        self.info = info
        self.samples = list(samples)
        # image names relative to the split's image folder, without the image suffix (prediction file names)
        self.stems = list(stems) if stems is not None else \
            [os.path.splitext(os.path.basename(img))[0] for img, _ in self.samples]
        self.label_note = label_note  # which label files were read, e.g. "*_gtFine_labelTrainIds.png (500)"
        self.label_luts = list(label_luts) if label_luts is not None else [None] * len(self.samples)
        self.reduce_zero_label = info.reduce_zero_label if reduce_zero_label is None else reduce_zero_label
        self.root = root
        self.split = split

    def __len__(self) -> int:
        return len(self.samples)

    def load_label(self, index: int) -> Optional[torch.Tensor]:
        """The label map of sample ``index`` as int64 H x W train ids (255 = ignore); None without a label."""
        path = self.samples[index][1]
        if path is None:
            return None
        lab = read_label(path)
        lut = self.label_luts[index]
        if lut is not None:
            lab = lut[lab]
        if self.reduce_zero_label:
            # 0 ("other") becomes ignore, every class moves down by one; 255 stays ignore.
            lab = lab.astype(np.int64)
            lab = np.where(lab == 0, IGNORE, lab - 1)
            lab = np.where(lab == IGNORE - 1, IGNORE, lab)
        return torch.from_numpy(np.array(lab, dtype=np.int64))

    def __getitem__(self, index: int) -> dict:
        img_path, lab_path = self.samples[index]
        image = read_image(img_path)
        label = self.load_label(index)
        if label is not None and tuple(image.shape[1:]) != tuple(label.shape):
            raise DataError(f"label {lab_path} is {label.shape[1]}x{label.shape[0]} (WxH) but its image {img_path} "
                            f"is {image.shape[2]}x{image.shape[1]}; labels must have their image's size")
        return {"image": image, "label": label, "path": img_path, "stem": self.stems[index]}

    @property
    def has_labels(self) -> bool:
        """Whether every sample has a label file."""
        return all(lab is not None for _, lab in self.samples)

    def __repr__(self) -> str:
        return f"SegDataset({self.info.key!r}, split={self.split!r}, root={self.root!r}, n={len(self)})"


def _find_root(root: str, layout: Layout, split: str) -> str:
    s = layout.split_names.get(split, split)
    for sub in layout.roots:
        cand = os.path.join(root, sub) if sub else root
        probe = layout.split_file.format(split=s) if layout.split_file else layout.img_dir.format(split=s)
        if os.path.exists(os.path.join(cand, probe)):
            return cand
    return ""


def build_dataset(key: str, root: str, split: str = "val", *, reduce_zero_label: Optional[bool] = None,
                  limit: Optional[int] = None, labels: str = "required", gt: str = "auto") -> SegDataset:
    """Open dataset ``key`` (``"cityscapes"``, ``"ade20k"``, ``"voc12aug"``, ...) stored under ``root``.

    ``root`` is the dataset folder in its standard layout (e.g. the folder holding ``leftImg8bit`` and
    ``gtFine``) or a parent of it (``data/`` holding ``cityscapes/``). Samples are sorted by image path, so
    every process of a distributed run sees the same order.

    Args:
        labels: ``"required"`` (every image needs its label), ``"optional"`` (images without a label file
            yield ``"label": None``; all or none of them must have one) or ``"none"`` (labels are not read:
            a test split, whose label files, where they exist, are placeholders).
        gt: Cityscapes only: ``"auto"`` reads ``*_gtFine_labelTrainIds.png`` where it exists and
            ``*_gtFine_labelIds.png`` (mapped to train ids) otherwise; ``"labelTrainIds"`` or ``"labelIds"``
            read only those files.

    Raises:
        DataError: a missing folder or split file (the message shows the expected layout), an image
            without its label, or an empty split.
    """
    try:
        info = get_dataset(key)
    except KeyError as e:
        raise DataError(str(e.args[0]) if e.args else f"unknown dataset {key!r}") from None
    if key not in LAYOUTS:
        raise DataError(f"no on-disk layout known for dataset {key!r}; known: {', '.join(sorted(LAYOUTS))}")
    if labels not in ("required", "optional", "none"):
        raise ValueError(f"labels must be 'required', 'optional' or 'none', got {labels!r}")
    if gt not in GT_CHOICES:
        raise DataError(f"--gt must be one of {', '.join(GT_CHOICES)}, got {gt!r}")
    layout = LAYOUTS[key]
    if gt != "auto" and not layout.alt_ann_suffix:
        raise DataError(f"--gt {gt} chooses between Cityscapes' label files; {info.title} has one kind (use --gt auto)")
    if split not in layout.split_names:
        raise DataError(f"unknown split {split!r} for {key}; choose one of {sorted(set(layout.split_names))}")
    if not os.path.isdir(root):
        raise DataError(f"dataset root {root!r} does not exist; {info.title} ({key}) expects under it: "
                        + layout.describe(split))
    base = _find_root(root, layout, split)
    if not base:
        raise DataError(f"{info.title} ({key}) split {split!r} not found under {root!r}; expected "
                        + layout.describe(split) + " (relative to ROOT"
                        + "".join(f" or ROOT/{r}" for r in layout.roots if r) + ")")
    s = layout.split_names[split]
    img_dir = os.path.join(base, layout.img_dir.format(split=s))
    ann_dir = os.path.join(base, layout.split_ann_dir.get(split, layout.ann_dir).format(split=s))
    optional = labels != "required"
    if not os.path.isdir(ann_dir) and not optional:
        raise DataError(f"label folder {ann_dir} is missing; {info.title} expects: " + layout.describe(split))

    if layout.split_file:
        with open(os.path.join(base, layout.split_file.format(split=s))) as f:
            stems = [line.strip().split()[0] for line in f if line.strip()]
        rel = stems
    else:
        pattern = os.path.join(img_dir, "**", "*" + layout.img_suffix) if layout.recursive else \
            os.path.join(img_dir, "*" + layout.img_suffix)
        found = sorted(glob.glob(pattern, recursive=layout.recursive))
        rel = [os.path.relpath(p, img_dir)[: -len(layout.img_suffix)] for p in found]
    # the label files to look for, in order: (suffix, lookup table)
    lut_alt = layout.alt_lut() if layout.alt_lut else None
    kinds: list[tuple[str, Optional[np.ndarray]]] = []
    if labels != "none":
        if gt in ("auto", "labelTrainIds"):
            kinds.append((layout.ann_suffix, None))
        if layout.alt_ann_suffix and gt in ("auto", "labelIds"):
            kinds.append((layout.alt_ann_suffix, lut_alt))
    samples: list[tuple[str, Optional[str]]] = []
    luts: list[Optional[np.ndarray]] = []
    used: dict[str, int] = {}
    kept: list[str] = []
    for stem in sorted(rel):
        img = os.path.join(img_dir, stem + layout.img_suffix)
        if layout.split_file and not os.path.isfile(img):
            raise DataError(f"image {img} listed in {layout.split_file.format(split=s)} does not exist")
        # label stems drop the image's suffix ("aachen_000000_000019") and take the label's
        ann, lut = None, None
        for suffix, table in kinds:
            cand = os.path.join(ann_dir, stem + suffix)
            if os.path.isfile(cand):
                ann, lut = cand, table
                used[suffix] = used.get(suffix, 0) + 1
                break
        if ann is None and not optional:
            wanted = " or ".join(stem + suffix for suffix, _ in kinds)
            raise DataError(f"no label for image {img}: expected {os.path.join(ann_dir, wanted)}")
        samples.append((img, ann))
        luts.append(lut)
        kept.append(stem)
    if not samples:
        raise DataError(f"no images matching *{layout.img_suffix} in {img_dir}; {info.title} expects: "
                        + layout.describe(split))
    labelled = sum(ann is not None for _, ann in samples)
    if optional and 0 < labelled < len(samples):
        missing = next(img for img, ann in samples if ann is None)
        raise DataError(f"{len(samples) - labelled} of {len(samples)} images of split {split!r} have no label "
                        f"(e.g. {missing}); a split is evaluated with all its labels or predicted without any")
    if limit is not None:
        samples, luts, kept = samples[:limit], luts[:limit], kept[:limit]
    note = ", ".join(f"*{suffix} ({n})" + (" mapped to train ids" if suffix == layout.alt_ann_suffix else "")
                     for suffix, n in used.items()) or "none (no label files)"
    return SegDataset(info, samples, luts, reduce_zero_label=reduce_zero_label, root=base, split=split,
                      stems=kept, label_note=note)
