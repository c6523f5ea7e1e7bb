"""Atomic file writes: to a temporary name in the target's folder, then renamed into place.

Readers, and a process killed mid-write, see the old file or the new one, never half of one. Every file
sszoo writes (cache entries, checkpoints, exports, predictions, results, generated datasets) goes
through :func:`atomic_path`.
"""
from __future__ import annotations

import contextlib
import os
import uuid
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = False) -> Iterator[str]:
    """A temporary path to write ``path``'s content to; renamed over ``path`` when the block succeeds,
    removed when it raises. ``fsync`` flushes the file to disk before the rename (training checkpoints).

    The temporary name lies in the target's folder (a rename across file systems is not atomic) and keeps
    its extension, for writers that go by it. Before the rename the file gets the permissions a plain
    ``open(path, "w")`` would give (0666 minus the umask, so 0644 under the usual umask 022): some writers
    (safetensors' ``save_file``, ``tempfile.mkstemp``) create private 0600 files.
    """
    final = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(final)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{os.path.splitext(final)[1]}")
    try:
        yield tmp
        if os.path.isfile(tmp):
            os.chmod(tmp, 0o666 & ~_umask())
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _umask() -> int:
    """The process's umask, read without changing it where the system tells (Linux), else set and restored."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(text: str, path: str | os.PathLike) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
