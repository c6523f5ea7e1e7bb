"""Export a zoo network to ONNX or to a ``torch.export`` program, checked against PyTorch right away.

    python -m sszoo.export --model pspnet_r18_d8_cityscapes --weights ckpt.safetensors \\
        --format onnx --out pspnet.onnx --height 512 --width 1024 [--dynamic]

The exported graph has the contract of :meth:`sszoo.models.Segmentor.forward`: input ``input`` is a
normalised float32 tensor N x 3 x H x W (RGB, the entry's mean/std, which are also written into the
ONNX metadata), output ``logits`` is N x K x H x W.

PSPNet's pyramid pooling uses adaptive average pooling with 2, 3 and 6 bins. ONNX has no such operator
(its AveragePool has one fixed kernel), and a fixed kernel only reproduces adaptive pooling when the
feature size is a multiple of the bin count. :class:`MatrixAdaptiveAvgPool2d` computes the same numbers
as ``nn.AdaptiveAvgPool2d`` for every size as two small averaging matrices, built from the input's shape
inside the graph, so static and ``--dynamic`` exports both work.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import inspect
import json
import math
import os
import sys
import warnings
from typing import Optional, Sequence

import torch
from torch import nn

from .atomic import atomic_path
from .models.layers import pool_matrix

FORMATS = ("onnx", "pt2")
DEFAULT_OPSET = 17
DEFAULT_ATOL = 1e-4


class ExportError(ValueError):
    """An export that cannot be done as asked (bad size, bad format, a failed check)."""


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """What :func:`export_onnx` / :func:`export_pt2` wrote and how well it matched PyTorch."""

    path: str
    format: str
    input_shape: tuple[int, int, int, int]
    dynamic: bool
    max_abs_diff: Optional[float]       # largest |exported - PyTorch| over the checked inputs
    checked_shapes: tuple[tuple[int, int, int, int], ...]
    atol: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class MatrixAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d(output_size)`` written as ``A_h @ x @ A_w^T`` so that ONNX can express it.

    The matrices (:func:`sszoo.models.layers.pool_matrix`) are computed from the input shape with integer
    tensor ops, so they follow a dynamic input size in an exported graph.
    """

    def __init__(self, output_size: int | tuple[int, int]) -> None:
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        if any(s is None for s in output_size):
            raise ExportError("adaptive pooling with a None output size is not supported for export")
        self.output_size = (int(output_size[0]), int(output_size[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a_h = pool_matrix(x.shape[-2], self.output_size[0], x)
        a_w = pool_matrix(x.shape[-1], self.output_size[1], x)
        return torch.matmul(torch.matmul(a_h, x), a_w.transpose(0, 1))

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


def make_exportable(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode, without the auxiliary head, whose adaptive poolings ONNX can express.

    Global pooling (one bin) stays as it is: ONNX has ``GlobalAveragePool`` for it. Modules that draw random
    numbers in every forward (SegNeXt's NMF bases) are fixed to one draw from the global generator by their
    ``make_deterministic``: ONNX's random operators cannot give PyTorch's numbers, so the exported network is
    that fixed-draw copy, which the check compares with.
    """
    model = copy.deepcopy(model).eval()
    for m in model.modules():
        if callable(getattr(m, "make_deterministic", None)):
            m.make_deterministic()
    if getattr(model, "auxiliary_head", None) is not None and hasattr(model, "drop_auxiliary_head"):
        model.drop_auxiliary_head()  # training-only; keeps the graph and the file smaller
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d):
                size = child.output_size
                size = (size, size) if isinstance(size, int) else tuple(size)
                if size != (1, 1):
                    setattr(parent, name, MatrixAdaptiveAvgPool2d(size))
    return model


def output_stride(model: nn.Module) -> int:
    """The backbone's total stride (8, 16 or 32): one feature pixel per ``output_stride`` input pixels."""
    config = getattr(model, "config", None)
    if config is None:
        return 8
    stride = getattr(config.backbone, "output_stride", None)  # backbones that are not ResNets say it themselves
    if stride is not None:
        return int(stride)
    return 4 * math.prod(config.backbone.strides)  # the stem and its max-pool downsample by 4


def size_divisor(model: nn.Module) -> int:
    """What the input sides must be multiples of (1: any size; 8 for DDRNet/PIDNet, whose branches only
    line up then)."""
    config = getattr(model, "config", None)
    return int(getattr(config.backbone, "size_divisor", 1)) if config is not None else 1


def check_export_size(model: nn.Module, height: int, width: int) -> None:
    """Refuse an export size the network cannot take, with what to do instead.

    Sides must be whole numbers of at least one output-stride cell: a smaller input reaches the heads as
    less than one feature pixel, where the pooling pyramid and the decoder carry no spatial information.
    """
    stride = output_stride(model)
    for side, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ExportError(f"export {side} must be an integer number of pixels, got {value!r}")
        if value < stride:
            raise ExportError(
                f"export {side} {value} is smaller than this network's output stride {stride}: the backbone "
                f"reduces every {stride} x {stride} pixels to one feature pixel, so the input must be at least "
                f"{stride} pixels per side; use --height/--width of {stride} or more (e.g. 512)")
        divisor = size_divisor(model)
        if value % divisor:
            raise ExportError(f"export {side} {value} is not a multiple of {divisor}, which this network needs; "
                              f"use {value + (-value) % divisor}")
        if value > 8192:
            raise ExportError(f"export {side} {value} is larger than 8192 pixels; export at the size you "
                              "infer at (e.g. 512 x 1024) or use --dynamic")


def _example_input(height: int, width: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, height, width, generator=g)


def _metadata(model: nn.Module) -> dict[str, str]:
    """Preprocessing facts a consumer of the ONNX file needs (the graph takes normalised input)."""
    meta = {"producer": "sszoo", "input": "float32 N x 3 x H x W, RGB, (x - mean) / std on the 0-255 scale",
            "output": "logits N x K x H x W"}
    entry = getattr(model, "entry", None)
    if entry is not None:
        meta.update(model=entry.name, dataset=entry.dataset.key, mean=json.dumps(list(entry.test.mean)),
                    std=json.dumps(list(entry.test.std)), num_classes=str(model.num_classes),
                    class_names=json.dumps(list(entry.dataset.class_names))
                    if model.num_classes == entry.dataset.num_classes else "")
    return meta


def _check_shapes(height: int, width: int, dynamic: bool, stride: int, divisor: int = 1
                  ) -> list[tuple[int, int, int, int]]:
    shapes = [(1, 3, height, width)]
    if dynamic:  # a different batch and a size that is not a multiple of the stride (but is of the divisor)
        def side(v: int) -> int:
            return v + (-v) % divisor
        shapes.append((2, 3, side(max(stride, height // 2 + 7)), side(max(stride, width // 2 + 3))))
    return shapes


def export_onnx(model: nn.Module, path: str | os.PathLike, *, height: int = 512, width: int = 512,
                dynamic: bool = False, opset: int = DEFAULT_OPSET, check: bool = True,
                atol: float = DEFAULT_ATOL) -> ExportReport:
    """Export ``model`` to an ONNX file and (with ``check``) compare onnxruntime's logits with PyTorch's.

    Args:
        model: a :class:`sszoo.models.Segmentor` (e.g. from :func:`sszoo.create_model`).
        path: the ``.onnx`` file to write; it is written to a temporary file and renamed into place only
            after the check passes.
        height, width: the input size of the graph (with ``dynamic``, the size it is traced at).
        dynamic: batch, height and width become symbolic dimensions.
        opset: ONNX opset version.
        check: run the file with onnxruntime on random inputs and require ``max |diff| <= atol``.

    Raises:
        ExportError: an impossible size, or logits that differ from PyTorch by more than ``atol``.
        ImportError: onnx/onnxruntime missing (``pip install "sszoo[dev]"``).
    """
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError as e:  # pragma: no cover - the dev extra installs it
        raise ImportError("ONNX export needs the onnx package: pip install onnx onnxruntime "
                          "(or pip install \"sszoo[dev]\")") from e
    check_export_size(model, height, width)
    net = make_exportable(model)
    x = _example_input(height, width)
    kwargs = dict(input_names=["input"], output_names=["logits"], opset_version=opset, do_constant_folding=True)
    if dynamic:
        kwargs["dynamic_axes"] = {"input": {0: "batch", 2: "height", 3: "width"},
                                  "logits": {0: "batch", 2: "height", 3: "width"}}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        # The TorchScript-based exporter: it needs no onnxscript and exists on every torch >= 2.4.
        kwargs["dynamo"] = False
    with atomic_path(path) as tmp:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer/deprecation chatter about the legacy exporter
            torch.onnx.export(net, (x,), tmp, **kwargs)
        _add_onnx_metadata(tmp, _metadata(model))
        shapes = _check_shapes(height, width, dynamic, output_stride(model), size_divisor(model))
        diff = verify_onnx(tmp, net, shapes, atol=atol) if check else None
    return ExportReport(os.path.abspath(path), "onnx", (1, 3, height, width), dynamic, diff,
                        tuple(shapes) if check else (), atol)


def _add_onnx_metadata(path: str, meta: dict[str, str]) -> None:
    import onnx
    proto = onnx.load(path)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, path)


def verify_onnx(path: str | os.PathLike, model: nn.Module, shapes: Sequence[tuple[int, int, int, int]], *,
                atol: float = DEFAULT_ATOL) -> float:
    """Run the ONNX file with onnxruntime on seeded random inputs of ``shapes``; the largest |diff| to PyTorch.

    Raises :class:`ExportError` when it exceeds ``atol``.
    """
    try:
        import onnxruntime as ort
    except ImportError as e:  # pragma: no cover - the dev extra installs it
        raise ImportError("checking an ONNX export needs onnxruntime: pip install onnxruntime "
                          "(or pip install \"sszoo[dev]\"); pass check=False / --no-check to skip") from e
    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for seed, shape in enumerate(shapes):
        x = _example_input(shape[2], shape[3], batch=shape[0], seed=seed)
        with torch.no_grad():
            expected = model.eval()(x).float().numpy()
        got = session.run(["logits"], {"input": x.numpy()})[0]
        if got.shape != expected.shape:
            raise ExportError(f"ONNX output shape {got.shape} differs from PyTorch's {expected.shape} "
                              f"for input {tuple(shape)}")
        worst = max(worst, float(abs(got - expected).max()))
    if worst > atol:
        raise ExportError(f"ONNX logits differ from PyTorch's by up to {worst:.3g} (> tolerance {atol:g}); "
                          "the file was not written. Please report this with the model name and size.")
    return worst


def export_program(model: nn.Module, *, height: int = 512, width: int = 512,
                   dynamic: bool = False) -> "torch.export.ExportedProgram":
    """``torch.export`` the network (no auxiliary head) for an N x 3 x ``height`` x ``width`` input.

    With ``dynamic`` the batch, height and width are symbolic (height and width from one output
    stride + 1 up to 8192).
    """
    check_export_size(model, height, width)
    net = copy.deepcopy(model).eval()
    if getattr(net, "auxiliary_head", None) is not None and hasattr(net, "drop_auxiliary_head"):
        net.drop_auxiliary_head()
    # A batch of 2: torch.export specialises dimensions of size 1 to constants.
    x = _example_input(height, width, batch=2 if dynamic else 1)
    dynamic_shapes = None
    if dynamic:
        # A side of exactly one stride gives one feature pixel, which the traced graph treats as a special
        # case; the symbolic range starts one pixel above it (the size check still allows it statically).
        stride = output_stride(model)
        dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=1024),
                           2: torch.export.Dim("height", min=stride + 1, max=8192),
                           3: torch.export.Dim("width", min=stride + 1, max=8192)},)
    with torch.no_grad():
        return torch.export.export(net, (x,), dynamic_shapes=dynamic_shapes)


def export_pt2(model: nn.Module, path: str | os.PathLike, *, height: int = 512, width: int = 512,
               dynamic: bool = False, check: bool = True, atol: float = DEFAULT_ATOL) -> ExportReport:
    """Save a ``torch.export`` program (``torch.export.save``, load with ``torch.export.load``) and check it."""
    program = export_program(model, height=height, width=width, dynamic=dynamic)
    shapes = _check_shapes(height, width, dynamic, output_stride(model), size_divisor(model))
    with atomic_path(path) as tmp:
        torch.export.save(program, tmp)
        diff = None
        if check:
            loaded = torch.export.load(tmp).module()
            diff = 0.0
            for seed, shape in enumerate(shapes):
                x = _example_input(shape[2], shape[3], batch=shape[0], seed=seed)
                with torch.no_grad():
                    diff = max(diff, float((loaded(x) - model.eval()(x)).abs().max()))
            if diff > atol:
                raise ExportError(f"the exported program's logits differ from PyTorch's by {diff:.3g} (> {atol:g})")
    return ExportReport(os.path.abspath(path), "pt2", (1, 3, height, width), dynamic, diff,
                        tuple(shapes) if check else (), atol)


def export(model: nn.Module, path: str | os.PathLike, *, format: str = "onnx", **kwargs) -> ExportReport:
    """Export ``model`` to ``path`` in ``format`` (``"onnx"`` or ``"pt2"``); see :func:`export_onnx`."""
    if format == "onnx":
        return export_onnx(model, path, **kwargs)
    if format == "pt2":
        kwargs.pop("opset", None)
        return export_pt2(model, path, **kwargs)
    raise ExportError(f"unsupported export format {format!r}; choose one of {', '.join(FORMATS)} "
                      "(onnx for onnxruntime/TensorRT, pt2 for torch.export.load)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sszoo.export",
        description="Export a zoo model to ONNX (checked with onnxruntime) or a torch.export program (.pt2).")
    p.add_argument("--model", required=True, help="zoo name, e.g. pspnet_r101_d8_cityscapes")
    p.add_argument("--weights", default=None,
                   help="checkpoint: a local file, http(s) URL or hf-hub:org/repo; default: the entry's "
                        "published weights")
    p.add_argument("--random-weights", action="store_true",
                   help="export with random weights (to check the graph without downloading)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="class count of a fine-tuned checkpoint (detected from the checkpoint when omitted)")
    p.add_argument("--format", default="onnx", help=f"one of {', '.join(FORMATS)} (default onnx)")
    p.add_argument("--out", required=True, help="output file (.onnx or .pt2)")
    p.add_argument("--height", type=int, default=512, help="input height (default 512)")
    p.add_argument("--width", type=int, default=512, help="input width (default 512)")
    p.add_argument("--dynamic", action="store_true", help="symbolic batch, height and width")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--atol", type=float, default=DEFAULT_ATOL,
                   help=f"largest allowed |exported - PyTorch| logit difference (default {DEFAULT_ATOL:g})")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime / reload comparison")
    return p


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """CLI entry point; returns the :class:`ExportReport` as a dict. Exits with status 2 on bad input."""
    args = build_parser().parse_args(argv)
    from .hub import CacheCorruptError, CheckpointError, DownloadError
    from .predict import load_model  # one place that turns --model/--weights into a network

    if args.format not in FORMATS:
        _fail(f"unsupported export format {args.format!r}; choose one of {', '.join(FORMATS)}")
    if args.random_weights and args.weights:
        _fail("--weights and --random-weights exclude each other")
    try:
        weights = False if args.random_weights else (args.weights if args.weights else True)
        model = load_model(args.model, weights, num_classes=args.num_classes)
        report = export(model, args.out, format=args.format, height=args.height, width=args.width,
                        dynamic=args.dynamic, check=not args.no_check, atol=args.atol,
                        **({"opset": args.opset} if args.format == "onnx" else {}))
    except (ExportError, KeyError, ValueError, OSError, ImportError, CheckpointError, DownloadError,
            CacheCorruptError) as e:
        _fail(str(e))
    diff = "not checked" if report.max_abs_diff is None else f"max |diff| {report.max_abs_diff:.2e} vs PyTorch"
    print(f"wrote {report.path} ({report.format}, input {'x'.join(map(str, report.input_shape))}"
          f"{', dynamic' if report.dynamic else ''}; {diff})")
    return report.to_dict()


def _fail(message: str) -> None:
    print(f"sszoo.export: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def console_main() -> int:
    """``sszoo-export``: run :func:`main` and exit 0 (``main`` returns a dict, which ``sys.exit`` would treat as failure)."""
    main()
    return 0


if __name__ == "__main__":
    main()
