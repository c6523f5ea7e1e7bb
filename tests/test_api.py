"""create_model: strict loading, class-count changes, overrides and clear errors."""
import pytest
import torch

import sszoo
from sszoo.hub import CheckpointError
from oracle_weights import oracle_checkpoint

CASE = "pspnet_r18_d8"  # 19 Cityscapes classes, a reference checkpoint from the oracle
NAME = "pspnet_r18-d8_4xb2-80k_cityscapes-512x1024"  # the config the golden case was made with


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "pspnet.pth"
    x, ref, info = oracle_checkpoint(CASE, str(path))
    return path, x, ref, info


def test_build_and_run_any_size():
    model = sszoo.create_model("fcn_r18_d8_cityscapes")
    with torch.no_grad():
        for h, w in [(97, 131), (33, 65), (64, 64)]:
            assert model(torch.randn(1, 3, h, w)).shape == (1, 19, h, w)
    assert not model.training and model.entry.name.startswith("fcn_r18_d8_cityscapes.")


def test_bad_inputs_give_clear_errors():
    model = sszoo.create_model("fcn_r18_d8_cityscapes")
    with pytest.raises(ValueError, match="4-D input.*unsqueeze"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="3 input channels"):
        model(torch.randn(1, 32, 32, 3))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(TypeError, match="unknown overrides"):
        sszoo.create_model("fcn_r18_d8_cityscapes", dilation=3)
    with pytest.raises(ValueError, match="num_classes"):
        sszoo.create_model("fcn_r18_d8_cityscapes", num_classes=0)
    with pytest.raises(FileNotFoundError):
        sszoo.create_model("fcn_r18_d8_cityscapes", pretrained="/no/such/file.pth")


def test_checkpoint_of_another_architecture_is_refused(ckpt):
    path = ckpt[0]
    with pytest.raises(CheckpointError) as e:
        sszoo.create_model("fcn_r18_d8_cityscapes", pretrained=str(path))
    msg = str(e.value)
    assert "missing keys" in msg and "decode_head.convs.0.conv.weight" in msg
    assert "unexpected keys" in msg and "decode_head.psp_modules" in msg


def test_strict_load_fills_everything(ckpt):
    path, x, ref, _ = ckpt
    model = sszoo.create_model(NAME, pretrained=str(path))
    state = torch.load(path, weights_only=True)["state_dict"]
    own = model.state_dict()
    assert set(own) == set(state)
    assert all(torch.equal(own[k], state[k]) for k in own)
    with torch.no_grad():
        assert torch.allclose(model(x), ref, atol=1e-4 * max(1.0, ref.abs().max().item()))


def test_num_classes_replaces_only_the_classifiers(ckpt):
    path = ckpt[0]
    state = torch.load(path, weights_only=True)["state_dict"]
    model = sszoo.create_model(NAME, pretrained=str(path), num_classes=3)
    own = model.state_dict()
    changed = {k for k in own if own[k].shape != state[k].shape or not torch.equal(own[k], state[k])}
    assert changed == {"decode_head.conv_seg.weight", "decode_head.conv_seg.bias",
                       "auxiliary_head.conv_seg.weight", "auxiliary_head.conv_seg.bias"}
    assert own["decode_head.conv_seg.weight"].shape[0] == 3
    with torch.no_grad():
        assert model(torch.randn(1, 3, 40, 56)).shape == (1, 3, 40, 56)


def test_aux_head_is_droppable(ckpt):
    path = ckpt[0]
    model = sszoo.create_model(NAME, pretrained=str(path), aux=False)
    assert model.auxiliary_head is None
    assert not any(k.startswith("auxiliary_head.") for k in model.state_dict())


def test_overrides():
    model = sszoo.create_model("pspnet_r18_d8_cityscapes", align_corners=True)
    assert model.align_corners and model.decode_head.align_corners


def test_top_level_predict_returns_a_label_map():
    import numpy as np
    model = sszoo.create_model("fcn_r18_d8_cityscapes")
    image = np.random.default_rng(0).integers(0, 256, (45, 67, 3), dtype=np.uint8)
    labels = sszoo.predict(model, image)
    assert labels.shape == (45, 67) and labels.dtype == torch.int64
    assert int(labels.min()) >= 0 and int(labels.max()) < 19
    from sszoo.inference import infer
    assert torch.equal(labels, infer(model, image))
