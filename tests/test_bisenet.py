"""BiSeNetV1 and BiSeNetV2: what the golden parity cases do not show.

- Both fuse maps of two paths elementwise (V1's FFM: the spatial path with the context path's stride-8 map;
  V2's BGA: the detail map halved twice with the semantic branch's stride-32 map). Every stride-2 layer of
  either path rounds an odd side up, so the sizes meet at any input size: checked on shapes alone.
- The training outputs (decode head + 2 / 4 auxiliary FCN heads on the context path / semantic stages) and
  the loss: every head's cross-entropy at weight 1, the recipe's auxiliary weight.
- The reference's BatchNorms on globally pooled (1 x 1) maps cannot train on a batch of one image.
- MMSegmentation's "ohem" BiSeNetV2 config never applies OHEM (it sets ``models=``, not ``model=``).
"""
from __future__ import annotations

import json
import math
import os
import sys

import pytest
import torch
import torch.nn.functional as F

from sszoo.export import output_stride
from sszoo.models import ArchConfig, build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from mmseg_arch import arch_from_mmseg  # noqa: E402

with open(os.path.join(ROOT, "tools", "reference", "mmseg_configs.json")) as f:
    CONFIGS = json.load(f)["configs"]

V1 = "configs/bisenetv1/bisenetv1_r18-d32_4xb4-160k_cityscapes-1024x1024.py"
V1_R50 = "configs/bisenetv1/bisenetv1_r50-d32_4xb4-160k_cityscapes-1024x1024.py"
V2 = "configs/bisenetv2/bisenetv2_fcn_4xb4-160k_cityscapes-1024x1024.py"
V2_OHEM = "configs/bisenetv2/bisenetv2_fcn_4xb4-ohem-160k_cityscapes-1024x1024.py"


def _arch(config: str, num_classes: int = 4) -> ArchConfig:
    return ArchConfig.from_dict(arch_from_mmseg(CONFIGS[config]["model"])).with_num_classes(num_classes)


def _up(side: int, halvings: int) -> int:
    """A side after ``halvings`` stride-2 layers of kernel 3 (or 7), padding 1 (3): each rounds up."""
    for _ in range(halvings):
        side = math.ceil(side / 2)
    return side


SIZES = [(33, 47), (71, 38), (32, 32)]


def _meta_model(config: str):
    with torch.device("meta"):  # shapes only: nothing allocated or initialised
        return build_model(_arch(config))


def test_bisenetv1_fuses_paths_at_any_size():
    model = _meta_model(V1).eval()
    bb = model.backbone
    for h, w in SIZES:
        x = torch.empty(2, 3, h, w, device="meta")
        spatial = bb.spatial_path(x)
        context8, context16 = bb.context_path(x)
        fused, c8, c16 = bb(x)
        assert spatial.shape[2:] == context8.shape[2:] == (_up(h, 3), _up(w, 3))
        assert context16.shape[2:] == (_up(h, 4), _up(w, 4))
        assert (fused.shape[1], c8.shape[1], c16.shape[1]) == tuple(bb.out_channels) == (256, 128, 128)
        assert fused.shape[2:] == c8.shape[2:]
        assert model(x).shape == (2, 4, h, w)


def test_bisenetv2_gates_branches_at_any_size():
    model = _meta_model(V2).eval()
    bb = model.backbone
    for h, w in SIZES:
        x = torch.empty(1, 3, h, w, device="meta")
        detail = bb.detail(x)
        semantic = bb.semantic(x)
        down = bb.bga.detail_down(detail)
        outs = bb(x)
        assert detail.shape[2:] == (_up(h, 3), _up(w, 3))
        # stem (stride 4), GE stages (8, 16, 32), CE block (32)
        assert [s.shape[2:] for s in semantic] == [(_up(h, k), _up(w, k)) for k in (2, 3, 4, 5, 5)]
        assert down.shape[2:] == semantic[-1].shape[2:]
        assert [o.shape[1] for o in outs] == [128, 16, 32, 64, 128] == bb.out_channels
        assert outs[0].shape[2:] == detail.shape[2:]
        assert model(x).shape == (1, 4, h, w)


def test_output_stride_is_32():
    for config in (V1, V1_R50, V2):
        assert output_stride(_meta_model(config)) == 32


@pytest.fixture
def one_thread():
    # grouped (depthwise) convs on two threads cost 15x the CPU time of one on the shared test machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_bisenetv2_training_loss_is_every_head_at_weight_one(one_thread):
    torch.manual_seed(0)
    model = build_model(_arch(V2)).train()
    x = torch.randn(2, 3, 37, 45)
    label = torch.randint(0, 4, (2, 37, 45))
    label[:, :3] = 255
    out = model.forward_heads(x)
    assert len(out.decode) == 1 and len(out.aux) == 4
    # decode head on the BGA map (stride 8); boosters on the stem (4) and the GE stages (8, 16, 32)
    assert [o.shape[2:] for o in out.decode + out.aux] == [(_up(37, k), _up(45, k)) for k in (3, 2, 3, 4, 5)]
    assert [cfg.loss_weight for cfg in model.config.auxiliary_heads] == [1.0] * 4

    def ce(logits):  # MMSegmentation's CE: bilinear to the label, summed, over all pixels (ignored ones too)
        up = F.interpolate(logits, size=label.shape[1:], mode="bilinear", align_corners=False)
        return F.cross_entropy(up, label, ignore_index=255, reduction="sum") / label.numel()

    losses = model.loss(out, label, aux_weight=1.0)
    torch.testing.assert_close(losses["decode"], ce(out.decode[0]))
    torch.testing.assert_close(losses["aux"], sum(ce(o) for o in out.aux))
    torch.testing.assert_close(losses["total"], losses["decode"] + losses["aux"])


def test_bisenetv1_training_outputs():
    model = _meta_model(V1).train()
    out = model.forward_heads(torch.empty(2, 3, 41, 49, device="meta"))
    assert len(out.decode) == 1 and len(out.aux) == 2
    # decode head on the FFM, auxiliary heads on the context path's stride-8 and stride-16 maps
    assert [o.shape[2:] for o in out.decode + out.aux] == [(6, 7), (6, 7), (3, 4)]


@pytest.mark.parametrize("config", [V1, V2])
def test_training_needs_two_images(config):
    """ARM/FFM (V1) and the CE block (V2) batch-normalise globally pooled maps: one value per channel and
    image, which BatchNorm cannot normalise in training with one image (the reference fails alike)."""
    model = _meta_model(config).train()
    x = torch.empty(1, 3, 33, 33, device="meta")
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        model.forward_heads(x)
    assert len(model.forward_heads(torch.empty(2, 3, 33, 33, device="meta")).aux) in (2, 4)
    assert model.eval()(x).shape == (1, 4, 33, 33)


def test_ohem_config_trains_with_plain_cross_entropy():
    """The "ohem" config puts its OHEMPixelSampler under ``models=`` (a typo for ``model=``), so MMSegmentation's
    resolved model has no sampler and trains with the plain CE of the other BiSeNetV2 configs; so does sszoo."""
    model = CONFIGS[V2_OHEM]["model"]
    heads = [model["decode_head"], *model["auxiliary_head"]]
    assert all("sampler" not in h for h in heads)
    assert _arch(V2_OHEM) == _arch(V2)


def test_bisenetv1_refuses_channels_the_ffm_cannot_read():
    from sszoo.models.backbones import BiSeNetV1, BiSeNetV1Config

    cfg = BiSeNetV1Config()
    with pytest.raises(ValueError, match="FFM"):  # 64 + 128 channels reach an FFM built for 256
        BiSeNetV1(cfg.backbone_cfg, spatial_channels=(64, 64, 64, 64), context_channels=(128, 256, 512))
