"""Reading checkpoint files safely and loading them strictly into a model.

Safe by default: ``.safetensors`` files, or ``torch.load(weights_only=True)`` for pickles, which
refuses anything that would execute code while unpickling.
"""
from __future__ import annotations

import os
import pickle
from typing import Any, Mapping

import torch
from torch import nn


class CheckpointError(RuntimeError):
    """A checkpoint could not be read, is unsafe, or does not fit the model."""


def read_checkpoint(path: str | os.PathLike) -> Any:
    """Load a ``.safetensors`` file or a pickled ``.pth`` without executing code."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        return load_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refused to load {path}: it contains objects that a safe load does not allow ({e}). "
            "sszoo never unpickles code; convert the file to safetensors in a trusted environment.") from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"could not read {path} as a PyTorch checkpoint ({e}); is the file complete?") from e


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
