"""Full-sha256 pins for remote weights: the lock file (``sszoo.lock``), like pip's ``--require-hashes``.

MMSegmentation and torchvision publish only the first 8 hex digits of each file's sha256. A match proves
little against an attacker: 32 bits are found by brute force in about 2^32 hash evaluations (minutes to
hours on one machine), so a hostile mirror can serve a forged checkpoint that passes. A lock file pins the
full sha256 (and size) of each source, recorded from verified downloads by ``python -m sszoo.hub lock``;
a team commits it and every load enforces it::

    {"sszoo_lock_version": 1,
     "sources": {"https://download.openmmlab.com/.../pspnet_..._20201225_021458-xxxxxxxx.pth":
                 {"sha256": "<64 hex digits>", "size": 51234567}}}

Found at ``$SSZOO_LOCKFILE``, else ``./sszoo.lock`` when that file exists. ``SSZOO_REQUIRE_HASHES=1``
refuses any remote file that has no pin.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from typing import Iterator, Optional
from urllib.parse import urlsplit, urlunsplit

from ..atomic import write_text
from .errors import LockFileError

LOCKFILE_NAME = "sszoo.lock"
LOCK_VERSION = 1
FULL, NONE = "full-sha256", "none"


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def prefix_level(prefix: str) -> str:
    """The verification level a hash prefix gives: ``prefix-32bit`` for MMSegmentation's 8 hex digits."""
    return f"prefix-{4 * len(prefix)}bit"


@dataclass(frozen=True)
class Pin:
    """The full sha256 (and size in bytes, when known) a source must have."""

    sha256: str
    size: Optional[int] = None


def normalise_url(url: str) -> str:
    """The form of a URL used as a lock-file and cache key: scheme and host lower-case, default port and
    fragment dropped, path and query kept as they are."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path or "/", parts.query, ""))


_suspended = False


def require_hashes() -> bool:
    """True when ``SSZOO_REQUIRE_HASHES`` is set: remote files need a full-sha256 pin in the lock file."""
    return _truthy("SSZOO_REQUIRE_HASHES") and not _suspended


@contextlib.contextmanager
def strict_suspended() -> Iterator[None]:
    """``python -m sszoo.hub lock`` writes the pins that strict mode asks for, so it runs without it."""
    global _suspended
    before, _suspended = _suspended, True
    try:
        yield
    finally:
        _suspended = before


def lockfile_path(*, for_writing: bool = False) -> Optional[str]:
    """``$SSZOO_LOCKFILE``, else ``./sszoo.lock`` when it exists (or always, ``for_writing``); else None."""
    env = os.environ.get("SSZOO_LOCKFILE", "").strip()
    if env:
        return os.path.abspath(os.path.expanduser(env))
    local = os.path.abspath(LOCKFILE_NAME)
    return local if for_writing or os.path.isfile(local) else None


def read_pins(path: Optional[str] = None) -> dict[str, Pin]:
    """The pins of the lock file at ``path`` (default :func:`lockfile_path`); {} when there is none."""
    explicit = path is not None or bool(os.environ.get("SSZOO_LOCKFILE", "").strip())
    path = path or lockfile_path()
    if path is None:
        return {}
    if not os.path.isfile(path):
        if explicit:
            raise LockFileError(f"the lock file {path} (SSZOO_LOCKFILE) does not exist; write it with "
                           "`python -m sszoo.hub lock NAME...`, or unset SSZOO_LOCKFILE")
        return {}
    try:
        with open(path) as f:
            doc = json.load(f)
        sources = doc["sources"]
        pins = {}
        for key, v in sources.items():
            sha = str(v["sha256"]).lower()
            if not re.fullmatch(r"[0-9a-f]{64}", sha):
                raise ValueError(f"{key}: sha256 {sha!r} is not 64 hex digits")
            size = v.get("size")
            if size is not None and (not isinstance(size, int) or size < 0):
                raise ValueError(f"{key}: size {size!r} is not a byte count")
            pins[key] = Pin(sha, size)
        return pins
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise LockFileError(f"unreadable lock file {path}: {e}. Fix or delete it, or rewrite it with "
                       "`python -m sszoo.hub lock NAME...`") from e


def pin_for(source_key: str) -> Optional[Pin]:
    """The pin of one source (a normalised published URL, or an ``hf-hub:`` spec), or None."""
    return read_pins().get(source_key)


def write_pins(path: str, new: dict[str, Pin]) -> dict[str, Pin]:
    """Merge ``new`` into the lock file at ``path`` (created when missing), written atomically; returns all pins."""
    pins = read_pins(path) if os.path.isfile(path) else {}
    pins.update(new)
    doc = {"sszoo_lock_version": LOCK_VERSION,
           "sources": {k: {"sha256": p.sha256, **({"size": p.size} if p.size is not None else {})}
                       for k, p in sorted(pins.items())}}
    write_text(json.dumps(doc, indent=2) + "\n", path)
    return pins
