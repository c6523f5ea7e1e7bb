"""Reading checkpoint files safely, checking their tensors, and loading them strictly into a model.

Safe by default: ``.safetensors`` files, or ``torch.load(weights_only=True)`` for pickles, which
refuses anything that would execute code while unpickling. Before anything copies a tensor, its
layout and storage are checked (:func:`check_tensors`: no meta, sparse or complex tensors, no
expanded/overlapping views that claim more elements than the file stores), and before weights are
cached or loaded their names, shapes and dtypes are compared with the model (:func:`check_fits`) and
their values checked for NaN/inf (:func:`check_finite`).
"""
from __future__ import annotations

import _codecs
import functools
import os
import pickle
import warnings
from typing import Any, Mapping, Optional

import torch
from torch import nn

from .errors import CheckpointError

__all__ = ["CheckpointError", "checkpoint_num_classes", "NonFiniteWeightsWarning", "check_finite", "check_fits", "check_tensors",
           "expected_state", "extract_state_dict", "load_state_dict_strict", "read_checkpoint"]


class NonFiniteWeightsWarning(UserWarning):
    """Weights hold NaN or inf values and ``SSZOO_ALLOW_NONFINITE`` asked to load them anyway."""


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
    except MemoryError as e:
        raise CheckpointError(f"could not read {path}: it needs more memory than there is; not a checkpoint "
                              "sszoo publishes") from e
    except Exception as e:  # hostile or damaged input: TypeError, LookupError, EOFError, ... from the unpickler
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(f"could not read {path} as a PyTorch checkpoint ({e.__class__.__name__}: {first}); "
                              "is the file complete, and is it a checkpoint?") from e


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
        sd = {k.removeprefix("module."): v for k, v in obj.items()
              if isinstance(v, torch.Tensor) and isinstance(k, str)}
        if sd:
            return sd
    raise CheckpointError("no state dict of tensors found in the checkpoint "
                          "(expected {'state_dict': ...}, {'model': ...} or a plain mapping of tensors)")


_FIT_HINT = "  Check the model name, or pass num_classes=... for a checkpoint with another class count."


def _show(items: list[str]) -> str:
    return ", ".join(items[:8]) + (f", ... ({len(items)} in all)" if len(items) > 8 else "")


def check_tensors(state: Mapping[str, Any], *, source: str = "checkpoint") -> None:
    """Refuse tensors that cannot be ordinary weights, before anything copies or computes with them.

    Meta tensors (no data), sparse/quantised layouts, complex dtypes, and views whose elements overlap or
    exceed their storage (a few-byte ``expand``-ed tensor claiming gigabytes) raise :class:`CheckpointError`.
    """
    bad: list[str] = []
    for k, t in state.items():
        if not isinstance(t, torch.Tensor):
            continue
        if t.is_meta or t.device.type == "meta":
            bad.append(f"{k}: a meta tensor (no data; the file was saved from a model that was never materialised)")
        elif t.layout != torch.strided or t.is_quantized:
            bad.append(f"{k}: layout {t.layout} (only dense tensors are weights)")
        elif t.is_complex():
            bad.append(f"{k}: complex dtype {t.dtype}")
        elif t.numel() > 1:
            storage = t.untyped_storage().nbytes() // max(1, t.element_size())
            span = 1 + sum((n - 1) * abs(st) for n, st in zip(t.shape, t.stride()))
            if span < t.numel() or t.numel() > storage - t.storage_offset():
                bad.append(f"{k}: {tuple(t.shape)} = {t.numel()} elements over a storage of {storage} "
                           "(an expanded or overlapping view, not stored weights)")
    if bad:
        raise CheckpointError(f"{source} holds tensors that are not plain weights, refused before use:\n  "
                              + "\n  ".join(bad[:8]) + (f"\n  ... ({len(bad)} in all)" if len(bad) > 8 else ""))


def _allow_nonfinite() -> bool:
    return os.environ.get("SSZOO_ALLOW_NONFINITE", "").strip().lower() not in ("", "0", "false", "no", "off")


def check_finite(state: Mapping[str, torch.Tensor], *, source: str = "checkpoint",
                 allow: Optional[bool] = None) -> list[str]:
    """The floating-point keys holding NaN or inf. Raises :class:`CheckpointError` when there are any, unless
    ``allow`` (default: ``SSZOO_ALLOW_NONFINITE``), which warns (:class:`NonFiniteWeightsWarning`) instead."""
    bad = [k for k, t in state.items()
           if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        msg = (f"{source} has NaN or inf values in {len(bad)} tensor(s): {_show(bad)} (a diverged training run or "
               "a damaged file)")
        if not (_allow_nonfinite() if allow is None else allow):
            raise CheckpointError(msg + ". Refused; set SSZOO_ALLOW_NONFINITE=1 to load it anyway (with a warning).")
        warnings.warn(f"sszoo: {msg}; loading anyway because SSZOO_ALLOW_NONFINITE is set",
                      NonFiniteWeightsWarning, stacklevel=3)
    return bad


def expected_state(arch) -> dict[str, torch.Tensor]:
    """The state dict of the network for ``arch`` (an ArchConfig, or a detection DetectorConfig) as meta
    tensors: names, shapes, dtypes, no data."""
    from ..detection.config import DetectorConfig
    from ..models import build_model
    if isinstance(arch, DetectorConfig):
        from ..detection import build_detector
        with torch.device("meta"):
            return dict(build_detector(arch).state_dict())
    with torch.device("meta"):
        return dict(build_model(arch).state_dict())


def checkpoint_num_classes(state: Mapping[str, torch.Tensor]) -> Optional[int]:
    """The class count a checkpoint was trained for: the outputs of its (first) decode head's classifier (for K-Net
    its kernel generator's), or for Segmenter's mask transformer (no ``conv_seg``) its class embeddings (1 x K x D)."""
    for key in ("decode_head.conv_seg.weight", "decode_head.0.conv_seg.weight",
                "decode_head.kernel_generate_head.conv_seg.weight"):
        if key in state:
            return int(state[key].shape[0])
    if "decode_head.cls_emb" in state:
        return int(state["decode_head.cls_emb"].shape[1])
    # mask classification (MaskFormer, Mask2Former): the query classifier has one more output, "no object"
    if "decode_head.cls_embed.weight" in state:
        return int(state["decode_head.cls_embed.weight"].shape[0]) - 1
    return None


def _is_classifier(key: str) -> bool:
    # Segmenter's class count lives in its class embeddings and the class-wise LayerNorm of its masks;
    # MaskFormer's / Mask2Former's in the query classifier cls_embed (K + 1 outputs)
    return key.endswith(("conv_seg.weight", "conv_seg.bias", "cls_embed.weight", "cls_embed.bias")) or key in (
        "decode_head.cls_emb", "decode_head.mask_norm.weight", "decode_head.mask_norm.bias")


def check_fits(state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], *, source: str = "checkpoint",
               strict: bool = True) -> None:
    """Compare ``state`` with a model's state dict ``own`` by names, shapes and dtypes, reading no values.

    With ``strict`` every key must match exactly. Without it (the check before caching, when the final
    model is not known yet) the classifiers (``*.conv_seg.*``) may have another class count, and the
    auxiliary head may be missing (or present for a model without one): ``create_model`` handles both.
    Integer, bool and complex tensors where the model has floating-point ones are refused (a cast would
    hide a broken file). Raises :class:`CheckpointError` listing what does not fit.
    """
    def optional(k: str) -> bool:
        return not strict and k.startswith("auxiliary_head.")
    own_aux = any(k.startswith("auxiliary_head.") for k in own)
    has_aux = any(k.startswith("auxiliary_head.") for k in state)
    missing = [k for k in own if k not in state and not (optional(k) and not has_aux)]
    unexpected = [k for k in state if k not in own and not (optional(k) and not own_aux)]
    shapes, dtypes = [], []
    for k, v in own.items():
        if k not in state:
            continue
        got = state[k]
        a, b = tuple(got.shape), tuple(v.shape)
        c = 1 if k.endswith("cls_emb") else 0  # the class dimension (Segmenter's embeddings are 1 x K x D)
        if a != b and not (not strict and _is_classifier(k) and len(a) == len(b)
                           and a[:c] + a[c + 1:] == b[:c] + b[c + 1:]):
            shapes.append(f"{k}: checkpoint {a} vs model {b}")
        if v.is_floating_point() and not got.is_floating_point():
            dtypes.append(f"{k}: checkpoint {got.dtype} vs model {v.dtype}")
        elif got.is_complex() and not v.is_complex():
            dtypes.append(f"{k}: checkpoint {got.dtype} vs model {v.dtype}")
    if missing or unexpected or shapes:
        lines = [f"{source} does not fit the model: it was made for another architecture or class count."]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {_show(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {_show(unexpected)}")
        if shapes:
            lines.append(f"  shape mismatches ({len(shapes)}): {_show(shapes)}")
        lines.append(_FIT_HINT)
        raise CheckpointError("\n".join(lines))
    if dtypes:
        raise CheckpointError(f"{source} has non-floating-point tensors where the model has floating-point weights "
                              f"({len(dtypes)}): {_show(dtypes)}. A cast would hide a broken or forged file; refused.")


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *,
                           source: str = "checkpoint") -> None:
    """Load ``state_dict`` into ``model`` requiring every key used and every parameter and buffer filled.

    Raises :class:`CheckpointError` listing the missing, unexpected and mis-shaped keys, which is what
    a checkpoint of another architecture produces, and for tensors that are not plain weights (meta,
    expanded views, integer or complex where the model has floats). NaN/inf values are refused unless
    ``SSZOO_ALLOW_NONFINITE`` is set.
    """
    check_tensors(state_dict, source=source)
    check_fits(state_dict, model.state_dict(), source=source, strict=True)
    check_finite(state_dict, source=source)
    try:
        model.load_state_dict(dict(state_dict), strict=True)
    except RuntimeError as e:  # anything the checks above did not foresee still gets the error family
        raise CheckpointError(f"{source} could not be loaded into the model: {e}") from e
