"""Training augmentation as in the reference recipes, on torch tensors.

The order and ranges are those of MMSegmentation's training pipelines:

1. random keep-ratio resize: a ratio r ~ U[0.5, 2.0) multiplies the base scale (w, h); the image is
   rescaled (aspect ratio kept) to fit inside that scale; bilinear for images, nearest for labels;
2. random crop to (h, w); when ``cat_max_ratio < 1`` the crop is re-drawn (up to 10 times) while a
   single class covers at least that share of its labelled pixels or fewer than two classes show;
3. horizontal flip with probability 0.5;
4. photometric distortion, each step with probability 0.5: brightness (+U[-32, 32]), then contrast
   (x U[0.5, 1.5]) either second or last (a coin decides), saturation (x U[0.5, 1.5]) and hue
   (+randint[-18, 18) on OpenCV's 0-180 hue scale) in 8-bit HSV, each step clipping to uint8;
5. padding to the crop at the bottom/right: 0 for the normalised image, ``ignore_index`` for labels
   (done by :func:`collate` and :func:`normalize_batch`, so padded pixels are exactly 0 after
   normalisation as in the reference).

All randomness comes from a ``numpy.random.Generator`` passed in, so a sample is a pure function of
(image, label, seed): data loader workers and resumed runs reproduce it exactly.
"""
from __future__ import annotations

from typing import Optional

from dataclasses import dataclass

import numpy as np
import torch

from ..data.resize import nearest_index, rescale_size, resize_uint8_like_opencv


@dataclass(frozen=True)
class AugmentConfig:
    crop: tuple[int, int]                      # (h, w)
    scale: tuple[int, int]                     # base scale (w, h) of the random resize
    ratio_range: tuple[float, float] = (0.5, 2.0)
    # RandomChoiceResize + ResizeShortestEdge instead (Mask2Former, MaskFormer, SAN): a shorter side drawn
    # from these, the longer edge capped at max_size
    short_sides: tuple[int, ...] = ()
    max_size: Optional[int] = None
    cat_max_ratio: float = 0.75
    flip_prob: float = 0.5
    photometric: bool = True
    ignore_index: int = 255
    brightness_delta: float = 32.0
    contrast_range: tuple[float, float] = (0.5, 1.5)
    saturation_range: tuple[float, float] = (0.5, 1.5)
    hue_delta: int = 18


# --------------------------------------------------------------------------------------------- resize
def resize_image(img: torch.Tensor, size: tuple[int, int],
                 box: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """OpenCV-style bilinear resize of a uint8 3 x H x W image to ``size`` (h, w), or only its window
    ``box = (y1, y2, x1, x2)`` (see :func:`sszoo.data.resize.resize_uint8_like_opencv`)."""
    return resize_uint8_like_opencv(img, size, box).to(torch.uint8)


def resize_label(label: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of an H x W label map."""
    h, w = label.shape
    if (h, w) == tuple(size):
        return label
    return label[nearest_index(h, size[0])][:, nearest_index(w, size[1])]


# ----------------------------------------------------------------------------------------------- crop
def random_crop_box(label, crop: tuple[int, int], cat_max_ratio: float, ignore_index: int,
                    rng: np.random.Generator, window=None) -> tuple[int, int, int, int]:
    """(y1, y2, x1, x2) of a random crop of ``label`` (H x W); re-drawn up to 10 times while one class
    covers ``cat_max_ratio`` or more of the crop's labelled pixels (or fewer than two classes show).

    ``window(box)``, when given, returns the label inside ``box`` (so the caller can resize lazily);
    ``label`` may then be just the (h, w) of the resized label.
    """
    h, w = label.shape[-2:] if isinstance(label, torch.Tensor) else label
    window = window or (lambda b: label[b[0]:b[1], b[2]:b[3]])

    def draw() -> tuple[int, int, int, int]:
        y = int(rng.integers(0, max(h - crop[0], 0) + 1))
        x = int(rng.integers(0, max(w - crop[1], 0) + 1))
        return y, y + crop[0], x, x + crop[1]

    box = draw()
    if cat_max_ratio < 1.0:
        for _ in range(10):
            counts = torch.bincount(window(box).reshape(-1).long(), minlength=256)
            if 0 <= ignore_index < counts.numel():
                counts[ignore_index] = 0
            counts = counts[counts > 0]
            if counts.numel() > 1 and counts.max().item() / counts.sum().item() < cat_max_ratio:
                break
            box = draw()
    return box


# ---------------------------------------------------------------------------------------- photometric
def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    # clip then truncate, as converting a clipped float array to uint8 does
    return x.clamp(0, 255).to(torch.uint8)


def rgb_to_hsv_u8(img: torch.Tensor) -> torch.Tensor:
    """OpenCV's 8-bit RGB -> HSV (H in [0, 180), S and V in [0, 255]) with its fixed-point rounding."""
    r, g, b = (c.to(torch.int32) for c in img)
    v = torch.maximum(torch.maximum(r, g), b)
    vmin = torch.minimum(torch.minimum(r, g), b)
    diff = v - vmin
    shift = 12
    idx = torch.arange(256, dtype=torch.float64)
    # int32 suffices: 255 * (255 << 12) and 1020 * (180 << 12) / 6 are below 2**31
    sdiv = torch.where(idx > 0, torch.round((255 << shift) / idx.clamp(min=1)), torch.zeros(())).to(torch.int32)
    hdiv = torch.where(idx > 0, torch.round((180 << shift) / (6 * idx.clamp(min=1))), torch.zeros(())).to(torch.int32)
    s = (diff * sdiv[v.long()] + (1 << (shift - 1))) >> shift
    # hue numerator: the max channel decides the sector (red wins ties, then green)
    h = torch.where(v == r, g - b, torch.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = (h * hdiv[diff.long()] + (1 << (shift - 1))) >> shift
    h = torch.where(h < 0, h + 180, h)
    return torch.stack([h, s, v]).to(torch.uint8)


# Which of (v, v(1-s), v(1-s f), v(1-s(1-f))) each of r, g, b takes in hue sectors 0..5.
_SECTOR_RGB = torch.tensor([[0, 3, 1], [2, 0, 1], [1, 0, 3], [1, 2, 0], [3, 1, 0], [0, 1, 2]])


def hsv_to_rgb_u8(hsv: torch.Tensor) -> torch.Tensor:
    """OpenCV's 8-bit HSV -> RGB as its vectorised path computes it: float32 arithmetic on H * (6/180),
    S/255 and V/255, then x255 and truncation to uint8 (OpenCV's scalar tail rounds instead, so a few
    pixels at the end of a row may differ by one level)."""
    f32 = torch.float32
    h = hsv[0].to(f32) * torch.tensor(6.0 / 180.0, dtype=f32)
    s = hsv[1].to(f32) * torch.tensor(1.0 / 255.0, dtype=f32)
    v = hsv[2].to(f32) * torch.tensor(1.0 / 255.0, dtype=f32)
    pre = torch.trunc(h)
    f = h - pre
    sector = (pre - torch.trunc(pre * torch.tensor(1.0 / 6.0, dtype=f32)) * 6.0).long().clamp_(0, 5)
    one = torch.ones((), dtype=f32)
    tab = torch.stack([v, v * (one - s), v * (one - s * f), v * (one - s * (one - f))])  # 4 x H x W
    pick = _SECTOR_RGB[sector].permute(2, 0, 1)  # 3 x H x W
    rgb = torch.gather(tab, 0, pick) * torch.tensor(255.0, dtype=f32)
    return torch.trunc(rgb).clamp_(0, 255).to(torch.uint8)


def photometric_distortion(img: torch.Tensor, rng: np.random.Generator, cfg: AugmentConfig) -> torch.Tensor:
    """The reference's PhotoMetricDistortion on a uint8 3 x H x W RGB image."""
    if rng.integers(2):
        img = _to_uint8(img.float() + rng.uniform(-cfg.brightness_delta, cfg.brightness_delta))
    contrast_first = bool(rng.integers(2))

    def contrast(x: torch.Tensor) -> torch.Tensor:
        if rng.integers(2):
            return _to_uint8(x.float() * rng.uniform(*cfg.contrast_range))
        return x

    if contrast_first:
        img = contrast(img)
    if rng.integers(2):
        hsv = rgb_to_hsv_u8(img)
        hsv[1] = _to_uint8(hsv[1].float() * rng.uniform(*cfg.saturation_range))
        img = hsv_to_rgb_u8(hsv)
    if rng.integers(2):
        hsv = rgb_to_hsv_u8(img)
        hsv[0] = ((hsv[0].long() + int(rng.integers(-cfg.hue_delta, cfg.hue_delta))) % 180).to(torch.uint8)
        img = hsv_to_rgb_u8(hsv)
    if not contrast_first:
        img = contrast(img)
    return img


def shortest_edge_scale(h: int, w: int, side: int, max_size: Optional[int]) -> tuple[int, int]:
    """MMSegmentation's ``ResizeShortestEdge`` scale (w, h) for an h x w image: the shorter side becomes ``side``,
    then both shrink so that the longer is at most ``max_size``; rounded half up. The image is then resized
    keeping its ratio to fit that scale (mmcv's ``Resize(keep_ratio=True)``), as there."""
    scale = side / min(h, w)
    new_h, new_w = (float(side), scale * w) if h < w else (scale * h, float(side))
    if max_size and max(new_h, new_w) > max_size:
        f = max_size / max(new_h, new_w)
        new_h, new_w = new_h * f, new_w * f
    return int(new_w + 0.5), int(new_h + 0.5)


# -------------------------------------------------------------------------------------------- pipeline
class TrainAugment:
    """Callable ``(image, label, rng) -> (image, label)`` applying the reference training pipeline.

    ``image`` is uint8 3 x H x W (RGB), ``label`` integer H x W (train ids, ``ignore_index`` ignored).
    Outputs are at most ``crop`` in size (smaller when the resized image is smaller: padding is
    done per batch by :func:`collate`).
    """

    def __init__(self, cfg: AugmentConfig) -> None:
        self.cfg = cfg

    def __call__(self, image: torch.Tensor, label: torch.Tensor,
                 rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        if cfg.short_sides:
            side = cfg.short_sides[int(rng.integers(len(cfg.short_sides)))]
            target = shortest_edge_scale(image.shape[1], image.shape[2], side, cfg.max_size)
        else:
            lo, hi = cfg.ratio_range
            ratio = rng.random() * (hi - lo) + lo
            target = (int(cfg.scale[0] * ratio), int(cfg.scale[1] * ratio))
        size = rescale_size(image.shape[1], image.shape[2], target)
        # resize lazily: only the chosen crop window of the image is ever computed
        rows, cols = nearest_index(label.shape[0], size[0]), nearest_index(label.shape[1], size[1])

        def window(b: tuple[int, int, int, int]) -> torch.Tensor:
            return label[rows[b[0]:b[1]]][:, cols[b[2]:b[3]]]

        box = random_crop_box(size, cfg.crop, cfg.cat_max_ratio,
                              cfg.ignore_index, rng, window=window)
        image, label = resize_image(image, size, box), window(box)
        if rng.random() < cfg.flip_prob:
            image, label = image.flip(-1), label.flip(-1)
        if cfg.photometric:
            image = photometric_distortion(image, rng, cfg)
        return image.contiguous(), label.contiguous()


def collate(samples: list[dict], crop: tuple[int, int], ignore_index: int = 255) -> dict[str, torch.Tensor]:
    """Stack augmented samples, padding each at the bottom/right to ``crop``.

    Returns ``image`` uint8 N x 3 x H x W (padding 0), ``label`` uint8 N x H x W (padding
    ``ignore_index``) and ``valid`` int64 N x 2, the unpadded (h, w) of each sample, which
    :func:`normalize_batch` uses to set the padding to exactly 0 after normalisation.
    """
    n = len(samples)
    images = torch.zeros(n, 3, crop[0], crop[1], dtype=torch.uint8)
    labels = torch.full((n, crop[0], crop[1]), ignore_index, dtype=torch.uint8)
    valid = torch.zeros(n, 2, dtype=torch.int64)
    for i, s in enumerate(samples):
        h, w = s["label"].shape
        images[i, :, :h, :w] = s["image"]
        labels[i, :h, :w] = s["label"]
        valid[i, 0], valid[i, 1] = h, w
    return {"image": images, "label": labels, "valid": valid}


def normalize_batch(images: torch.Tensor, valid: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...],
                    memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """uint8 N x 3 x H x W -> float (x - mean) / std, with the padded area set to 0 (on any device)."""
    m = torch.tensor(mean, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    x = (images.float() - m) / s
    h, w = x.shape[2:]
    if bool((valid[:, 0] < h).any() or (valid[:, 1] < w).any()):
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        keep = (rows < valid[:, 0].to(x.device).view(-1, 1, 1)) & (cols < valid[:, 1].to(x.device).view(-1, 1, 1))
        x = x * keep[:, None].to(x.dtype)
    return x.contiguous(memory_format=memory_format)
