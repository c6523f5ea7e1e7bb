"""Reading checkpoint files safely and loading them strictly into a model.

Safe by default: ``.safetensors`` files, or ``torch.load(weights_only=True)`` for pickles, which
refuses anything that would execute code while unpickling.
"""
from __future__ import annotations

import _codecs
import functools
import os
import pickle
from typing import Any, Mapping

import torch
from torch import nn


class CheckpointError(RuntimeError):
    """A checkpoint could not be read, is unsafe, or does not fit the model."""


class _MetadataStandIn(dict):
    """An inert stand-in for framework bookkeeping objects found in checkpoint metadata.

    MMEngine-era checkpoints pickle objects such as ``HistoryBuffer`` (training-log statistics) and
    ``ConfigDict`` beside the weights. Their real classes are never imported: this plain container
    receives their items and state instead, so nothing of theirs can run.
    """

    def __setstate__(self, state: Any) -> None:
        self.pickled_state = state


# Plain-data globals that published checkpoints keep in their metadata (numpy scalars and arrays in
# training logs). Each only rebuilds data; none can run code.
_NUMPY_GLOBALS = ("multiarray.scalar", "multiarray._reconstruct")  # under numpy.core (< 2.0) / numpy._core
_STAND_IN_NAMES = ("mmengine.logging.history_buffer.HistoryBuffer", "mmengine.config.config.ConfigDict",
                   "mmcv.utils.config.ConfigDict", "addict.addict.Dict")


def _under_name(obj: Any, dotted: str) -> Any:
    """``obj`` (a class is subclassed, a function wrapped) carrying the global name ``dotted``.

    torch's weights-only unpickler keys its allowlist by each object's ``module.qualname``, so this is
    how a stand-in answers to the name a checkpoint was written with. It works on every torch with an
    allowlist (2.4 included), unlike the (object, name) pairs that only torch >= 2.5 accepts.
    """
    module, name = dotted.rsplit(".", 1)
    if isinstance(obj, type):
        return type(name, (obj,), {"__module__": module, "__qualname__": name, "__doc__": obj.__doc__})

    def alias(*args: Any) -> Any:
        return obj(*args)

    alias.__module__, alias.__name__, alias.__qualname__ = module, name, name
    return alias


@functools.lru_cache(maxsize=1)
def _metadata_globals() -> tuple:
    """The allowlist: numpy's data types, and stand-ins under the names that checkpoints use."""
    import numpy as np
    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core to numpy._core
    # _codecs.encode only turns the latin-1 text of a protocol-2 numpy scalar back into bytes
    # (torch >= 2.5 allows it by default; 2.4 needs it listed)
    out: list = [np.dtype, np.ndarray, _codecs.encode]
    for dotted in _NUMPY_GLOBALS:
        module_name, attr = dotted.split(".")
        fn = getattr(getattr(core, module_name), attr)
        # files name them as written by the numpy that saved them
        out += [_under_name(fn, f"numpy.core.{dotted}"), _under_name(fn, f"numpy._core.{dotted}")]
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25 pickles dtypes by their class
    if dtypes is not None:
        out += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    out += [_under_name(_MetadataStandIn, name) for name in _STAND_IN_NAMES]
    return tuple(out)


def _safe_torch_load(path: str) -> Any:
    allow = list(_metadata_globals())
    if hasattr(torch.serialization, "safe_globals"):
        with torch.serialization.safe_globals(allow):
            return torch.load(path, map_location="cpu", weights_only=True)
    if hasattr(torch.serialization, "add_safe_globals"):  # torch 2.4: no context manager
        torch.serialization.add_safe_globals(allow)
    return torch.load(path, map_location="cpu", weights_only=True)


def read_checkpoint(path: str | os.PathLike) -> Any:
    """Load a ``.safetensors`` file or a pickled ``.pth`` without executing code.

    Pickles are read with ``torch.load(weights_only=True)`` plus a short allowlist of plain-data types
    that published checkpoints keep in their metadata. Anything else (a function, an arbitrary class)
    makes the load fail with :class:`CheckpointError` before it is called.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        try:
            return load_file(path)
        except Exception as e:  # safetensors raises its own error types for truncated/invalid headers
            raise CheckpointError(f"could not read {path} as safetensors ({e}); is the file complete?") from e
    try:
        return _safe_torch_load(path)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refused to load {path}: it contains objects that a safe load does not allow "
            f"({_first_line_about_global(e)}). sszoo never unpickles code; if you trust the file, convert it "
            "to safetensors in a trusted environment (python -m sszoo.hub convert).") from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"could not read {path} as a PyTorch checkpoint ({e}); is the file complete?") from e


def _first_line_about_global(e: Exception) -> str:
    text = str(e)
    for line in text.splitlines():
        if "global" in line.lower() and ("unsupported" in line.lower() or "not an allowed" in line.lower()):
            return line.strip().split(". Please use")[0]
    return text.splitlines()[0] if text else e.__class__.__name__


def extract_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """The tensor state dict inside an MMSegmentation (``state_dict``), sssegmentation (``model``) or plain file."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
        sd = {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if sd:
            return sd
    raise CheckpointError("no state dict of tensors found in the checkpoint "
                          "(expected {'state_dict': ...}, {'model': ...} or a plain mapping of tensors)")


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str = "checkpoint") -> None:
    """Load ``state_dict`` into ``model`` requiring every key used and every parameter and buffer filled.

    Raises :class:`CheckpointError` listing the missing, unexpected and mis-shaped keys, which is what
    a checkpoint of another architecture produces.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
              for k, v in own.items() if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        def show(items):
            return ", ".join(items[:8]) + (f", ... ({len(items)} in all)" if len(items) > 8 else "")
        lines = [f"{source} does not fit the model: it was made for another architecture or class count."]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {show(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {show(unexpected)}")
        if shapes:
            lines.append(f"  shape mismatches ({len(shapes)}): {show(shapes)}")
        lines.append("  Check the model name, or pass num_classes=... for a checkpoint with another class count.")
        raise CheckpointError("\n".join(lines))
    model.load_state_dict(dict(state_dict), strict=True)
