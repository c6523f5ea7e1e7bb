#!/bin/sh
# Regenerate tests/golden/detection/ (the detection parity goldens) with the MMDetection 3.3.0 oracle
# (../shared/tools/oracle-setup.sh). Odd sizes: the dump zero-pads them to 32 as MMDetection does. float64:
# BN calibrated and the forward run in float64 (statistics rounded to float32), so the goldens hold on any CPU.
# Usage: tools/make_detection_goldens.sh [ORACLE_PYTHON]   (from the repository root)
set -e
PY=${1:-/work/oracle/bin/python}
OUT=${TMPDIR:-/tmp}/sszoo_det_dumps
G=tests/golden/detection
$PY tools/mmdet_oracle_dump.py faster-rcnn_r50_fpn_amp-1x_coco $OUT/faster --height 93 --width 125 --seed 0 --float64 --golden $G/faster-rcnn_93x125_s0.pt
$PY tools/mmdet_oracle_dump.py mask-rcnn_r50_fpn_amp-1x_coco $OUT/mask --height 109 --width 141 --seed 4 --float64 --golden $G/mask-rcnn_109x141_s4.pt
$PY tools/mmdet_oracle_dump.py retinanet_r50_fpn_amp-1x_coco $OUT/retina --height 93 --width 125 --seed 2 --float64 --golden $G/retinanet_93x125_s2.pt
