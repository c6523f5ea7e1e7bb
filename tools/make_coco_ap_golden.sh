#!/bin/sh
# Regenerate tests/golden/detection/coco_ap.json: MMDetection's CocoMetric on fake predictions of the
# synthetic COCO-layout set (sszoo.detection.synthetic, seed 0, 8 images), for tests/test_detection_coco.py.
# Usage (repository root): tools/make_coco_ap_golden.sh [SSZOO_PYTHON] [ORACLE_PYTHON]
set -e
PY=${1:-/work/venv/bin/python}
ORACLE=${2:-/work/oracle/bin/python}
D=${TMPDIR:-/tmp}/sszoo_coco_ap
rm -rf "$D" && mkdir -p "$D"
PYTHONPATH=$PWD $PY -c "
import torch
from sszoo.detection.synthetic import generate_coco, fake_predictions
ann = generate_coco('$D/coco', num=8, seed=0)
torch.save(fake_predictions(ann, seed=0), '$D/preds.pt')
"
$ORACLE tools/mmdet_coco_metric.py "$D/coco/annotations/instances_val2017.json" "$D/preds.pt" tests/golden/detection/coco_ap.json
