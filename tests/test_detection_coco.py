"""COCO data and scoring for the detectors: sszoo's AP equals MMDetection's CocoMetric on the same predictions
(golden tests/golden/detection/coco_ap.json, made by tools/make_coco_ap_golden.sh), the test pipeline's
arithmetic, and one-line errors that name a malformed annotation file or image."""
from __future__ import annotations

import hashlib
import json
import os

import pytest
import torch

pytest.importorskip("pycocotools")

from sszoo.detection.coco import AnnotationError, CocoDetectionSet, coco_ap, preprocess, to_coco_results  # noqa: E402
from sszoo.detection.synthetic import _coco_names, fake_predictions, generate_coco  # noqa: E402

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "detection", "coco_ap.json")


@pytest.fixture(scope="module")
def coco_set(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("coco"))
    ann = generate_coco(root, num=8, seed=0)
    return root, ann


def test_ap_equals_mmdetection_coco_metric(coco_set) -> None:
    root, ann = coco_set
    golden = json.load(open(GOLDEN))
    assert hashlib.sha256(open(ann, "rb").read()).hexdigest() == golden["ann_sha256"], \
        "the synthetic set changed: rerun tools/make_coco_ap_golden.sh"
    ds = CocoDetectionSet(root, class_names=_coco_names())
    preds = fake_predictions(ann, seed=0)
    bbox, segm = [], []
    for im in ds:
        b, s = to_coco_results(preds[im.id], im.id, ds.cat_ids)
        bbox += b
        segm += s
    ref = golden["mmdet_coco_metric"]
    for iou_type, res in (("bbox", coco_ap(ann, bbox, "bbox")), ("segm", coco_ap(ann, segm, "segm"))):
        for ours, theirs in (("AP", "mAP"), ("AP50", "mAP_50"), ("AP75", "mAP_75"), ("APs", "mAP_s"), ("APm", "mAP_m")):
            assert abs(res[ours] - 100 * ref[f"coco/{iou_type}_{theirs}"]) <= 0.1, (iou_type, ours, res, ref)


def test_resize_keeps_mmdetection_arithmetic() -> None:
    img = torch.randint(0, 256, (3, 427, 640), dtype=torch.uint8)
    x, meta = preprocess(img)
    assert tuple(x.shape) == (3, 800, 1199)  # min(1333 / 640, 800 / 427), int(side * f + 0.5)
    assert meta["scale_factor"] == (1199 / 640, 800 / 427) and meta["ori_shape"] == (427, 640)


def test_malformed_annotation_file_is_named(tmp_path) -> None:
    (tmp_path / "annotations").mkdir()
    (tmp_path / "val2017").mkdir()
    ann = tmp_path / "annotations" / "instances_val2017.json"
    ann.write_text('{"images": [], "annotations": [')
    with pytest.raises(AnnotationError, match="malformed annotation file .*instances_val2017.json: not valid JSON"):
        CocoDetectionSet(str(tmp_path))
    ann.write_text(json.dumps({"images": [], "annotations": [{"image_id": 1}], "categories": []}))
    with pytest.raises(AnnotationError, match=r"instances_val2017.json: annotations\[0\] needs"):
        CocoDetectionSet(str(tmp_path))


def test_eval_cli_errors_are_one_line(coco_set, tmp_path, capsys) -> None:
    from sszoo.eval import main

    bad = tmp_path / "bad"
    (bad / "annotations").mkdir(parents=True)
    (bad / "val2017").mkdir()
    (bad / "annotations" / "instances_val2017.json").write_text("not json")
    with pytest.raises(SystemExit) as e:
        main(["--model", "faster-rcnn_r50_fpn_amp-1x_coco", "--data", str(bad), "--random-weights", "--quiet"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "instances_val2017.json" in err and "malformed" in err
    # a broken image: the error names the file
    root, ann = coco_set
    broken = tmp_path / "broken"
    os.makedirs(broken / "annotations")
    os.symlink(ann, broken / "annotations" / "instances_val2017.json")
    os.makedirs(broken / "val2017")
    data = json.load(open(ann))
    (broken / "val2017" / data["images"][0]["file_name"]).write_bytes(b"\x89PNG broken")
    with pytest.raises(SystemExit):
        main(["--model", "retinanet_r50_fpn_fp16_1x_coco", "--data", str(broken), "--random-weights", "--quiet",
              "--limit", "1"])
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and data["images"][0]["file_name"] in err


def test_eval_cli_single_process_and_torchrun_agree(tmp_path) -> None:
    """The detection evaluator sharded over two torchrun processes (gloo, CPU) gathers the same detections,
    so the same box AP, as one process; the same checkpoint file in both runs."""
    import subprocess
    import sys

    from sszoo import create_model
    from sszoo.eval import main

    root = str(tmp_path / "coco")
    generate_coco(root, num=2, seed=1)
    torch.manual_seed(0)
    model = create_model("retinanet_r50_fpn_fp16_1x_coco")
    ckpt = tmp_path / "retina.pth"
    torch.save({"state_dict": model.state_dict(), "meta": {}}, ckpt)
    args = ["--model", "retinanet_r50_fpn_fp16_1x_coco", "--data", root, "--weights", str(ckpt), "--device", "cpu",
            "--quiet"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun worker: the same kernels, so bit-identical detections
    try:
        one = main(args + ["--out", str(tmp_path / "one.json")])
    finally:
        torch.set_num_threads(threads)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29531",
           "-m", "sszoo.eval"] + args + ["--out", str(tmp_path / "two.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "two.json").read_text())
    assert one["num_images"] == two["num_images"] == 2
    assert two["bbox"]["AP"] == pytest.approx(one["bbox"]["AP"], abs=1e-9)
    assert "box AP measured" in proc.stdout
