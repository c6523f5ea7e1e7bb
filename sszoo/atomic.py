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
    its extension, for writers that go by it. The writer creates it, so it gets normal permissions
    (``tempfile.mkstemp`` would leave the final file private).
    """
    final = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(final)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{os.path.splitext(final)[1]}")
    try:
        yield tmp
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


def write_text(text: str, path: str | os.PathLike) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
