"""Golden training losses of Mask2Former and MaskFormer, computed by MMSegmentation 1.2.2's heads (MMDetection
3.3.0's ``loss_by_feat``), and SciPy's assignments, for tests/test_mask2former_loss.py.

    /work/oracle/bin/python tools/make_mask2former_loss_golden.py
        (writes tests/golden/heads/mask2former_loss.pt, ~0.2 MB)

For each case the reference head of the config is built (few classes and queries; the loss and matcher
settings are the config's, num_points 12544 included) and its ``loss_by_feat`` is fed seeded random float64
class logits and mask logits for every decoder layer (the network itself is not run: the loss is a function
of these predictions) and label maps with ignored pixels (one image of a batch entirely ignored, so it has no
target; a batch entirely ignored, so no query is matched). ``torch.manual_seed(LOSS_SEED)`` is set right
before the call; the test sets it before sszoo's call and replays the same draws. Recorded: every
(layer, image)'s ``assigned_gt_inds`` (through a wrapper around the head's assigner) and every loss.

float64: the reference cannot run in float64 as it is (its ``.float()`` casts of the targets meet float64
predictions in ``grid_sample`` and ``einsum``, which refuse mixed dtypes), so during the call the default
dtype is float64 (its ``torch.rand`` points are float64) and ``Tensor.float`` converts to float64: the
float32 run's computation, in float64.

Also: ``scipy.optimize.linear_sum_assignment`` on random rectangular float64 matrices (continuous values, no
ties) and on a few integer matrices with ties, for sszoo's NumPy assignment; and the first case once more as
the reference trains, in float32 and unpatched (``mask2former_float32``).
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from oracle_models import dump_module  # noqa: E402
from mmengine import Config  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402
from mmseg.utils import register_all_modules  # noqa: E402

OUT = os.path.join(os.path.dirname(HERE), "tests", "golden", "heads", "mask2former_loss.pt")
NUM_CLASSES, NUM_QUERIES = 5, 6
# name: (config, batch, mask h, mask w, label H, label W, which images are all ignored, data seed, loss seed)
CASES = {
    "mask2former": ("mask2former_r50_8xb2-90k_cityscapes-512x1024", 3, 9, 11, 36, 44, (2,), 1, 100),
    "mask2former_nomatch": ("mask2former_r50_8xb2-90k_cityscapes-512x1024", 2, 3, 5, 12, 20, (0, 1), 2, 200),
    # MaskFormer: no random draws; its labels are not a multiple of the mask size (nearest downsampling)
    "maskformer": ("maskformer_r50-d32_8xb2-160k_ade20k-512x512", 2, 9, 11, 37, 45, (), 3, 300),
}
LSA_SHAPES = [(6, 4), (4, 6), (1, 5), (5, 1), (7, 7), (100, 19), (19, 100), (100, 1), (3, 100), (30, 30)]


@contextlib.contextmanager
def float64_reference():
    """Default dtype float64 and ``Tensor.float`` meaning float64, restored afterwards."""
    old_dtype, old_float = torch.get_default_dtype(), torch.Tensor.float
    torch.set_default_dtype(torch.float64)
    torch.Tensor.float = lambda self, *a, **k: self.to(torch.float64)
    try:
        yield
    finally:
        torch.Tensor.float = old_float
        torch.set_default_dtype(old_dtype)


def build_head(config: str):
    register_all_modules()
    cfg = Config.fromfile(dump_module().find_config(config))
    head_cfg = cfg.model.decode_head
    head_cfg.num_classes = NUM_CLASSES
    head_cfg.num_queries = NUM_QUERIES
    head_cfg.loss_cls.class_weight = [1.0] * NUM_CLASSES + [0.1]
    head = MODELS.build(head_cfg)
    num_layers = head_cfg.transformer_decoder.num_layers + (1 if head_cfg.type == "Mask2FormerHead" else 0)
    settings = dict(loss_cls=dict(head_cfg.loss_cls), loss_mask=dict(head_cfg.loss_mask),
                    loss_dice=dict(head_cfg.loss_dice), train_cfg=head_cfg.train_cfg.to_dict())
    return head, num_layers, settings


def labels_for(g: torch.Generator, batch: int, H: int, W: int, ignored: tuple) -> torch.Tensor:
    label = torch.randint(0, NUM_CLASSES, (batch, H, W), generator=g)
    if batch > 1:  # image 1: a single class (one target) and an ignored border
        label[1] = 3
    label[:, : H // 5] = 255
    label[:, :, -3:] = 255
    for i in ignored:
        label[i] = 255
    return label


def make_case(name: str, float32: bool = False) -> dict:
    config, batch, h, w, H, W, ignored, data_seed, loss_seed = CASES[name]
    head, num_layers, settings = build_head(config)
    g = torch.Generator().manual_seed(data_seed)
    cls = (2 * torch.randn(num_layers, batch, NUM_QUERIES, NUM_CLASSES + 1, generator=g)).double()
    masks = (3 * torch.randn(num_layers, batch, NUM_QUERIES, h, w, generator=g)).double()
    label = labels_for(g, batch, H, W, ignored)
    samples = []
    for lab in label:
        s = SegDataSample(metainfo=dict(img_shape=(H, W), ori_shape=(H, W), pad_shape=(H, W)))
        s.gt_sem_seg = PixelData(data=lab[None])
        samples.append(s)
    gt_instances, metas = head._seg_data_to_instance_data(samples)

    recorded = []
    assign = head.assigner.assign

    def recording_assign(*args, **kwargs):
        result = assign(*args, **kwargs)
        recorded.append(result.gt_inds.clone())
        return result

    head.assigner.assign = recording_assign
    context = contextlib.nullcontext() if float32 else float64_reference()
    with context, torch.no_grad():
        torch.manual_seed(loss_seed)
        inputs = (list(cls.float()), list(masks.float())) if float32 else (list(cls), list(masks))
        losses = head.loss_by_feat(*inputs, gt_instances, metas)
        after = torch.rand(3)  # the generator's state after the call: the test checks sszoo drew as many numbers
    print(name, {k: float(v) for k, v in losses.items()})
    # the inputs are float32 draws (exact in float64), stored as float32 to keep the file small
    return {"config": config, "settings": json.dumps(settings), "cls": cls.float(), "masks": masks.float(),
            "label": label.to(torch.uint8), "seed": loss_seed, "num_layers": num_layers,
            "assigned": torch.stack(recorded).reshape(num_layers, batch, NUM_QUERIES),
            "gt_labels": [x.labels.clone() for x in gt_instances],
            "losses": {k: v.double().reshape(()) for k, v in losses.items()}, "key_order": list(losses),
            "rand_after": after.double()}


def lsa_cases() -> dict:
    rng = np.random.default_rng(0)
    cases = []
    for shape in LSA_SHAPES:
        for _ in range(3 if shape[0] * shape[1] < 1000 else 1):
            c = rng.standard_normal(shape) * rng.choice([1e-3, 1.0, 1e3])
            r, k = linear_sum_assignment(c)
            cases.append({"cost": torch.from_numpy(c), "rows": torch.from_numpy(r), "cols": torch.from_numpy(k)})
    ties = []
    for shape in [(4, 4), (6, 3), (3, 6), (8, 5), (5, 8)]:
        for _ in range(3):
            c = rng.integers(0, 3, shape).astype(np.float64)
            r, k = linear_sum_assignment(c)
            ties.append({"cost": torch.from_numpy(c), "rows": torch.from_numpy(r), "cols": torch.from_numpy(k)})
    c = np.zeros((5, 7))  # constant: SciPy returns the identity
    r, k = linear_sum_assignment(c)
    ties.append({"cost": torch.from_numpy(c), "rows": torch.from_numpy(r), "cols": torch.from_numpy(k)})
    return {"distinct": cases, "ties": ties}


def main() -> None:
    import scipy
    cases = {name: make_case(name) for name in CASES}
    # the reference as it trains: float32, unpatched (float32 random points)
    cases["mask2former_float32"] = {k: v for k, v in make_case("mask2former", float32=True).items()
                                    if k not in ("cls", "masks", "label")}  # the same inputs as "mask2former"
    out = {"cases": cases, "lsa": lsa_cases(),
           "versions": {"torch": str(torch.__version__), "scipy": str(scipy.__version__)}}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    torch.save(out, OUT)
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
