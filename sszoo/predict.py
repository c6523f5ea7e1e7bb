"""Predict label maps for images and write colour-coded results, overlays and legends.

Python::

    from sszoo.predict import predict
    model = sszoo.create_model("pspnet_r101_d8_cityscapes", pretrained=True)
    labels = predict(model, "street.jpg")       # H x W int64 tensor of class ids

Command line (files, folders and globs; images of any size)::

    python -m sszoo.predict street.jpg frames/ "more/*.png" --model pspnet_r101_d8_cityscapes \\
        [--weights FILE|URL|hf-hub:org/repo] [--out predictions] [--opacity 0.5] [--save-ids] \\
        [--precision fp32|fp16|bf16] [--device cpu|cuda] [--tta] [--scale 2048x1024] [--mode whole|slide]

For every image ``NAME`` it writes ``NAME_color.png`` (the label map in the dataset's palette),
``NAME_overlay.png`` (the colours over the image), ``NAME_legend.png`` (the classes present, with their
share of the pixels) and with ``--save-ids`` ``NAME_ids.png`` (the raw class ids as grey levels).
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import sys
import types
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from .data.io import ImageReadError, read_rgb8

from .cliargs import check_checkpoint_file, check_device, one_line, one_line_warnings, parse_pair
from .hub import CheckpointError, load_pretrained, load_state_dict_strict
from .hub.checkpoint import checkpoint_num_classes
from .inference import PRECISIONS, Protocol, infer
from .models import Segmentor, build_model
from .registry import get_entry
from .visualize import class_shares, colorize, legend_image, overlay, palette_for, save_png

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")
OUTPUT_SUFFIXES = ("_color.png", "_overlay.png", "_legend.png", "_ids.png")
Weights = Union[bool, str, os.PathLike, None]


# ------------------------------------------------------------------------------------------ model loading

def load_model(name: str, weights: Weights = True, *, num_classes: Optional[int] = None,
               device: Union[str, torch.device, None] = None) -> Segmentor:
    """The network of zoo entry ``name`` ready for inference (eval mode, no auxiliary head).

    Args:
        name: a zoo name or alias (``pspnet_r101_d8_cityscapes``).
        weights: ``True`` for the published checkpoint, a local file/folder, an http(s) URL or
            ``hf-hub:org/repo[@rev]``; ``False``/``None`` for random weights.
        num_classes: the class count of a fine-tuned checkpoint. Detected from the checkpoint's classifier
            when omitted; given, it must match the checkpoint.
        device: where to put the model (default CPU).
    """
    entry = get_entry(name)
    if weights is False or weights is None:
        from .factory import create_model
        model = create_model(entry.name, num_classes=num_classes, aux=False)
    else:
        check_checkpoint_file(weights)  # a text file saved as .pth: one line instead of an unpickler traceback
        state = load_pretrained(entry, weights)
        found = checkpoint_num_classes(state)  # decode_head.conv_seg (or a mask classifier's cls_embed)
        if found is None:
            raise CheckpointError(f"checkpoint {weights!r} has no decode_head.conv_seg.weight: it is not a "
                                  f"{entry.arch_name} segmentation checkpoint (a backbone-only file?)")
        if num_classes is not None and num_classes != found:
            raise CheckpointError(f"--num-classes {num_classes} does not match the checkpoint's classifier, which "
                                  f"has {found} classes; omit --num-classes to use the checkpoint's")
        # A checkpoint fine-tuned to another class count keeps every layer but the classifiers.
        model = build_model(entry.arch.with_num_classes(found)).drop_auxiliary_head()
        state = {k: v for k, v in state.items() if not k.startswith("auxiliary_head.")}
        load_state_dict_strict(model, state, source=f"checkpoint {weights if weights is not True else entry.weights.url}")
        model.entry = entry  # type: ignore[attr-defined]
    if device is not None:
        model.to(device)
    return model.eval()


def class_names_and_palette(model: torch.nn.Module) -> tuple[list[str], np.ndarray]:
    """The class names and palette of a model's label space (the entry's dataset when the counts agree)."""
    entry = getattr(model, "entry", None)
    k = int(getattr(model, "num_classes"))
    if entry is not None and entry.dataset.num_classes == k:
        return list(entry.dataset.class_names), palette_for(k, entry.dataset.palette)
    return [f"class {i}" for i in range(k)], palette_for(k)


# ------------------------------------------------------------------------------------------------ images

def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as H x W x 3 uint8 RGB, by :func:`sszoo.data.io.to_rgb8`'s rules (16-bit pixels keep
    their high byte, alpha is dropped, the EXIF orientation is applied, as OpenCV's imread does).

    Raises :class:`ImageReadError` for a missing file, a folder, a file Pillow cannot decode or an
    unsupported mode (32-bit float, ...).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ImageReadError(f"cannot read image {path!r}: it is a folder (pass it to predict's IMAGES to use "
                             "every image inside)")
    return read_rgb8(path)


def collect_images(specs: Sequence[str], exclude: Optional[str] = None) -> list[str]:
    """Expand files, folders (their images, sorted, not recursive) and glob patterns into image paths.

    ``exclude`` is a folder whose files are skipped (predict's own output folder).
    Raises :class:`ImageReadError` for a path that does not exist, a pattern that matches nothing, or a
    folder without images.
    """
    skip = os.path.abspath(exclude) if exclude else None
    out: list[str] = []

    def add(p: str) -> None:
        if skip and os.path.dirname(os.path.abspath(p)) == skip and p.endswith(OUTPUT_SUFFIXES):
            return
        if p not in out:
            out.append(p)

    for spec in specs:
        if os.path.isdir(spec):
            found = sorted(os.path.join(spec, f) for f in os.listdir(spec)
                           if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(spec, f)))
            if not found:
                raise ImageReadError(f"folder {spec!r} has no images ({', '.join(IMAGE_EXTENSIONS)}) directly inside; "
                                     f"for subfolders pass a pattern such as '{os.path.join(spec, '**', '*.png')}'")
            for p in found:
                add(p)
        elif os.path.exists(spec):
            add(spec)
        elif glob.has_magic(spec):
            found = sorted(p for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
            if not found:
                raise ImageReadError(f"no files match the pattern {spec!r}")
            for p in found:
                add(p)
        else:
            raise ImageReadError(f"cannot read image {spec!r}: no such file or folder")
    return out


# ------------------------------------------------------------------------------------------------ predict

def predict(model: torch.nn.Module, image: Any, protocol: Optional[Protocol] = None, *, precision: str = "fp32",
            device: Union[str, torch.device, None] = None, tta: bool = False) -> Union[torch.Tensor, list[torch.Tensor]]:
    """The label map (H x W int64 class ids at the image's own size) of one image, or a list for a list.

    ``image`` is a file path, a PIL image, or an H x W x 3 / 3 x H x W uint8 array or tensor (RGB); a list
    of those gives a list. ``protocol`` defaults to the entry's test protocol
    (:meth:`sszoo.inference.Protocol.from_entry`); see :func:`sszoo.inference.infer` for the rest.
    """
    def load(im: Any) -> Any:
        return read_image(im) if isinstance(im, (str, os.PathLike)) else im

    images = [load(im) for im in image] if isinstance(image, (list, tuple)) else load(image)
    return infer(model, images, protocol, output="labels", precision=precision, tta=tta, device=device)


@dataclasses.dataclass(frozen=True)
class PredictionFiles:
    """The files written for one image and the classes it contains (id -> share of pixels)."""

    image: str
    color: str
    overlay: str
    legend: str
    ids: Optional[str]
    classes: dict[int, float]
    size: tuple[int, int]  # (height, width)


def save_prediction(image: np.ndarray, labels: Union[np.ndarray, torch.Tensor], out_dir: str, stem: str, *,
                    class_names: Sequence[str], palette: np.ndarray, opacity: float = 0.5,
                    save_ids: bool = False, source: str = "") -> PredictionFiles:
    """Write the colour map, overlay, legend (and with ``save_ids`` the raw ids) of one prediction."""
    lab = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if lab.shape != image.shape[:2]:
        raise ValueError(f"label map {lab.shape} and image {image.shape[:2]} differ in size")
    color = colorize(lab, palette)
    shares = class_shares(lab, len(palette))
    paths = {k: os.path.join(out_dir, f"{stem}_{k}.png") for k in ("color", "overlay", "legend", "ids")}
    save_png(color, paths["color"])
    save_png(overlay(image, color, opacity), paths["overlay"])
    save_png(legend_image(shares, class_names, palette), paths["legend"])
    if save_ids:
        # 8-bit grey levels hold up to 256 classes; larger label spaces need 16 bits
        ids = Image.fromarray(lab.astype(np.uint8)) if len(palette) <= 256 else \
            Image.fromarray(lab.astype(np.uint16))
        save_png(ids, paths["ids"])
    return PredictionFiles(source, paths["color"], paths["overlay"], paths["legend"],
                           paths["ids"] if save_ids else None, shares, (int(lab.shape[0]), int(lab.shape[1])))


def _unique_stems(paths: Sequence[str]) -> list[str]:
    """Output name stems: the file name without extension, made unique with a counter where two collide."""
    seen: dict[str, int] = {}
    stems = []
    for p in paths:
        base = os.path.splitext(os.path.basename(p))[0]
        n = seen.get(base, 0)
        seen[base] = n + 1
        stems.append(base if n == 0 else f"{base}_{n}")
    return stems


# ---------------------------------------------------------------------------------------------------- CLI

def _parse_scale(text: str) -> Optional[tuple[int, int]]:
    if text.lower() == "none":
        return None
    return parse_pair(text, "LONGxSHORT (or 'none')", "2048x1024")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sszoo.predict",
        description="Segment images with a zoo model; write colour maps, overlays and legends.")
    p.add_argument("images", nargs="+", metavar="IMAGES", help="image files, folders or glob patterns")
    p.add_argument("--model", required=True, help="zoo name, e.g. pspnet_r101_d8_cityscapes")
    p.add_argument("--weights", default=None,
                   help="checkpoint: local file, http(s) URL or hf-hub:org/repo; default: the published weights")
    p.add_argument("--random-weights", action="store_true",
                   help="random weights (only to try the pipeline offline; the labels mean nothing)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="class count of a fine-tuned checkpoint (default: read from the checkpoint)")
    p.add_argument("--out", default="predictions", help="output folder (default ./predictions)")
    p.add_argument("--opacity", type=float, default=0.5, help="overlay opacity of the colours, 0-1 (default 0.5)")
    p.add_argument("--save-ids", action="store_true", help="also write NAME_ids.png with the raw class ids")
    p.add_argument("--precision", default="fp32", choices=sorted(PRECISIONS), help="autocast precision")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.add_argument("--tta", action="store_true", help="multi-scale + flip test-time augmentation")
    p.add_argument("--scale", default=None,
                   help="resize bound LONGxSHORT keeping the aspect ratio (e.g. 2048x1024), or 'none' for the "
                        "image's own size; default: the entry's test protocol")
    p.add_argument("--mode", choices=["whole", "slide"], default=None,
                   help="whole-image or sliding-window inference (default: the entry's)")
    p.add_argument("--score-thr", type=float, default=0.3,
                   help="detection entries: draw the detections scoring at least this (default 0.3)")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first image that cannot be decoded (default: name it, skip it, predict the "
                        "others and exit with status 1)")
    return p


def _fail(message: str) -> None:
    print(f"sszoo.predict: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """CLI entry point. Returns ``{"model", "out", "predictions": [PredictionFiles as dicts], "skipped"}``.

    Bad input (a missing file, an unknown model, a checkpoint that is not one or does not fit, a device
    this machine lacks, a size too large for memory, a bad option) exits with status 2 and one line
    saying what to fix. An image that cannot be decoded is named and skipped, and the others are
    predicted (``skipped`` lists them; the console script then exits with status 1); with ``--strict``
    it stops everything before the model is loaded.
    """
    from .hub import CacheCorruptError, DownloadError
    from .inference import InferenceSizeError

    args = build_parser().parse_args(argv)
    if not 0.0 <= args.opacity <= 1.0:
        _fail(f"--opacity must be between 0 and 1, got {args.opacity}")
    if args.random_weights and args.weights:
        _fail("--weights and --random-weights exclude each other")
    user_errors = (ImageReadError, KeyError, ValueError, TypeError, OSError, CheckpointError, DownloadError,
                   CacheCorruptError, InferenceSizeError)
    skipped: list[str] = []
    with one_line_warnings("sszoo.predict"):
        try:
            check_device(args.device)
            paths = collect_images(args.images, exclude=args.out)
            images = {}
            for p in paths:  # read everything first: bad files are known before any model download or compute
                try:
                    images[p] = read_image(p)
                except ImageReadError as e:
                    if args.strict or len(paths) == 1:
                        raise
                    print(f"sszoo.predict: warning: {e}; skipping it", file=sys.stderr)
                    skipped.append(p)
            if not images:
                _fail(f"none of the {len(paths)} images could be read (see the warnings above)")
            paths = [p for p in paths if p in images]
            entry = get_entry(args.model)
            if getattr(entry, "task", "segmentation") == "detection":  # boxes, labels, masks: docs/detection.md
                from .detection.draw import predict_main
                return predict_main(args, entry, paths, images, skipped, _unique_stems(paths))
            device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
            weights = False if args.random_weights else (args.weights or True)
            model = load_model(args.model, weights, num_classes=args.num_classes, device=device)
        except user_errors as e:
            _fail(one_line(e))
        protocol = Protocol.from_entry(model.entry)
        if args.mode == "slide" and protocol.crop is None:
            _fail(f"--mode slide needs a crop size, and {model.entry.name} is tested whole-image; use --mode whole")
        if args.scale is not None:
            try:
                protocol = protocol.with_(scale=_parse_scale(args.scale))
            except argparse.ArgumentTypeError as e:
                _fail(f"--scale: {e}")
        if args.mode is not None:
            protocol = protocol.with_(mode=args.mode)
        names, palette = class_names_and_palette(model)
        results = []
        try:
            for path, stem in zip(paths, _unique_stems(paths)):
                labels = infer(model, images[path], protocol, output="labels", precision=args.precision,
                               tta=args.tta)
                files = save_prediction(images[path], labels, args.out, stem, class_names=names, palette=palette,
                                        opacity=args.opacity, save_ids=args.save_ids, source=path)
                top = ", ".join(f"{names[c]} {100 * s:.0f}%" for c, s in list(files.classes.items())[:4])
                print(f"{path} -> {files.overlay} ({top})")
                results.append(dataclasses.asdict(files))
        except InferenceSizeError as e:
            _fail(one_line(e))
    print(f"wrote {len(results)} prediction(s) to {os.path.abspath(args.out)}")
    if skipped:
        print(f"sszoo.predict: skipped {len(skipped)} unreadable image(s): {', '.join(skipped)}", file=sys.stderr)
    return {"model": model.entry.name, "out": os.path.abspath(args.out), "predictions": results, "skipped": skipped}


def console_main() -> int:
    """``sszoo-predict``: run :func:`main`; exit 0, or 1 when unreadable images were skipped.

    (``main`` returns a dict, which ``sys.exit`` would treat as failure.)
    """
    return 1 if main()["skipped"] else 0


class _CallableModule(types.ModuleType):
    """Lets ``sszoo.predict(model, image)`` call :func:`predict` while ``sszoo.predict`` stays this module
    (which ``python -m sszoo.predict`` and ``from sszoo.predict import ...`` need)."""

    def __call__(self, model: torch.nn.Module, image: Any, *args: Any, **kwargs: Any):
        return predict(model, image, *args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(console_main())
