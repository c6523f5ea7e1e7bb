"""Parity of sszoo's detectors with MMDetection 3.3.0 (CPU, MMCV's own nms and roi_align kernels).

Golden files (tests/golden/detection/, made by tools/make_detection_goldens.sh with the oracle) hold the
oracle's outputs on odd-sized images, zero-padded to 32 by MMDetection's preprocessor; the weights and the
input are regenerated here from the seed (tests/det_oracle.py). Required: the same RPN proposals, boxes
within 1e-3 px, the same scores and labels for every detection, and >= 99.9% of pasted mask pixels equal,
both at the input's size and through the rescale path (scale_factor, ori_shape). Measured: all bit-identical.
"""
from __future__ import annotations

import pytest
import torch

from det_oracle import cases, oracle_model

CASES = cases()


@pytest.mark.parametrize("case", CASES)
def test_detector_matches_mmdetection(case: str) -> None:
    model, x, g = oracle_model(case)
    sd = model.state_dict()
    assert list(sd) == g["keys"], "state-dict keys (and their order) must be MMDetection's"
    assert [list(v.shape) for v in sd.values()] == g["key_shapes"]
    assert torch.equal(x.double().sum(), g["input_sum"]), "the regenerated input differs from the dump's"
    with torch.no_grad():
        batch, sizes = model.batch(x)
        assert tuple(batch.shape[-2:]) == (g["info"]["pad_height"], g["info"]["pad_width"])
        feats = model.extract_feat(batch)
        sums = torch.stack([f.double().sum() for f in feats])
        torch.testing.assert_close(sums, g["fpn_sums"], rtol=1e-6, atol=1e-3)
        if "proposals" in g:
            boxes, scores = model.propose(feats, sizes)[0]
            assert boxes.shape == g["proposals"].shape
            assert (boxes - g["proposals"]).abs().max() <= 1e-3
            torch.testing.assert_close(scores, g["proposal_scores"], rtol=0, atol=1e-6)
    out = model(x)[0]
    assert out["boxes"].shape == g["bboxes"].shape and len(out["boxes"]) > 0
    assert (out["boxes"] - g["bboxes"]).abs().max() <= 1e-3
    torch.testing.assert_close(out["scores"], g["scores"], rtol=0, atol=1e-6)
    assert torch.equal(out["labels"], g["labels"])
    if "masks" in g:
        assert out["masks"].dtype == torch.bool and out["masks"].shape == g["masks"].shape
        assert (out["masks"] == g["masks"]).float().mean() >= 0.999
    # the rescale path (after the test pipeline's resize): boxes back to the original image, masks pasted there
    meta = g["rescaled_meta"]
    r = model.predict(x, [{"scale_factor": tuple(meta["scale_factor"]), "ori_shape": tuple(meta["ori_shape"])}])[0]
    assert r["boxes"].shape == g["rescaled_bboxes"].shape
    assert (r["boxes"] - g["rescaled_bboxes"]).abs().max() <= 1e-3
    torch.testing.assert_close(r["scores"], g["rescaled_scores"], rtol=0, atol=1e-6)
    assert torch.equal(r["labels"], g["rescaled_labels"])
    if "masks" in g:
        assert r["masks"].shape == g["rescaled_masks"].shape
        assert (r["masks"] == g["rescaled_masks"]).float().mean() >= 0.999


def test_goldens_present() -> None:
    kinds = {c.split("_")[0] for c in CASES}
    assert kinds == {"faster-rcnn", "mask-rcnn", "retinanet"}
