"""Colour-coded label maps, overlays and legends for segmentation results.

>>> color = colorize(labels, palette)              # H x W x 3 uint8, one palette colour per class
>>> blend = overlay(image, color, opacity=0.5)     # the colours laid over the photo
>>> legend_image(present, class_names, palette).save("legend.png")
"""
from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .atomic import atomic_path

ArrayLike = Union[np.ndarray, torch.Tensor]
IGNORE_COLOR = (0, 0, 0)  # pixels labelled 255 (ignore) are drawn black


def _np(a: ArrayLike) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def make_palette(num_classes: int, seed: int = 0) -> np.ndarray:
    """A deterministic palette of ``num_classes`` distinct-ish colours (K x 3 uint8) for label spaces
    without a published one (e.g. a checkpoint fine-tuned to a new class count)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(num_classes, 3), dtype=np.uint8)


def palette_for(num_classes: int, dataset_palette: Optional[Sequence[Sequence[int]]] = None) -> np.ndarray:
    """The dataset's palette when it covers ``num_classes`` classes, otherwise :func:`make_palette`."""
    if dataset_palette is not None and len(dataset_palette) >= num_classes:
        return np.asarray(dataset_palette[:num_classes], dtype=np.uint8).reshape(num_classes, 3)
    return make_palette(num_classes)


def colorize(labels: ArrayLike, palette: ArrayLike, ignore_index: int = 255) -> np.ndarray:
    """Map an H x W label map to an H x W x 3 uint8 image with ``palette[label]``.

    ``ignore_index`` pixels become :data:`IGNORE_COLOR`; any other label outside the palette is an error.
    """
    lab = _np(labels).astype(np.int64)
    pal = _np(palette).astype(np.uint8).reshape(-1, 3)
    if lab.ndim != 2:
        raise ValueError(f"expected an H x W label map, got shape {lab.shape}")
    ignore = lab == ignore_index
    bad = (~ignore) & ((lab < 0) | (lab >= len(pal)))
    if bad.any():
        raise ValueError(f"label values {sorted(set(np.unique(lab[bad]).tolist()))[:5]} are outside the palette "
                         f"of {len(pal)} classes; pass the palette of the model's label space")
    out = pal[np.where(ignore, 0, lab)]
    out[ignore] = IGNORE_COLOR
    return out


def overlay(image: ArrayLike, color: ArrayLike, opacity: float = 0.5) -> np.ndarray:
    """``(1 - opacity) * image + opacity * color``, rounded to uint8 (both H x W x 3, 0-255)."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity}")
    img = _np(image)
    col = _np(color)
    if img.shape != col.shape:
        raise ValueError(f"image {img.shape} and colour map {col.shape} must have the same H x W x 3 shape")
    blend = (1.0 - opacity) * img.astype(np.float32) + opacity * col.astype(np.float32)
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)


def class_shares(labels: ArrayLike, num_classes: int) -> dict[int, float]:
    """Classes present in ``labels`` with their share of the (non-ignored) pixels, largest first."""
    lab = _np(labels).astype(np.int64).ravel()
    lab = lab[(lab >= 0) & (lab < num_classes)]
    if lab.size == 0:
        return {}
    counts = np.bincount(lab, minlength=num_classes)
    order = [int(c) for c in np.argsort(-counts, kind="stable") if counts[c] > 0]
    return {c: float(counts[c]) / lab.size for c in order}


def legend_image(shares: dict[int, float], class_names: Sequence[str], palette: ArrayLike, *,
                 swatch: int = 18, pad: int = 6) -> Image.Image:
    """A legend of the classes in ``shares`` (class id -> pixel share): swatch, id, name and percentage."""
    pal = _np(palette).astype(np.uint8).reshape(-1, 3)
    font = ImageFont.load_default()
    rows = [(c, f"{c:>3}  {class_names[c] if c < len(class_names) else f'class {c}'}  {100 * s:.1f}%")
            for c, s in shares.items()] or [(None, "no classes")]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max(int(probe.textlength(text, font=font)) for _, text in rows)
    width = pad * 3 + swatch + text_w
    height = pad + len(rows) * (swatch + pad)
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for i, (c, text) in enumerate(rows):
        y = pad + i * (swatch + pad)
        if c is not None:
            draw.rectangle([pad, y, pad + swatch - 1, y + swatch - 1], fill=tuple(int(v) for v in pal[c]),
                           outline=(0, 0, 0))
        draw.text((pad * 2 + swatch, y + 3), text, fill=(0, 0, 0), font=font)
    return img


def save_png(img: Union[Image.Image, np.ndarray], path: str | os.PathLike) -> str:
    """Write a PNG through a temporary file in the same folder, renamed into place; returns the path."""
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    path = os.fspath(path)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path
