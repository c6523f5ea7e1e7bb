"""Downloading one file over HTTP(S): streaming, limits, timeouts, retries, safe resume, hash check, atomic rename.

The file is written to ``<dest>.part`` first, and the server's validator (strong ``ETag`` or
``Last-Modified``) to ``<dest>.part.json``. A transfer that breaks off keeps both, and the next attempt
asks for the rest with ``Range`` plus ``If-Range``: a server whose file changed in between answers with
the whole new file (200) and we start again, so a result is never half one version and half another.
Without a validator there is nothing to check a resume against, and the partial file is dropped.

Partial files are created without following links (``O_NOFOLLOW``, ``O_EXCL``) and checked before each
append, so nothing planted in ``downloads/`` makes sszoo write outside it. Every download is bounded: the
expected size when known (lock file), else ``SSZOO_MAX_DOWNLOAD``; a total deadline (``SSZOO_DEADLINE``);
free disk space checked before the first byte; ``Accept-Encoding: identity`` so that the bytes on disk are
the bytes the hash was published for. Only a complete file with the expected hash is renamed to ``dest``.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import stat
import sys
import time
from dataclasses import dataclass
from typing import BinaryIO, Callable, Optional
from urllib.parse import urlsplit

import requests

from ..atomic import atomic_path
from .errors import DownloadError, HashMismatchError, NetworkError, is_disk_full

__all__ = ["DEFAULT_DEADLINE", "DEFAULT_MAX_BYTES", "DownloadError", "DownloadPolicy", "HashMismatchError",
           "NetworkError", "download_file", "file_sha256", "parse_size", "sha256_prefix_from_name"]

_CHUNK = 1 << 16  # small reads: a broken transfer loses at most this much of what arrived
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.(?:pth|pt|bin|safetensors)$")
DEFAULT_MAX_BYTES = 4 * 1024 ** 3   # no published checkpoint of the zoo comes near 4 GiB
DEFAULT_DEADLINE = 3600.0           # one hour for one file, retries included
_MAX_REDIRECTS = 10
_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}


def parse_size(text: str, name: str = "size") -> int:
    """``"4G"``, ``"512MiB"``, ``"1000"`` -> bytes (binary units). Raises ValueError naming ``name``."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise ValueError(f"{name}={text!r} is not a size; use bytes or a number with K/M/G/T, e.g. 4G")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


@dataclass(frozen=True)
class DownloadPolicy:
    """How patient and how large a download may be. Defaults suit a large checkpoint on a slow link."""

    connect_timeout: float = 10.0     # seconds to open the connection
    read_timeout: float = 60.0        # seconds without a single byte before giving up on the attempt
    retries: int = 4                  # further attempts after the first, on connection errors and 5xx
    backoff: float = 1.0              # seconds before the first retry, doubled each time
    max_bytes: int = DEFAULT_MAX_BYTES  # largest file accepted when its size is not known in advance
    deadline: float = DEFAULT_DEADLINE  # seconds for the whole download of one file, retries included

    @classmethod
    def from_env(cls) -> "DownloadPolicy":
        """The defaults, overridden by ``SSZOO_RETRIES``, ``SSZOO_BACKOFF``, ``SSZOO_TIMEOUT`` (read timeout),
        ``SSZOO_DEADLINE`` (seconds) and ``SSZOO_MAX_DOWNLOAD`` (bytes, or with K/M/G/T)."""
        def num(name: str, default: float) -> float:
            raw = os.environ.get(name)
            if raw is None or raw.strip() == "":
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a number") from None
            if value < 0:
                raise ValueError(f"{name}={raw!r} must not be negative")
            return value
        raw_max = os.environ.get("SSZOO_MAX_DOWNLOAD", "").strip()
        return cls(read_timeout=num("SSZOO_TIMEOUT", cls.read_timeout), retries=int(num("SSZOO_RETRIES", cls.retries)),
                   backoff=num("SSZOO_BACKOFF", cls.backoff), deadline=num("SSZOO_DEADLINE", cls.deadline),
                   max_bytes=parse_size(raw_max, "SSZOO_MAX_DOWNLOAD") if raw_max else cls.max_bytes)


def sha256_prefix_from_name(url_or_name: str) -> Optional[str]:
    """The hash prefix in an MMSegmentation/torchvision file name (``...-2cccc1ad.pth`` -> ``2cccc1ad``)."""
    name = url_or_name.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    m = _HASH_IN_NAME.search(name)
    return m.group(1) if m else None


def file_sha256(path: str | os.PathLike) -> str:
    """The full sha256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def show_progress(progress: Optional[bool]) -> bool:
    """Whether to draw a progress bar: asked for, or by default only on a terminal and unless SSZOO_QUIET is set."""
    if progress is not None:
        return progress
    if os.environ.get("SSZOO_QUIET", "") not in ("", "0"):
        return False
    return sys.stderr.isatty()


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.0f} B"


class _Progress:
    """A tqdm bar when available and wanted; otherwise nothing."""

    def __init__(self, enabled: bool, total: Optional[int], initial: int, desc: str) -> None:
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:  # tqdm comes with huggingface_hub; without it we stay quiet
                return
            self.bar = tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                            desc=desc, file=sys.stderr, leave=False)

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Retryable(Exception):
    """One attempt failed in a way that another attempt may fix."""


# ---- the partial file and its validator ---------------------------------------------------------

def _validator_path(part: str) -> str:
    return part + ".json"


def discard_partial(part: str) -> None:
    """Remove a partial download and its validator (a link is removed itself, never its target)."""
    for p in (part, _validator_path(part)):
        with contextlib.suppress(FileNotFoundError):
            os.remove(p)


def partial_kept(part: str) -> Optional[int]:
    """The size of a resumable partial download at ``part`` (a regular file with a validator), else None."""
    try:
        st = os.lstat(part)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or not os.path.isfile(_validator_path(part)):
        return None
    return st.st_size


def _read_validator(part: str) -> Optional[dict]:
    try:
        fd = os.open(_validator_path(part), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd) as f:
            val = json.load(f)
    except (OSError, ValueError):
        return None
    return val if isinstance(val, dict) else None


def _write_validator(part: str, url: str, etag: Optional[str], last_modified: Optional[str]) -> None:
    with atomic_path(_validator_path(part)) as tmp:
        with open(tmp, "w") as f:
            json.dump({"url": url, "etag": etag, "last_modified": last_modified}, f)


def _resume_state(part: str, url: str) -> tuple[int, Optional[dict], Optional[os.stat_result]]:
    """(bytes to resume from, the stored validator, the lstat of the partial file); (0, None, None) to start over."""
    try:
        st = os.lstat(part)
    except FileNotFoundError:
        st = None
    if st is None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(_validator_path(part))
        return 0, None, None
    val = _read_validator(part)
    usable = (stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_size > 0 and val is not None
              and val.get("url") == url and (val.get("etag") or val.get("last_modified")))
    if not usable:
        # a planted link, a hard link, a file from another URL, or one without a validator: never append to it
        discard_partial(part)
        return 0, None, None
    return st.st_size, val, st


def _open_fresh(part: str) -> BinaryIO:
    discard_partial(part)
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0),
                 0o644)
    return os.fdopen(fd, "wb")


def _open_append(part: str, have: int, seen: os.stat_result) -> BinaryIO:
    try:
        fd = os.open(part, os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOENT, getattr(errno, "EMLINK", -1)):
            discard_partial(part)
            raise _Retryable(f"the partial file {part} was replaced while resuming; restarting") from e
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_ino != seen.st_ino or st.st_size != have:
        os.close(fd)
        discard_partial(part)
        raise _Retryable(f"the partial file {part} changed while resuming; restarting")
    return os.fdopen(fd, "ab")


def _hash_partial(part: str) -> hashlib._Hash:
    h = hashlib.sha256()
    fd = os.open(part, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h


# ---- one attempt ---------------------------------------------------------------------------------

def _is_dns_failure(e: BaseException) -> bool:
    """True when a connection error comes from name resolution (no network, or no such host): not transient."""
    seen: set[int] = set()
    stack: list = [e]
    while stack:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, socket.gaierror) or type(x).__name__ == "NameResolutionError":
            return True
        stack += [x.__cause__, x.__context__, getattr(x, "reason", None)]
        stack += [a for a in getattr(x, "args", ()) if isinstance(a, BaseException)]
    return False


@dataclass
class _Limits:
    expected_size: Optional[int]
    deadline_at: float
    policy: DownloadPolicy

    def remaining(self) -> float:
        return self.deadline_at - time.monotonic()

    def over_deadline(self, url: str) -> NetworkError:
        return NetworkError(f"the download of {url} did not finish within {self.policy.deadline:g} s "
                            "(SSZOO_DEADLINE); the server is too slow or drips data. Raise SSZOO_DEADLINE for a slow "
                            "link, or use another mirror (SSZOO_MIRROR)")


def _strong_etag(value: Optional[str]) -> Optional[str]:
    # If-Range needs a strong validator (RFC 9110 13.1.5): a weak ETag cannot prove byte equality
    return value if value and not value.startswith("W/") else None


def _check_size_up_front(total: int, have: int, part: str, url: str, limits: _Limits) -> None:
    if limits.expected_size is not None and total != limits.expected_size:
        discard_partial(part)
        raise HashMismatchError(f"{url} announces {total} bytes, but the lock file pins {limits.expected_size}: the "
                                "server has another file than the one pinned. Refused; nothing was kept.")
    if limits.expected_size is None and total > limits.policy.max_bytes:
        discard_partial(part)
        raise DownloadError(f"{url} announces {_human(total)}, more than the {_human(limits.policy.max_bytes)} "
                            "that sszoo accepts for a file of unknown size (SSZOO_MAX_DOWNLOAD). Refused; raise "
                            "SSZOO_MAX_DOWNLOAD if the file really is that large.")
    folder = os.path.dirname(os.path.abspath(part))
    # the rest of the download, plus about as much again for the converted safetensors copy
    needed = (total - have) + total
    free = shutil.disk_usage(folder).free
    if free < needed:
        discard_partial(part)
        raise DownloadError(f"not enough disk space for {url}: it needs about {_human(needed)} in {folder} "
                            f"(the download and its converted copy), {_human(free)} are free. Free some space or "
                            "point SSZOO_HOME at a larger disk.")


def _attempt(session: requests.Session, url: str, part: str, limits: _Limits, progress: bool, desc: str) -> str:
    """One HTTP request; writes ``part``; returns the sha256 of the complete file or raises."""
    policy = limits.policy
    have, val, seen = _resume_state(part, url)
    headers = {"Accept-Encoding": "identity"}  # the published hash is of the bytes as stored, not a re-encoding
    if have:
        headers["Range"] = f"bytes={have}-"
        headers["If-Range"] = val.get("etag") or val["last_modified"]
    timeout = (policy.connect_timeout, max(0.1, min(policy.read_timeout, limits.remaining())))
    try:
        resp = session.get(url, stream=True, headers=headers, timeout=timeout)
    except requests.exceptions.TooManyRedirects as e:
        raise DownloadError(f"{url} redirects more than {_MAX_REDIRECTS} times (a redirect loop): check the URL or "
                            "the mirror (SSZOO_MIRROR)") from e
    except (requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema, requests.exceptions.InvalidURL) as e:
        raise DownloadError(f"{url} led to a location sszoo does not fetch ({e}); only http(s) URLs and redirects are "
                            "followed. Check the URL or the mirror (SSZOO_MIRROR).") from e
    except (requests.ConnectionError, requests.Timeout) as e:
        if _is_dns_failure(e):
            host = urlsplit(url).hostname
            raise NetworkError(f"cannot resolve the host {host!r} of {url}: this machine has no network or no DNS "
                               "for it (not retried)") from e
        raise _Retryable(f"connection failed: {e}") from e
    except requests.RequestException as e:
        raise DownloadError(f"could not request {url}: {e}") from e
    with resp:
        if resp.status_code == 416 and have:
            discard_partial(part)  # our partial file is longer than the server's file: start over
            raise _Retryable("the server rejected the resume range; restarting")
        if resp.status_code >= 500 or resp.status_code in (408, 429):
            raise _Retryable(f"HTTP {resp.status_code} {resp.reason}")
        if resp.status_code >= 400:
            raise DownloadError(f"HTTP {resp.status_code} {resp.reason} for {url}. "
                                + ("The file does not exist there: check the URL, or the mirror "
                                   "(SSZOO_MIRROR) if one is set." if resp.status_code == 404 else
                                   "The server refused the request."))
        if resp.status_code not in (200, 206) or (resp.status_code == 206 and not have):
            raise _Retryable(f"unexpected answer HTTP {resp.status_code} {resp.reason}")
        encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            discard_partial(part)
            raise DownloadError(f"{url} was sent with Content-Encoding: {encoding} although sszoo asked for identity; "
                                "the published hash is of the file itself, so this answer is refused (it could also "
                                "decompress to far more than it announces). Use a server or mirror that serves files "
                                "as they are.")
        if resp.headers.get("Content-Type", "").split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml"):
            discard_partial(part)
            raise DownloadError(f"{url} answered with an HTML page, not a checkpoint (an error or login page served "
                                "with status 200?). Refused; nothing was kept. Check the URL or the mirror.")
        etag, modified = _strong_etag(resp.headers.get("ETag")), resp.headers.get("Last-Modified")
        resuming = resp.status_code == 206
        if resuming:
            m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
            changed = ((val.get("etag") and etag and etag != val["etag"])
                       or (not val.get("etag") and modified and modified != val.get("last_modified")))
            if not m or int(m.group(1)) != have or changed:
                # another range, or a server that ignored If-Range although its file changed: never splice
                discard_partial(part)
                raise _Retryable("the server's answer does not continue our partial file; restarting")
        size = have if resuming else 0
        length = resp.headers.get("Content-Length", "").strip()
        total = size + int(length) if length.isdigit() else None
        if total is not None:
            _check_size_up_front(total, size, part, url, limits)
        if resuming:
            h = _hash_partial(part)
            out = _open_append(part, have, seen)
            resumable = True
        else:  # a full answer: nothing to resume, the server ignored Range, or its file changed (If-Range)
            h = hashlib.sha256()
            out = _open_fresh(part)
            resumable = bool(etag or modified)
            if resumable:
                _write_validator(part, url, etag, modified)
        try:
            limit = limits.expected_size if limits.expected_size is not None else policy.max_bytes
            bar = _Progress(progress, total, size, desc)
            try:
                with out:
                    for block in resp.iter_content(chunk_size=_CHUNK):
                        if not block:
                            continue
                        size += len(block)
                        if size > limit:
                            pinned = limits.expected_size is not None
                            raise (HashMismatchError if pinned else DownloadError)(
                                f"{url} sent more than {_human(limit)} ("
                                + ("the size pinned in the lock file" if pinned else "SSZOO_MAX_DOWNLOAD")
                                + "). Refused; nothing was kept.")
                        out.write(block)
                        h.update(block)
                        bar.update(len(block))
                        if time.monotonic() > limits.deadline_at:
                            raise limits.over_deadline(url)
                    out.flush()
                    os.fsync(out.fileno())
            finally:
                bar.close()
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
            if not resumable:
                discard_partial(part)
            raise _Retryable(f"transfer broke off after {size} bytes ({e.__class__.__name__})") from e
        except NetworkError:
            if not resumable:
                discard_partial(part)
            raise
        except DownloadError:
            discard_partial(part)
            raise
        except OSError as e:
            discard_partial(part)  # a full disk must not stay filled by our partial file
            if is_disk_full(e):
                raise DownloadError(f"the disk is full while downloading {url} into {os.path.dirname(part)} "
                                    f"({os.strerror(e.errno)}); the partial file was deleted. Free some space or point "
                                    "SSZOO_HOME at a larger disk.") from e
            raise DownloadError(f"could not write {part}: {e}") from e
        if total is not None and size != total:
            if not resumable:
                discard_partial(part)
            raise _Retryable(f"transfer ended after {size} of {total} bytes")
    return h.hexdigest()


def _partial_note(part: str) -> str:
    kept = partial_kept(part)
    if kept:
        return (f"A partial file of {_human(kept)} is kept at {part}; the next try resumes it if the server's file "
                "is unchanged.")
    return "No partial file was kept."


def download_file(url: str, dest: str | os.PathLike, *, sha256_prefix: Optional[str] = None,
                  sha256: Optional[str] = None, expected_size: Optional[int] = None,
                  policy: Optional[DownloadPolicy] = None, progress: Optional[bool] = None,
                  session: Optional[requests.Session] = None,
                  on_retry: Optional[Callable[[int, str], None]] = None) -> str:
    """Download ``url`` to ``dest`` and return the file's full sha256.

    Args:
        url: an http(s) URL.
        dest: the final path; the data goes to ``dest + ".part"`` until it is complete and verified.
        sha256_prefix: hex digits the sha256 must start with (MMSegmentation's file-name hash).
        sha256: the full sha256 the file must have (a lock-file pin); checked in addition to the prefix.
        expected_size: the exact size in bytes (a lock-file pin): a server announcing or sending another
            size is refused. Without it, ``policy.max_bytes`` caps the download.
        policy: timeouts, retries, size cap and deadline (default: :meth:`DownloadPolicy.from_env`).
        progress: force the progress bar on or off (default: only on a terminal, unless ``SSZOO_QUIET``).
        on_retry: called with (attempt number, reason) before each retry, e.g. for logging.

    Raises:
        HashMismatchError: the complete file has another hash; nothing is left on disk.
        NetworkError: the host cannot be resolved, connection errors/5xx answers beyond the retry budget, or
            the deadline passed.
        DownloadError: a 4xx answer, a refused answer (HTML page, compressed body, over the size cap, a bad
            redirect), or a full disk.
    """
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    dest = os.fspath(dest)
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    part = dest + ".part"
    policy = policy or DownloadPolicy.from_env()
    limits = _Limits(expected_size, time.monotonic() + policy.deadline, policy)
    own_session = session is None
    if session is None:
        session = requests.Session()
        session.max_redirects = _MAX_REDIRECTS
    desc = os.path.basename(dest)
    last = ""
    try:
        for attempt in range(policy.retries + 1):
            if attempt:
                if on_retry is not None:
                    on_retry(attempt, last)
                time.sleep(max(0.0, min(policy.backoff * 2 ** (attempt - 1), limits.remaining())))
            if limits.remaining() <= 0:
                raise NetworkError(f"{limits.over_deadline(url)}; last error: {last or 'none'}. {_partial_note(part)}")
            try:
                digest = _attempt(session, url, part, limits, show_progress(progress), desc)
            except _Retryable as e:
                last = str(e)
                continue
            except NetworkError as e:
                raise NetworkError(f"{e}. {_partial_note(part)}") from e
            break
        else:
            raise NetworkError(f"could not download {url} after {policy.retries + 1} attempts; last error: {last}. "
                               f"{_partial_note(part)} Check the network or set SSZOO_MIRROR to a reachable mirror.")
    finally:
        if own_session:
            session.close()
    if sha256_prefix is not None and not digest.startswith(sha256_prefix.lower()):
        discard_partial(part)
        raise HashMismatchError(f"sha256 mismatch for {url}: expected a hash starting with {sha256_prefix}, "
                                f"got {digest}. The download was deleted. The server or mirror serves another "
                                "file than the one published; do not use it.")
    if sha256 is not None and digest != sha256.lower():
        discard_partial(part)
        raise HashMismatchError(f"sha256 mismatch for {url}: the lock file pins {sha256}, got {digest}. The download "
                                "was deleted. The server or mirror serves another file than the one pinned.")
    os.replace(part, dest)
    with contextlib.suppress(FileNotFoundError):
        os.remove(_validator_path(part))
    return digest
