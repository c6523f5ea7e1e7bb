"""The hub's one error family: every failure a user can cause or meet is a :class:`HubError`.

Each class also derives from the builtin a caller would already catch (``RuntimeError``, or
``FileNotFoundError``/``PermissionError``/``TimeoutError`` where that is what happened), so code that
caught those before keeps working. Every message says what went wrong and what to do.
"""
from __future__ import annotations

import errno

# errnos meaning "the disk (or this process's share of it) is full"
DISK_FULL_ERRNOS = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EFBIG) if e is not None)
# errnos meaning "this folder cannot be written by this process"
NOT_WRITABLE_ERRNOS = frozenset((errno.EACCES, errno.EPERM, errno.EROFS))


class HubError(RuntimeError):
    """Base class of every error raised by :mod:`sszoo.hub`."""


class DownloadError(HubError):
    """A file could not be downloaded (after the retry budget, or because the server or a limit refused it)."""


class NetworkError(DownloadError):
    """The server could not be reached, or the transfer did not complete (retries, deadline, DNS)."""


class HashMismatchError(DownloadError):
    """The downloaded bytes do not have the sha256 that the file name, the registry or the lock file promises."""


class HashRequiredError(DownloadError):
    """``SSZOO_REQUIRE_HASHES`` is set and the file has no full sha256 pinned in the lock file."""


class SpecError(HubError, ValueError):
    """A weights spec (``hf-hub:org/repo@rev``, a mirror URL) is malformed or could name a path outside the cache."""


class LockFileError(HubError, ValueError):
    """The lock file (``sszoo.lock``, ``SSZOO_LOCKFILE``) is missing where it was named, or unreadable."""


class CheckpointError(HubError):
    """A checkpoint could not be read, is unsafe, or does not fit the model."""


class CacheCorruptError(HubError):
    """A cached file does not match the hash recorded beside it."""


class OfflineError(HubError, FileNotFoundError):
    """Offline mode is on and the weights are not in the cache."""


class CacheWriteError(HubError, OSError):
    """A cache entry could not be written (a full disk, a file system error)."""


class CacheNotWritableError(CacheWriteError, PermissionError):
    """The cache root cannot be written (read-only, or not owned), and the request needs a write."""


class LockTimeoutError(HubError, TimeoutError):
    """Another process held a cache lock for longer than ``SSZOO_LOCK_TIMEOUT``."""


def is_disk_full(e: BaseException) -> bool:
    """True for an OSError that means no space is left (ENOSPC, EDQUOT, EFBIG)."""
    return isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS


def is_not_writable(e: BaseException) -> bool:
    """True for an OSError that means the folder cannot be written (read-only file system, permissions)."""
    return isinstance(e, OSError) and e.errno in NOT_WRITABLE_ERRNOS
