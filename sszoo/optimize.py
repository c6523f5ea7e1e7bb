"""Make a trained network faster for inference without changing what it computes.

* :func:`fold_bn` merges every eval-mode BatchNorm into the convolution in front of it, so inference
  runs one conv (with a bias) where it ran a conv and a BN: one fewer pass over each activation.
* :func:`compile_model` wraps ``torch.compile`` with ``fullgraph=True`` (sszoo's forward has no graph
  breaks, which the tests check) and says clearly why compilation is unavailable where it is.
* :func:`prepare_for_inference` does the usual steps in one call: eval mode, no gradients, BN folding,
  device/dtype, ``channels_last`` memory format and optionally ``torch.compile``.

Folded models are for inference only: their state dict has conv biases and no BN entries, so it no
longer matches the published checkpoints, and training them would not behave like training with BN.
"""
from __future__ import annotations

import copy
import importlib
import os
import shutil
from typing import Optional, Union

import torch
from torch import nn

from .models.layers import ConvBNReLU
from .models.backbones.resnet import BasicBlock, Bottleneck, ResNet

__all__ = ["fold_bn", "fold_conv_bn", "count_batchnorms", "compile_model", "compile_support",
           "prepare_for_inference"]

_BN = nn.modules.batchnorm._BatchNorm

# Modules whose forward applies ``bn_attr`` directly to the output of ``conv_attr``. Only these named
# pairs are folded (besides adjacent pairs inside a plain nn.Sequential): a name alone does not prove
# the order of operations, so a module of another class keeps its BatchNorms.
_NAMED_PAIRS: dict[type, tuple[tuple[str, str], ...]] = {
    ConvBNReLU: (("conv", "bn"),),
    BasicBlock: (("conv1", "bn1"), ("conv2", "bn2")),
    Bottleneck: (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")),
    ResNet: (("conv1", "bn1"),),  # the 7x7 stem of V1b backbones
}


def _torchvision_pairs() -> dict[type, tuple[tuple[str, str], ...]]:
    """The same rule for torchvision's ResNet blocks, so the peers in the benchmarks can be folded too."""
    try:
        from torchvision.models import resnet as tv
    except Exception:  # torchvision is a dependency, but folding sszoo models must not need it
        return {}
    return {tv.BasicBlock: _NAMED_PAIRS[BasicBlock], tv.Bottleneck: _NAMED_PAIRS[Bottleneck],
            tv.ResNet: (("conv1", "bn1"),)}


def fold_conv_bn(conv: nn.Conv2d, bn: _BN) -> nn.Conv2d:
    """Return a new conv computing ``bn(conv(x))`` with ``bn``'s running statistics (eval mode).

    With ``s = gamma / sqrt(var + eps)`` the folded conv has weight ``W * s`` (per output channel) and
    bias ``(b - mean) * s + beta``. The arithmetic is done in float64, then cast back to the conv's dtype.
    """
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, _BN):
        raise TypeError(f"fold_conv_bn needs an nn.Conv2d and a BatchNorm, got {type(conv).__name__} "
                        f"and {type(bn).__name__}")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm built with track_running_stats=False: it normalises with "
                         "batch statistics at inference too; keep it unfolded")
    if bn.num_features != conv.out_channels:
        raise ValueError(f"BatchNorm of {bn.num_features} channels does not follow a conv of "
                         f"{conv.out_channels} output channels")
    w = conv.weight.detach().double()
    scale = bn.running_var.detach().double().add(bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight.detach().double()
    shift = -bn.running_mean.detach().double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.detach().double()
    if conv.bias is not None:
        shift = shift + conv.bias.detach().double() * scale
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                      padding=conv.padding, dilation=conv.dilation, groups=conv.groups, bias=True,
                      padding_mode=conv.padding_mode, device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        fused.weight.copy_(w * scale.view(-1, 1, 1, 1))
        fused.bias.copy_(shift)
    fused.requires_grad_(conv.weight.requires_grad)
    # Keep the conv's weight layout. A 1x1 kernel is "contiguous" in both layouts; giving it channels_last
    # strides there makes its output channels_last, and every following NCHW 3x3 conv then re-lays out
    # its weight on each call (measured: 12% slower R-50 inference on CPU).
    if conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous():
        fused.to(memory_format=torch.channels_last)
    return fused


def _fold_sequential(seq: nn.Sequential) -> int:
    folded = 0
    names = list(seq._modules)
    for a, b in zip(names, names[1:]):
        conv, bn = seq._modules[a], seq._modules[b]
        if isinstance(conv, nn.Conv2d) and isinstance(bn, _BN):
            seq._modules[a] = fold_conv_bn(conv, bn)
            seq._modules[b] = nn.Identity()
            folded += 1
    return folded


def fold_bn(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Fold every BatchNorm that directly follows a convolution into that convolution.

    Args:
        model: an sszoo :class:`~sszoo.models.Segmentor` (or any module built from ``nn.Sequential`` and
            sszoo/torchvision ResNet blocks). Its BatchNorm running statistics are used, which is what
            eval mode computes.
        inplace: change ``model`` itself instead of a deep copy.

    Returns:
        the folded model, in eval mode. Each folded BatchNorm is replaced by ``nn.Identity``; its conv
        gains a bias. BatchNorms not directly after a conv are left as they are
        (:func:`count_batchnorms` tells how many remain). Logits equal the original eval-mode logits up
        to float rounding.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"fold_bn expects a torch.nn.Module, got {type(model).__name__}")
    if not inplace:
        model = copy.deepcopy(model)
    pairs = {**_torchvision_pairs(), **_NAMED_PAIRS}
    for module in list(model.modules()):
        # exact nn.Sequential, or a subclass that keeps Sequential's forward (applies children in order)
        if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
            _fold_sequential(module)
        for conv_name, bn_name in pairs.get(type(module), ()):
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, _BN):
                setattr(module, conv_name, fold_conv_bn(conv, bn))
                setattr(module, bn_name, nn.Identity())
    return model.eval()


_fold_bn = fold_bn  # prepare_for_inference's argument of the same name shadows the function


def count_batchnorms(model: nn.Module) -> int:
    """How many BatchNorm layers ``model`` has (0 after :func:`fold_bn` on an sszoo model)."""
    return sum(isinstance(m, _BN) for m in model.modules())


def _have_cxx_compiler() -> bool:
    cxx = os.environ.get("CXX")
    if cxx and shutil.which(cxx):
        return True
    return any(shutil.which(c) for c in ("g++", "c++", "clang++"))


def compile_support(device: Union[str, torch.device] = "cpu") -> tuple[bool, str]:
    """Whether ``torch.compile``'s default (inductor) backend can run on ``device``, and if not, why.

    Returns ``(True, "")`` or ``(False, reason)``; the reason names what to install.
    """
    device = torch.device(device)
    if not hasattr(torch, "compile"):
        return False, f"torch {torch.__version__} has no torch.compile; install torch >= 2.4"
    try:
        importlib.import_module("torch._dynamo")  # fails on a few unsupported Python versions
    except Exception as e:  # pragma: no cover - depends on the installation
        return False, f"torch.compile is unavailable in this installation: {e}"
    if device.type == "cpu":
        if not _have_cxx_compiler():
            return False, "torch.compile on CPU needs a C++ compiler (g++ or clang++ on PATH, or $CXX)"
    elif device.type == "cuda":
        if not torch.cuda.is_available():
            return False, "CUDA is not available"
        try:
            importlib.import_module("triton")
        except Exception:
            return False, "torch.compile on CUDA needs triton (pip install triton)"
    return True, ""


def compile_model(model: nn.Module, *, mode: Optional[str] = None, fullgraph: bool = True,
                  dynamic: Optional[bool] = None, device: Union[str, torch.device, None] = None) -> nn.Module:
    """``torch.compile(model)`` with checks; returns the compiled module (compiled on its first call).

    Args:
        model: the network, already on its device.
        mode: ``None`` (default), ``"reduce-overhead"`` (CUDA graphs) or ``"max-autotune"``.
        fullgraph: fail instead of silently splitting the forward at graph breaks; sszoo's forward has none.
        dynamic: ``False`` to specialise on the input shape (fastest for a fixed size), ``None`` to let
            torch decide after a shape change.
        device: where it will run (default: the device of the model's first parameter).
    """
    if mode not in (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"):
        raise ValueError(f"unknown torch.compile mode {mode!r}; use None, 'reduce-overhead' or 'max-autotune'")
    if device is None:
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
    ok, why = compile_support(device)
    if not ok:
        raise RuntimeError(f"cannot compile the model: {why}. Run it without compile=... instead.")
    return torch.compile(model, mode=mode, fullgraph=fullgraph, dynamic=dynamic)


def prepare_for_inference(model: nn.Module, *, channels_last: bool = True, fold_bn: bool = True,
                          compile: Union[bool, str] = False, device: Union[str, torch.device, None] = None,
                          dtype: Optional[torch.dtype] = None, inplace: bool = False) -> nn.Module:
    """Eval mode, no gradients, BN folding, device/dtype, memory format and compilation in one call.

    Args:
        model: the network (left untouched unless ``inplace``).
        channels_last: store conv weights as N x H x W x C, the layout cuDNN/oneDNN convolutions run
            fastest in (feed inputs as ``x.contiguous(memory_format=torch.channels_last)`` too).
        fold_bn: merge BatchNorms into the convs before them (see :func:`fold_bn`).
        compile: ``False``, ``True`` (inductor, default mode) or a ``torch.compile`` mode string such as
            ``"max-autotune"`` or ``"reduce-overhead"``.
        device: move the model there (default: leave it where it is).
        dtype: cast the parameters (e.g. ``torch.float16`` for pure half inference on a GPU); the
            default keeps float32 and relies on autocast for mixed precision.
        inplace: change ``model`` itself instead of a deep copy.

    Returns:
        the prepared module (a compiled wrapper when ``compile`` is set; it shares its parameters).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"prepare_for_inference expects a torch.nn.Module, got {type(model).__name__}")
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating torch.dtype such as torch.float16, got {dtype!r}")
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    if fold_bn:
        _fold_bn(model, inplace=True)
    model.requires_grad_(False)
    if device is not None or dtype is not None:
        model.to(device=device, dtype=dtype)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile:
        mode = compile if isinstance(compile, str) else None
        return compile_model(model, mode=mode, device=device)
    return model
