"""Downloading one file over HTTP(S): streaming, timeouts, retries, resume, hash check, atomic rename.

The file is written to ``<dest>.part`` first. A transfer that breaks off leaves the ``.part`` file
behind and the next attempt asks the server for the rest with an HTTP ``Range`` header; a server
that ignores ``Range`` (answers 200) makes us start again from zero. Only a complete file whose
sha256 matches the expected prefix is renamed to ``dest``.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional

import requests

_CHUNK = 1 << 16  # small reads: a broken transfer loses at most this much of what arrived
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.(?:pth|pt|bin|safetensors)$")


class DownloadError(RuntimeError):
    """A file could not be downloaded (after the retry budget, or because the server refused it)."""


class HashMismatchError(DownloadError):
    """The downloaded bytes do not have the sha256 that the file name or the registry promises."""


@dataclass(frozen=True)
class DownloadPolicy:
    """How patient a download is. Defaults suit a large checkpoint on a slow link."""

    connect_timeout: float = 10.0     # seconds to open the connection
    read_timeout: float = 60.0        # seconds without a single byte before giving up on the attempt
    retries: int = 4                  # further attempts after the first, on connection errors and 5xx
    backoff: float = 1.0              # seconds before the first retry, doubled each time

    @classmethod
    def from_env(cls) -> "DownloadPolicy":
        """The defaults, overridden by ``SSZOO_RETRIES``, ``SSZOO_BACKOFF`` and ``SSZOO_TIMEOUT`` (read timeout)."""
        def num(name: str, default: float) -> float:
            raw = os.environ.get(name)
            if raw is None or raw == "":
                return default
            try:
                return float(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a number") from None
        return cls(read_timeout=num("SSZOO_TIMEOUT", cls.read_timeout), retries=int(num("SSZOO_RETRIES", cls.retries)),
                   backoff=num("SSZOO_BACKOFF", cls.backoff))


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


def _hash_existing(path: str) -> tuple["hashlib._Hash", int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
            size += len(block)
    return h, size


class _Retryable(Exception):
    """One attempt failed in a way that another attempt may fix."""


def _attempt(session: requests.Session, url: str, part: str, policy: DownloadPolicy, progress: bool,
             desc: str) -> str:
    """One HTTP request; appends to ``part``; returns the sha256 of the complete file or raises."""
    have = os.path.getsize(part) if os.path.exists(part) else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        resp = session.get(url, stream=True, headers=headers, timeout=(policy.connect_timeout, policy.read_timeout))
    except (requests.ConnectionError, requests.Timeout) as e:
        raise _Retryable(f"connection failed: {e}") from e
    with resp:
        if resp.status_code == 416 and have:
            # Range beyond the end: our partial file is bigger than the real one; start over.
            os.remove(part)
            raise _Retryable("the server rejected the resume range; restarting")
        if resp.status_code >= 500 or resp.status_code in (408, 429):
            raise _Retryable(f"HTTP {resp.status_code} {resp.reason}")
        if resp.status_code >= 400:
            raise DownloadError(f"HTTP {resp.status_code} {resp.reason} for {url}. "
                                + ("The file does not exist there: check the URL, or the mirror "
                                   "(SSZOO_MIRROR) if one is set." if resp.status_code == 404 else
                                   "The server refused the request."))
        if resp.status_code == 206 and have:
            m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:
                os.remove(part)
                raise _Retryable("the server answered the resume request with another range; restarting")
            h, size = _hash_existing(part)
            mode = "ab"
        else:  # a full answer (200): the server ignored Range, or there was nothing to resume
            h, size, mode = hashlib.sha256(), 0, "wb"
        length = resp.headers.get("Content-Length")
        expected_total = size + int(length) if length is not None and length.isdigit() else None
        bar = _Progress(progress, expected_total, size, desc)
        try:
            with open(part, mode) as f:
                for block in resp.iter_content(chunk_size=_CHUNK):
                    if block:
                        f.write(block)
                        h.update(block)
                        size += len(block)
                        bar.update(len(block))
                f.flush()
                os.fsync(f.fileno())
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
            raise _Retryable(f"transfer broke off after {size} bytes ({e.__class__.__name__})") from e
        finally:
            bar.close()
        if expected_total is not None and size != expected_total:
            raise _Retryable(f"transfer ended after {size} of {expected_total} bytes")
    return h.hexdigest()


def download_file(url: str, dest: str | os.PathLike, *, sha256_prefix: Optional[str] = None,
                  policy: Optional[DownloadPolicy] = None, progress: Optional[bool] = None,
                  session: Optional[requests.Session] = None,
                  on_retry: Optional[Callable[[int, str], None]] = None) -> str:
    """Download ``url`` to ``dest`` and return the file's full sha256.

    Args:
        url: an http(s) URL.
        dest: the final path; the data goes to ``dest + ".part"`` until it is complete and verified.
        sha256_prefix: hex digits the sha256 must start with (MMSegmentation's file-name hash); None skips
            the check (the caller records the file as unverified).
        policy: timeouts and retry budget (default: :meth:`DownloadPolicy.from_env`).
        progress: force the progress bar on or off (default: only on a terminal, unless ``SSZOO_QUIET``).
        on_retry: called with (attempt number, reason) before each retry, e.g. for logging.

    Raises:
        HashMismatchError: the complete file has another hash; nothing is left on disk.
        DownloadError: a 4xx answer, or connection errors/5xx answers beyond the retry budget.
    """
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    dest = os.fspath(dest)
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    part = dest + ".part"
    policy = policy or DownloadPolicy.from_env()
    own_session = session is None
    session = session or requests.Session()
    desc = os.path.basename(dest)
    last = ""
    try:
        for attempt in range(policy.retries + 1):
            if attempt:
                delay = policy.backoff * 2 ** (attempt - 1)
                if on_retry is not None:
                    on_retry(attempt, last)
                time.sleep(delay)
            try:
                digest = _attempt(session, url, part, policy, show_progress(progress), desc)
            except _Retryable as e:
                last = str(e)
                continue
            break
        else:
            raise DownloadError(f"could not download {url} after {policy.retries + 1} attempts; last error: {last}. "
                                "Check the network or set SSZOO_MIRROR to a reachable mirror; a partial file "
                                f"is kept at {part} and the next try resumes it.")
    finally:
        if own_session:
            session.close()
    if sha256_prefix is not None and not digest.startswith(sha256_prefix.lower()):
        os.remove(part)
        raise HashMismatchError(f"sha256 mismatch for {url}: expected a hash starting with {sha256_prefix}, "
                                f"got {digest}. The download was deleted. The server or mirror serves another "
                                "file than the one published; do not use it.")
    os.replace(part, dest)
    return digest
