"""The training augmentation against the reference: OpenCV HSV arithmetic and PhotoMetricDistortion
(golden from tools/make_train_golden.py), and hand-computed resize, crop, flip and padding facts."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from sszoo.data.resize import rescale_size
from sszoo.train.augment import (AugmentConfig, TrainAugment, collate, hsv_to_rgb_u8, normalize_batch,
                                 photometric_distortion, random_crop_box, resize_image,
                                 resize_label, rgb_to_hsv_u8)
from sszoo.train.sampling import AugmentedDataset, StepBatchSampler

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "train", "photometric.pth")


@pytest.fixture(scope="module")
def photo():
    return torch.load(GOLDEN, weights_only=True)


def test_rgb_to_hsv_equals_opencv(photo):
    hsv = rgb_to_hsv_u8(photo["rgb"].permute(2, 0, 1)).permute(1, 2, 0)
    assert torch.equal(hsv, photo["hsv"])


def _assert_like_opencv(ours: torch.Tensor, ref: torch.Tensor, max_block_mismatch: float = 0.0,
                        max_level: int = 1) -> None:
    """OpenCV converts each 40-pixel row in SIMD blocks (truncating: 32 pixels with 4- or 8-lane vectors)
    and a scalar tail (rounding): the blocks must match exactly, the tail within one level."""
    diff = (ours.int() - ref.int()).abs()
    block = (diff[:, :32] > 0).any(-1).float().mean().item()
    assert block <= max_block_mismatch
    assert diff.max() <= max_level


def test_hsv_to_rgb_equals_opencv(photo):
    rgb = hsv_to_rgb_u8(photo["hsv_in"].permute(2, 0, 1)).permute(1, 2, 0)
    _assert_like_opencv(rgb, photo["hsv_to_rgb"])


class _ScriptedRng:
    """Feeds photometric_distortion the draws the reference was given."""

    def __init__(self, draws):
        self.draws = list(draws)

    def integers(self, *args):
        return self.draws.pop(0)

    def uniform(self, *args):
        return self.draws.pop(0)


@pytest.mark.parametrize("script", ["contrast_first", "contrast_last", "hue_only"])
def test_photometric_distortion_equals_reference(photo, script):
    draws = json.loads(photo["scripts"])[script]
    out = photometric_distortion(photo["rgb"].permute(2, 0, 1).contiguous(), _ScriptedRng(draws),
                                 AugmentConfig(crop=(8, 8), scale=(8, 8)))
    # up to three 8-bit conversions in a row: a tail pixel's one-level difference can grow, and an
    # intermediate value on a rounding edge may move a handful of block pixels by one level
    _assert_like_opencv(out.permute(1, 2, 0), photo["photo_" + script], max_block_mismatch=0.01, max_level=3)


def test_photometric_ranges_and_order_of_draws():
    """With a real generator: every step happens about half of the time and stays within its range."""
    rng = np.random.default_rng(0)
    img = torch.full((3, 4, 4), 100, dtype=torch.uint8)
    outs = torch.stack([photometric_distortion(img, rng, AugmentConfig(crop=(4, 4), scale=(4, 4)))
                        for _ in range(400)]).float()
    unchanged = (outs == 100).all(dim=(1, 2, 3)).float().mean().item()
    # a grey image ignores saturation and hue, so it is unchanged when brightness and contrast are both
    # skipped: p = 1/4
    assert 0.18 < unchanged < 0.32
    # extremes: brightness +-32 then contrast x[0.5, 1.5]
    assert outs.min() >= (100 - 32) * 0.5 - 1 and outs.max() <= (100 + 32) * 1.5 + 1


def test_rescaled_size_matches_reference_rounding():
    # a 2048x1024 Cityscapes image with ratio 0.5 -> scale (1024, 512): factor 0.5
    assert rescale_size(1024, 2048, (1024, 512)) == (512, 1024)
    # the short edge binds: 500x333 into (2048, 512): factor min(2048/500, 512/333) = 1.5375...
    assert rescale_size(333, 500, (2048, 512)) == (512, 769)
    # int(x + 0.5) rounding: 97 x 131 into (100, 50): factor min(100/131, 50/97) = 0.51546 -> (50, 67.5 -> 68)
    assert rescale_size(97, 131, (100, 50)) == (50, 68)


def test_resize_label_is_nearest_with_floor_indices():
    lab = torch.arange(6).view(1, 6).repeat(2, 1)
    assert resize_label(lab, (2, 4))[0].tolist() == [0, 1, 3, 4]      # floor(i * 6/4) = 0, 1, 3, 4
    assert resize_label(lab, (2, 12))[0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_random_crop_redraws_when_one_class_dominates():
    # left 90 columns class 0, right 10 columns class 1: a 10x20 crop mostly sees only class 0
    lab = torch.zeros(10, 100, dtype=torch.long)
    lab[:, 90:] = 1
    rng = np.random.default_rng(0)
    boxes = [random_crop_box(lab, (10, 20), 0.75, 255, rng) for _ in range(200)]
    good = [b for b in boxes if b[3] > 90 + 5 and b[2] < 90 - 5]  # both classes, neither over 75%
    # without re-drawing, P(good) = 5/81 ~ 6%; with up to 10 re-draws it is ~ 1 - (76/81)^11 ~ 50%
    assert len(good) / len(boxes) > 0.3
    # cat_max_ratio 1 never re-draws: about 6%
    plain = [random_crop_box(lab, (10, 20), 1.0, 255, rng) for _ in range(400)]
    assert sum(b[3] > 95 and b[2] < 85 for b in plain) / 400 < 0.15
    # ignored pixels do not count: a crop of class 0 and ignore is "one class" -> re-drawn
    lab2 = torch.full((10, 100), 255, dtype=torch.long)
    lab2[:, :10] = 0
    lab2[:, 95:] = 2
    box = random_crop_box(lab2, (10, 20), 0.75, 255, np.random.default_rng(1))
    assert box[1] - box[0] == 10 and box[3] - box[2] == 20


def test_pipeline_keeps_image_and_label_aligned_and_pads():
    """A label that encodes its own column: after resize, crop and flip the image (which encodes the
    same column in its red channel) must still agree with the label pixel by pixel."""
    w, h = 60, 30
    cols = torch.arange(w).view(1, w).repeat(h, 1)
    label = (cols // 4).long()                       # 15 classes by column band
    image = torch.zeros(3, h, w, dtype=torch.uint8)
    image[0] = (cols // 4 * 16).to(torch.uint8)       # red = 16 x class
    aug = TrainAugment(AugmentConfig(crop=(20, 40), scale=(60, 30), cat_max_ratio=1.0, photometric=False))
    flips = 0
    for seed in range(30):
        img, lab = aug(image, label, np.random.default_rng(seed))
        assert img.shape[1:] == lab.shape and lab.shape[0] <= 20 and lab.shape[1] <= 40
        # bilinear may blend at band borders; away from them red == 16 x label exactly
        inner = (lab[:, 1:-1] == lab[:, :-2]) & (lab[:, 1:-1] == lab[:, 2:])
        err = (img[0, :, 1:-1][inner].long() - lab[:, 1:-1][inner] * 16).abs()
        assert err.max() < 8 and (err == 0).float().mean() > 0.8  # a misaligned crop/flip is off by >= 16
        flips += int(lab[0, 0] > lab[0, -1])
    assert 5 < flips < 25  # flipped about half of the time
    sample = {"image": torch.full((3, 5, 7), 200, dtype=torch.uint8), "label": torch.ones(5, 7, dtype=torch.long)}
    batch = collate([sample], crop=(8, 10))
    assert batch["label"][0, 5:].eq(255).all() and batch["label"][0, :, 7:].eq(255).all()
    assert batch["label"][0, :5, :7].eq(1).all()
    x = normalize_batch(batch["image"], batch["valid"], (123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
    assert x[0, :, 5:].abs().max() == 0 and x[0, :, :, 7:].abs().max() == 0   # padding is exactly 0
    assert x[0, 0, 0, 0].item() == pytest.approx((200 - 123.675) / 58.395)


def test_sampler_is_a_pure_function_of_seed_and_iteration():
    full = StepBatchSampler(10, 4, 7, seed=3)
    batches = list(full)
    assert len(batches) == 7
    # resuming at iteration 4 gives the same batches as the uninterrupted sampler
    assert list(StepBatchSampler(10, 4, 7, seed=3, start=4)) == batches[4:]
    # two ranks split every global batch
    r0 = StepBatchSampler(10, 4, 7, seed=3, rank=0, world_size=2)
    r1 = StepBatchSampler(10, 4, 7, seed=3, rank=1, world_size=2)
    assert [a + b for a, b in zip(r0, r1)] == batches
    # each epoch (10 consecutive samples) visits every image once
    flat = [i for b in batches for i, _ in b]
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    with pytest.raises(ValueError, match="divisible"):
        StepBatchSampler(10, 3, 7, world_size=2)


def test_augmented_dataset_names_a_size_mismatch():
    ds = [{"image": torch.zeros(3, 10, 12, dtype=torch.uint8), "label": torch.zeros(10, 11, dtype=torch.long),
           "path": "img_7.png"}]
    aug = AugmentedDataset(ds, TrainAugment(AugmentConfig(crop=(4, 4), scale=(12, 10))))
    with pytest.raises(ValueError, match=r"img_7.png: the label is \(11, 10\)"):
        aug[(0, 1)]


@pytest.mark.parametrize("size", [(20, 29), (74, 106), (50, 61), (91, 140), (37, 53)])
def test_image_resize_equals_opencv_and_windows_agree(photo, size):
    src = photo["resize_src"].permute(2, 0, 1).contiguous()
    full = resize_image(src, size)
    ref = photo[f"resize_{size[0]}x{size[1]}"].permute(2, 0, 1)
    assert torch.equal(full.int(), ref.int())  # bit-exact (tests/test_resize.py has more cases)
    # any window of the resize is the same window of the full resize
    h, w = size
    for box in [(0, h // 2, 0, w // 2), (h // 3, h, w // 4, w - 1), (5, 9, 7, w)]:
        assert torch.equal(resize_image(src, size, box), full[:, box[0]:box[1], box[2]:box[3]])
    # an exact 2x reduction is a rounded 2 x 2 mean
    big = torch.randint(0, 256, (3, 8, 10), dtype=torch.uint8)
    half = resize_image(big, (4, 5))
    mean = (big.int().view(3, 4, 2, 5, 2).sum(dim=(2, 4)) + 2) // 4
    assert torch.equal(half.int(), mean)


def test_shortest_edge_scale_by_hand():
    from sszoo.train.augment import shortest_edge_scale

    # Cityscapes 1024 x 2048 with Mask2Former's shorter side 614: 614 x 1228 (cap 4096 not reached)
    assert shortest_edge_scale(1024, 2048, 614, 4096) == (1228, 614)
    # portrait, and the cap: 2000 x 500 with side 1024 -> 4096 x 1024, capped to 2048 -> 2048 x 512
    assert shortest_edge_scale(2000, 500, 1024, 2048) == (512, 2048)
    # rounding half up: 333 x 500 with side 256 -> 256 x 384.38 -> (384, 256)
    assert shortest_edge_scale(333, 500, 256, None) == (384, 256)


def test_random_choice_resize_recipe_draws_listed_shorter_sides():
    from sszoo.registry import get_entry, list_models
    from sszoo.train.augment import AugmentConfig, TrainAugment
    from sszoo.train.recipe import config_from_entry

    entry = get_entry(list_models("mask2former_r50*cityscapes*")[0])
    cfg = config_from_entry(entry, data="unused", work_dir="unused")
    assert cfg.short_sides == tuple(entry.recipe.train_scale) and cfg.max_size == 4096
    assert 512 in cfg.short_sides and 2048 in cfg.short_sides
    aug = TrainAugment(AugmentConfig(crop=(4000, 8000), scale=cfg.scale, short_sides=(8, 12), max_size=None,
                                     photometric=False, flip_prob=0.0))
    img = torch.zeros(3, 20, 40, dtype=torch.uint8)
    seen = {aug(img, torch.zeros(20, 40, dtype=torch.long), np.random.default_rng(s))[0].shape[1] for s in range(20)}
    assert seen == {8, 12}  # the crop is larger than the image: the output is the resized image itself
