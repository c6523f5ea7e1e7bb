"""argparse helpers shared by sszoo's command lines (and the benchmarks'): size arguments, the default
worker count, up-front checks of ``--device`` and checkpoint files, and one-line errors and warnings."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from typing import Iterator, Optional


def parse_pair(text: str, form: str = "AxB", example: str = "512x1024", *, square_ok: bool = False,
               minimum: int = 1) -> tuple[int, int]:
    """``'AxB'`` -> ``(A, B)`` for an argparse ``type=``: two integers of at least ``minimum``.

    ``form`` and ``example`` name the expected order in the error (``"HxW"``, ``"LONGxSHORT"`` ...); with
    ``square_ok`` a single number N means (N, N).
    """
    alt = " or a single number" if square_ok else ""
    try:
        vals = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {form} such as {example}{alt}, got {text!r}") from None
    if square_ok and len(vals) == 1:
        vals = (vals[0], vals[0])
    if len(vals) != 2:
        raise argparse.ArgumentTypeError(f"expected {form} such as {example}{alt}, got {text!r}")
    if min(vals) < minimum:
        raise argparse.ArgumentTypeError(f"{text!r} is too small: both sides must be at least {minimum}")
    return vals  # type: ignore[return-value]


# --------------------------------------------------------------------------- checks shared by the CLIs

def default_workers(limit: int = 4) -> int:
    """DataLoader workers for this machine: ``min(limit, CPUs this process may use)``, 0 where unknown.

    More workers than CPUs makes PyTorch's DataLoader warn and only adds context switches.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 0
    return max(0, min(limit, cpus))


def check_device(spec: Optional[str]) -> None:
    """Raise ``ValueError`` (one line) when ``--device spec`` names a device this machine does not have."""
    if spec is None:
        return
    import torch
    try:
        dev = torch.device(spec)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {spec!r} is not a device name; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {spec}: no CUDA GPU is available here (torch {torch.__version__}, "
                             f"built with CUDA {torch.version.cuda}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {spec}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"numbered from 0")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"--device {spec}: Apple's MPS backend is not available here; use --device cpu")


_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80  # the first byte of a pickle of protocol >= 2 (torch's legacy format)


def check_checkpoint_file(path: str) -> None:
    """Refuse a local file that cannot be a checkpoint before torch.load trips over it.

    ``torch.save`` writes a zip archive (the legacy format: a pickle, starting with byte 0x80); a text
    file or an HTML error page saved as ``.pth`` would otherwise fail deep inside the unpickler
    (``IndexError: pop from empty list``). Folders, URLs and ``.safetensors`` files are left to the hub.
    """
    from .hub.checkpoint import CheckpointError

    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path) or os.fspath(path).endswith(".safetensors"):
        return
    with open(path, "rb") as f:
        head = f.read(8)
    if not head:
        raise CheckpointError(f"checkpoint {os.fspath(path)!r} is an empty file")
    if not (head.startswith(_ZIP_MAGIC) or head[0] == _PICKLE_PROTO):
        kind = "text" if all(32 <= b < 127 or b in (9, 10, 13) for b in head) else "data"
        raise CheckpointError(f"{os.fspath(path)!r} is not a checkpoint: it holds {kind} ({head!r}...), while "
                              "torch.save writes a zip archive (or a pickle) and safetensors files end in "
                              ".safetensors; was the download saved as an error page?")


def one_line(error: BaseException) -> str:
    """An exception's message on one line, also when a DataLoader worker wrapped it with its traceback."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    if "Original Traceback" in text:  # "Caught X in DataLoader worker ...\nOriginal Traceback ...\nmod.X: msg"
        last = [ln for ln in text.splitlines() if ln.strip()][-1]
        head, sep, msg = last.partition(": ")
        text = msg if sep and " " not in head else last
    return " ".join(part.strip() for part in text.splitlines() if part.strip()) or error.__class__.__name__


@contextlib.contextmanager
def one_line_warnings(prog: str) -> Iterator[None]:
    """Inside the block, warnings print as ``prog: warning: message`` (one line, no source line)."""
    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 - warnings' signature
        print(f"{prog}: warning: {message}", file=file or sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Like ``ArgumentDefaultsHelpFormatter``, but only where the help does not already say the default
    and there is one to say (no "(default: None)" after "(default: the recipe's)")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, argparse.SUPPRESS) \
                or action.option_strings == [] or action.nargs == 0 and action.default is False:
            return text
        return text + " (default: %(default)s)"
