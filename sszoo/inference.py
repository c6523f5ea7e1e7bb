"""One inference helper for evaluation, prediction and benchmarks: the reference test protocol.

The protocol is MMSegmentation's test pipeline: keep-ratio resize to the entry's test scale (mmcv's
scale computation and rounding, bilinear), normalisation with the entry's mean/std, whole-image or
sliding-window inference, logits resized back to the image's original size, argmax. ``tta=True`` adds
the multi-scale + flip protocol behind the published "ms+flip" numbers (MMSegmentation 0.x
``MultiScaleFlipAug``): ratios of the test scale, horizontal flip, softmax probabilities averaged.

>>> model = sszoo.create_model("pspnet_r18_d8_cityscapes")
>>> labels = sszoo.inference.infer(model, image_uint8_hwc)          # H x W int64 train ids
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from .data.resize import rescale_size, resize_uint8_like_opencv  # noqa: F401  (public here too)

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
MSFLIP_RATIOS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
OUTPUTS = ("labels", "logits", "probs")


@dataclass(frozen=True)
class Protocol:
    """How to run a model on an image, as the reference test pipeline does.

    Attributes:
        scale: the Resize scale; with ``keep_ratio`` a (long edge, short edge) bound as the reference writes
            it, e.g. (2048, 1024); without, the exact output (width, height). ``None`` keeps the image size.
        keep_ratio: resize keeping the aspect ratio (the reference's default for testing).
        mode: ``"whole"`` (one forward pass per image) or ``"slide"`` (overlapping windows).
        crop: sliding window (height, width); required in slide mode.
        stride: sliding stride (height, width); required in slide mode.
        align_corners: the model's ``align_corners``, used when resizing logits back to the image.
        mean, std: RGB normalisation on the 0-255 scale.
        msflip_ratios: the scale ratios of ``tta=True``.
        resize_logits_once: in whole mode, resize the network's feature-resolution logits straight to the
            image, as sssegmentation's tester does (MMSegmentation resizes them to the network input first,
            then to the image). Needs a zoo :class:`~sszoo.models.Segmentor`; other modules resize twice.
        window_softmax: in slide mode, turn each window's logits into softmax probabilities before they
            are summed and averaged (sssegmentation's ``use_probs_before_resize``, set by its Pascal Context
            configs); MMSegmentation sums logits. Ignored in whole mode.
        size_divisor: pad the normalised input at the bottom and right with zeros to a multiple of this
            before the network, and crop the padding off its logits (MMSegmentation's data preprocessor
            ``test_cfg.size_divisor``: SegNeXt, Mask2Former, SAN configs use 32).
    """

    scale: Optional[tuple[int, int]] = None
    keep_ratio: bool = True
    mode: str = "whole"
    crop: Optional[tuple[int, int]] = None
    stride: Optional[tuple[int, int]] = None
    align_corners: bool = False
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    msflip_ratios: tuple[float, ...] = MSFLIP_RATIOS
    resize_logits_once: bool = False
    window_softmax: bool = False
    size_divisor: Optional[int] = None

    def __post_init__(self) -> None:
        if self.mode not in ("whole", "slide"):
            raise ValueError(f"protocol mode must be 'whole' or 'slide', got {self.mode!r}")
        if self.mode == "slide":
            if self.crop is None or self.stride is None:
                raise ValueError("slide mode needs crop=(h, w) and stride=(h, w); e.g. "
                                 "Protocol(mode='slide', crop=(769, 769), stride=(513, 513))")
            if min(self.crop) < 1 or min(self.stride) < 1:
                raise ValueError(f"crop and stride must be positive, got crop={self.crop} stride={self.stride}")
        if self.size_divisor is not None and self.size_divisor < 1:
            raise ValueError(f"size_divisor must be a positive integer or None, got {self.size_divisor!r}")
        if self.scale is not None and (len(self.scale) != 2 or min(self.scale) < 1):
            raise ValueError(f"scale must be two positive integers, got {self.scale!r}")

    @classmethod
    def from_entry(cls, entry: Any) -> "Protocol":
        """The protocol a zoo entry's reported numbers were measured with."""
        t = entry.test
        return cls(scale=tuple(t.scale), keep_ratio=t.keep_ratio, mode=t.mode,
                   crop=tuple(t.crop) if t.crop else None, stride=tuple(t.stride) if t.stride else None,
                   align_corners=t.align_corners, mean=tuple(t.mean), std=tuple(t.std),
                   msflip_ratios=tuple(getattr(t, "msflip_ratios", MSFLIP_RATIOS)),
                   resize_logits_once=bool(getattr(t, "resize_logits_once", False)),
                   window_softmax=bool(getattr(t, "window_softmax", False)),
                   size_divisor=getattr(t, "size_divisor", None))

    def with_(self, **changes: Any) -> "Protocol":
        """A copy with some fields changed, e.g. ``protocol.with_(mode="whole")``."""
        return replace(self, **changes)

    def resized_size(self, height: int, width: int, scale: Optional[tuple[int, int]] = None) -> tuple[int, int]:
        """The (height, width) an image of this size is resized to before inference."""
        return rescale_size(height, width, scale if scale is not None else self.scale, self.keep_ratio)


def resize_image(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a float N x 3 x H x W image holding 8-bit values (0-255) as the reference test pipeline does
    (OpenCV's bilinear INTER_LINEAR on the uint8 image; see :func:`sszoo.data.resize.resize_uint8_like_opencv`)."""
    if tuple(img.shape[-2:]) == tuple(size):
        return img  # OpenCV copies an image resized to its own size
    return resize_uint8_like_opencv(img, size).float()


# ----------------------------------------------------------------------------------------------- inputs

ImageLike = Union[torch.Tensor, np.ndarray, "Any"]


def _to_chw(img: Any, what: str) -> torch.Tensor:
    """One image as a 3 x H x W tensor (uint8 or float), from CHW/HWC tensors, arrays or PIL images."""
    if not isinstance(img, (torch.Tensor, np.ndarray)):
        try:
            from PIL import Image
        except ImportError:  # pragma: no cover - pillow is a dependency
            Image = None
        if Image is not None and isinstance(img, Image.Image):
            from .data.io import to_rgb8
            img = to_rgb8(img, what)  # 16-bit -> high byte, alpha dropped, ...: the file readers' rules
        else:
            raise TypeError(f"{what}: expected a torch.Tensor, numpy array or PIL image, got {type(img).__name__}")
    if isinstance(img, np.ndarray):
        if img.dtype in (np.uint16, np.int32, np.uint32, np.int64):
            raise TypeError(f"{what}: {img.dtype} pixels; sszoo's models take 8-bit RGB (uint8, or floats on the "
                            "0-255 scale). For 16-bit images keep the high byte, (img >> 8).astype(np.uint8), "
                            "as sszoo's file readers and OpenCV's imread do")
        # a read-only array (np.asarray of a PIL image, a memory map) is copied: torch.from_numpy warns on it
        img = np.ascontiguousarray(img) if img.flags.writeable else np.array(img, order="C")
        t = torch.from_numpy(img)
    else:
        t = img
    if t.dim() != 3:
        raise ValueError(f"{what}: expected an image of shape 3 x H x W or H x W x 3, got shape {tuple(t.shape)}")
    if t.shape[0] != 3 and t.shape[-1] == 3:
        t = t.permute(2, 0, 1)
    if t.shape[0] != 3:
        raise ValueError(f"{what}: expected 3 colour channels (RGB), got shape {tuple(t.shape)}")
    if not (t.dtype == torch.uint8 or t.is_floating_point()):
        hint = " (16-bit: keep the high byte, img >> 8)" if t.dtype in (torch.int16, torch.int32) or \
            str(t.dtype) == "torch.uint16" else ""
        raise TypeError(f"{what}: expected uint8 or float pixels on the 0-255 scale, got {t.dtype}{hint}")
    return t


def _as_list(images: Any) -> tuple[list[torch.Tensor], str]:
    """Split the input into single images; also say how to shape the result ("single", "list", "batch")."""
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("no images given (an empty list)")
        return [_to_chw(im, f"image {i}") for i, im in enumerate(images)], "list"
    if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim == 4:
        return [_to_chw(im, f"image {i}") for i, im in enumerate(images)], "batch"
    return [_to_chw(images, "image")], "single"



# ------------------------------------------------------------------------------ work, memory, progress

LARGE_CPU_WORK = 1_000_000  # network pixels per image beyond which a CPU run takes seconds to minutes


class SlowProtocolWarning(UserWarning):
    """The test protocol makes a CPU run large (an upsampling resize, many sliding windows); issued once
    per protocol and process, with what the protocol does and how to skip its resize."""


class InferenceSizeError(ValueError):
    """An image whose protocol size would not fit in the device's memory (checked before allocating)."""


@dataclass(frozen=True)
class Work:
    """What the protocol does with one image of ``size`` (height, width)."""

    size: tuple[int, int]
    resized: tuple[int, int]         # the network input's (height, width); the largest scale with tta
    windows: int                     # forward passes per image (sliding windows x scales x flips)
    network_pixels: int              # pixels through the network per image, all passes together

    def describe(self, protocol: Protocol, tta: bool) -> str:
        """E.g. 'upsamples 240x320 to 1025x1366 (test scale 2048x1024) and runs 6 sliding windows of 769x769'."""
        (h, w), (rh, rw) = self.size, self.resized
        parts = []
        if (rh, rw) != (h, w):
            verb = "upsamples" if rh * rw > h * w else "resizes"
            scale = f" (test scale {'x'.join(map(str, protocol.scale))})" if protocol.scale else ""
            parts.append(f"{verb} {h}x{w} to {rh}x{rw}{scale}" + (" at its largest tta scale" if tta else ""))
        else:
            parts.append(f"runs {h}x{w} at its own size")
        if protocol.mode == "slide":
            parts.append(f"runs {self.windows} sliding windows of {protocol.crop[0]}x{protocol.crop[1]}"
                         + (" over all tta scales and flips" if tta else ""))
        elif tta:
            parts.append(f"runs {self.windows} passes (scales x flips)")
        return " and ".join(parts)


def protocol_work(protocol: Protocol, height: int, width: int, tta: bool = False) -> Work:
    """How many pixels go through the network for one ``height`` x ``width`` image under ``protocol``."""
    sizes = _tta_sizes(protocol, height, width) if tta else [protocol.resized_size(height, width)]
    passes = 2 if tta else 1
    windows = pixels = 0
    for rh, rw in sizes:
        if protocol.mode == "slide":
            wins = slide_windows(rh, rw, protocol.crop, protocol.stride)
            windows += passes * len(wins)
            pixels += passes * sum((y2 - y1) * (x2 - x1) for y1, y2, x1, x2 in wins)
        else:
            windows += passes
            pixels += passes * rh * rw
    largest = max(sizes, key=lambda s: s[0] * s[1])
    return Work((height, width), largest, windows, pixels)


def estimate_bytes(protocol: Protocol, height: int, width: int, num_classes: int, tta: bool = False) -> int:
    """A lower bound of the memory one image needs under ``protocol`` (float32): the resized image, the
    logits at the resized and the original size, and a dilated ResNet's widest feature maps."""
    work = protocol_work(protocol, height, width, tta)
    rh, rw = work.resized
    nh, nw = (min(protocol.crop[0], rh), min(protocol.crop[1], rw)) if protocol.mode == "slide" else (rh, rw)
    features = 2048 * (nh // 8 + 1) * (nw // 8 + 1) * 2           # two 2048-channel maps at 1/8 alive at once
    return 4 * (3 * rh * rw * 2 + num_classes * rh * rw * 2 + num_classes * height * width * 2 + features)


def available_bytes(device: torch.device) -> Optional[int]:
    """Free memory on ``device`` (CUDA: free plus cached by torch; CPU: MemAvailable), None if unknown."""
    try:
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
        if device.type == "cpu":
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, RuntimeError, AttributeError):
        return None
    return None


def check_fits(protocol: Protocol, sizes: Any, num_classes: int, device: torch.device, tta: bool = False) -> None:
    """Raise :class:`InferenceSizeError` when an image of one of ``sizes`` ((height, width) pairs) would
    need more memory under ``protocol`` than ``device`` has free: one clear line before any allocation."""
    avail = available_bytes(device)
    if avail is None:
        return
    for h, w in sizes:
        need = estimate_bytes(protocol, h, w, num_classes, tta)
        if need > avail:
            work = protocol_work(protocol, h, w, tta)
            raise InferenceSizeError(
                f"an image of {h}x{w}: the protocol {work.describe(protocol, tta)}, which needs at least "
                f"{need / 2**30:.1f} GiB but {avail / 2**30:.1f} GiB are free on {device}; use a smaller test "
                "scale (--scale LONGxSHORT, or --scale none for the image's own size)")


_WARNED: set = set()


def _warn_if_slow(protocol: Protocol, works: list[Work], device: torch.device, tta: bool) -> None:
    big = max(works, key=lambda wk: wk.network_pixels)
    key = (protocol, tta, device.type)
    if device.type != "cpu" or big.network_pixels <= LARGE_CPU_WORK or key in _WARNED:
        return
    _WARNED.add(key)
    warnings.warn(SlowProtocolWarning(
        f"on the CPU the test protocol {big.describe(protocol, tta)}: {big.network_pixels / 1e6:.1f} megapixels "
        "through the network per image, which can take minutes; --scale none (Protocol(scale=None)) runs at "
        "the image's own size (the published numbers were measured with the protocol's resize)"), stacklevel=3)


class _Ticker:
    """Windows done / total on one carriage-return line of stderr (only when it is a terminal)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.done, self.last, self.wrote = total, enabled and total > 1, 0, 0.0, False

    def __call__(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and (now - self.last > 0.25 or self.done >= self.total):
            self.last, self.wrote = now, True
            sys.stderr.write(f"\rsszoo.inference: {self.done}/{self.total} windows")
            sys.stderr.flush()

    def close(self) -> None:
        if self.wrote:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _stderr_is_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", None) and sys.stderr.isatty())


# ------------------------------------------------------------------------------------------- inference

def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _forward(model: torch.nn.Module, x: torch.Tensor, precision: str,
             out_size: Optional[tuple[int, int]] = None) -> torch.Tensor:
    """The network's logits at the input size (or resized by the network straight to ``out_size``), float32.

    Under fp16/bf16 the network runs in autocast; a zoo :class:`~sszoo.models.Segmentor` upsamples its
    logits in float32 itself, and any other module's output is cast here.

    Inputs are channels_last on CUDA, and on CPU under fp16/bf16: oneDNN's half-precision convolutions
    are about 6x faster in that layout on a CPU without native fp16/bf16 instructions (docs/eval.md).
    """
    if x.device.type == "cuda" or precision != "fp32":
        x = x.contiguous(memory_format=torch.channels_last)
    if precision == "fp32" and _param_dtype(model) == torch.float64:
        # a float64 model (the parity tests' reference runs) keeps float64 through the protocol
        return model(x.double()) if out_size is None else model(x.double(), out_size=out_size)
    with _autocast(x.device, precision):
        out = model(x) if out_size is None else model(x, out_size=out_size)
    return out.float()


def _param_dtype(model: torch.nn.Module) -> Optional[torch.dtype]:
    for p in model.parameters():
        return p.dtype
    return None


def _resizes_its_own_logits(model: torch.nn.Module) -> bool:
    """Whether ``model(x, out_size=...)`` works: a zoo Segmentor, also behind torch.compile."""
    from .models import Segmentor
    return isinstance(getattr(model, "_orig_mod", model), Segmentor)


def slide_windows(height: int, width: int, crop: tuple[int, int], stride: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """The reference's sliding windows (y1, y2, x1, x2): a regular grid whose last row/column is shifted
    back inside the image; windows are cropped to the image when it is smaller than the crop."""
    (hc, wc), (hs, ws) = crop, stride
    rows = max(height - hc + hs - 1, 0) // hs + 1
    cols = max(width - wc + ws - 1, 0) // ws + 1
    out = []
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * hs + hc, height), min(c * ws + wc, width)
            out.append((max(y2 - hc, 0), y2, max(x2 - wc, 0), x2))
    return out


def _slide(model: torch.nn.Module, x: torch.Tensor, protocol: Protocol, precision: str,
           num_classes: Optional[int], chunk: int, tick: Optional[Callable[[int], None]] = None) -> torch.Tensor:
    """Sliding-window logits for a batch x (N x 3 x H x W): window logits summed, divided by the count."""
    n, _, h, w = x.shape
    windows = slide_windows(h, w, protocol.crop, protocol.stride)
    total = None
    count = torch.zeros((1, 1, h, w), device=x.device)
    # every window has the same size, so windows of all images run together in chunks
    crops = [(i, win) for win in windows for i in range(n)]
    for s in range(0, len(crops), chunk):
        part = crops[s:s + chunk]
        batch = torch.cat([x[i:i + 1, :, y1:y2, x1:x2] for i, (y1, y2, x1, x2) in part])
        logits = _forward(model, batch, precision)
        if protocol.window_softmax:
            logits = logits.softmax(dim=1)
        if total is None:
            total = torch.zeros((n, logits.shape[1], h, w), device=x.device, dtype=logits.dtype)
        for k, (i, (y1, y2, x1, x2)) in enumerate(part):
            total[i, :, y1:y2, x1:x2] += logits[k]
        if tick is not None:
            tick(len(part))
    for (y1, y2, x1, x2) in windows:
        count[:, :, y1:y2, x1:x2] += 1
    return total / count


def _model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def infer(model: torch.nn.Module, images: Any, protocol: Optional[Protocol] = None, *, output: str = "labels",
          precision: str = "fp32", tta: bool = False, device: Union[str, torch.device, None] = None,
          batch_size: int = 8, progress: Optional[bool] = None) -> Union[torch.Tensor, list[torch.Tensor]]:
    """Run ``model`` on raw images with the reference test protocol.

    Args:
        model: a segmentor mapping a normalised N x 3 x H x W float tensor to logits at the input size
            (any :class:`sszoo.models.Segmentor`). It is put in eval mode.
        images: one image (3 x H x W or H x W x 3 tensor/array, or a PIL image), a list of them (any sizes),
            or a batch N x 3 x H x W / N x H x W x 3. Pixels are uint8, or floats on the 0-255 scale, RGB.
            PIL images of any mode follow :func:`sszoo.data.io.to_rgb8` (16-bit: the high byte; alpha
            dropped); read-only arrays are copied; uint16 arrays are refused with that rule.
        protocol: the test protocol; default ``Protocol.from_entry(model.entry)`` for zoo models, otherwise
            no resize and whole-image inference with ImageNet mean/std.
        output: ``"labels"`` (H x W int64 argmax), ``"logits"`` (K x H x W float32) or ``"probs"`` (softmax).
            With ``tta`` the averaged probabilities are returned for both ``"logits"`` and ``"probs"``.
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"`` (``torch.autocast``; outputs are float32).
        tta: multi-scale + flip testing (``protocol.msflip_ratios`` of the test scale, horizontal flip).
        device: where to run; default the model's device. A different device moves the model there.
        batch_size: images (or sliding windows) per forward pass; images are batched when their resized
            sizes are equal.
        progress: show ``done/total windows`` on stderr for multi-window work; default only when stderr
            is a terminal.

    Before any work, images whose protocol size would not fit in the device's free memory raise
    :class:`InferenceSizeError`, and on a CPU a protocol that sends more than a megapixel per image
    through the network issues a :class:`SlowProtocolWarning` (once per protocol) saying what it does.

    Returns:
        one tensor for one image, a list for a list, a stacked tensor for a batch input. Every result has
        its image's original height and width.
    """
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    if protocol is None:
        entry = getattr(model, "entry", None)
        protocol = Protocol.from_entry(entry) if entry is not None else \
            Protocol(align_corners=bool(getattr(model, "align_corners", False)))
    dev = torch.device(device) if device is not None else _model_device(model)
    if device is not None and _model_device(model) != dev:
        model.to(dev)
    model.eval()
    imgs, kind = _as_list(images)
    for im in imgs:
        if im.is_floating_point() and im.numel() and float(im.max()) <= 1.0:
            warnings.warn("float image with values <= 1.0: sszoo expects pixels on the 0-255 scale "
                          "(multiply by 255)", stacklevel=2)
            break
    sizes = sorted({(int(im.shape[1]), int(im.shape[2])) for im in imgs})
    check_fits(protocol, sizes, int(getattr(model, "num_classes", 1)), dev, tta)
    works = {hw: protocol_work(protocol, *hw, tta=tta) for hw in sizes}
    _warn_if_slow(protocol, list(works.values()), dev, tta)
    ticker = _Ticker(sum(works[(int(im.shape[1]), int(im.shape[2]))].windows for im in imgs),
                     _stderr_is_terminal() if progress is None else progress)

    mean = torch.tensor(protocol.mean, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(protocol.std, device=dev).view(1, 3, 1, 1)
    results: list[Optional[torch.Tensor]] = [None] * len(imgs)
    with torch.inference_mode():
        try:
            if tta:
                for i, im in enumerate(imgs):
                    results[i] = _tta_one(model, im, protocol, mean, std, precision, dev, batch_size, ticker)
            else:
                for idx, batch_logits in _run_batches(model, imgs, protocol, mean, std, precision, dev, batch_size,
                                                      ticker):
                    for i, lg in zip(idx, batch_logits):
                        results[i] = lg
        finally:
            ticker.close()
    outs = []
    for r in results:
        assert r is not None
        if output == "labels":
            outs.append(r.argmax(dim=0))
        elif output == "probs" and not tta:
            outs.append(r.softmax(dim=0))
        else:
            outs.append(r)
    if kind == "single":
        return outs[0]
    if kind == "batch":
        return torch.stack(outs)
    return outs


def _prepare(im: torch.Tensor, size: tuple[int, int], dev: torch.device, mean: torch.Tensor,
             std: torch.Tensor, flip: bool = False) -> torch.Tensor:
    x = im.to(dev, non_blocking=True).unsqueeze(0).float()
    x = resize_image(x, size) if im.dtype == torch.uint8 else \
        (x if tuple(x.shape[-2:]) == size else F.interpolate(x, size=size, mode="bilinear", align_corners=False))
    if flip:
        x = x.flip(-1)
    return (x - mean) / std


def _logits(model, x, protocol, precision, batch_size, size: tuple[int, int], tick=None) -> torch.Tensor:
    """Logits of the prepared batch ``x`` at the images' original ``size``."""
    h, w = x.shape[-2:]
    d = protocol.size_divisor
    if d and (h % d or w % d):  # the reference pads the normalised batch and crops the logits before resizing
        x = F.pad(x, (0, (-w) % d, 0, (-h) % d), value=0.0)
    if protocol.mode == "slide":
        logits = _slide(model, x, protocol, precision, None, batch_size, tick)
    else:
        if protocol.resize_logits_once and _resizes_its_own_logits(model):
            logits = _forward(model, x, precision, out_size=size)
        else:
            logits = _forward(model, x, precision)
        if tick is not None:
            tick(x.shape[0])
    if tuple(logits.shape[-2:]) != (h, w) and d:
        logits = logits[..., :h, :w]
    return _to_size(logits, size, protocol.align_corners)


def _run_batches(model, imgs, protocol, mean, std, precision, dev, batch_size,
                 tick=None) -> Iterator[tuple[list[int], list[torch.Tensor]]]:
    """Group images by resized size, run them batched, yield logits at each image's original size."""
    groups: dict[tuple[int, int, int, int], list[int]] = {}
    for i, im in enumerate(imgs):
        h, w = im.shape[1:]
        groups.setdefault((*protocol.resized_size(h, w), h, w), []).append(i)
    for (rh, rw, h, w), idx in groups.items():
        for s in range(0, len(idx), batch_size):
            part = idx[s:s + batch_size]
            x = torch.cat([_prepare(imgs[i], (rh, rw), dev, mean, std) for i in part])
            yield part, list(_logits(model, x, protocol, precision, batch_size, (h, w), tick))


def _to_size(logits: torch.Tensor, size: tuple[int, int], align_corners: bool) -> torch.Tensor:
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=align_corners)


def _tta_sizes(protocol: Protocol, h: int, w: int) -> list[tuple[int, int]]:
    """The resized (height, width) of every ``tta`` scale: MultiScaleFlipAug's ratio x test scale, truncated."""
    base = protocol.scale if protocol.scale is not None else (max(h, w), min(h, w))
    return [rescale_size(h, w, (int(base[0] * r), int(base[1] * r)), protocol.keep_ratio)
            for r in protocol.msflip_ratios]


def _tta_one(model, im, protocol, mean, std, precision, dev, batch_size, tick=None) -> torch.Tensor:
    """Average softmax probabilities over scales x {no flip, flip}, each resized back to the image."""
    h, w = im.shape[1:]
    total = None
    n = 0
    for size in _tta_sizes(protocol, h, w):
        for flip in (False, True):
            x = _prepare(im, size, dev, mean, std, flip=flip)
            logits = _logits(model, x, protocol, precision, batch_size, (h, w), tick)
            p = logits.softmax(dim=1)[0]
            if flip:
                p = p.flip(-1)
            total = p if total is None else total + p
            n += 1
    assert total is not None
    return total / n
