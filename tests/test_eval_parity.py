"""Protocol parity: sszoo's evaluator vs MMSegmentation 1.2.2's own test loop (tools/make_eval_golden.py).

The golden numbers come from the reference's dataset class, test pipeline (cv2 resize) and IoUMetric on
the small Cityscapes- and ADE20K-layout sets committed in tests/golden/eval, with the oracle's seeded
weights, which tests/oracle_weights.py rebuilds inside sszoo.
"""
import json
import os

import pytest
import torch

from oracle_weights import randomise_like_oracle
from sszoo.data import build_dataset
from sszoo.eval import evaluate
from sszoo.inference import Protocol
from sszoo.models import build_model
from sszoo.registry import get_entry

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "eval")


def _golden():
    with open(os.path.join(GOLDEN, "golden.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def models():
    g = _golden()
    out = {}
    for name, s in g["sets"].items():
        entry = get_entry(s["config"])
        model = build_model(entry.arch.with_num_classes(s["num_classes"]))
        float64 = g.get("dtype") == "float64"
        randomise_like_oracle(model, g["seed"], tuple(g["calib_shape"]), float64=float64)
        out[name] = ((model.double() if float64 else model).eval(), entry)
    return out


@pytest.mark.parametrize("mode", ["whole", "slide", "tta", "tta_slide"])
@pytest.mark.parametrize("name", ["cityscapes", "ade20k"])
def test_miou_matches_mmsegmentation_test_loop(models, name, mode):
    """whole, slide, and "tta" / "tta_slide": multi-scale (6 ratios of the test scale) + flip, whole or sliding
    windows at every scale, against the reference's TestTimeAug pipeline and SegTTAModel
    (tools/make_eval_golden.py)."""
    s = _golden()["sets"][name]
    ref = s["results"][mode]
    model, entry = models[name]
    protocol = Protocol(scale=tuple(s["scale"]), keep_ratio=True, mode={"tta": "whole", "tta_slide": "slide"}.get(mode, mode),
                        crop=(s["crop"], s["crop"]), stride=(s["stride"], s["stride"]),
                        align_corners=entry.arch.align_corners)
    if mode.startswith("tta"):
        assert tuple(ref["ratios"]) == protocol.msflip_ratios  # the default ratios are the reference's
    ds = build_dataset(s["layout"], os.path.join(GOLDEN, name), "val")
    assert len(ds) == ref["num_images"]
    res = evaluate(model, ds, protocol, device="cpu", progress=False, tta=mode.startswith("tta"))
    # the reference rounds its summary to 2 decimals
    for key in ("mIoU", "mAcc", "aAcc"):
        assert abs(res[key] - ref["summary"][key]) <= 0.01, (key, res[key], ref["summary"][key])
    assert res["num_images"] == ref["num_images"]
    got = {a: torch.tensor([row[a] for row in res["per_class"]]) for a in ("intersect", "pred", "label")}
    # label areas do not depend on the model: they must be exact (label reading, id mapping, reduce_zero_label)
    assert torch.equal(got["label"], torch.tensor(ref["area_label"]).long())
    assert torch.equal(got["label"], torch.tensor(_label_areas(ds)))
    # predictions: the resize is OpenCV's to the bit and the logits follow the reference's operations, so
    # every pixel agrees in every mode. (evaluate's batch_size=1 runs the windows one at a time as the
    # reference does; batched windows move logits by float32 rounding: 2 of 51357 ADE20K pixels flip.)
    allowed = 0
    for a in ("intersect", "pred"):
        diff = (got[a] - torch.tensor(ref[f"area_{a}"]).long()).abs().sum().item()
        assert diff <= allowed, (a, diff)


def _label_areas(ds):
    k = ds.info.num_classes
    tot = torch.zeros(k, dtype=torch.int64)
    for i in range(len(ds)):
        lab = ds.load_label(i).reshape(-1)
        lab = lab[lab < k]
        tot += torch.bincount(lab, minlength=k)
    return tot.tolist()
