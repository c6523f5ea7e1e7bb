"""Dataset readers on small datasets written in each real layout."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from sszoo.data import DataError, build_dataset, synthetic
from sszoo.data.datasets import CITYSCAPES_ID_TO_TRAINID


def _png(path, arr, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path)


def test_cityscapes_label_ids_are_mapped_to_train_ids(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    synthetic.generate(a, "cityscapes", 2, size=[(61, 37), (45, 29)], seed=3, label_ids=False)
    synthetic.generate(b, "cityscapes", 2, size=[(61, 37), (45, 29)], seed=3, train_ids=False)
    da, db = build_dataset("cityscapes", a), build_dataset("cityscapes", b)
    assert len(da) == len(db) == 2
    assert db.samples[0][1].endswith("_gtFine_labelIds.png")
    for i in range(2):
        assert torch.equal(da[i]["label"], db[i]["label"])
        assert torch.equal(da[i]["image"], db[i]["image"])
    item = da[0]
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 37, 61)
    assert item["label"].dtype == torch.int64 and item["label"].shape == (37, 61)
    # official ids outside the 19 classes (e.g. 0 unlabeled, 4 static) become ignore
    raw = np.zeros((4, 4), np.uint8)
    raw[0, 0], raw[0, 1], raw[0, 2] = 4, 7, 33
    _png(str(tmp_path / "c/gtFine/val/x/x_1_1_gtFine_labelIds.png"), raw)
    _png(str(tmp_path / "c/leftImg8bit/val/x/x_1_1_leftImg8bit.png"), np.zeros((4, 4, 3), np.uint8))
    lab = build_dataset("cityscapes", str(tmp_path / "c"))[0]["label"]
    assert lab[0, :3].tolist() == [255, CITYSCAPES_ID_TO_TRAINID[7], 18] and lab[1, 1] == 255


def test_ade20k_reduce_zero_label_and_parent_root(tmp_path):
    synthetic.generate(str(tmp_path), "ade20k", 2, size=(53, 41))
    ds = build_dataset("ade20k", str(tmp_path), "val")     # the parent of ADEChallengeData2016 works
    raw = np.asarray(Image.open(ds.samples[0][1])).astype(np.int64)
    lab = ds[0]["label"]
    assert (raw == 0).any()
    assert torch.equal(lab, torch.from_numpy(np.where(raw == 0, 255, raw - 1)))
    assert ds.info.num_classes == 150 and len(ds.info.class_names) == 150


def test_voc_palette_labels_border_and_aug(tmp_path):
    synthetic.generate(str(tmp_path), "voc", 2, size=(47, 39), split="val")
    synthetic.generate(str(tmp_path), "voc", 2, size=(47, 39), split="train")
    val = build_dataset("voc12aug", str(tmp_path), "val")
    lab = val[0]["label"]
    assert set(lab.unique().tolist()) <= {0, 7, 15, 255} and (lab == 255).any()   # palette indices + border
    aug = build_dataset("voc12aug", str(tmp_path), "train_aug")
    assert "SegmentationClassAug" in aug.samples[0][1]
    assert not (aug[0]["label"] == 255).any()


@pytest.mark.parametrize("key,img,ann,reduce", [
    ("pascal_context", "VOCdevkit/VOC2010/JPEGImages/2008_000001.jpg", "VOCdevkit/VOC2010/SegmentationClassContext/2008_000001.png", False),
    ("pascal_context59", "VOCdevkit/VOC2010/JPEGImages/2008_000001.jpg", "VOCdevkit/VOC2010/SegmentationClassContext/2008_000001.png", True),
    ("coco_stuff10k", "images/test2014/COCO_1.jpg", "annotations/test2014/COCO_1_labelTrainIds.png", True),
    ("coco_stuff164k", "images/val2017/0001.jpg", "annotations/val2017/0001_labelTrainIds.png", False),
    ("loveda", "img_dir/val/1.png", "ann_dir/val/1.png", True),
    ("potsdam", "img_dir/val/2_13_0_0.png", "ann_dir/val/2_13_0_0.png", True),
    ("vaihingen", "img_dir/val/area1_0_0.png", "ann_dir/val/area1_0_0.png", True),
    ("isaid", "img_dir/val/P0003_0_0.png", "ann_dir/val/P0003_0_0_instance_color_RGB.png", False),
    ("mapillary_v1", "validation/images/abc.jpg", "validation/v1.2/labels/abc.png", False),
])
def test_other_layouts(tmp_path, key, img, ann, reduce):
    raw = np.array([[0, 1, 2], [3, 255, 1]], np.uint8)
    _png(str(tmp_path / img), np.full((2, 3, 3), 100, np.uint8))
    _png(str(tmp_path / ann), raw)
    if key.startswith("pascal_context"):
        sets = tmp_path / "VOCdevkit/VOC2010/ImageSets/SegmentationContext"
        sets.mkdir(parents=True)
        (sets / "val.txt").write_text("2008_000001\n")
    ds = build_dataset(key, str(tmp_path), "val")
    assert ds.info.reduce_zero_label == reduce
    want = np.where(raw == 0, 255, raw.astype(np.int64) - 1) if reduce else raw.astype(np.int64)
    want[raw == 255] = 255
    assert ds[0]["label"].tolist() == want.tolist()


def test_missing_folder_shows_expected_layout(tmp_path):
    with pytest.raises(DataError, match=r"leftImg8bit/val/<city>/\*_leftImg8bit.png"):
        build_dataset("cityscapes", str(tmp_path))
    with pytest.raises(DataError, match="does not exist"):
        build_dataset("ade20k", str(tmp_path / "nope"))
    with pytest.raises(DataError, match="unknown split"):
        build_dataset("ade20k", str(tmp_path), "bogus")
    (tmp_path / "leftImg8bit/val/x").mkdir(parents=True)
    _png(str(tmp_path / "leftImg8bit/val/x/x_1_1_leftImg8bit.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DataError, match="label folder .*gtFine/val is missing"):
        build_dataset("cityscapes", str(tmp_path))
    (tmp_path / "gtFine/val/x").mkdir(parents=True)
    with pytest.raises(DataError, match="no label for image .*x_1_1_leftImg8bit.png"):
        build_dataset("cityscapes", str(tmp_path))


def test_unreadable_image_and_size_mismatch_are_named(tmp_path):
    synthetic.generate(str(tmp_path), "cityscapes", 2, size=(33, 21))
    ds = build_dataset("cityscapes", str(tmp_path))
    with open(ds.samples[0][0], "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DataError, match=r"cannot read image .*frankfurt_000000_000019_leftImg8bit.png"):
        ds[0]
    _png(ds.samples[1][1], np.zeros((20, 33), np.uint8))
    with pytest.raises(DataError, match="is 33x20 .* but its image .* is 33x21"):
        ds[1]


def test_synthetic_cli_and_determinism(tmp_path, capsys):
    assert synthetic.main([str(tmp_path / "a"), "--layout", "cityscapes", "--num", "2", "--size", "40x24"]) == 0
    assert "wrote 2 cityscapes val images" in capsys.readouterr().out
    synthetic.generate(str(tmp_path / "b"), "cityscapes", 2, size=(40, 24))
    a, b = build_dataset("cityscapes", str(tmp_path / "a")), build_dataset("cityscapes", str(tmp_path / "b"))
    assert torch.equal(a[1]["image"], b[1]["image"]) and torch.equal(a[1]["label"], b[1]["label"])
    with pytest.raises(ValueError, match="unknown layout"):
        synthetic.generate(str(tmp_path), "kitti", 1)
    with pytest.raises(SystemExit):
        synthetic.main([str(tmp_path), "--layout", "voc", "--num", "1", "--size", "big"])


def test_synthetic_cityscapes_instance_ids_and_marker(tmp_path):
    synthetic.generate(str(tmp_path), "cityscapes", 3, size=(64, 48), seed=4)
    assert (tmp_path / synthetic.MARKER).is_file()
    n_instances = 0
    for ids_path in sorted(tmp_path.rglob("*_gtFine_labelIds.png")):
        ids = np.asarray(Image.open(ids_path)).astype(np.int64)
        inst = np.asarray(Image.open(str(ids_path).replace("labelIds", "instanceIds"))).astype(np.int64)
        assert inst.shape == ids.shape
        has = inst >= 1000
        # cityscapesScripts' encoding: label id x 1000 + instance number on person (24) and car (26) pixels
        assert np.array_equal(np.where(has, inst // 1000, inst), ids)
        assert set(np.unique(ids[has])) <= {24, 26} and set(np.unique(ids[~has])).isdisjoint({24, 26})
        n_instances += len(np.unique(inst[has]))
    assert n_instances >= 3 * 2   # at least one box and one ellipse per scene
