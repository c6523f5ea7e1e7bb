"""Benchmark sszoo against torchvision and MMSegmentation in one process and one run.

    python -m benchmarks.run --preset cpu              # a few minutes on a small CPU machine
    python -m benchmarks.run --preset gpu              # the GPU table of issue 6 (one CUDA device)
    python -m benchmarks.run --models pspnet_r101_d8_cityscapes --device cuda --precision fp16 bf16 \\
        --variants eager opt compile graphs --size 1024x2048 --iters 200 --warmup 5

Inference follows the reference fps protocol: batch 1, whole image, forward + resize of the logits to
the input + argmax, synchronised timing after warm-up, no data loading. Training times one SGD step
(forward, decode + auxiliary loss, backward, update). All candidates of one measurement are timed
round-robin in the same process; results go to ``benchmarks/results/{tag}.json`` and ``{tag}.md``.
See docs/benchmarks.md for every option.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import shlex
import sys
import tempfile
from typing import Callable, Optional

import torch

import sszoo
from sszoo.atomic import write_text
from sszoo.cliargs import parse_pair
from sszoo.optimize import compile_support

from . import peers as P
from .measure import Timing, count_flops, environment, forward_flops, matmul_peak, time_interleaved

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
ARCHS = ("fcn", "pspnet", "deeplabv3", "deeplabv3plus")
VARIANTS = ["eager", "fold", "opt", "compile", "graphs", "helper"]
PRESETS = {
    # Small enough for a 2-core CPU in a few minutes, big enough that convolutions dominate.
    "cpu": dict(device="cpu", models=[f"{a}_r50_d8_cityscapes" for a in ARCHS], train_models=["fcn_r50_d8_cityscapes"],
                precision=["fp32"], variants=["eager", "fold", "opt"], size="128x256", iters=10, warmup=2,
                throughput_batch=0, train_size="64x128", train_batch=2, train_iters=6, train_warmup=1,
                max_batch=False, tag="cpu"),
    # The real-time networks on the CPU at their test size, against MMSegmentation and ONNX Runtime (issue 13):
    # models=None picks one entry per method (REALTIME_METHODS); BN calibrated at 512x1024 (LRASPP needs >= 385 px).
    "realtime": dict(device="cpu", models=None, train_models=[], precision=["fp32"], variants=["eager", "fold"],
                     size="test", calib_size="512x1024", iters=3, warmup=1, throughput_batch=0,
                     peers=["mmseg", "onnxruntime"], max_batch=False, tag="realtime-cpu"),
    # The transformer and mask-classification methods (issue 14) on the CPU at 512 x 512, against MMSegmentation
    # with the same weights: models=None picks one ADE20K entry per method (TRANSFORMER_METHODS), the smallest.
    "transformers": dict(device="cpu", models=None, train_models=[], precision=["fp32"], variants=["eager"],
                         size="512x512", iters=3, warmup=1, throughput_batch=0, peers=["mmseg"], max_batch=False,
                         tag="transformers-cpu"),
    # Issue 6's GPU table: R-50-D8 and R-101-D8 of the four methods, fp16 and bf16.
    "gpu": dict(device="cuda", models=[f"{a}_r{d}_d8_cityscapes" for d in (50, 101) for a in ARCHS], train_models=None,
                precision=["fp16", "bf16"], variants=["eager", "opt", "compile", "graphs", "helper"], size="1024x2048",
                iters=200, warmup=5, throughput_batch=4, train_size="512x1024", train_batch=2, train_iters=20,
                train_warmup=5, max_batch=True, tag=None),
}


# the methods of the real-time table, in its order, and how to pick each one's smallest network
REALTIME_METHODS = ("fastscnn", "cgnet", "erfnet", "mobilenet_v3", "mobilenet_v2", "bisenetv1", "bisenetv2",
                    "icnet", "stdc", "ddrnet", "pidnet")


# the methods of the transformer table (BEiT/MAE accept only 640/512 inputs, SETR and SAN are large: left out)
TRANSFORMER_METHODS = ("segformer", "swin", "twins", "convnext", "poolformer", "segnext", "vit", "segmenter", "dpt",
                       "knet", "maskformer", "mask2former")


def realtime_models(methods: tuple[str, ...] = REALTIME_METHODS, dataset: str = "cityscapes") -> list[str]:
    """Per method, its ``dataset`` entry with the fewest parameters (fastest), by name order on ties."""
    from sszoo.models import build_model
    from sszoo.registry import list_entries

    picked = []
    for method in methods:
        entries = [e for e in list_entries() if e.method == method and e.dataset.key == dataset]
        if not entries:
            continue

        def size(e):
            with torch.device("meta"):
                return sum(p.numel() for p in build_model(e.arch).parameters())
        picked.append(min(entries, key=lambda e: (size(e), e.name)).name)
    return picked


def test_size(entry) -> tuple[int, int]:
    """The entry's test input size (h, w): its keep-ratio resize of a Cityscapes-shaped 1024 x 2048 image, or its
    scale as given."""
    w, h = entry.test.scale
    if entry.test.keep_ratio:
        s = min(max(w, h) / 2048, min(w, h) / 1024)
        return int(1024 * s + 0.5), int(2048 * s + 0.5)
    return h, w


def parse_size(text: str) -> tuple[int, int]:
    """'1024x2048' -> (1024, 2048), height first; at least 32 pixels a side."""
    return parse_pair(text, "HEIGHTxWIDTH", "1024x2048", minimum=32)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), help="defaults for a CPU or GPU run; explicit options win")
    ap.add_argument("--models", nargs="+", help="zoo names (see sszoo.list_models())")
    ap.add_argument("--train-models", nargs="*", help="models to train-benchmark (default: --models; none: no training)")
    ap.add_argument("--device", help="cpu or cuda[:N] (default: cuda when available)")
    ap.add_argument("--precision", nargs="+", choices=sorted(DTYPES), help="fp32 runs as is; fp16/bf16 under autocast")
    ap.add_argument("--variants", nargs="+", choices=VARIANTS,
                    help="sszoo inference variants: eager; fold = BN folded; opt = BN folded + channels_last; compile = opt + "
                         "torch.compile; graphs = opt replayed from a CUDA graph; helper = opt called through "
                         "sszoo.inference.infer on a uint8 image (normalisation and copy included)")
    ap.add_argument("--peers", nargs="*", choices=["torchvision", "mmseg", "onnxruntime"], default=None,
                    help="peers to run in the same process (default torchvision and mmseg; give none to skip); "
                         "onnxruntime runs sszoo's exported model (CPU, fp32)")
    ap.add_argument("--size", type=lambda t: t if t == "test" else parse_size(t),
                    help="inference input HxW (reference: 1024x2048), or 'test': each entry's test size")
    ap.add_argument("--calib-size", type=parse_size, help="BatchNorm calibration batch HxW (default 128x256)")
    ap.add_argument("--iters", type=int, help="timed inference calls (reference: 200)")
    ap.add_argument("--warmup", type=int, help="untimed calls first (reference: 5)")
    ap.add_argument("--throughput-batch", type=int, help="also time inference at this batch size (0: skip)")
    ap.add_argument("--train-size", type=parse_size, help="training crop HxW (reference: 512x1024)")
    ap.add_argument("--train-batch", type=int, help="training batch (reference: 2)")
    ap.add_argument("--train-iters", type=int)
    ap.add_argument("--train-warmup", type=int)
    ap.add_argument("--max-batch", action=argparse.BooleanOptionalAction, default=None,
                    help="also find and time the largest training batch that fits (CUDA only)")
    ap.add_argument("--stat", choices=["median", "min"],
                    help="statistic behind fps, s/iter and the ratios (default: median on CUDA; min on CPU, "
                         "where other processes only ever add time, so the minimum is the least disturbed)")
    ap.add_argument("--cudnn-benchmark", action=argparse.BooleanOptionalAction, default=True,
                    help="let cuDNN pick the fastest kernels for the fixed shapes (default on)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"), help="results folder")
    ap.add_argument("--tag", help="result file name without extension (default: from the device)")
    return ap


def resolve_args(argv: Optional[list[str]]) -> argparse.Namespace:
    ap = build_parser()
    args = ap.parse_args(argv)
    preset = dict(PRESETS[args.preset]) if args.preset else {}
    fallback = dict(device="cuda" if torch.cuda.is_available() else "cpu", models=None, train_models=None,
                    precision=None, variants=None, size=None, iters=None, warmup=None, throughput_batch=None,
                    train_size=None, train_batch=2, train_iters=None, train_warmup=None, max_batch=False, tag=None,
                    calib_size=None)
    for key, default in fallback.items():
        if getattr(args, key) is None:
            setattr(args, key, preset.get(key, default))
    for key in ("size", "train_size", "calib_size"):
        if isinstance(getattr(args, key), str) and getattr(args, key) != "test":
            setattr(args, key, parse_size(getattr(args, key)))
    if args.preset == "realtime" and not args.models:
        args.models = realtime_models()
    if args.preset == "transformers" and not args.models:
        args.models = realtime_models(TRANSFORMER_METHODS, "ade20k")
    if args.peers is None and "peers" in preset:
        args.peers = list(preset["peers"])
    if not args.models:
        ap.error("give --models NAME ... or a --preset")
    for name in args.models + (args.train_models or []):
        sszoo.get_entry(name)  # an unknown name fails here with the registry's suggestions
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        ap.error("--device cuda was asked for but CUDA is not available; use --device cpu or --preset cpu")
    args.precision = args.precision or (["fp16", "bf16"] if cuda else ["fp32"])
    args.stat = args.stat or ("median" if cuda else "min")
    args.variants = args.variants or (VARIANTS if cuda else ["eager", "opt"])
    if not cuda and "graphs" in args.variants:
        ap.error("--variants graphs needs a CUDA device")
    args.size = args.size or ((1024, 2048) if cuda else (128, 256))
    args.iters = args.iters or (200 if cuda else 3)
    args.warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    args.throughput_batch = args.throughput_batch if args.throughput_batch is not None else (4 if cuda else 0)
    args.train_size = args.train_size or ((512, 1024) if cuda else (128, 256))
    args.train_iters = args.train_iters or (20 if cuda else 2)
    args.train_warmup = args.train_warmup if args.train_warmup is not None else (5 if cuda else 1)
    if args.train_models is None:
        args.train_models = list(args.models)
    if args.max_batch and not cuda:
        ap.error("--max-batch needs a CUDA device (it searches for the batch that fits in GPU memory)")
    args.peers = ["torchvision", "mmseg"] if args.peers is None else args.peers
    if "onnxruntime" in args.peers and cuda:
        ap.error("--peers onnxruntime runs on the CPU; use --device cpu")
    args.calib_size = args.calib_size or (128, 256)
    args.tag = args.tag or ("cpu" if not cuda else "gpu-" + torch.cuda.get_device_name().replace(" ", "_"))
    if args.train_models and args.train_batch < 2:
        ap.error("--train-batch must be at least 2: BatchNorm after the 1x1 pooling branches of PSPNet/DeepLabV3 "
                 "needs more than one value per channel in training")
    for key in ("iters", "train_iters"):
        if getattr(args, key) < 1:
            ap.error(f"--{key.replace('_', '-')} must be at least 1")
    return args


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    # cache_enabled=False: the weight-cast cache must not outlive a CUDA-graph capture
    return torch.autocast(device.type, dtype=DTYPES[precision], cache_enabled=False)


# -------------------------------------------------------------------------------------- inference
def inference_step(c: P.Candidate, x: torch.Tensor, device: torch.device, precision: str) -> Callable[[], torch.Tensor]:
    """One call of the reference protocol: forward (logits resized to the input) + argmax."""
    xin = c.prepare_input(x)

    def step():
        with torch.no_grad(), autocast(device, precision):
            return c.logits(xin).argmax(1)

    if c.variant != "graphs":
        return step
    # CUDA graph: record the whole step once after warm-up on a side stream, then replay it.
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        graph_out = step()

    def replay():
        graph.replay()
        return graph_out
    return replay


def bench_inference(name: str, args, device: torch.device, sz, tv, mm, notes: list[str], ort_ok: bool = False
                    ) -> list[dict]:
    entry = sszoo.get_entry(name)
    h, w = test_size(entry) if args.size == "test" else args.size
    rows = []
    cands = []
    for v in args.variants:
        if v == "helper":
            continue  # timed through sszoo.inference below
        if v == "compile":
            ok, why = compile_support(device)
            if not ok:
                notes.append(f"{name}: variant compile skipped: {why}")
                continue
        cands.append(P.sszoo_inference(sz, v, device))
    tv_c = P.torchvision_inference(tv, device) if tv is not None else None
    mm_c = P.mmseg_inference(mm, device) if mm is not None else None
    ort_c = None
    if ort_ok:
        try:
            ort_c = P.onnxruntime_inference(sz, (h, w), args.tmp)
        except Exception as e:  # an export failure must not sink the run: it is reported
            notes.append(f"{name}: ONNX export for onnxruntime failed: {type(e).__name__}: {e}")
    cands += [c for c in (tv_c, mm_c, ort_c) if c is not None]
    flops = {"sszoo": forward_flops(sz, (1, 3, h, w)), "mmseg": 0}
    if ort_c is not None:
        flops["onnxruntime"] = flops["sszoo"]  # sszoo's graph
        eager = P.sszoo_inference(sz, "eager", device)
        x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            ref = eager.logits(x)
            diff = (ort_c.logits(x) - ref).abs().max().item()
        notes.append(f"{name}: ONNX Runtime vs sszoo logits at {h}x{w}, fp32: max|diff| {diff:.2e} "
                     f"(logit range {ref.abs().max().item():.1f})")
        del eager
    if tv_c is not None:
        flops["torchvision"] = forward_flops(tv_c.model, (1, 3, h, w), lambda m, t: m(t)["out"])
    if mm_c is not None:
        flops["mmseg"] = flops["sszoo"]  # the same network, as its logits show:
        eager = P.sszoo_inference(sz, "eager", device)
        x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(3)).to(device)
        with torch.no_grad():
            # the same global seed before each: SegNeXt's head draws random NMF bases in every forward
            torch.manual_seed(0)
            ref = mm_c.logits(x)
            torch.manual_seed(0)
            diff = (eager.logits(x) - ref).abs().max().item()
        notes.append(f"{name}: sszoo vs MMSegmentation logits with the same weights at {h}x{w}, fp32: "
                     f"max|diff| {diff:.2e} (logit range {ref.abs().max().item():.1f})")
        del eager
    batches = [1] + ([args.throughput_batch] if args.throughput_batch and args.throughput_batch > 1 else [])
    for precision in args.precision:
        for batch in batches:
            g = torch.Generator(device="cpu").manual_seed(1)
            x = torch.randn(batch, 3, h, w, generator=g).to(device)
            fns = {}
            for c in cands:
                try:
                    fns[(c.impl, c.variant)] = inference_step(c, x, device, precision)
                except Exception as e:  # one candidate failing (e.g. a compile error) must not sink the run
                    notes.append(f"{name}: {c.impl}/{c.variant} {precision} b{batch} failed: {type(e).__name__}: {e}")
            if "helper" in args.variants:
                helper = _helper_step(sz, entry, device, precision, batch, (h, w), notes)
                if helper is not None:
                    fns[("sszoo", "helper")] = helper
            if device.type == "cuda":
                torch.cuda.synchronize()
            timings = time_interleaved(fns, device, iters=args.iters, warmup=args.warmup)
            for (impl, variant), t in timings.items():
                rows.append(_row(name, entry, "infer", impl, variant, precision, batch, (h, w), t,
                                 flops[impl] * batch, args.peaks.get(precision), args.stat))
    return rows


def _helper_step(sz, entry, device, precision, batch, size, notes) -> Optional[Callable[[], object]]:
    """The user's path: ``sszoo.inference.infer`` on uint8 images in host memory (as decoded), labels out."""
    try:
        from sszoo.inference import Protocol, infer
    except ImportError as e:
        notes.append(f"variant helper skipped: sszoo.inference is not importable ({e})")
        return None
    model = P.sszoo_inference(sz, "opt", device).model
    protocol = Protocol.from_entry(entry).with_(scale=None, mode="whole", crop=None, stride=None)
    g = torch.Generator().manual_seed(4)
    images = torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8, generator=g)
    images = images[0] if batch == 1 else images
    return lambda: infer(model, images, protocol, output="labels", precision=precision, batch_size=batch)


# --------------------------------------------------------------------------------------- training
def _train_step(model: torch.nn.Module, loss_fn, x, y, device, precision) -> Callable[[], None]:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = loss_fn(x, y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
    return step


def _train_candidates(name, entry, args, device, sz, tv, mm, notes) -> list[tuple[str, str, torch.nn.Module, Callable]]:
    """(impl, variant, model, loss_fn) for every model that trains in this run, each its own copy (on the CPU)."""
    out = []
    s_eager = copy.deepcopy(sz).train()
    out.append(("sszoo", "eager", s_eager, P.sszoo_train_loss(s_eager)))
    if device.type == "cuda" or "opt" in args.variants:
        s_cl = copy.deepcopy(sz).train().to(memory_format=torch.channels_last)
        out.append(("sszoo", "channels_last", s_cl, P.sszoo_train_loss(s_cl)))
    if "compile" in args.variants and compile_support(device)[0]:
        s_c = copy.deepcopy(sz).train().to(memory_format=torch.channels_last)
        out.append(("sszoo", "compile", s_c, torch.compile(P.sszoo_train_loss(s_c), fullgraph=True)))
    if tv is not None:
        t = copy.deepcopy(tv).train()
        out.append(("torchvision", "eager", t, P.torchvision_train_loss(t)))
    if mm is not None:
        m = copy.deepcopy(mm).train()
        out.append(("mmseg", "eager", m, P.mmseg_train_loss(m)))
    return out


def _train_data(batch: int, size, num_classes: int, device):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(batch, 3, *size, generator=g)
    y = torch.randint(0, num_classes, (batch, *size), generator=g)
    y[:, : size[0] // 8] = 255  # some ignored pixels, as in real labels
    return x.to(device), y.to(device)


def _peak_memory(model, loss_fn, x, y, device, precision) -> Optional[float]:
    """Peak GPU memory (GB) of training steps of this model alone: torch.cuda.max_memory_allocated."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    step = _train_step(model, loss_fn, x, y, device, precision)
    for _ in range(2):
        step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 1e9


def _largest_batch(sz, size, num_classes, device, precision, cap: int = 64) -> tuple[int, Optional[Timing], Optional[float]]:
    """Double the batch from 2 until a step runs out of GPU memory; time the largest that fitted."""
    best, best_t, best_mem, batch = 0, None, None, 2
    while batch <= cap:
        model = copy.deepcopy(sz).to(device).train().to(memory_format=torch.channels_last)
        try:
            x, y = _train_data(batch, size, num_classes, device)
            x = x.contiguous(memory_format=torch.channels_last)
            mem = _peak_memory(model, P.sszoo_train_loss(model), x, y, device, precision)
            t = time_interleaved({"s": _train_step(model, P.sszoo_train_loss(model), x, y, device, precision)},
                                 device, iters=5, warmup=1)["s"]
            best, best_t, best_mem = batch, t, mem
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            del model
            torch.cuda.empty_cache()
        batch *= 2
    return best, best_t, best_mem


def bench_training(name: str, args, device: torch.device, sz, tv, mm, notes: list[str]) -> list[dict]:
    entry = sszoo.get_entry(name)
    size, batch = args.train_size, args.train_batch
    rows = []
    meta_model = copy.deepcopy(sz).to("meta").train()
    xm = torch.empty(batch, 3, *size, device="meta")
    ym = torch.zeros(batch, *size, dtype=torch.long, device="meta")
    train_flops = count_flops(lambda: P.sszoo_train_loss(meta_model)(xm, ym).backward())
    flops_of = {"sszoo": train_flops, "mmseg": train_flops}  # MMSegmentation's is the same network
    if tv is not None:
        meta_tv = copy.deepcopy(tv).to("meta").train()
        flops_of["torchvision"] = count_flops(lambda: P.torchvision_train_loss(meta_tv)(xm, ym).backward())
        del meta_tv
    del meta_model
    for precision in args.precision:
        cands = _train_candidates(name, entry, args, device, sz, tv, mm, notes)
        x, y = _train_data(batch, size, entry.num_classes, device)
        mems, fns = {}, {}
        # Peak memory of each model alone on the device (Module.to moves in place; the loss closures follow).
        for impl, variant, model, loss_fn in cands:
            xin = x.contiguous(memory_format=torch.channels_last) if variant != "eager" else x
            try:
                model.to(device)
                mems[(impl, variant)] = _peak_memory(model, loss_fn, xin, y, device, precision)
            except Exception as e:
                notes.append(f"{name}: training {impl}/{variant} {precision} failed: {type(e).__name__}: {e}")
            finally:
                model.zero_grad(set_to_none=True)
                model.to("cpu" if device.type == "cuda" else device)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        # Then all of them resident, timed round-robin.
        for impl, variant, model, loss_fn in cands:
            if (impl, variant) in mems:
                xin = x.contiguous(memory_format=torch.channels_last) if variant != "eager" else x
                fns[(impl, variant)] = _train_step(model.to(device), loss_fn, xin, y, device, precision)
        timings = time_interleaved(fns, device, iters=args.train_iters, warmup=args.train_warmup)
        for (impl, variant), t in timings.items():
            row = _row(name, entry, "train", impl, variant, precision, batch, size, t, flops_of[impl],
                       args.peaks.get(precision), args.stat)
            row["peak_mem_gb"] = mems.get((impl, variant))
            rows.append(row)
        del cands, fns
        if args.max_batch:
            b, t, mem = _largest_batch(sz, size, entry.num_classes, device, precision)
            if t is not None:
                row = _row(name, entry, "train", "sszoo", "channels_last", precision, b, size, t,
                           train_flops * b // batch, args.peaks.get(precision), args.stat)
                row["peak_mem_gb"], row["largest_batch"] = mem, True
                rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------- reports
def _row(name, entry, task, impl, variant, precision, batch, size, t: Timing, flops, peak, stat: str = "median") -> dict:
    sec = t.min if stat == "min" else t.median
    row = {"model": name, "arch": f"{entry.method} {entry.backbone}", "task": task, "impl": impl, "variant": variant,
           "precision": precision, "batch": batch, "size": list(size), **t.to_dict(), "stat": stat, "seconds": sec}
    if task == "infer":
        row["fps"] = batch / sec
    else:
        row["s_per_iter"], row["crops_per_s"] = sec, batch / sec
    if flops:
        row["tflop_per_call"] = flops / 1e12
        row["tflops"] = flops / sec / 1e12
        row["peak_fraction"] = (flops / sec) / peak if peak else None
    return row


def add_ratios(rows: list[dict]) -> None:
    """For every sszoo row: its time (``seconds``, the chosen statistic) divided by each peer's in the same measurement (<1: sszoo faster)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if not r.get("largest_batch"):
            groups.setdefault((r["model"], r["task"], r["precision"], r["batch"]), []).append(r)
    for group in groups.values():
        peers_ = {r["impl"]: r for r in group if r["impl"] != "sszoo"}
        for r in group:
            if r["impl"] == "sszoo":
                r["time_ratio"] = {p: r["seconds"] / pr["seconds"] for p, pr in peers_.items()}


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def markdown(report: dict) -> str:
    env, rows = report["environment"], report["results"]
    lines = [f"# sszoo benchmark: {env['device_name']} ({env['device']})", "",
             f"- date: {env['date']}", f"- command: `{report['command']}`",
             "- versions: " + ", ".join(f"{k} {env[k]}" for k in ("python", "torch", "torchvision", "sszoo", "mmseg",
                                                                 "mmengine", "mmcv") if env.get(k)),
             f"- threads: {env['cpu_threads']}; load average (1 min) at start/end: "
             f"{env.get('load_average_1min', '-')}/{env.get('load_average_1min_end', '-')}" if env["device"] == "cpu" else f"- CUDA {env.get('cuda')}, "
             f"cuDNN {env.get('cudnn')}, cudnn.benchmark {report['config']['cudnn_benchmark']}",
             "- matmul peak measured in this run: " + ", ".join(f"{k} {v / 1e12:.2f} TFLOP/s"
                                                              for k, v in report["matmul_peak_flops"].items()),
             f"- times are the {report['config'].get('stat', 'median')} of round-robin calls; "
             "ratio = sszoo time / peer time (below 1: sszoo faster)", ""]
    ort = any(r["impl"] == "onnxruntime" for r in rows)
    for task, title in (("infer", "Inference (forward + resize + argmax)"), ("train", "Training step (SGD)")):
        sel = [r for r in rows if r["task"] == task]
        if not sel:
            continue
        lines += [f"## {title}", ""]
        if task == "infer":
            lines += ["| model | impl | variant | prec | batch | HxW | ms/call | fps | TFLOP/s | % peak | sszoo/torchvision | sszoo/mmseg |"
                      + (" sszoo/onnxruntime |" if ort else ""),
                      "|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if ort else "")]
        else:
            lines += ["| model | impl | variant | prec | batch | HxW | s/iter | crops/s | TFLOP/s | % peak | peak mem GB | sszoo/torchvision | sszoo/mmseg |",
                      "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in sel:
            ratio = r.get("time_ratio", {})
            cells = [r["model"], r["impl"], r["variant"] + (" (largest batch)" if r.get("largest_batch") else ""),
                     r["precision"], str(r["batch"]), "x".join(map(str, r["size"])), _fmt(r["seconds"] * 1e3, ".1f")]
            if task == "infer":
                cells += [_fmt(r["fps"], ".2f")]
            else:
                cells[-1] = _fmt(r["s_per_iter"], ".3f")
                cells += [_fmt(r["crops_per_s"], ".2f")]
            frac = r.get("peak_fraction")
            cells += [_fmt(r.get("tflops"), ".3f"), _fmt(frac * 100 if frac else None, ".1f")]
            if task == "train":
                cells += [_fmt(r.get("peak_mem_gb"), ".2f")]
            cells += [_fmt(ratio.get("torchvision"), ".2f"), _fmt(ratio.get("mmseg"), ".2f")]
            if task == "infer" and ort:
                cells += [_fmt(ratio.get("onnxruntime"), ".2f")]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if report["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in report["notes"]] + [""]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> dict:
    """Run the benchmark; returns the report (also written as JSON and markdown under ``--out``)."""
    args = resolve_args(argv)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = bool(args.cudnn_benchmark)
    notes: list[str] = []
    env = environment(device)
    args.peaks = {p: matmul_peak(device, DTYPES[p]) for p in args.precision}
    mm_ok, mm_why = (P.mmseg_available() if "mmseg" in args.peers else (False, "not requested (--peers)"))
    if "mmseg" in args.peers and not mm_ok:
        notes.append(f"MMSegmentation skipped: {mm_why}")
    tv_ok = "torchvision" in args.peers
    ort_ok, ort_why = (P.onnxruntime_available() if "onnxruntime" in args.peers else (False, ""))
    if "onnxruntime" in args.peers and not ort_ok:
        notes.append(f"ONNX Runtime skipped: {ort_why}")
    tmp = tempfile.TemporaryDirectory(prefix="sszoo-bench-")
    args.tmp = tmp.name
    rows: list[dict] = []
    for name in dict.fromkeys(args.models + args.train_models):
        entry = sszoo.get_entry(name)
        print(f"[benchmarks] {name}", file=sys.stderr, flush=True)
        # BN statistics from one batch of at most 128x256 (no need for more to reach unit scale)
        size = test_size(entry) if args.size == "test" else args.size
        # (no larger than what the model is run at: the training crop only when it is trained here)
        limit = (min(size[0], args.train_size[0]), min(size[1], args.train_size[1])) if name in args.train_models else size
        ch, cw = min(args.calib_size[0], limit[0]), min(args.calib_size[1], limit[1])
        calib = torch.randn(2, 3, ch, cw, generator=torch.Generator().manual_seed(0))
        sz = P.build_sszoo(name, calib)
        tv = mm = None
        tv_name = P.torchvision_peer_name(entry) if tv_ok else None
        if tv_ok and tv_name is None:
            notes.append(f"{name}: torchvision has no {entry.method} {entry.backbone} model; no torchvision ratio")
        if tv_name:
            tv = P.build_torchvision(tv_name, entry.num_classes, calib)
            notes.append(f"{name}: torchvision peer {tv_name} (closest architecture; different heads, see FLOPs)")
        if mm_ok:
            mm = P.build_mmseg(entry, sz.state_dict())
        if name in args.models:
            rows += bench_inference(name, args, device, sz, tv, mm, notes, ort_ok)
        if name in args.train_models:
            rows += bench_training(name, args, device, sz, tv, mm, notes)
        del sz, tv, mm
        if device.type == "cuda":
            torch.cuda.empty_cache()
    # The peak again at the end: on a shared machine a busy start would understate it; keep the better.
    args.peaks = {p: max(v, matmul_peak(device, DTYPES[p])) for p, v in args.peaks.items()}
    for r in rows:
        if r.get("tflops") is not None and args.peaks.get(r["precision"]):
            r["peak_fraction"] = r["tflops"] * 1e12 / args.peaks[r["precision"]]
    add_ratios(rows)
    if hasattr(os, "getloadavg"):
        env["load_average_1min_end"] = os.getloadavg()[0]
    report = {
        "command": "python -m benchmarks.run " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "environment": env,
        "config": {k: v for k, v in vars(args).items() if k not in ("peaks", "tmp")},
        "matmul_peak_flops": args.peaks,
        "results": rows,
        "notes": notes,
    }
    write_text(json.dumps(report, indent=1, default=str) + "\n", os.path.join(args.out, f"{args.tag}.json"))
    write_text(markdown(report), os.path.join(args.out, f"{args.tag}.md"))
    print(markdown(report))
    tmp.cleanup()
    return report


if __name__ == "__main__":
    main()
