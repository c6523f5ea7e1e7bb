"""``python -m sszoo.train``: train or fine-tune a zoo model with its published recipe.

Example (a quick CPU run on generated data)::

    python -m sszoo.data.synthetic data/cityscapes --layout cityscapes --num 32 --split train
    python -m sszoo.data.synthetic data/cityscapes --layout cityscapes --num 8 --split val
    python -m sszoo.train --model fcn_r18_d8_cityscapes --data data/cityscapes --iters 200 \\
        --batch-size 8 --crop 64x128 --scale 256x128 --work-dir work_dirs/demo
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Optional

from ..hub.checkpoint import CheckpointError
from ..registry import get_entry
from ..cliargs import DefaultsHelpFormatter, check_checkpoint_file, check_device, parse_pair
from ..registry import UnknownModelError
from .checkpoint import find_last_checkpoint
from .engine import TrainingError, train
from .recipe import config_from_entry, format_config, iterations_of


def _size(text: str) -> tuple[int, int]:
    """'AxB' (or 'A*B') -> (A, B); a single number N -> (N, N)."""
    return parse_pair(text.replace("*", "x"), "a size", square_ok=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sszoo.train",
        description="Train a zoo model with its published recipe (every default comes from the entry's recipe; "
                    "every option overrides it). Distributed: torchrun --nproc_per_node=N -m sszoo.train ...",
        formatter_class=DefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="zoo name, e.g. pspnet_r50_d8_cityscapes.512x1024_80k")
    p.add_argument("--data", required=True, help="dataset root in its standard layout (train and val splits)")
    p.add_argument("--dataset", default=None, help="dataset key (default: the entry's dataset, e.g. cityscapes)")
    p.add_argument("--work-dir", default=None, help="output folder (default: work_dirs/<model>)")
    p.add_argument("--iters", type=int, default=None, help="iterations (default: the recipe's)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="global batch over all processes (default: images per GPU x GPUs of the recipe)")
    p.add_argument("--lr", type=float, default=None, help="base learning rate (default: the recipe's)")
    p.add_argument("--momentum", type=float, default=None, help="SGD momentum (default: the recipe's)")
    p.add_argument("--weight-decay", type=float, default=None, help="weight decay (default: the recipe's)")
    p.add_argument("--min-lr", type=float, default=None, help="poly schedule floor (default: the recipe's)")
    p.add_argument("--poly-power", type=float, default=None, help="poly schedule power (default: the recipe's)")
    p.add_argument("--aux-weight", type=float, default=None, help="auxiliary loss weight (default: the recipe's)")
    p.add_argument("--crop", type=_size, default=None, help="training crop HxW (default: the recipe's)")
    p.add_argument("--scale", type=_size, default=None,
                   help="random-resize base scale WxH, multiplied by 0.5-2.0 (default: the recipe's)")
    p.add_argument("--test-scale", type=_size, default=None, help="evaluation resize scale WxH (default: --scale)")
    p.add_argument("--amp", choices=["fp16", "bf16", "off"], default="off",
                   help="mixed precision: fp16 with dynamic loss scaling, bf16 without, off = fp32")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument("--eval-interval", type=int, default=None,
                   help="evaluate every N iterations (0: only at the end; default: iters/8 rounded)")
    p.add_argument("--ckpt-interval", type=int, default=None,
                   help="checkpoint every N iterations (0: only at the end; default: the eval interval)")
    p.add_argument("--log-interval", type=int, default=None, help="console/JSON log every N iterations (default: iters/20, at most 50)")
    p.add_argument("--keep-checkpoints", type=int, default=None, help="iteration checkpoints kept besides the best and final ones (default: 2)")
    p.add_argument("--resume", nargs="?", const="auto", default=None, metavar="PATH",
                   help="continue from PATH, or from the work dir's last checkpoint when PATH is omitted")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: 0)")
    init = p.add_mutually_exclusive_group()
    init.add_argument("--pretrained-backbone", nargs="?", const="recipe", default=None, metavar="SPEC",
                      help="start the backbone from ImageNet weights: the recipe's (e.g. open-mmlab://resnet50_v1c) "
                           "or SPEC (open-mmlab://..., torchvision://..., a path or URL)")
    init.add_argument("--init-from", default=None, metavar="NAME|PATH",
                      help="start the whole model from a zoo checkpoint (name) or a checkpoint file")
    p.add_argument("--num-classes", type=int, default=None, help="classes of your data (replaces the classifier)")
    p.add_argument("--workers", type=int, default=None, help="data loader worker processes per GPU (default: 2)")
    p.add_argument("--device", default=None, help="cuda, cuda:1 or cpu (default: cuda when available)")
    p.add_argument("--no-photometric", action="store_true", help="turn the photometric distortion off")
    p.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard logs")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic GPU kernels (slower; CPU runs are deterministic already)")
    p.add_argument("--print-recipe", action="store_true", help="print the effective recipe and exit")
    return p


def config_from_args(args: argparse.Namespace):
    entry = get_entry(args.model)
    work_dir = args.work_dir or os.path.join("work_dirs", entry.name)
    pretrained = args.pretrained_backbone
    if pretrained == "recipe":
        pretrained = entry.recipe.pretrained_backbone
        if not pretrained:
            raise ValueError(f"{entry.name} has no pretrained backbone in its recipe; pass --pretrained-backbone SPEC")
    iters = args.iters
    if iters is None and not entry.recipe.iters:
        iters = _iters_from_epochs(entry, args)
    eval_interval = args.eval_interval
    if eval_interval is None and (iters or entry.recipe.iters):
        eval_interval = max((iters or entry.recipe.iters) // 8, 1)
    ckpt_interval = args.ckpt_interval if args.ckpt_interval is not None else eval_interval
    log_interval = args.log_interval
    if log_interval is None and (iters or entry.recipe.iters):
        log_interval = min(50, max((iters or entry.recipe.iters) // 20, 1))
    return config_from_entry(
        entry, data=args.data, work_dir=work_dir, dataset=args.dataset, iters=iters, batch_size=args.batch_size,
        lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay, min_lr=args.min_lr,
        poly_power=args.poly_power, aux_weight=args.aux_weight,
        crop=args.crop, scale=args.scale, test_scale=args.test_scale, amp=args.amp,
        channels_last=args.channels_last or None, eval_interval=eval_interval, ckpt_interval=ckpt_interval,
        log_interval=log_interval, keep_checkpoints=args.keep_checkpoints, seed=args.seed,
        pretrained_backbone=pretrained, init_from=args.init_from, num_classes=args.num_classes,
        workers=args.workers, device=args.device, photometric=False if args.no_photometric else None,
        tensorboard=False if args.no_tensorboard else None, deterministic=args.deterministic or None)


def _iters_from_epochs(entry, args: argparse.Namespace) -> int:
    """sssegmentation recipes count epochs: convert with the size of the training set under --data."""
    from ..data import build_dataset

    try:
        n = len(build_dataset(args.dataset or entry.dataset.key, args.data, "train"))
    except Exception as e:
        raise ValueError(f"{entry.name}: the recipe is given in epochs ({entry.recipe.epochs}) and the training set "
                         f"could not be counted ({str(e).splitlines()[0]}); pass --iters N") from e
    return iterations_of(entry, n, args.batch_size)


def _check_fits(cfg) -> None:
    """Refuse, in one line and before any allocation, a crop and batch whose forward pass alone would not
    fit in the device's free memory (a lower bound: training keeps more activations for the backward)."""
    import torch

    from ..inference import Protocol, available_bytes, estimate_bytes
    dev = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    free = available_bytes(dev)
    per_process = -(-cfg.batch_size // max(int(os.environ.get("WORLD_SIZE", "1")), 1))
    need = estimate_bytes(Protocol(scale=None), cfg.crop[0], cfg.crop[1], cfg.num_classes) * per_process
    if free is not None and need > free:
        raise ValueError(f"{per_process} training crops of {cfg.crop[0]}x{cfg.crop[1]} per process need at least "
                         f"{need / 2**30:.1f} GiB but {free / 2**30:.1f} GiB are free on {dev}; use a smaller "
                         "--crop or --batch-size")


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    """Entry point of ``python -m sszoo.train``.

    Returns a dict with ``work_dir``, ``final_checkpoint``, ``best_checkpoint``, ``exported`` (the final
    weights as safetensors, loadable with ``sszoo.create_model(name, pretrained=PATH, num_classes=K)``),
    ``metrics`` (the last evaluation) and ``best`` ({"mIoU", "iteration"}). Errors in the input exit
    with a message saying what was wrong.
    """
    args = build_parser().parse_args(argv)
    try:
        check_device(args.device)
        for path in (args.init_from, args.resume if args.resume != "auto" else None):
            check_checkpoint_file(path)  # a text file as .pth: one line, not an unpickler traceback
        cfg = config_from_args(args)
        _check_fits(cfg)
        if args.print_recipe:
            print(format_config(cfg))
            return {"config": cfg.to_dict()}
        resume = None
        if args.resume == "auto":
            resume = find_last_checkpoint(cfg.work_dir)
            if resume is None:
                raise FileNotFoundError(f"--resume: no checkpoint found in {cfg.work_dir} (no {cfg.work_dir}/"
                                        "last_checkpoint); pass --resume PATH or start without --resume")
        elif args.resume:
            resume = args.resume
        return train(cfg, resume=resume)
    except (ValueError, KeyError, FileNotFoundError, CheckpointError, TrainingError, UnknownModelError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise SystemExit(f"sszoo.train: error: {msg}") from e


def console_main() -> int:
    """Console-script entry (``sszoo-train``): runs :func:`main`, prints the summary as JSON, returns 0.

    (``main`` returns a dict, which a console-script wrapper would turn into exit status 1.)
    """
    result = main(sys.argv[1:])
    if "config" not in result:  # --print-recipe printed the recipe already
        print(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(console_main())
