"""The converted-weights cache: where it lives, what one entry holds, and how it is checked.

Layout under the cache root (``SSZOO_HOME``, default ``$XDG_CACHE_HOME/sszoo`` or ``~/.cache/sszoo``)::

    weights/<key>/model.safetensors   the weights in sszoo's key layout
    weights/<key>/provenance.json     source URL and sha256, the safetensors' own sha256, entry, sszoo version
    downloads/<id>-<file name>        original files while they download (``.part``, ``.part.json``)
    downloads/<file name>             originals put there by hand for offline use
    locks/<id>-<file name>.lock       one inter-process lock per source file: one process downloads, others wait

``<key>`` is the zoo entry name (``pspnet_r18_d8_cityscapes.512x1024_80k``), ``backbone--<file stem>-<id>`` for
ImageNet backbones, or ``url--<file stem>-<id>`` for checkpoints given by URL; ``<id>`` is the start of the
sha256 of the normalised source URL, so two URLs never share a download, a lock or an entry.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Optional

import torch

from ..atomic import atomic_path, write_text
from .download import file_sha256
from .errors import (CacheCorruptError, CacheNotWritableError, CacheWriteError, LockTimeoutError, is_disk_full,
                     is_not_writable)
from .lockfile import NONE

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


def lock_path(name: str) -> str:
    return os.path.join(hub_dir(), "locks", safe_key(name) + ".lock")


DEFAULT_LOCK_TIMEOUT = 4200.0  # the download deadline (1 h) plus time to convert and cache a large file


def lock_timeout() -> float:
    """Seconds to wait for another process's lock: ``SSZOO_LOCK_TIMEOUT``, default 4200 (70 minutes)."""
    raw = os.environ.get("SSZOO_LOCK_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_LOCK_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"SSZOO_LOCK_TIMEOUT={raw!r} is not a number of seconds") from None
    if value < 0:
        raise ValueError(f"SSZOO_LOCK_TIMEOUT={raw!r} must not be negative")
    return value


def not_writable_error(path: str, what: str, e: OSError) -> CacheNotWritableError:
    """The message for a cache that cannot be written when ``what`` needs a write."""
    return CacheNotWritableError(
        f"the sszoo cache {hub_dir()} is not writable ({e.strerror or e}: {path}), and {what} needs a write. "
        "Point SSZOO_HOME at a writable folder, or fill this cache as its owner (`python -m sszoo.hub download "
        "NAME`); verified entries already in it are used without writing.")


@contextlib.contextmanager
def file_lock(name: str, timeout: Optional[float] = None, *, what: str = "this load") -> Iterator[None]:
    """Hold the inter-process lock ``locks/<name>.lock`` (``filelock``, which comes with torch).

    Raises :class:`LockTimeoutError` after ``timeout`` seconds (default :func:`lock_timeout`) and
    :class:`CacheNotWritableError` when the lock cannot be created.
    """
    from filelock import FileLock, Timeout
    path = lock_path(name)
    wait = lock_timeout() if timeout is None else timeout
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        lock = FileLock(path, timeout=wait)
        lock.acquire()
    except Timeout:
        raise LockTimeoutError(
            f"waited {wait:g} s for the lock {path}: another process is downloading or converting the same file "
            "and has not finished. If no other sszoo process is running, delete the lock file; to wait longer "
            "set SSZOO_LOCK_TIMEOUT (seconds).") from None
    except OSError as e:
        if is_not_writable(e):
            raise not_writable_error(path, what, e) from e
        raise
    try:
        yield
    finally:
        lock.release()


@dataclass
class Provenance:
    """What ``provenance.json`` records about one cached set of weights."""

    key: str
    sha256: str                        # of model.safetensors, checked before every use
    size: int                          # bytes of model.safetensors
    source_url: Optional[str]          # where the original file came from (None for a local file)
    source_sha256: Optional[str]       # full sha256 of the original file
    source_verified: bool              # checked against some published or pinned hash; see ``verification``
    source_format: str                 # "mmseg", "ssseg", "sszoo", "torchvision", "mmcv-resnet"
    entry: Optional[str] = None        # zoo entry name, when the weights belong to one
    sszoo_version: str = ""
    created: str = ""
    classes: Optional[list[str]] = None  # CLASSES from the original checkpoint's meta, when present
    extra: dict[str, Any] = field(default_factory=dict)
    # what the check of the original proved: "full-sha256" (a lock-file pin), "prefix-32bit" (the 8 hex
    # digits in a published file name: forgeable with about 2^32 work), or "none" (no published hash)
    verification: str = ""
    source_key: Optional[str] = None   # the normalised published URL (or hf-hub spec) the entry was made from
    source_size: Optional[int] = None  # bytes of the original file

    @classmethod
    def read(cls, path: str) -> "Provenance":
        with open(path) as f:
            d = json.load(f)
        if not isinstance(d, dict):
            raise ValueError("not a JSON object")
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        prov = cls(**known)
        if not prov.verification:  # written before sszoo recorded levels: a bare flag meant the 8-digit prefix
            prov.verification = "prefix-32bit" if prov.source_verified else NONE
        return prov


def store(key: str, state_dict: dict[str, torch.Tensor], *, source_url: Optional[str], source_sha256: Optional[str],
          verification: str, source_format: str, entry: Optional[str] = None,
          classes: Optional[list[str]] = None, extra: Optional[dict[str, Any]] = None,
          source_key: Optional[str] = None, source_size: Optional[int] = None) -> Provenance:
    """Write ``state_dict`` as ``weights/<key>/model.safetensors`` with its provenance; returns the provenance.

    The caller has checked the tensors (names, shapes, dtypes, storage) before this copies them. A full
    disk raises :class:`CacheWriteError` and leaves no partial file.
    """
    from safetensors.torch import save_file

    from .. import __version__
    folder = entry_dir(key)
    weights = os.path.join(folder, WEIGHTS_FILE)
    # safetensors wants contiguous tensors that share no storage (views in a pickle may)
    tensors = {k: v.detach().clone().contiguous() for k, v in state_dict.items()}
    meta = {"format": "pt", "sszoo_key": key}
    try:
        if os.path.isdir(folder):  # temporary files of a writer killed mid-write (the caller holds the lock)
            for name in os.listdir(folder):
                if name.startswith(".tmp-"):
                    os.remove(os.path.join(folder, name))
        with atomic_path(weights) as tmp:
            save_file(tensors, tmp, metadata=meta)
        prov = Provenance(key=key, sha256=file_sha256(weights), size=os.path.getsize(weights), source_url=source_url,
                          source_sha256=source_sha256, source_verified=verification != NONE,
                          source_format=source_format, entry=entry, sszoo_version=__version__,
                          created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                          classes=list(classes) if classes else None, extra=dict(extra or {}),
                          verification=verification, source_key=source_key, source_size=source_size)
        write_text(json.dumps(asdict(prov), indent=2), os.path.join(folder, PROVENANCE_FILE))
    except OSError as e:
        remove(key)  # half an entry (weights without provenance) is worth nothing
        if is_not_writable(e):
            raise not_writable_error(folder, "caching the converted weights", e) from e
        if is_disk_full(e):
            raise CacheWriteError(f"the disk is full while writing {weights} ({os.strerror(e.errno)}); nothing was "
                                  "cached. Free some space or point SSZOO_HOME at a larger disk.") from e
        raise CacheWriteError(f"could not write the cache entry {folder}: {e}") from e
    except Exception as e:
        remove(key)
        # safetensors reports the OS error as text: "I/O error: No space left on device (os error 28)"
        m = re.search(r"os error (\d+)", str(e))
        if type(e).__name__ != "SafetensorError" or not m:
            raise
        err = OSError(int(m.group(1)), os.strerror(int(m.group(1))))
        if is_not_writable(err):
            raise not_writable_error(folder, "caching the converted weights", err) from e
        if is_disk_full(err):
            raise CacheWriteError(f"the disk is full while writing {weights} ({err.strerror}); nothing was cached. "
                                  "Free some space or point SSZOO_HOME at a larger disk.") from e
        raise CacheWriteError(f"could not write the cache entry {folder}: {e}") from e
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
    path = os.path.join(entry_dir(key), WEIGHTS_FILE)
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            for k in f.keys():
                out[k] = f.get_tensor(k)
    except Exception as e:  # SafetensorError and friends: a copied-in entry whose hash matches a bad file
        raise CacheCorruptError(f"{path} is not a readable safetensors file ({e}); delete the entry "
                                f"(`python -m sszoo.hub rm {key}`) and load again") from e
    return out


def remove(key: str) -> bool:
    """Delete a cache entry; True when there was one."""
    folder = entry_dir(key)
    if os.path.isdir(folder):
        try:
            shutil.rmtree(folder)
        except OSError as e:
            if is_not_writable(e):
                raise not_writable_error(folder, "removing the entry", e) from e
            raise
        return True
    return False


def list_keys() -> list[str]:
    """The keys of every cache entry (complete or not), sorted."""
    root = os.path.join(hub_dir(), "weights")
    if not os.path.isdir(root):
        return []
    return sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
