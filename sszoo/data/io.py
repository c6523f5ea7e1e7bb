"""Reading images and label maps from disk, with errors that name the file.

Every image sszoo reads (``sszoo.eval``'s datasets, ``sszoo.predict``, PIL images given to
``sszoo.inference.infer``) becomes 8-bit RGB by one rule set, :func:`to_rgb8` (docs/eval.md, "Image
files"): 16-bit pixels keep their high byte (``v >> 8``, as OpenCV's ``imread`` and Pillow's own 16-bit
RGB decoder do), grey/palette/CMYK images are converted to RGB, alpha is dropped (not composited), the
EXIF orientation of files is applied (as OpenCV's ``imread``, which MMSegmentation's loader uses), and
modes without an agreed 8-bit meaning (32-bit float, 32-bit integers beyond 16 bits) are refused.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..atomic import atomic_path

# Pillow's modes of 16-bit grey pixels ("I" also holds them when a decoder widens them to 32 bits)
_MODES_16 = ("I;16", "I;16L", "I;16B", "I;16N")
# header modes whose pixels torchvision's decoder turns into the same RGB as to_rgb8 (tested)
_FAST_MODES = ("RGB", "L", "P")


class DataError(ValueError):
    """A dataset file or folder is missing, unreadable or inconsistent."""


class ImageReadError(DataError):
    """An image that is missing, not an image, in a format Pillow cannot decode, or of an unsupported mode."""


def to_rgb8(im: Image.Image, source: str = "image") -> np.ndarray:
    """A PIL image as a writable H x W x 3 uint8 RGB array, by sszoo's rules (see the module docstring).

    ``source`` names the image in errors. Raises :class:`ImageReadError` for modes without an agreed
    8-bit meaning.
    """
    mode = im.mode
    if mode in _MODES_16 or mode == "I":
        arr = np.asarray(im)
        if mode == "I" and arr.size and (int(arr.min()) < 0 or int(arr.max()) > 65535):
            raise ImageReadError(f"cannot read image {source}: 32-bit integer pixels with values in "
                                 f"{int(arr.min())}..{int(arr.max())} have no agreed 8-bit scale; convert it to "
                                 "8-bit RGB first")
        grey = (arr.astype(np.uint32) >> 8).astype(np.uint8)   # the high byte, as OpenCV's imread
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        raise ImageReadError(f"cannot read image {source}: 32-bit float pixels (Pillow mode F) have no agreed "
                             "8-bit scale; convert it to 8-bit RGB first")
    try:
        rgb = im if mode == "RGB" else im.convert("RGB")   # L, 1, P, PA, LA, RGBA, CMYK, YCbCr: alpha dropped
    except (ValueError, OSError) as e:
        raise ImageReadError(f"cannot read image {source}: Pillow cannot convert its mode {mode} to RGB ({e})") from None
    return np.array(rgb, dtype=np.uint8)  # a copy: writable, and torch.from_numpy warns on read-only arrays


def read_rgb8(path: str | os.PathLike) -> np.ndarray:
    """An image file as H x W x 3 uint8 RGB (EXIF orientation applied; :func:`to_rgb8`'s rules).

    Raises :class:`ImageReadError` naming the file: missing, a folder, not an image Pillow can decode,
    damaged or truncated, or of an unsupported mode.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ImageReadError(f"cannot read image {path!r}: no such file")
    if os.path.isdir(path):
        raise ImageReadError(f"cannot read image {path!r}: it is a folder")
    try:
        with Image.open(path) as im:
            im.load()
            return to_rgb8(ImageOps.exif_transpose(im), repr(path))
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(f"cannot read image {path!r}: not an image format Pillow can decode "
                             "(use jpg, png, bmp, tif, webp, ...)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # truncated or corrupt files
        raise ImageReadError(f"cannot read image {path!r}: the file is damaged or truncated ({e})") from None


def read_image(path: str) -> torch.Tensor:
    """Decode an image file into a uint8 tensor 3 x H x W in RGB order (:func:`read_rgb8`'s result).

    torchvision's decoder (libjpeg-turbo / libpng) is used for 8-bit RGB, grey and palette files because
    it is fast and releases the GIL in loader workers; every other mode (16-bit, CMYK, alpha, ...) goes
    through :func:`read_rgb8`, so both give the same pixels.
    """
    try:
        with Image.open(path) as im:
            mode = im.mode    # the header only: Pillow decodes lazily
    except FileNotFoundError:
        raise ImageReadError(f"cannot read image {path!r}: no such file") from None
    except Exception:  # noqa: BLE001 - read_rgb8 below reports the real problem
        mode = None
    if mode in _FAST_MODES:
        try:
            from torchvision.io import ImageReadMode, decode_image, read_file
            with warnings.catch_warnings():
                # torchvision >= 0.29 flags its decoders as deprecated (in favour of torchcodec); they still
                # work, and PIL below takes over the day they are gone
                warnings.simplefilter("ignore", DeprecationWarning)
                img = decode_image(read_file(path), mode=ImageReadMode.RGB, apply_exif_orientation=True)
            if img.dim() == 3 and img.shape[0] == 3 and img.dtype == torch.uint8:
                return img
        except Exception:  # noqa: BLE001 - fall through to PIL, which reports the real problem
            pass
    arr = read_rgb8(path)
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def read_label(path: str) -> np.ndarray:
    """Read a label map as stored: H x W uint8 class indices (palette PNGs give their indices)."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im)
    except FileNotFoundError:
        raise DataError(f"label file not found: {path}") from None
    except Exception as e:  # noqa: BLE001
        raise DataError(f"cannot read label map {path}: {e}") from None
    if arr.ndim == 3:
        if arr.shape[2] >= 3 and (arr[..., :1] == arr[..., 1:3]).all():
            arr = arr[..., 0]  # a grey label stored as RGB: the channels are equal
        else:
            raise DataError(f"label map {path} has {arr.shape[2]} channels; labels must be single-channel "
                            "PNGs of class indices (colour-coded annotations need the dataset's conversion "
                            "script first, see docs/eval.md)")
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise DataError(f"label map {path} holds values outside 0..255 (dtype {arr.dtype}); "
                            "expected 8-bit class indices")
        arr = arr.astype(np.uint8)
    return arr


def atomic_write_png(img: Image.Image, path: str) -> None:
    """Save a PIL image to ``path`` through a temporary file renamed into place."""
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG" if path.lower().endswith(".png") else "JPEG", quality=95)
