"""Dump a reference forward pass of an MMDetection 3.3.0 detector (Faster R-CNN, Mask R-CNN, RetinaNet, ...).

Builds the model of one mmdet config with seeded random weights of a sane scale (He-scaled convolutions and
linear layers, BN affine parameters a little off identity, BN running statistics measured on one seeded
calibration batch; classifier biases chosen so that a fair number of detections pass the score threshold),
runs `model.predict` in eval mode on a seeded random normalised input, and writes:

  OUT/checkpoint.pth  {'state_dict': ..., 'meta': {...}}  -- the layout of mmdet's published checkpoints
  OUT/input.pt        {'inputs': float32 1 x 3 x H x W (already normalised, RGB), 'img_meta': {...}}
                      The tensor is the network input: no resize, no padding (H, W multiples of 32), and
                      the image meta says so (img_shape = ori_shape = pad_shape = (H, W), scale_factor 1).
  OUT/outputs.pt      fpn_feats (list), proposals / proposal_scores (two-stage: the RPN output),
                      bboxes (N x 4, x1y1x2y2), scores, labels; Mask R-CNN also mask_logits (N x 28 x 28,
                      the mask head's logits of each detection's class), masks (N x H x W bool, mmdet's
                      pasted and thresholded masks) and masks_soft (N x H x W, the pasted probabilities)
  OUT/info.json       config, sizes, seeds, counts, test_cfg, class names, compiled mmcv ops called

sszoo's copy (of ../shared/tools/mmdet_oracle_dump.py) adds odd image sizes: --height/--width need not be
multiples of 32. The seeded 1 x 3 x H x W input is then zero-padded at the bottom and right to the next
multiple of 32, as mmdet's DetDataPreprocessor pads a normalised image (pad_value 0), and the image meta says
img_shape = ori_shape = (H, W), pad_shape = batch_input_shape = the padded size; BN calibration uses the padded
size. With sizes that are multiples of 32 it writes what the shared script writes. --golden FILE also writes
the compact golden of sszoo's parity tests (tests/golden/detection/): no weights, no input (both regenerate
from the seed), the outputs and masks bit-packed, plus the outputs of a second predict with scale_factor
(1.25, 1.3) and the matching ori_shape (the rescale path of the real test pipeline).

Run it with the oracle environment's python (see oracle-setup.sh):
  python mmdet_oracle_dump.py faster-rcnn_r50_fpn_amp-1x_coco OUT --height 320 --width 480 --seed 0
"""
import argparse, collections, glob, json, os, warnings

warnings.filterwarnings("ignore")
import torch
import mmdet
import mmcv._ext
from mmengine import Config
from mmdet.utils import register_all_modules
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample


def find_config(name):
    root = os.path.join(os.path.dirname(mmdet.__file__), ".mim", "configs")
    base = os.path.basename(name).removesuffix(".py")
    hits = glob.glob(os.path.join(root, "*", base + ".py"))
    if not hits:
        raise SystemExit(f"no mmdet config named {base!r}")
    return hits[0]


# parameter-name fragments -> (weight std multiplier, bias (mean, std) or None for the default)
# (FPN outputs have no norm and come out with std ~3-7, so the sigmoid classifiers get the smallest weights:
#  scores stay away from 1.0, where float32 sigmoids tie and NMS order would depend on the sort's stability)
CLS_LAYERS = {
    "rpn_cls": (0.05, None),            # sigmoid objectness; no score threshold in the RPN
    "fc_cls": (0.2, "softmax"),         # softmax over K + 1 (background last)
    "retina_cls": (0.05, (-3.0, 0.5)),  # sigmoid per class; sigmoid(-3) ~ 0.047 ~ score_thr 0.05
}
REG_LAYERS = ("rpn_reg", "fc_reg", "retina_reg")  # box deltas: modest, so boxes stay inside the image


def randomise_(model, seed, calib_shape, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            layer = name.rsplit(".", 1)[0].rsplit(".", 1)[-1]
            if p.dim() > 1:
                std = (2.0 / p[0].numel()) ** 0.5
                if layer in CLS_LAYERS:
                    std *= CLS_LAYERS[layer][0]  # small weights: unsaturated, untied scores
                elif layer in REG_LAYERS:
                    std *= 0.1
                p.copy_(torch.randn(p.shape, generator=g) * std)
            elif name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif layer in CLS_LAYERS and CLS_LAYERS[layer][1] is not None:
                how = CLS_LAYERS[layer][1]
                if how == "softmax":
                    # foreground biases spread out (a few classes per RoI reach p > 0.05), background 0
                    b = 1.5 * torch.randn(p.shape, generator=g)
                    b[-1] = 0.0
                else:
                    b = how[0] + how[1] * torch.randn(p.shape, generator=g)
                p.copy_(b)
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        # BN statistics from one seeded calibration batch, measured with only the BN layers in train mode
        # (the mmdet ResNet keeps BN frozen in train() because of norm_eval; set them directly)
        bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        model.eval()
        for m in bns:
            m.train()
        calib = torch.randn(calib_shape, generator=g)
        if dtype == torch.float64:
            # calibrated in float64, the statistics rounded to float32: the weights stay float32 numbers
            # (tests/det_oracle.py regenerates them bit for bit) and carry no float32 rounding of the pass
            model.double()
            model.extract_feat(calib.double())
            for m in bns:
                m.running_mean.copy_(m.running_mean.float().double())
                m.running_var.copy_(m.running_var.float().double())
        else:
            model.extract_feat(calib)
        model.eval()


def _nms_cpu64(boxes, scores, iou_threshold, offset):
    """MMCV's CPU nms kernel (mmcv/ops/csrc/pytorch/cpu/nms.cpp) line for line, in the boxes' dtype: the compiled
    kernel takes float32 only. Visit order ``scores.sort(0, descending=True)``; areas (x2 - x1 + offset) *
    (y2 - y1 + offset); suppressed when IoU > iou_threshold, the threshold a C++ float as in the kernel."""
    if boxes.numel() == 0:
        return boxes.new_zeros(0, dtype=torch.long)
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1 + offset) * (y2 - y1 + offset)
    order = scores.sort(0, descending=True)[1]
    thr = torch.tensor(iou_threshold, dtype=torch.float32).to(boxes.dtype)
    select = torch.ones(len(order), dtype=torch.bool)
    bx1, by1, bx2, by2, ba = x1[order], y1[order], x2[order], y2[order], areas[order]
    for i in range(len(order)):
        if not select[i]:
            continue
        j = slice(i + 1, None)
        w = (torch.minimum(bx2[i], bx2[j]) - torch.maximum(bx1[i], bx1[j]) + offset).clamp(min=0)
        h = (torch.minimum(by2[i], by2[j]) - torch.maximum(by1[i], by1[j]) + offset).clamp(min=0)
        inter = w * h
        ovr = inter / (ba[i] + ba[j] - inter)
        select[j] &= ~(ovr > thr)
    return order[select]


def float64_support():
    """What MMDetection / MMCV need to run in float64 on CPU (no-ops for float32 inputs):
    * ``mmcv._ext.nms`` accepts float32 only ("expected scalar type Float but found Double"): float64 inputs
      go to ``_nms_cpu64``, the same algorithm in float64 (casting the boxes to float32 there would round the
      class-offset boxes of batched_nms, about 1e4 px, to 1e-3 px and move IoUs by 1e-4).
    * ``_do_paste_mask`` casts the mask to float32 for grid_sample while its grid is float64 (the boxes'
      dtype): the mask is cast to the grid's dtype instead.
    MMCV's roi_align CPU kernel takes float64 as it is."""
    import types
    import sys
    from mmdet.models.roi_heads.mask_heads import fcn_mask_head
    ext = sys.modules["mmcv.ops.nms"].ext_module  # mmcv._ext
    compiled_nms = ext.nms

    def nms(boxes, scores, iou_threshold, offset):
        if boxes.dtype == torch.float64:
            calls["nms (float64 port of the CPU kernel)"] += 1
            return _nms_cpu64(boxes, scores, iou_threshold, offset)
        return compiled_nms(boxes, scores, iou_threshold=iou_threshold, offset=offset)
    calls = collections.Counter()
    ext.nms = nms
    F = torch.nn.functional
    ns = types.SimpleNamespace(**{k: getattr(F, k) for k in dir(F) if not k.startswith("__")})
    ns.grid_sample = lambda inp, grid, *a, **k: F.grid_sample(inp.to(grid.dtype), grid, *a, **k)
    fcn_mask_head.F = ns
    return calls


def count_ext_calls():
    """Wrap the functions of mmcv._ext so that info.json can list the compiled mmcv ops that ran."""
    calls = collections.Counter()
    for op in getattr(mmcv._ext, "COMPILED_OPS", ()):
        f = getattr(mmcv._ext, op)

        def wrapped(*args, _f=f, _op=op, **kwargs):
            calls[_op] += 1
            return _f(*args, **kwargs)
        setattr(mmcv._ext, op, wrapped)
    return calls


def paste_soft(mask_head, probs, bboxes, h, w):
    """mmdet's CPU mask paste (one instance at a time, skip_empty=True), without the threshold."""
    from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask
    out = torch.zeros(len(probs), h, w, dtype=probs.dtype)
    for i in range(len(probs)):
        chunk, spatial = _do_paste_mask(probs[i:i + 1, None], bboxes[i:i + 1], h, w, skip_empty=True)
        out[(torch.tensor([i]),) + spatial] = chunk
    return out


def write_golden(path, info, out, sd, x_img):
    """sszoo's compact golden: outputs only (well under 1 MB); masks bit-packed along the flattened pixels."""
    import numpy as np
    g = {k: out[k].clone() for k in ("proposals", "proposal_scores", "bboxes", "scores", "labels") if k in out}
    if "masks" in out:
        m = out["masks"].numpy()
        g["masks_packed"] = torch.from_numpy(np.packbits(m.reshape(len(m), -1), axis=1))
    # checks that the test regenerated the same input and the same network (before any head)
    if "rescaled" in out:
        r = out["rescaled"]
        g["rescaled_meta"] = json.dumps({"scale_factor": r["scale_factor"], "ori_shape": r["ori_shape"]})
        for k in ("bboxes", "scores", "labels"):
            g["rescaled_" + k] = r[k].clone()
        if "masks" in r:
            m = r["masks"].numpy()
            g["rescaled_masks_packed"] = torch.from_numpy(np.packbits(m.reshape(len(m), -1), axis=1))
    g["input_sum"] = x_img.double().sum()
    g["fpn_sums"] = torch.stack([f.double().sum() for f in out["fpn_feats"]])
    g["fpn_abs_sums"] = torch.stack([f.double().abs().sum() for f in out["fpn_feats"]])
    g["keys"] = json.dumps(list(sd))
    g["key_shapes"] = json.dumps([list(v.shape) for v in sd.values()])
    g["info"] = json.dumps(info)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save(g, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="mmdet 3.x config name, e.g. mask-rcnn_r50_fpn_amp-1x_coco")
    ap.add_argument("out")
    ap.add_argument("--height", type=int, default=320)
    ap.add_argument("--width", type=int, default=480)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--golden", default=None, help="also write sszoo's compact golden file here")
    ap.add_argument("--float64", action="store_true",
                    help="BN calibration and the forward in float64 (BN statistics rounded to float32)")
    a = ap.parse_args()
    dtype = torch.float64 if a.float64 else torch.float32

    register_all_modules()
    cfg = Config.fromfile(find_config(a.config))
    mcfg = cfg.model
    div = mcfg.data_preprocessor.get("pad_size_divisor", 1)
    H, W = a.height, a.width
    Hp, Wp = -(-H // div) * div, -(-W // div) * div  # mmdet's pad to pad_size_divisor
    if isinstance(mcfg.backbone.get("init_cfg"), dict):
        mcfg.backbone.init_cfg = None  # no pretrained download
    torch.manual_seed(a.seed)
    model = MODELS.build(mcfg)
    randomise_(model, a.seed, (2, 3, Hp, Wp), dtype)

    x_img = torch.randn(1, 3, H, W, generator=torch.Generator().manual_seed(a.seed + 1))
    x = torch.nn.functional.pad(x_img, (0, Wp - W, 0, Hp - H)).to(dtype)  # zeros after normalisation, as mmdet pads
    meta = dict(img_shape=(H, W), ori_shape=(H, W), pad_shape=(Hp, Wp), batch_input_shape=(Hp, Wp),
                scale_factor=(1.0, 1.0), img_id=0)
    ds = DetDataSample()
    ds.set_metainfo(meta)
    calls = count_ext_calls()
    calls64 = float64_support()
    forward_seed = a.seed + 2
    out = {}
    with torch.no_grad():
        torch.manual_seed(forward_seed)
        feats = model.extract_feat(x)
        out["fpn_feats"] = [f.clone() for f in feats]
        if getattr(model, "rpn_head", None) is not None:
            rpn = model.rpn_head.predict(feats, [ds], rescale=False)[0]
            out["proposals"] = rpn.bboxes.clone()
            out["proposal_scores"] = rpn.scores.clone()
        res = model.predict(x, [ds], rescale=True)[0].pred_instances
        out["bboxes"], out["scores"], out["labels"] = res.bboxes.clone(), res.scores.clone(), res.labels.clone()
        if "masks" in res:
            from mmdet.structures.bbox import bbox2roi
            mp = model.roi_head._mask_forward(feats, bbox2roi([res.bboxes]))["mask_preds"]
            out["mask_logits"] = mp[torch.arange(len(mp)), res.labels].clone()
            out["masks"] = res.masks.clone()
            out["masks_soft"] = paste_soft(model.roi_head.mask_head, out["mask_logits"].sigmoid(), res.bboxes, H, W)
            thr = model.roi_head.test_cfg.mask_thr_binary
            assert torch.equal(out["masks_soft"] >= thr, out["masks"]), "soft paste does not reproduce mmdet's masks"

    os.makedirs(a.out, exist_ok=True)
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in model.state_dict().items()
          if not k.startswith("data_preprocessor")}  # float32 numbers (float64 runs: BN statistics rounded)
    from mmdet.registry import DATASETS
    classes = list(DATASETS.get(cfg.test_dataloader.dataset.type).METAINFO["classes"])
    torch.save({"state_dict": sd, "meta": {"mmdet_version": mmdet.__version__, "config": a.config,
                                           "seed": a.seed, "dataset_meta": {"classes": classes}}},
               os.path.join(a.out, "checkpoint.pth"))
    torch.save({"inputs": x, "img_meta": meta}, os.path.join(a.out, "input.pt"))
    torch.save(out, os.path.join(a.out, "outputs.pt"))
    dp = cfg.model.data_preprocessor
    info = dict(config=a.config, height=H, width=W, pad_height=Hp, pad_width=Wp, seed=a.seed, forward_seed=forward_seed, n_keys=len(sd),
                detector=type(model).__name__, backbone=type(model.backbone).__name__,
                neck=type(model.neck).__name__ if getattr(model, "neck", None) is not None else None,
                n_proposals=int(out["proposals"].shape[0]) if "proposals" in out else None,
                n_dets=int(out["bboxes"].shape[0]), n_classes=len(classes),
                score_range=[float(out["scores"].min()), float(out["scores"].max())] if len(out["scores"]) else None,
                mean=list(dp.get("mean", [])), std=list(dp.get("std", [])), bgr_to_rgb=bool(dp.get("bgr_to_rgb")),
                test_cfg=json.loads(json.dumps(mcfg.test_cfg.to_dict() if hasattr(mcfg.test_cfg, "to_dict") else mcfg.test_cfg)),
                compiled_mmcv_ops_called=dict(calls), python_ops_called=dict(calls64),
                dtype=str(dtype).removeprefix("torch."), torch_version=torch.__version__, mmdet_version=mmdet.__version__)
    with open(os.path.join(a.out, "info.json"), "w") as f:
        json.dump(info, f, indent=1)
    if a.golden:
        # the rescale path too (as after the test pipeline's resize): boxes mapped back by a scale factor and,
        # for Mask R-CNN, masks pasted at the original size
        sf = (1.25, 1.3)
        rmeta = dict(meta, scale_factor=sf, ori_shape=(round(H / sf[1]), round(W / sf[0])))
        rds = DetDataSample()
        rds.set_metainfo(rmeta)
        with torch.no_grad():
            rres = model.predict(x, [rds], rescale=True)[0].pred_instances
        out["rescaled"] = {"scale_factor": list(sf), "ori_shape": list(rmeta["ori_shape"]), "bboxes": rres.bboxes,
                           "scores": rres.scores, "labels": rres.labels}
        if "masks" in rres:
            out["rescaled"]["masks"] = rres.masks
        write_golden(a.golden, info, out, sd, x_img)
    print(json.dumps({k: info[k] for k in ("config", "n_proposals", "n_dets", "score_range", "compiled_mmcv_ops_called")}))


if __name__ == "__main__":
    main()
