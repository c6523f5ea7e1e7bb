"""Parity of sszoo's detectors with MMDetection 3.3.0 (CPU, MMCV's own roi_align kernel).

Golden files (tests/golden/detection/, made by tools/make_detection_goldens.sh with the oracle) hold the
oracle's outputs in **float64** on odd-sized images, zero-padded to 32 by MMDetection's preprocessor; the
weights and the input are regenerated here from the seed (tests/det_oracle.py: float32 weights, BN statistics
measured in float64 and rounded to float32, as the dump does). The oracle's forward, RPN, RoI head, NMS and
mask paste ran in float64 (MMCV's compiled nms takes float32 only: the dump runs the same algorithm in float64,
see tools/mmdet_oracle_dump.py). Random-weight networks amplify float32 rounding: a float32 golden moved by
1e-4 relative (boxes 0.01 px, and Mask R-CNN's detection order) between thread counts or CPUs; float64 leaves
about 1e-17 relative, so the float64 goldens hold on any CPU.

float64 (``model.double()``): the same state-dict keys and order, FPN sums within 1e-10 of their absolute
sums, the same RPN proposals (boxes within 1e-6 px, scores within 1e-9), the same detections in the same order
(boxes within 1e-6 px, scores within 1e-9, labels equal) and >= 99.9% of pasted mask pixels equal, at the
input's size and through the rescale path (scale_factor, ori_shape). Measured: all bit-identical (max |diff| 0),
with one thread and with two.

float32 (the model as used): compared with the float64 reference, so the bounds are for float32 rounding,
amplified by the network, on any CPU or thread count. The order of detections with near-equal scores may change
and near-duplicate boxes may swap, so detections are matched, not compared by index: a reference detection is
matched by a float32 one with the same label and every coordinate within 0.1 px (measured: at most 0.032 px).
Required: >= 95% of the reference's detections (and RPN proposals) matched (measured: 100%), matched scores
within 5e-3 (measured: at most 7.4e-4), >= 99.9% of the matched detections' mask pixels equal (measured:
99.996%), FPN sums within 1e-4 of their absolute sums (measured: at most 2.1e-6). Measured with one
thread (as under pytest-xdist) and with two, on an AMD EPYC.
"""
from __future__ import annotations

import pytest
import torch

from det_oracle import cases, oracle_model

CASES = cases()
MATCH_PX = 0.1        # float32 boxes: each coordinate within this of the float64 reference
MIN_MATCHED = 0.95    # fraction of the reference's detections / proposals that must be matched
SCORE32 = 5e-3        # matched float32 scores


def _rescale_meta(g: dict) -> list[dict]:
    meta = g["rescaled_meta"]
    return [{"scale_factor": tuple(meta["scale_factor"]), "ori_shape": tuple(meta["ori_shape"])}]


def _check_float64(model, x, g) -> None:
    model.double()
    x = x.double()
    with torch.no_grad():
        batch, sizes = model.batch(x)
        assert tuple(batch.shape[-2:]) == (g["info"]["pad_height"], g["info"]["pad_width"])
        feats = model.extract_feat(batch)
        sums = torch.stack([f.sum() for f in feats])
        assert ((sums - g["fpn_sums"]).abs() <= 1e-10 * g["fpn_abs_sums"]).all()
        if "proposals" in g:
            boxes, scores = model.propose(feats, sizes)[0]
            assert boxes.dtype == torch.float64 and boxes.shape == g["proposals"].shape
            assert (boxes - g["proposals"]).abs().max() <= 1e-6
            assert (scores - g["proposal_scores"]).abs().max() <= 1e-9
        for prefix, meta in (("", None), ("rescaled_", _rescale_meta(g))):
            out = model.predict(x, meta)[0]
            assert out["boxes"].dtype == torch.float64
            assert out["boxes"].shape == g[prefix + "bboxes"].shape and len(out["boxes"]) > 0, prefix
            assert (out["boxes"] - g[prefix + "bboxes"]).abs().max() <= 1e-6, prefix
            assert (out["scores"] - g[prefix + "scores"]).abs().max() <= 1e-9, prefix
            assert torch.equal(out["labels"], g[prefix + "labels"]), prefix
            if prefix + "masks" in g:
                assert out["masks"].dtype == torch.bool and out["masks"].shape == g[prefix + "masks"].shape
                assert (out["masks"] == g[prefix + "masks"]).float().mean() >= 0.999, prefix


def _match(boxes, labels, ref_boxes, ref_labels) -> tuple[torch.Tensor, torch.Tensor]:
    """For each reference detection: whether a float32 one has its label and every coordinate within MATCH_PX,
    and the index of the closest such one."""
    d = (ref_boxes[:, None] - boxes.double()[None]).abs().amax(-1)
    ok = (d <= MATCH_PX) & (ref_labels[:, None] == labels[None])
    return ok.any(1), torch.where(ok, d, torch.full_like(d, float("inf"))).argmin(1)


def _check_float32(model, x, g) -> None:
    model.float()
    with torch.no_grad():
        batch, sizes = model.batch(x)
        feats = model.extract_feat(batch)
        sums = torch.stack([f.double().sum() for f in feats])
        assert ((sums - g["fpn_sums"]).abs() <= 1e-4 * g["fpn_abs_sums"]).all()
        if "proposals" in g:
            boxes, _ = model.propose(feats, sizes)[0]
            zeros = torch.zeros(len(g["proposals"]), dtype=torch.long)
            hit, _ = _match(boxes, torch.zeros(len(boxes), dtype=torch.long), g["proposals"], zeros)
            assert hit.float().mean() >= MIN_MATCHED
        for prefix, meta in (("", None), ("rescaled_", _rescale_meta(g))):
            out = model.predict(x, meta)[0]
            assert out["boxes"].dtype == torch.float32 and len(out["boxes"]) > 0
            hit, j = _match(out["boxes"], out["labels"], g[prefix + "bboxes"], g[prefix + "labels"])
            assert hit.float().mean() >= MIN_MATCHED, (prefix, hit.float().mean())
            assert (out["scores"].double()[j[hit]] - g[prefix + "scores"][hit]).abs().max() <= SCORE32, prefix
            if prefix + "masks" in g:
                assert out["masks"].shape[1:] == g[prefix + "masks"].shape[1:]
                assert (out["masks"][j[hit]] == g[prefix + "masks"][hit]).float().mean() >= 0.999, prefix


@pytest.mark.parametrize("case", CASES)
def test_detector_matches_mmdetection(case: str) -> None:
    model, x, g = oracle_model(case)
    assert g["info"].get("dtype") == "float64", "the goldens are float64 (tools/make_detection_goldens.sh)"
    sd = model.state_dict()
    assert list(sd) == g["keys"], "state-dict keys (and their order) must be MMDetection's"
    assert [list(v.shape) for v in sd.values()] == g["key_shapes"]
    assert torch.equal(x.double().sum(), g["input_sum"]), "the regenerated input differs from the dump's"
    _check_float64(model, x, g)
    _check_float32(model, x, g)


def test_goldens_present() -> None:
    kinds = {c.split("_")[0] for c in CASES}
    assert kinds == {"faster-rcnn", "mask-rcnn", "retinanet"}
