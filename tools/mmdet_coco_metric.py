"""Score predictions with MMDetection 3.3.0's own CocoMetric (run with the oracle's python).

    python tools/mmdet_coco_metric.py ANN_FILE PREDS.pt OUT.json

PREDS.pt: {image_id: {'boxes', 'scores', 'labels' (0-based, MMDetection's class order), 'masks'?}}, as
sszoo.detection.synthetic.fake_predictions makes them. OUT.json gets CocoMetric's results (AP as fractions,
rounded to 3 decimals, as MMDetection reports them) and the annotation file's sha256.
"""
import hashlib
import json
import sys
import warnings

warnings.filterwarnings("ignore")
import torch
from mmdet.datasets import CocoDataset
from mmdet.evaluation import CocoMetric


def main(ann_file, preds_file, out):
    preds = torch.load(preds_file)
    data = json.load(open(ann_file))
    with_masks = any("masks" in p for p in preds.values())
    metric = CocoMetric(ann_file=ann_file, metric=["bbox", "segm"] if with_masks else ["bbox"], format_only=False)
    metric.dataset_meta = {"classes": CocoDataset.METAINFO["classes"]}
    for im in data["images"]:
        p = preds[im["id"]]
        inst = {"bboxes": p["boxes"], "scores": p["scores"], "labels": p["labels"]}
        if with_masks:
            inst["masks"] = p["masks"]
        metric.process({}, [{"img_id": im["id"], "ori_shape": (im["height"], im["width"]), "pred_instances": inst}])
    res = metric.evaluate(len(data["images"]))
    sha = hashlib.sha256(open(ann_file, "rb").read()).hexdigest()
    json.dump({"ann_sha256": sha, "mmdet_coco_metric": res}, open(out, "w"), indent=1)
    print(json.dumps(res))


if __name__ == "__main__":
    main(*sys.argv[1:4])
