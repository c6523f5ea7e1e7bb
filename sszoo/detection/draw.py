"""Drawings of detections: masks blended in the class colour, boxes, and "class score" labels; and the
``python -m sszoo.predict`` path of detection entries."""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from .coco import preprocess


def draw_detections(image: np.ndarray, pred: dict[str, torch.Tensor], class_names: Sequence[str],
                    palette: Sequence[Sequence[int]], score_thr: float = 0.3, opacity: float = 0.5) -> Image.Image:
    """``image`` (H x W x 3 uint8 RGB) with the detections scoring at least ``score_thr`` drawn on it."""
    keep = (pred["scores"] >= score_thr).nonzero().view(-1).tolist()
    canvas = image.astype(np.float32).copy()
    if "masks" in pred:
        for i in keep:
            m = pred["masks"][i].cpu().numpy()
            colour = np.array(palette[int(pred["labels"][i]) % len(palette)], dtype=np.float32)
            canvas[m] = (1 - opacity) * canvas[m] + opacity * colour
    out = Image.fromarray(canvas.round().clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    for i in keep:
        label = int(pred["labels"][i])
        colour = tuple(int(c) for c in palette[label % len(palette)])
        x1, y1, x2, y2 = (float(v) for v in pred["boxes"][i])
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=2)
        text = f"{class_names[label] if label < len(class_names) else label} {float(pred['scores'][i]):.2f}"
        tx, ty = x1, max(0.0, y1 - 11)
        box = draw.textbbox((tx, ty), text)
        draw.rectangle(box, fill=colour)
        draw.text((tx, ty), text, fill=(255, 255, 255) if sum(colour) < 384 else (0, 0, 0))
    return out


def predict_main(args: Any, entry: Any, paths: Sequence[str], images: dict[str, np.ndarray], skipped: list[str],
                 stems: Sequence[str]) -> dict[str, Any]:
    """Detect on every image (MMDetection's test pipeline), write ``STEM_det.png`` and ``STEM_det.json``."""
    from ..atomic import write_text
    from ..factory import create_model
    from ..inference import PRECISIONS

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = create_model(entry.name, pretrained=False if args.random_weights else (args.weights or True)).to(device)
    names, palette = list(entry.dataset.class_names), [tuple(p) for p in entry.dataset.palette]
    os.makedirs(args.out, exist_ok=True)
    dtype = PRECISIONS[args.precision]
    results = []
    for path, stem in zip(paths, stems):
        img = images[path]
        x, meta = preprocess(torch.from_numpy(img).permute(2, 0, 1).contiguous(), mean=model.cfg.mean,
                             std=model.cfg.std)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            pred = model.predict([x.to(device)], [meta])[0]
        pred = {k: v.float().cpu() if v.is_floating_point() else v.cpu() for k, v in pred.items()}
        drawing = os.path.join(args.out, f"{stem}_det.png")
        draw_detections(img, pred, names, palette, score_thr=args.score_thr, opacity=args.opacity).save(drawing)
        record = {"image": path, "boxes": pred["boxes"].tolist(), "scores": pred["scores"].tolist(),
                  "labels": pred["labels"].tolist(), "classes": [names[i] for i in pred["labels"].tolist()]}
        write_text(json.dumps(record), os.path.join(args.out, f"{stem}_det.json"))
        shown = int((pred["scores"] >= args.score_thr).sum())
        print(f"{path} -> {drawing} ({shown} detections >= {args.score_thr})")
        results.append({"image": path, "drawing": drawing, "detections": len(pred["scores"]), "shown": shown})
    print(f"wrote {len(results)} prediction(s) to {os.path.abspath(args.out)}")
    if skipped:
        print(f"sszoo.predict: skipped {len(skipped)} unreadable image(s): {', '.join(skipped)}", file=sys.stderr)
    return {"model": entry.name, "out": os.path.abspath(args.out), "predictions": results, "skipped": skipped}
