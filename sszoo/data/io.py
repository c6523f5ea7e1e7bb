"""Reading images and label maps from disk, with errors that name the file."""
from __future__ import annotations

import warnings

import numpy as np
import torch
from PIL import Image

from ..atomic import atomic_path


class DataError(ValueError):
    """A dataset file or folder is missing, unreadable or inconsistent."""


def read_image(path: str) -> torch.Tensor:
    """Decode an image file into a uint8 tensor 3 x H x W in RGB order.

    torchvision's decoder (libjpeg-turbo / libpng) is tried first because it is fast and releases the
    GIL in loader workers; PIL is the fallback for formats torchvision does not decode.
    """
    try:
        from torchvision.io import ImageReadMode, decode_image, read_file
        with warnings.catch_warnings():
            # torchvision >= 0.29 flags its decoders as deprecated (in favour of torchcodec); they still
            # work, and PIL below takes over the day they are gone
            warnings.simplefilter("ignore", DeprecationWarning)
            img = decode_image(read_file(path), mode=ImageReadMode.RGB)
        if img.dim() == 3 and img.shape[0] == 3:
            return img
    except FileNotFoundError:
        raise DataError(f"image file not found: {path}") from None
    except Exception:  # noqa: BLE001 - fall through to PIL, which reports the real problem
        pass
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise DataError(f"image file not found: {path}") from None
    except Exception as e:  # noqa: BLE001
        raise DataError(f"cannot read image {path}: {e}. Check that the file is a complete PNG/JPEG "
                        "(re-copy or re-extract it) or remove it from the split.") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


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
