"""Training checkpoints: atomic writes, safe reads, RNG state capture and the safetensors export.

A training checkpoint is a ``torch.save`` file holding only tensors and plain Python values, so it
loads with ``torch.load(weights_only=True)``:

    {"format": "sszoo-train-v1", "model": state_dict, "optimizer": ..., "scaler": ... or None,
     "iteration": int (iterations completed), "rng": {...}, "config": TrainConfig dict,
     "best": {"mIoU": float, "iteration": int} or None}

Files are written to a temporary name beside the target and renamed into place, so a run killed at
any moment leaves either the old or the new checkpoint, never half of one.
"""
from __future__ import annotations

import json
import os
import random
import re
from typing import Any, Optional

import numpy as np
import torch

from ..atomic import atomic_path
from ..hub.checkpoint import CheckpointError

FORMAT = "sszoo-train-v1"
LAST_POINTER = "last_checkpoint"  # a text file in the work dir naming the newest checkpoint


def atomic_save(obj: Any, path: str) -> None:
    """``torch.save`` to a temporary file in the same folder, flushed to disk, then renamed over ``path``."""
    with atomic_path(path, fsync=True) as tmp:
        torch.save(obj, tmp)


def rng_state() -> dict[str, Any]:
    """The global RNG states (torch CPU and CUDA, numpy, Python) as weights-only-loadable values."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": json.dumps(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def read_train_checkpoint(path: str) -> dict[str, Any]:
    """Load a training checkpoint safely, checking that it is one."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint to resume from not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # an unsafe pickle or a truncated file
        raise CheckpointError(f"could not read training checkpoint {path} safely ({e}); "
                              "resume from another checkpoint of the work dir") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an sszoo training checkpoint (expected format {FORMAT!r}); "
                              "to start from model weights use --init-from instead of --resume")
    return ckpt


def find_last_checkpoint(work_dir: str) -> Optional[str]:
    """The newest checkpoint of a work dir (named by its ``last_checkpoint`` file), or None."""
    pointer = os.path.join(work_dir, LAST_POINTER)
    if not os.path.isfile(pointer):
        return None
    with open(pointer) as f:
        name = f.read().strip()
    path = name if os.path.isabs(name) else os.path.join(work_dir, name)
    return path if os.path.isfile(path) else None


def iteration_checkpoints(work_dir: str, up_to: int) -> list[str]:
    """The ``iter_N.pth`` files of a work dir with N <= ``up_to``, oldest first.

    A resumed run counts these against ``--keep-checkpoints`` so that the checkpoints written
    before the interruption are pruned like the ones it writes itself.
    """
    found = []
    for name in os.listdir(work_dir) if os.path.isdir(work_dir) else []:
        m = re.fullmatch(r"iter_(\d+)\.pth", name)
        if m and int(m.group(1)) <= up_to:
            found.append((int(m.group(1)), os.path.join(work_dir, name)))
    return [path for _, path in sorted(found)]


def export_safetensors(state_dict: dict[str, torch.Tensor], path: str, metadata: dict[str, str]) -> None:
    """Write model weights in the zoo's safetensors format (sszoo = MMSegmentation key layout), atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={k: str(v) for k, v in metadata.items()})
