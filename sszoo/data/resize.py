"""The reference's image resizing, shared by the test protocol (sszoo.inference) and the training
augmentation (sszoo.train.augment).

MMSegmentation resizes 8-bit images with OpenCV's bilinear ``INTER_LINEAR`` after computing the target
size with mmcv's keep-ratio arithmetic; labels with ``INTER_NEAREST``. These functions reproduce that
arithmetic in torch, to the bit (tests/test_resize.py holds cv2 5.0's outputs; docs/eval.md).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch


def rescale_size(height: int, width: int, scale: Optional[Sequence[int]], keep_ratio: bool = True) -> tuple[int, int]:
    """mmcv's resize arithmetic, returning (new_height, new_width).

    With ``keep_ratio`` the image fits ``scale`` = (long edge, short edge) bounds: factor = min(long_max /
    long_side, short_max / short_side), size = int(side * factor + 0.5). Without, ``scale`` is (w, h).
    """
    if scale is None:
        return height, width
    if not keep_ratio:
        return int(scale[1]), int(scale[0])
    long_max, short_max = max(scale), min(scale)
    f = min(long_max / max(height, width), short_max / min(height, width))
    return int(height * f + 0.5), int(width * f + 0.5)


def linear_taps(src: int, dst: int, rows: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """OpenCV's INTER_LINEAR along one axis: per output position the two source indices and their 11-bit
    fixed-point weights (int32, summing to 2048).

    As OpenCV: scale = 1 / (dst / src) in double, half-pixel centres rounded to float32, weights rounded
    half to even, source positions outside the image clamped to the edge pixel. The two axes clamp
    differently: a column outside the image takes the edge pixel with weights (2048, 0), while a row
    keeps its fractional weights and reads the edge row twice (``rows=True``). With the vertical pass's
    rounding the two differ by one grey level on some pixels of the first and last output rows.
    """
    scale = 1.0 / (dst / src)
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = (f - s.astype(np.float32)).astype(np.float32)
    if not rows:
        f[(s < 0) | (s >= src - 1)] = 0
    s1 = np.clip(s + 1, 0, src - 1)
    s = np.clip(s, 0, src - 1)
    w0 = np.rint((np.float32(1) - f) * np.float32(2048)).astype(np.int32)
    w1 = np.rint(f * np.float32(2048)).astype(np.int32)
    return tuple(torch.from_numpy(a) for a in (s, s1, w0, w1))  # type: ignore[return-value]


def resize_uint8_like_opencv(img: torch.Tensor, size: tuple[int, int],
                             box: Optional[tuple[int, int, int, int]] = None) -> torch.Tensor:
    """``cv2.resize(img, (w, h), interpolation=INTER_LINEAR)`` for 8-bit images, as integer arithmetic.

    ``img`` is ... x H x W with integer values 0-255 (any dtype, any leading dimensions); returns int32
    values 0-255 of shape ... x h x w, or only the window ``box = (y1, y2, x1, x2)`` of the resized image
    (a crop of a large resize then costs the crop's size: the training pipeline resizes and crops).
    OpenCV computes a horizontal pass with 11-bit weights, then a vertical pass with its vectorised
    rounding ``((a >> 4) * b0 >> 16) + ((c >> 4) * b1 >> 16) + 2 >> 2``; an exact 2x reduction is a
    rounded 2x2 mean and an unchanged size a copy.
    """
    h, w = int(size[0]), int(size[1])
    H, W = img.shape[-2:]
    y1, y2, x1, x2 = box if box is not None else (0, h, 0, w)
    y2, x2 = min(y2, h), min(x2, w)
    x = img.to(torch.int32)  # 8-bit x 2048 x 2048 < 2**31; about twice as fast as int64 on CPU
    if (H, W) == (h, w):
        return x[..., y1:y2, x1:x2]
    if H == 2 * h and W == 2 * w:
        q = x[..., 2 * y1:2 * y2, 2 * x1:2 * x2]
        return (q[..., 0::2, 0::2] + q[..., 0::2, 1::2] + q[..., 1::2, 0::2] + q[..., 1::2, 1::2] + 2) >> 2
    cx0, cx1, a0, a1 = (t[x1:x2].to(img.device) for t in linear_taps(W, w))
    ry0, ry1, b0, b1 = (t[y1:y2].to(img.device) for t in linear_taps(H, h, rows=True))
    needed = torch.unique(torch.cat([ry0, ry1]))          # only the source rows the window reads
    remap = torch.zeros(H, dtype=torch.long, device=img.device)
    remap[needed] = torch.arange(needed.numel(), device=img.device)
    src = x[..., needed, :]
    rows = src[..., cx0] * a0 + src[..., cx1] * a1        # ... x R x w', scale 2048
    top, bottom = rows[..., remap[ry0], :], rows[..., remap[ry1], :]
    out = (((top >> 4) * b0.view(-1, 1)) >> 16) + (((bottom >> 4) * b1.view(-1, 1)) >> 16) + 2 >> 2
    return out.clamp_(0, 255)


def nearest_index(src: int, dst: int) -> torch.Tensor:
    """OpenCV's INTER_NEAREST source indices along one axis: floor(i * src / dst)."""
    return (torch.arange(dst, dtype=torch.float64) * (src / dst)).floor().long().clamp_(max=src - 1)
