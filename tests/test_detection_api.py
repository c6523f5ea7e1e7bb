"""The detectors' API, anchors, NMS tie order, registry entries and strict checkpoint loads (no oracle)."""
from __future__ import annotations

import dataclasses
import os

import pytest
import torch

import sszoo
from sszoo.detection import build_detector, faster_rcnn_r50_fpn, mask_rcnn_r50_fpn, retinanet_r50_fpn
from sszoo.detection.anchors import AnchorGenerator, base_anchors
from sszoo.detection.nms import batched_nms
from sszoo.models.backbones.resnet import ResNetConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_anchors_are_mmdetections_unrounded() -> None:
    rpn = base_anchors(faster_rcnn_r50_fpn().anchors)
    # stride 4, scale 8, ratio 0.5: w = 4 * 8 * sqrt(2), h = 4 * 8 / sqrt(2), centred on the cell's corner
    torch.testing.assert_close(rpn[0][0], torch.tensor([-22.627417, -11.313708, 22.627417, 11.313708]))
    retina = retinanet_r50_fpn().anchors
    base = base_anchors(retina)
    assert base[0].shape == (9, 4)
    widths = base[0][3:6, 2] - base[0][3:6, 0]  # ratio 1: octave scales 4, 4 * 2^(1/3), 4 * 2^(2/3) at stride 8
    torch.testing.assert_close(widths, torch.tensor([32.0, 32 * 2 ** (1 / 3), 32 * 2 ** (2 / 3)]))
    grid = AnchorGenerator(retina).grid([(2, 3)])[0]
    assert grid.shape == (2 * 3 * 9, 4)
    torch.testing.assert_close(grid[9] - grid[0], torch.tensor([8.0, 0.0, 8.0, 0.0]))  # next cell: +stride in x


def test_nms_tie_order_is_torch_sorts() -> None:
    boxes = torch.tensor([[i * 10.0, 0.0, i * 10.0 + 5, 5.0] for i in range(40)])
    scores = torch.full((40,), 0.5)
    scores[::7] = 0.9
    idxs = torch.zeros(40, dtype=torch.long)
    kept, keep = batched_nms(boxes, scores, idxs, 0.5)
    assert torch.equal(keep, scores.sort(descending=True)[1])  # no overlaps: all kept, in torch.sort's order
    boxes[1] = boxes[0] + 0.1  # overlaps box 0 (IoU > 0.5) with a lower score: suppressed
    kept, keep = batched_nms(boxes, scores, idxs, 0.5)
    assert 1 not in keep.tolist() and len(keep) == 39


@pytest.mark.parametrize("factory", [faster_rcnn_r50_fpn, mask_rcnn_r50_fpn, retinanet_r50_fpn])
def test_api_takes_tensors_or_lists_of_odd_sizes(factory) -> None:
    torch.manual_seed(0)
    # a small network of the same structure (ResNet-18 channels, 64-wide fc): the API, not the numbers
    cfg = dataclasses.replace(factory(num_classes=3), backbone=ResNetConfig(18, deep_stem=False, strides=(1, 2, 2, 2),
                              dilations=(1, 1, 1, 1), contract_dilation=False), fc_channels=64)
    cfg = dataclasses.replace(cfg, neck=dataclasses.replace(cfg.neck, in_channels=(64, 128, 256, 512), out_channels=64),
                              rcnn_test=dataclasses.replace(cfg.rcnn_test, max_per_img=10))
    model = build_detector(cfg)
    images = [torch.randn(3, 37, 45), torch.randn(3, 29, 61)]
    out = model(images)
    assert len(out) == 2
    for o, im in zip(out, images):
        assert o["boxes"].shape[1:] == (4,) and o["boxes"].dtype == torch.float32
        assert o["scores"].shape == o["labels"].shape == o["boxes"].shape[:1] and o["labels"].dtype == torch.long
        if len(o["boxes"]):  # boxes lie inside each image's own (unpadded) size
            assert o["boxes"][:, 2].max() <= im.shape[2] and o["boxes"][:, 3].max() <= im.shape[1]
        if factory is mask_rcnn_r50_fpn:
            assert o["masks"].dtype == torch.bool and o["masks"].shape == (len(o["boxes"]), *im.shape[1:])
    assert len(model(torch.randn(1, 3, 33, 35))) == 1
    with pytest.raises(ValueError, match="3 x H x W"):
        model([torch.randn(1, 33, 35)])
    with pytest.raises(RuntimeError, match="eval"):
        model.train()(images)


def test_registry_entries_and_aliases() -> None:
    names = sszoo.list_models(task="detection")
    assert {"faster_rcnn_r50_fpn_fp16_1x_coco", "mask_rcnn_r50_fpn_fp16_1x_coco",
            "retinanet_r50_fpn_fp16_1x_coco"} <= set(names)
    assert not set(names) & set(sszoo.list_models())  # segmentation listings unchanged
    for alias, name, sha, ap in (("faster-rcnn_r50_fpn_amp-1x_coco", "faster_rcnn_r50_fpn_fp16_1x_coco", "d4dc1471", 37.5),
                                 ("mask-rcnn_r50_fpn_amp-1x_coco", "mask_rcnn_r50_fpn_fp16_1x_coco", "59faf7e4", 38.1),
                                 ("retinanet_r50_fpn_amp-1x_coco", "retinanet_r50_fpn_fp16_1x_coco", "0dbfb212", 36.4)):
        e = sszoo.get_entry(alias)
        assert e.name == name and e.task == "detection" and e.weights.sha256_prefix == sha
        assert e.reported.box_ap == ap and e.reported.precision == "fp16"
    assert sszoo.get_entry("mask_rcnn_r50_fpn_fp16_1x_coco").reported.mask_ap == 34.7


def test_mmdetection_checkpoint_loads_strictly(tmp_path) -> None:
    torch.manual_seed(0)
    ref = build_detector(retinanet_r50_fpn())
    path = tmp_path / "retina.pth"
    torch.save({"state_dict": ref.state_dict(), "meta": {"mmdet_version": "3.3.0"}}, path)
    model = sszoo.create_model("retinanet_r50_fpn_amp-1x_coco", pretrained=str(path))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values()))
    sd = ref.state_dict()
    sd.pop("bbox_head.retina_reg.bias")
    torch.save({"state_dict": sd}, path)
    with pytest.raises(Exception, match="retina_reg.bias"):
        sszoo.create_model("retinanet_r50_fpn_fp16_1x_coco", pretrained=str(path))


def test_torch_hub_entry_point() -> None:
    model = torch.hub.load(ROOT, "faster_rcnn_r50_fpn_fp16_1x_coco", source="local", trust_repo=True, verbose=False)
    assert model.cfg.kind == "faster_rcnn" and model.entry.name == "faster_rcnn_r50_fpn_fp16_1x_coco"


def test_draw_detections() -> None:
    from sszoo.detection.draw import draw_detections

    img = torch.zeros(40, 60, 3, dtype=torch.uint8).numpy()
    masks = torch.zeros(2, 40, 60, dtype=torch.bool)
    masks[0, 10:20, 10:30] = True
    pred = {"boxes": torch.tensor([[10.0, 10, 30, 20], [0, 0, 5, 5]]), "scores": torch.tensor([0.9, 0.1]),
            "labels": torch.tensor([0, 1]), "masks": masks}
    out = torch.from_numpy(__import__("numpy").asarray(draw_detections(img, pred, ["cat", "dog"],
                                                                       [(255, 0, 0), (0, 255, 0)])))
    assert out.shape == (40, 60, 3)
    assert out[15, 20, 0] > 100 and out[15, 20, 1] == 0  # the mask blended in class 0's colour
    assert out[2, 2].sum() == 0  # the 0.1 detection is under the default 0.3 threshold: not drawn
