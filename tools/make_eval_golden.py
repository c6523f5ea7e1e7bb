"""Make tests/golden/eval: small datasets and MMSegmentation 1.2.2's own test-loop numbers on them.

Run with the development python (it generates the images with sszoo.data.synthetic, then re-runs itself
in the oracle environment, which has MMSegmentation but no sszoo):

    /work/venv/bin/python tools/make_eval_golden.py

Oracle phase, per set (a Cityscapes-layout and an ADE20K-layout set of three odd-sized images):
1. build the config's model with the seeded weights of mmseg_oracle_dump.py, BatchNorm calibrated as
   tools/oracle_dump64.py does, and run everything below in float64 (tests rebuild the weights with
   tests/oracle_weights.randomise_like_oracle and evaluate in float64 too: in float32 a few near-tie
   pixels flip from one CPU to another);
2. make labels from the model's own prediction on a noise-perturbed copy of each image (so the mIoU is
   informative rather than ~0 with random weights), with an ignore band; ADE labels are stored +1 with a
   0 ("other") strip, one Cityscapes label is stored only as *_gtFine_labelIds.png;
3. run MMSegmentation's test loop (its dataset class, test pipeline and IoUMetric) in whole and slide mode
   and store mIoU/mAcc/aAcc and the per-class areas in golden.json;
4. the same with multi-scale + flip ("tta" in whole mode, "tta_slide" with sliding windows): the reference's TestTimeAug pipeline and
   SegTTAModel (softmax averaged), with the scales of MMSegmentation 0.x's MultiScaleFlipAug, which made
   the published ms+flip numbers: ratio x test scale, truncated, then a keep-ratio resize. (1.x configs
   write Resize(scale_factor=ratio), a ratio of the image's own size; for images of the test scale's size
   the two agree.)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "golden", "eval")
sys.path.insert(0, HERE)
from oracle_models import ORACLE_PYTHON, build_reference_model  # noqa: E402

SETS = {
    "cityscapes": dict(layout="cityscapes", config="pspnet_r18-d8_4xb2-80k_cityscapes-769x769", num_classes=19,
                       sizes=[(203, 101), (150, 91), (300, 163)], scale=(256, 128), crop=96, stride=64,
                       dataset="CityscapesDataset", img_prefix="leftImg8bit/val", seg_prefix="gtFine/val",
                       reduce_zero_label=False),
    "ade20k": dict(layout="ade20k", config="deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024", num_classes=150,
                   sizes=[(171, 123), (97, 130), (240, 97)], scale=(192, 96), crop=80, stride=56,
                   dataset="ADE20KDataset", img_prefix="ADEChallengeData2016/images/validation",
                   seg_prefix="ADEChallengeData2016/annotations/validation", reduce_zero_label=True),
}
SEED = 0
CALIB = (2, 3, 64, 96)
TTA_RATIOS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
NOISE = 3.0


def generate_images() -> None:
    sys.path.insert(0, os.path.join(HERE, ".."))
    from sszoo.data import synthetic
    for name, s in SETS.items():
        root = os.path.join(OUT, name)
        shutil.rmtree(root, ignore_errors=True)
        synthetic.generate(root, s["layout"], len(s["sizes"]), size=s["sizes"], seed=SEED, split="val")
        # the oracle writes the labels; drop the generator's
        for dp, _, fs in os.walk(root):
            for f in fs:
                if "gtFine" in f or (name == "ade20k" and f.endswith(".png")):
                    os.remove(os.path.join(dp, f))


def oracle() -> None:
    import glob
    import warnings
    warnings.filterwarnings("ignore")
    import numpy as np
    import torch
    from mmengine import ConfigDict
    from mmengine.dataset import Compose, pseudo_collate
    from PIL import Image
    from mmseg.models import SegTTAModel
    from mmseg.registry import DATASETS, METRICS
    from mmseg.utils import register_all_modules

    register_all_modules()
    golden = {"calib_shape": list(CALIB), "seed": SEED, "dtype": "float64", "sets": {}}
    for name, s in SETS.items():
        root = os.path.join(OUT, name)
        _, model, cfg = build_reference_model(s["config"], s["num_classes"], dict(mode="whole"))
        from oracle_dump64 import randomise64_
        randomise64_(model, SEED, CALIB)  # float64 from here on: per-pixel parity must not hang on float32 rounding
        model.backbone.register_forward_pre_hook(lambda m, args: (args[0].double(),) + tuple(args[1:]))
        model.eval()

        pipeline = [dict(type="LoadImageFromFile"), dict(type="Resize", scale=s["scale"], keep_ratio=True),
                    dict(type="LoadAnnotations", reduce_zero_label=s["reduce_zero_label"]),
                    dict(type="PackSegInputs")]
        images = sorted(glob.glob(os.path.join(root, s["img_prefix"], "**", "*.*"), recursive=True))
        # labels from the model's prediction on a perturbed copy of each image
        g = np.random.default_rng(123)
        tmp = tempfile.mkdtemp()
        for i, ip in enumerate(images):
            img = np.asarray(Image.open(ip).convert("RGB")).astype(np.float32)
            noisy = np.clip(img + g.normal(0, NOISE, img.shape) + 0.5, 0, 255).astype(np.uint8)
            npath = os.path.join(tmp, f"noisy{i}.png")
            Image.fromarray(noisy).save(npath)
            item = Compose([dict(type="LoadImageFromFile"), dict(type="Resize", scale=s["scale"], keep_ratio=True),
                            dict(type="PackSegInputs")])(dict(img_path=npath, seg_fields=[], reduce_zero_label=False))
            with torch.no_grad():
                out = model.test_step(pseudo_collate([item]))[0]
            pred = out.pred_sem_seg.data[0].numpy().astype(np.uint8)
            lab = pred.copy()
            lab[: max(2, lab.shape[0] // 12)] = 255          # an ignored band
            stem = os.path.basename(ip)
            if name == "cityscapes":
                base = os.path.join(os.path.dirname(ip).replace("leftImg8bit", "gtFine"),
                                    stem.replace("_leftImg8bit.png", ""))
                os.makedirs(os.path.dirname(base), exist_ok=True)
                if i == 2:  # this one only as official label ids: sszoo maps them to train ids itself
                    ids = {0: 7, 1: 8, 2: 11, 3: 12, 4: 13, 5: 17, 6: 19, 7: 20, 8: 21, 9: 22, 10: 23, 11: 24, 12: 25,
                           13: 26, 14: 27, 15: 28, 16: 31, 17: 32, 18: 33, 255: 0}
                    lut = np.zeros(256, np.uint8)
                    for k, v in ids.items():
                        lut[k] = v
                    Image.fromarray(lut[lab]).save(base + "_gtFine_labelIds.png")
                    # MMSegmentation needs train ids on disk (cityscapesscripts' conversion); the oracle
                    # reads a converted copy, sszoo the labelIds file
                    conv = os.path.join(tmp, "conv", os.path.relpath(base, root) + "_gtFine_labelTrainIds.png")
                    os.makedirs(os.path.dirname(conv), exist_ok=True)
                    Image.fromarray(lab).save(conv)
                else:
                    Image.fromarray(lab).save(base + "_gtFine_labelTrainIds.png")
            else:
                stored = np.where(lab == 255, 0, lab.astype(np.int64) + 1)
                stored[:, -3:] = 0                              # "other": reduce_zero_label makes it ignore
                ap = os.path.join(root, s["seg_prefix"], stem.replace(".jpg", ".png"))
                os.makedirs(os.path.dirname(ap), exist_ok=True)
                Image.fromarray(stored.astype(np.uint8)).save(ap)
        # the oracle's view of the data: the committed files plus the converted label
        view = os.path.join(tmp, "view")
        shutil.copytree(root, view)
        conv = os.path.join(tmp, "conv")
        if os.path.isdir(conv):
            shutil.copytree(conv, view, dirs_exist_ok=True)

        def test_loop(runner, pipeline) -> dict:
            """The reference's dataset + pipeline -> runner.test_step -> IoUMetric, with per-class areas."""
            ds = DATASETS.build(dict(type=s["dataset"], data_root=view,
                                     data_prefix=dict(img_path=s["img_prefix"], seg_map_path=s["seg_prefix"]),
                                     pipeline=pipeline))
            metric = METRICS.build(dict(type="IoUMetric", iou_metrics=["mIoU"]))
            metric.dataset_meta = ds.metainfo
            for k in range(len(ds)):
                batch = pseudo_collate([ds[k]])
                with torch.no_grad():
                    outs = runner.test_step(batch)
                metric.process(batch, [o.to_dict() for o in outs])
            summary = metric.compute_metrics(metric.results)
            areas = [sum(r[j] for r in metric.results).tolist() for j in range(4)]
            return {"summary": {k: float(v) for k, v in summary.items()},
                    "area_intersect": areas[0], "area_union": areas[1],
                    "area_pred": areas[2], "area_label": areas[3], "num_images": len(ds)}

        results = {}
        for mode in ("whole", "slide"):
            model.test_cfg = ConfigDict(mode="whole") if mode == "whole" else \
                ConfigDict(mode="slide", crop_size=(s["crop"], s["crop"]), stride=(s["stride"], s["stride"]))
            results[mode] = test_loop(model, pipeline)
            print(name, mode, results[mode]["summary"], flush=True)
        # multi-scale + flip, whole mode
        model.test_cfg = ConfigDict(mode="whole")
        tta_pipeline = [dict(type="LoadImageFromFile"), dict(type="TestTimeAug", transforms=[
            [dict(type="Resize", scale=(int(s["scale"][0] * r), int(s["scale"][1] * r)), keep_ratio=True)
             for r in TTA_RATIOS],
            [dict(type="RandomFlip", prob=0.0, direction="horizontal"),
             dict(type="RandomFlip", prob=1.0, direction="horizontal")],
            [dict(type="LoadAnnotations", reduce_zero_label=s["reduce_zero_label"])],
            [dict(type="PackSegInputs")]])]
        results["tta"] = test_loop(SegTTAModel(module=model), tta_pipeline) | {"ratios": list(TTA_RATIOS)}
        print(name, "tta", results["tta"]["summary"], flush=True)
        # and with sliding windows at every scale (the 769x769 Cityscapes entries)
        model.test_cfg = ConfigDict(mode="slide", crop_size=(s["crop"], s["crop"]), stride=(s["stride"], s["stride"]))
        results["tta_slide"] = test_loop(SegTTAModel(module=model), tta_pipeline) | {"ratios": list(TTA_RATIOS)}
        print(name, "tta_slide", results["tta_slide"]["summary"], flush=True)
        shutil.rmtree(tmp)
        golden["sets"][name] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.items()
                                if k not in ("sizes",)} | {"results": results,
                                                           "sizes": [list(z) for z in s["sizes"]]}
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)


if __name__ == "__main__":
    if "--oracle" in sys.argv:
        oracle()
    else:
        generate_images()
        subprocess.run([ORACLE_PYTHON, os.path.abspath(__file__), "--oracle"], check=True)
