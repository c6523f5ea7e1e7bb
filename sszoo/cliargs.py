"""argparse helpers shared by sszoo's command lines (and the benchmarks')."""
from __future__ import annotations

import argparse


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
