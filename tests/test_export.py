"""ONNX and torch.export: exported logits equal PyTorch's for FCN, PSPNet, DeepLabV3 and DeepLabV3+."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import sszoo
from sszoo.export import (ExportError, MatrixAdaptiveAvgPool2d, check_export_size, export_onnx, export_program,
                          main, make_exportable)

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

R18 = ["fcn_r18_d8_cityscapes", "pspnet_r18_d8_cityscapes", "deeplabv3_r18_d8_cityscapes",
       "deeplabv3plus_r18_d8_cityscapes"]
# 65 x 97 reaches the heads as 9 x 13 feature pixels: not a multiple of PSPNet's 2, 3 and 6 bins, so the
# pyramid's bins overlap and a plain fixed-kernel AveragePool could not reproduce them.
H, W = 65, 97


def _model(name: str, seed: int = 0) -> torch.nn.Module:
    """A zoo network with seeded random weights and non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    model = sszoo.create_model(name)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def _input(h: int, w: int, n: int = 1, seed: int = 123) -> torch.Tensor:
    return torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _ort_logits(path: str, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x.numpy()})[0]


def test_matrix_pooling_matches_hand_computed_bins():
    x = torch.arange(5.0).view(1, 1, 1, 5).expand(1, 1, 5, 5).contiguous()  # columns 0..4
    # 5 -> 3 bins: pixels [0, 2), [1, 4), [3, 5) (floor(i*5/3) to ceil((i+1)*5/3))
    want = torch.tensor([0.5, 2.0, 3.5])
    got = MatrixAdaptiveAvgPool2d(3)(x)[0, 0]
    assert torch.allclose(got, want.expand(3, 3), atol=1e-6)
    for n in (1, 2, 5, 7, 9, 13, 64):
        for s in (1, 2, 3, 6):
            x = _input(n, n + 4, n=2, seed=n)
            assert torch.allclose(MatrixAdaptiveAvgPool2d(s)(x), torch.nn.AdaptiveAvgPool2d(s)(x), atol=1e-6)


def test_make_exportable_replaces_only_multi_bin_pooling():
    net = make_exportable(_model("pspnet_r18_d8_cityscapes"))
    pools = [m for m in net.modules() if isinstance(m, (torch.nn.AdaptiveAvgPool2d, MatrixAdaptiveAvgPool2d))]
    assert [type(p).__name__ for p in pools] == ["AdaptiveAvgPool2d"] + ["MatrixAdaptiveAvgPool2d"] * 3
    assert net.auxiliary_head is None


@pytest.mark.parametrize("name", R18)
def test_onnx_logits_equal_pytorch(name, tmp_path):
    model = _model(name)
    path = str(tmp_path / f"{name}.onnx")
    report = export_onnx(model, path, height=H, width=W)
    assert report.max_abs_diff is not None and report.max_abs_diff <= 1e-4
    x = _input(H, W)
    with torch.no_grad():
        expected = model(x).numpy()
    got = _ort_logits(path, x)
    assert got.shape == (1, 19, H, W)
    assert np.abs(got - expected).max() <= 1e-4
    assert np.abs(expected).max() > 1e-2  # the comparison is not between two near-zero maps
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert meta["model"] == sszoo.get_entry(name).name and meta["mean"] == "[123.675, 116.28, 103.53]"


def test_cli_dynamic_onnx_runs_at_other_sizes_and_batches(tmp_path, capsys):
    model = _model("pspnet_r18_d8_cityscapes", seed=1)
    weights = str(tmp_path / "psp.safetensors")
    save_file(model.state_dict(), weights)
    out = str(tmp_path / "psp.onnx")
    report = main(["--model", "pspnet_r18_d8_cityscapes", "--weights", weights, "--format", "onnx", "--out", out,
                   "--height", str(H), "--width", str(W), "--dynamic"])
    assert report["max_abs_diff"] <= 1e-4 and report["dynamic"]
    assert "wrote" in capsys.readouterr().out
    for n, h, w in ((2, 50, 77), (1, 96, 64)):
        x = _input(h, w, n=n, seed=h)
        with torch.no_grad():
            expected = model(x).numpy()
        assert np.abs(_ort_logits(out, x) - expected).max() <= 1e-4


@pytest.mark.parametrize("name", R18)
def test_torch_export_program_matches(name):
    model = _model(name)
    program = export_program(model, height=H, width=W)
    x = _input(H, W)
    with torch.no_grad():
        assert torch.allclose(program.module()(x), model(x), atol=1e-5)


def test_failed_check_leaves_no_file(tmp_path):
    path = tmp_path / "fcn.onnx"
    with pytest.raises(ExportError, match="differ from PyTorch"):
        export_onnx(_model("fcn_r18_d8_cityscapes"), path, height=32, width=32, atol=-1.0)
    assert os.listdir(tmp_path) == []


def test_sizes_the_network_cannot_take():
    model = sszoo.create_model("pspnet_r18_d8_cityscapes")
    with pytest.raises(ExportError, match="smaller than this network's output stride 8"):
        check_export_size(model, 7, 64)
    with pytest.raises(ExportError, match="integer"):
        check_export_size(model, 64.5, 64)
    with pytest.raises(ExportError, match="larger than 8192"):
        check_export_size(model, 64, 10000)
    d32 = sszoo.create_model("pspnet_r50_d32_cityscapes")
    with pytest.raises(ExportError, match="output stride 32"):
        check_export_size(d32, 31, 512)
    check_export_size(d32, 32, 32)


@pytest.mark.parametrize("argv, message", [
    (["--format", "tflite"], "unsupported export format 'tflite'"),
    (["--height", "4"], "smaller than this network's output stride"),
    (["--model", "pspnet_r18_d8_cityscapez"], "unknown model"),
    (["--weights", "/nonexistent/ckpt.pth"], "no such file"),
])
def test_cli_bad_input_exits_with_a_clear_message(argv, message, tmp_path, capsys):
    args = {"--model": "pspnet_r18_d8_cityscapes", "--out": str(tmp_path / "m.onnx")}
    rest = list(argv)
    for k in list(args):
        if k in rest:
            i = rest.index(k)
            args[k] = rest[i + 1]
            del rest[i:i + 2]
    weights = [] if "--weights" in rest else ["--random-weights"]
    with pytest.raises(SystemExit) as e:
        main([x for kv in args.items() for x in kv] + weights + rest)
    assert e.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
