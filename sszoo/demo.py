"""The offline demo: synthetic data -> a short CPU training run -> evaluation -> colour overlays.

    python -m sszoo.demo [--out sszoo_demo] [--model pspnet_r18_d8_cityscapes] [--iters 100] [--quick]

Everything runs on this machine without a download: it writes a small synthetic dataset in the
Cityscapes layout (``sszoo.data.synthetic``), trains a small zoo architecture from scratch with the
trainer (``python -m sszoo.train``), evaluates the result with the evaluator (``python -m sszoo.eval``)
and writes prediction overlays (``python -m sszoo.predict``), then prints where everything went. Each
step is the same command a user would run, called with its ``main(argv)``.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from dataclasses import dataclass
from typing import Optional, Sequence

DEFAULT_MODEL = "pspnet_r18_d8_cityscapes"


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of one demo run (images are W x H, the training crop H x W as the trainer writes it)."""

    train_images: int
    val_images: int
    image_size: tuple[int, int]    # (width, height)
    crop: tuple[int, int]          # (height, width)
    iters: int
    batch_size: int


FULL = DemoSettings(train_images=48, val_images=8, image_size=(128, 64), crop=(64, 128), iters=100, batch_size=8)
# --quick: a smoke run of the whole pipeline in seconds (the model learns little)
QUICK = DemoSettings(train_images=6, val_images=2, image_size=(96, 48), crop=(48, 96), iters=2, batch_size=2)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sszoo.demo",
        description="Offline demo: generate synthetic data, train a small zoo model on CPU for about a minute, "
                    "evaluate it and write colour overlays of its predictions.")
    p.add_argument("--out", default="sszoo_demo", help="folder for data, training run, results and overlays "
                                                       "(default ./sszoo_demo)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"zoo architecture to train (default {DEFAULT_MODEL}; "
                                                         "a Cityscapes entry)")
    p.add_argument("--iters", type=int, default=None, help=f"training iterations (default {FULL.iters}, "
                                                          f"{QUICK.iters} with --quick)")
    p.add_argument("--batch-size", type=int, default=None, help=f"images per iteration (default {FULL.batch_size})")
    p.add_argument("--train-images", type=int, default=None,
                   help=f"synthetic training images (default {FULL.train_images})")
    p.add_argument("--quick", action="store_true", help="a few seconds' smoke run of every step")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    p.add_argument("--seed", type=int, default=0)
    return p


def _fail(message: str) -> None:
    print(f"sszoo.demo: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _banner(step: int, text: str) -> None:
    print(f"\n=== [{step}/4] {text}", flush=True)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the demo; returns the paths it wrote and the measured mIoU.

    Keys: ``data``, ``work_dir``, ``weights`` (the trained safetensors), ``eval_json``, ``predictions``
    (folder), ``overlays`` (list of files), ``mIoU``, ``seconds`` (per step).
    """
    args = build_parser().parse_args(argv)
    # import the functions, not the modules: sszoo.predict may be re-exported as the predict() function
    from .eval import main as eval_main
    from .predict import main as predict_main
    from .train import main as train_main
    from .data import synthetic
    from .registry import get_entry

    base = QUICK if args.quick else FULL
    s = DemoSettings(train_images=args.train_images or base.train_images, val_images=base.val_images,
                     image_size=base.image_size, crop=base.crop, iters=args.iters or base.iters,
                     batch_size=args.batch_size or base.batch_size)
    if s.iters < 1 or s.batch_size < 1 or s.train_images < 1:
        _fail("--iters, --batch-size and --train-images must be at least 1")
    try:
        entry = get_entry(args.model)
    except KeyError as e:
        _fail(str(e))
    if entry.dataset.key != "cityscapes":
        _fail(f"the demo's synthetic data is in the Cityscapes layout; {entry.name} is a {entry.dataset.title} "
              "model. Pick a *_cityscapes architecture, e.g. fcn_r18_d8_cityscapes")

    out = os.path.abspath(args.out)
    data = os.path.join(out, "data", "cityscapes")
    work = os.path.join(out, "work_dir")
    eval_json = os.path.join(out, "eval.json")
    pred_dir = os.path.join(out, "predictions")
    w, h = s.image_size
    size = f"{w}x{h}"                      # the images' own size: evaluation and prediction do not resize
    seconds: dict[str, float] = {}

    _banner(1, f"synthetic Cityscapes-layout data: {s.train_images} train + {s.val_images} val images of {size}")
    t = time.perf_counter()
    synthetic.generate(data, "cityscapes", s.train_images, size=(w, h), seed=args.seed, split="train")
    synthetic.generate(data, "cityscapes", s.val_images, size=(w, h), seed=args.seed + 1, split="val")
    seconds["data"] = time.perf_counter() - t

    _banner(2, f"training {entry.arch_name} from scratch: {s.iters} iterations of {s.batch_size} crops "
               f"{s.crop[0]}x{s.crop[1]} on {args.device}")
    t = time.perf_counter()
    trained = train_main([
        "--model", entry.name, "--data", data, "--work-dir", work, "--iters", str(s.iters),
        "--batch-size", str(s.batch_size), "--crop", f"{s.crop[0]}x{s.crop[1]}", "--scale", size,
        "--test-scale", size, "--eval-interval", "0", "--workers", "0", "--device", args.device,
        "--no-tensorboard", "--seed", str(args.seed)])
    weights = trained["exported"]
    seconds["train"] = time.perf_counter() - t

    _banner(3, "evaluating the trained weights on the val split (python -m sszoo.eval)")
    t = time.perf_counter()
    results = eval_main(["--model", entry.name, "--data", data, "--weights", weights, "--scale", size,
                               "--mode", "whole", "--workers", "0", "--device", args.device, "--out", eval_json, "--quiet"])
    seconds["eval"] = time.perf_counter() - t

    _banner(4, "predicting the val images and writing colour overlays (python -m sszoo.predict)")
    t = time.perf_counter()
    val_images = sorted(glob.glob(os.path.join(data, "leftImg8bit", "val", "*", "*.png")))
    predicted = predict_main([*val_images, "--model", entry.name, "--weights", weights, "--out", pred_dir,
                                    "--scale", size, "--mode", "whole", "--device", args.device])
    seconds["predict"] = time.perf_counter() - t

    overlays = [p["overlay"] for p in predicted["predictions"]]
    print(f"\nDone in {sum(seconds.values()):.0f} s "
          f"(data {seconds['data']:.0f} s, training {seconds['train']:.0f} s, evaluation {seconds['eval']:.0f} s, "
          f"prediction {seconds['predict']:.0f} s). mIoU on the synthetic val split: {results['mIoU']:.2f} "
          "(its scenes hold 6 of the 19 Cityscapes classes; per-class numbers in eval.json).")
    print(f"  data          {data}")
    print(f"  training run  {trained['work_dir']}")
    print(f"  weights       {weights}")
    print(f"  evaluation    {eval_json}")
    print(f"  overlays      {pred_dir}  (e.g. {os.path.basename(overlays[0]) if overlays else '-'})")
    print("Next: the published weights, online: python -m sszoo.predict IMAGE --model pspnet_r101_d8_cityscapes")
    return {"data": data, "work_dir": trained["work_dir"], "weights": weights, "eval_json": eval_json,
            "predictions": pred_dir, "overlays": overlays, "mIoU": results["mIoU"], "seconds": seconds}


def console_main() -> int:
    """``sszoo-demo``: run :func:`main` and exit 0 (``main`` returns a dict, which ``sys.exit`` would treat as failure)."""
    main()
    return 0


if __name__ == "__main__":
    main()
