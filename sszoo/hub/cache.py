"""The converted-weights cache: where it lives, what one entry holds, and how it is checked.

Layout under the cache root (``SSZOO_HOME``, default ``$XDG_CACHE_HOME/sszoo`` or ``~/.cache/sszoo``)::

    weights/<key>/model.safetensors   the weights in sszoo's key layout
    weights/<key>/provenance.json     source URL and sha256, the safetensors' own sha256, entry, sszoo version
    downloads/<file name>             original files while they download (``.part``) or when put there by hand
    locks/<key>.lock                  inter-process locks, so that one process downloads and the others wait

``<key>`` is the zoo entry name (``pspnet_r18_d8_cityscapes.512x1024_80k``), ``backbone--<name>`` for
ImageNet backbones, or ``url--<file stem>`` for checkpoints given by URL.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import torch

from ..atomic import atomic_path, write_text
from .download import file_sha256

WEIGHTS_FILE = "model.safetensors"
PROVENANCE_FILE = "provenance.json"


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def hub_dir() -> str:
    """The cache root: ``$SSZOO_HOME``, else ``$XDG_CACHE_HOME/sszoo``, else ``~/.cache/sszoo``."""
    home = os.environ.get("SSZOO_HOME")
    if home:
        return os.path.abspath(os.path.expanduser(home))
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = os.path.expanduser(xdg) if xdg else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sszoo")


def is_offline() -> bool:
    """True when ``SSZOO_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to a true value: use the cache only."""
    return _truthy("SSZOO_OFFLINE") or _truthy("HF_HUB_OFFLINE")


def safe_key(key: str) -> str:
    """A cache key usable as a folder name on every platform."""
    cleaned = re.sub(r"[^A-Za-z0-9._@+-]+", "-", key).strip(".-")
    if not cleaned:
        raise ValueError(f"cannot make a cache key from {key!r}")
    return cleaned


def entry_dir(key: str) -> str:
    return os.path.join(hub_dir(), "weights", safe_key(key))


def downloads_dir() -> str:
    return os.path.join(hub_dir(), "downloads")


def lock_path(key: str) -> str:
    return os.path.join(hub_dir(), "locks", safe_key(key) + ".lock")


def file_lock(key: str, timeout: float = -1):
    """An inter-process lock for one cache key (``filelock``, which comes with torch)."""
    from filelock import FileLock
    path = lock_path(key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return FileLock(path, timeout=timeout)


@dataclass
class Provenance:
    """What ``provenance.json`` records about one cached set of weights."""

    key: str
    sha256: str                        # of model.safetensors, checked before every use
    size: int                          # bytes of model.safetensors
    source_url: Optional[str]          # where the original file came from (None for a local file)
    source_sha256: Optional[str]       # full sha256 of the original file
    source_verified: bool              # the original matched a published hash (file-name prefix or registry)
    source_format: str                 # "mmseg", "ssseg", "sszoo", "torchvision", "mmcv-resnet"
    entry: Optional[str] = None        # zoo entry name, when the weights belong to one
    sszoo_version: str = ""
    created: str = ""
    classes: Optional[list[str]] = None  # CLASSES from the original checkpoint's meta, when present
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, path: str) -> "Provenance":
        with open(path) as f:
            d = json.load(f)
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


class CacheCorruptError(RuntimeError):
    """A cached file does not match the hash recorded beside it."""


def store(key: str, state_dict: dict[str, torch.Tensor], *, source_url: Optional[str], source_sha256: Optional[str],
          source_verified: bool, source_format: str, entry: Optional[str] = None,
          classes: Optional[list[str]] = None, extra: Optional[dict[str, Any]] = None) -> Provenance:
    """Write ``state_dict`` as ``weights/<key>/model.safetensors`` with its provenance; returns the provenance."""
    from safetensors.torch import save_file

    from .. import __version__
    folder = entry_dir(key)
    weights = os.path.join(folder, WEIGHTS_FILE)
    # safetensors wants contiguous tensors that share no storage (views in a pickle may)
    tensors = {k: v.detach().clone().contiguous() for k, v in state_dict.items()}
    meta = {"format": "pt", "sszoo_key": key}
    with atomic_path(weights) as tmp:
        save_file(tensors, tmp, metadata=meta)
    prov = Provenance(key=key, sha256=file_sha256(weights), size=os.path.getsize(weights), source_url=source_url,
                      source_sha256=source_sha256, source_verified=source_verified, source_format=source_format,
                      entry=entry, sszoo_version=__version__,
                      created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                      classes=list(classes) if classes else None, extra=dict(extra or {}))
    write_text(json.dumps(asdict(prov), indent=2), os.path.join(folder, PROVENANCE_FILE))
    return prov


def lookup(key: str, *, verify: bool = True) -> Optional[Provenance]:
    """The provenance of a complete cache entry for ``key``, or None when there is none.

    With ``verify`` the safetensors file is hashed and compared with the recorded sha256; a mismatch
    raises :class:`CacheCorruptError` (the caller deletes the entry and fetches it again).
    """
    folder = entry_dir(key)
    weights = os.path.join(folder, WEIGHTS_FILE)
    meta = os.path.join(folder, PROVENANCE_FILE)
    if not (os.path.isfile(weights) and os.path.isfile(meta)):
        return None
    try:
        prov = Provenance.read(meta)
    except (OSError, ValueError, TypeError) as e:
        raise CacheCorruptError(f"unreadable provenance {meta}: {e}") from e
    if verify:
        size = os.path.getsize(weights)
        if size != prov.size:
            raise CacheCorruptError(f"{weights} is {size} bytes, {prov.size} were recorded (truncated or replaced)")
        actual = file_sha256(weights)
        if actual != prov.sha256:
            raise CacheCorruptError(f"{weights} has sha256 {actual}, {prov.sha256} was recorded (corrupted)")
    return prov


def load_cached(key: str) -> dict[str, torch.Tensor]:
    """The tensors of a cache entry, read from the memory-mapped safetensors file."""
    from safetensors import safe_open
    out: dict[str, torch.Tensor] = {}
    with safe_open(os.path.join(entry_dir(key), WEIGHTS_FILE), framework="pt", device="cpu") as f:
        for k in f.keys():
            out[k] = f.get_tensor(k)
    return out


def remove(key: str) -> bool:
    """Delete a cache entry; True when there was one."""
    folder = entry_dir(key)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
        return True
    return False


def list_keys() -> list[str]:
    """The keys of every cache entry (complete or not), sorted."""
    root = os.path.join(hub_dir(), "weights")
    if not os.path.isdir(root):
        return []
    return sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
