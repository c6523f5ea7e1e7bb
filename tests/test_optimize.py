"""BN folding, inference preparation and torch.compile give the logits of the eager model.

The expectations are independent of sszoo: the golden logits of MMSegmentation 1.2.2 for the same
seeded weights (tests/golden/parity, see oracle_weights.py) and hand-computed numbers.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import sszoo
from oracle_weights import oracle_checkpoint
from sszoo.optimize import (compile_model, compile_support, count_batchnorms, fold_bn, fold_conv_bn,
                            prepare_for_inference)


def _golden_model(case: str, tmp_path):
    ckpt = tmp_path / f"{case}.pth"
    x, ref, info = oracle_checkpoint(case, str(ckpt))
    model = sszoo.create_model(info["config"], pretrained=str(ckpt), num_classes=info["num_classes"], aux=False)
    return model, x, ref


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    """``golden(case)``: (model with the oracle's weights, input, MMSegmentation's logits), built once per case.

    The tests never change these models: fold_bn and prepare_for_inference work on copies.
    """
    cache: dict[str, tuple] = {}

    def get(case: str):
        if case not in cache:
            cache[case] = _golden_model(case, tmp_path_factory.mktemp(case))
        return cache[case]
    return get


def _fp32_tol(ref: torch.Tensor) -> float:
    return 1e-4 * max(1.0, ref.abs().max().item())


# V1c (deep stem) + PSP head, V1b (7x7 stem) + separable DeepLabV3+ head, V1b + FCN head, V1c + ASPP
@pytest.mark.parametrize("case", ["pspnet_r18_d8", "deeplabv3plus_r18b_d8", "fcn_r18b_d8", "deeplabv3_r18_d8"])
def test_fold_bn_matches_reference_logits(case, golden):
    model, x, ref = golden(case)
    n_bn = count_batchnorms(model)
    folded = fold_bn(model)
    assert n_bn > 20 and count_batchnorms(folded) == 0
    assert count_batchnorms(model) == n_bn, "fold_bn must not change its argument unless inplace=True"
    with torch.no_grad():
        out = folded(x)
    diff = (out - ref).abs().max().item()
    assert diff <= _fp32_tol(ref), f"{case}: folded logits differ from MMSegmentation's by {diff:.2e}"


def test_fold_conv_bn_hand_computed():
    conv = nn.Conv2d(1, 2, 1, bias=False)
    bn = nn.BatchNorm2d(2, eps=0.0)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([2.0, -1.0]).view(2, 1, 1, 1))
        bn.weight.copy_(torch.tensor([3.0, 0.5]))
        bn.bias.copy_(torch.tensor([1.0, -2.0]))
        bn.running_mean.copy_(torch.tensor([4.0, 1.0]))
        bn.running_var.copy_(torch.tensor([4.0, 0.25]))
    fused = fold_conv_bn(conv, bn)
    # channel 0: scale 3/2 = 1.5 -> weight 3.0, bias 1 - 4 * 1.5 = -5
    # channel 1: scale 0.5/0.5 = 1 -> weight -1.0, bias -2 - 1 * 1 = -3
    assert fused.weight.flatten().tolist() == [3.0, -1.0]
    assert fused.bias.tolist() == [-5.0, -3.0]
    x = torch.tensor([[[[1.0]], ]])  # 1 x 1 x 1 x 1, value 1
    assert fused(x).flatten().tolist() == [-2.0, -4.0]


def test_fold_keeps_existing_conv_bias_and_training_model_untouched():
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=True), nn.BatchNorm2d(4), nn.ReLU())
    seq[1].running_mean.uniform_(-1, 1)
    seq[1].running_var.uniform_(0.5, 2)
    seq.train()
    folded = fold_bn(seq)
    assert seq.training and not folded.training
    assert isinstance(folded[1], nn.Identity) and isinstance(seq[1], nn.BatchNorm2d)
    x = torch.randn(2, 3, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), seq.eval()(x), rtol=1e-5, atol=1e-5)


def test_fold_torchvision_resnet():
    """The benchmarks fold torchvision's peers too; their BasicBlock/ResNet stem pairs must fold right."""
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    net = tv.models.resnet18(weights=None, num_classes=7)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):  # non-trivial statistics so a wrong fold shows
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    net.eval()
    folded = fold_bn(net)
    assert count_batchnorms(folded) == 0
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = net(x)
        torch.testing.assert_close(folded(x), ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


def test_prepare_for_inference_channels_last(golden):
    model, x, ref = golden("pspnet_r18_d8")
    fast = prepare_for_inference(model, channels_last=True, fold_bn=True)
    assert not fast.training and count_batchnorms(fast) == 0
    assert all(not p.requires_grad for p in fast.parameters())
    assert fast.backbone.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert all(p.requires_grad for p in model.parameters()), "the argument must stay trainable"
    with torch.no_grad():
        out = fast(x.contiguous(memory_format=torch.channels_last))
    assert (out - ref).abs().max().item() <= _fp32_tol(ref)


# (dtype, max |logit error| as a fraction of the logit range, min share of pixels keeping their label)
LOW_PRECISION = [(torch.float16, 0.02, 0.99), (torch.bfloat16, 0.08, 0.98)]


@pytest.mark.parametrize("dtype,rel_tol,min_agree", LOW_PRECISION, ids=["fp16", "bf16"])
def test_low_precision_folded_matches_reference(dtype, rel_tol, min_agree, golden):
    """fp16/bf16 weights and activations (BN folded, channels_last): looser tolerances."""
    model, x, ref = golden("pspnet_r18_d8")
    fast = prepare_for_inference(model, dtype=dtype)
    with torch.no_grad():
        out = fast(x.to(dtype).contiguous(memory_format=torch.channels_last)).float()
    scale = ref.abs().max().item()
    diff = (out - ref).abs().max().item()
    assert diff <= rel_tol * scale, f"{dtype}: max|diff| {diff:.3f} vs logit range {scale:.1f}"
    agree = (out.argmax(1) == ref.argmax(1)).float().mean().item()
    assert agree >= min_agree, f"{dtype}: only {agree:.1%} of pixels keep their label"


def test_forward_has_no_graph_breaks(golden):
    """DeepLabV3+ (V1b stem, ASPP with image pooling, separable convs, decoder) traces as one graph;
    the compile test below checks FCN with fullgraph=True."""
    ok, why = compile_support("cpu")
    if not ok:
        pytest.skip(why)
    model, x, _ = golden("deeplabv3plus_r18b_d8")
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_compiled_folded_model_matches_reference(golden):
    """One real inductor compile (the slowest test here): fullgraph, BN folded, channels_last.

    FCN R-18b is the zoo model with the fewest distinct kernels, which keeps the C++ compilation short.
    """
    ok, why = compile_support("cpu")
    if not ok:
        pytest.skip(why)
    model, x, ref = golden("fcn_r18b_d8")
    fast = prepare_for_inference(model, compile=True)
    with torch.no_grad():
        out = fast(x.contiguous(memory_format=torch.channels_last))
    diff = (out - ref).abs().max().item()
    assert diff <= _fp32_tol(ref), f"compiled logits differ from MMSegmentation's by {diff:.2e}"


def test_bad_input_errors():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        fold_bn("pspnet_r18_d8_cityscapes")
    with pytest.raises(TypeError, match="torch.nn.Module"):
        prepare_for_inference(None)
    with pytest.raises(ValueError, match="track_running_stats=False"):
        fold_conv_bn(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, track_running_stats=False))
    with pytest.raises(ValueError, match="does not follow a conv"):
        fold_conv_bn(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(5))
    with pytest.raises(ValueError, match="floating torch.dtype"):
        prepare_for_inference(nn.Conv2d(3, 4, 1), dtype=torch.int8)
    with pytest.raises(ValueError, match="unknown torch.compile mode"):
        compile_model(nn.Conv2d(3, 4, 1), mode="fastest")


def test_compile_support_reports_missing_compiler(monkeypatch):
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("CXX", raising=False)
    ok, why = compile_support("cpu")
    assert not ok and "C++ compiler" in why
    with pytest.raises(RuntimeError, match="C\\+\\+ compiler"):
        compile_model(nn.Conv2d(3, 4, 1))
