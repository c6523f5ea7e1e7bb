"""The benchmark's measuring tools and a tiny end-to-end run (no timing assertions: speed is not tested).

FLOP counts are checked against the published work-per-image numbers (tools/reference/perf_anchors.md).
"""
from __future__ import annotations

import json
import os
import sys
import time

import pytest
import torch

import sszoo

# benchmarks/ is a folder of the repository, not of the installed package: import it from the checkout
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import peers as P  # noqa: E402
from benchmarks import run as R  # noqa: E402
from benchmarks.measure import count_flops, forward_flops, sane_init_, time_interleaved  # noqa: E402


@pytest.mark.parametrize("name,tflop", [("pspnet_r101_d8_cityscapes", 4.09), ("deeplabv3_r50_d8_cityscapes", 4.31)])
def test_forward_flops_match_published(name, tflop):
    with torch.device("meta"):  # counting needs no weights: skip their initialisation
        model = sszoo.create_model(name, aux=False)
    got = forward_flops(model, (1, 3, 1024, 2048)) / 1e12
    assert got == pytest.approx(tflop, abs=0.006)


def test_training_flops_match_published():
    """PSPNet R-50-D8: 2.26 TFLOP per 512x1024 crop for forward + backward, auxiliary head included."""
    with torch.device("meta"):
        model = sszoo.create_model("pspnet_r50_d8_cityscapes").train()
    x = torch.empty(2, 3, 512, 1024, device="meta")
    y = torch.zeros(2, 512, 1024, dtype=torch.long, device="meta")
    per_crop = count_flops(lambda: P.sszoo_train_loss(model)(x, y).backward()) / 2e12
    assert per_crop == pytest.approx(2.26, abs=0.006)


def test_time_interleaved_round_robin():
    calls = []
    fns = {"a": lambda: (calls.append("a"), time.sleep(0.01)), "b": lambda: calls.append("b")}
    out = time_interleaved(fns, torch.device("cpu"), iters=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert len(out["a"].times) == 3 and out["a"].min >= 0.009
    assert out["b"].median < out["a"].median


def test_ratios_and_markdown():
    def row(impl, variant, sec):
        return {"model": "m", "task": "infer", "impl": impl, "variant": variant, "precision": "fp32", "batch": 1,
                "size": [64, 128], "median_s": sec, "seconds": sec, "fps": 1 / sec, "tflops": None}
    rows = [row("sszoo", "eager", 2.0), row("sszoo", "opt", 1.0), row("torchvision", "eager", 4.0),
            row("mmseg", "eager", 2.5)]
    R.add_ratios(rows)
    assert rows[0]["time_ratio"] == {"torchvision": 0.5, "mmseg": 0.8}
    assert rows[1]["time_ratio"] == {"torchvision": 0.25, "mmseg": 0.4}
    assert "time_ratio" not in rows[2]
    env = {"device_name": "X", "device": "cpu", "date": "d", "python": "3", "torch": "2", "cpu_threads": 2}
    md = R.markdown({"environment": env, "command": "python -m benchmarks.run", "results": rows, "notes": ["n1"],
                     "config": {"cudnn_benchmark": True, "stat": "median"}, "matmul_peak_flops": {"fp32": 1e11}})
    assert "| m | sszoo | opt | fp32 | 1 | 64x128 | 1000.0 | 1.00 | - | - | 0.25 | 0.40 |" in md
    assert "fp32 0.10 TFLOP/s" in md and "- n1" in md


def test_sane_init_gives_unit_scale_activations():
    model = sszoo.create_model("fcn_r18_d8_cityscapes")
    x = torch.randn(2, 3, 64, 64)
    sane_init_(model, lambda m: m.forward_heads(x))
    with torch.no_grad():
        feats = model.backbone(torch.randn(1, 3, 64, 64))
    std = feats[-1].std().item()
    assert 0.1 < std < 10, f"last stage std {std}: activations should stay of unit scale"


@pytest.mark.parametrize("argv,message", [
    (["--models", "fcn_r18_d8_cityscapes", "--size", "big"], "HEIGHTxWIDTH"),
    (["--models", "fcn_r18_d8_cityscapes", "--size", "16x16"], "at least 32"),
    (["--models", "fcn_r18_d8_cityscapes", "--train-batch", "1"], "at least 2"),
    ([], "--models"),
])
def test_cli_rejects_bad_options(argv, message, capsys):
    with pytest.raises(SystemExit):
        R.resolve_args(argv)
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown where CUDA is missing")
def test_cli_cuda_without_gpu(capsys):
    with pytest.raises(SystemExit):
        R.resolve_args(["--models", "fcn_r18_d8_cityscapes", "--device", "cuda"])
    assert "CUDA is not available" in capsys.readouterr().err


def test_cli_unknown_model():
    with pytest.raises(KeyError, match="unknown model"):
        R.resolve_args(["--models", "pspnet_r999_cityscapes"])


def test_end_to_end_cpu_run_with_torchvision_peer(tmp_path):
    """FCN R-50-D8 with torchvision's fcn_resnet50 beside it, at a tiny size: files, fields and ratios."""
    report = R.main(["--models", "fcn_r50_d8_cityscapes", "--train-models", "fcn_r18_d8_cityscapes",
                     "--device", "cpu", "--size", "32x64", "--iters", "1", "--warmup", "0", "--train-size", "32x32",
                     "--train-iters", "1", "--train-warmup", "0", "--peers", "torchvision",
                     "--variants", "eager", "opt", "helper",
                     "--out", str(tmp_path), "--tag", "tiny"])
    saved = json.loads((tmp_path / "tiny.json").read_text())
    md = (tmp_path / "tiny.md").read_text()
    assert saved["command"].startswith("python -m benchmarks.run --models fcn_r50_d8_cityscapes")
    for key in ("date", "device_name", "torch", "torchvision", "sszoo"):
        assert saved["environment"][key]
    infer = {(r["impl"], r["variant"]): r for r in saved["results"] if r["task"] == "infer"}
    assert set(infer) == {("sszoo", "eager"), ("sszoo", "opt"), ("sszoo", "helper"), ("torchvision", "eager")}
    assert saved["config"]["stat"] == "min"  # the CPU default
    assert infer[("sszoo", "eager")]["time_ratio"]["torchvision"] == pytest.approx(
        infer[("sszoo", "eager")]["min_s"] / infer[("torchvision", "eager")]["min_s"])
    # the published work per image scales with the pixels: 3.16 TFLOP at 1024x2048 -> /1024 at 32x64
    assert infer[("sszoo", "eager")]["tflop_per_call"] == pytest.approx(3.16 / 1024, rel=0.02)
    train = [r for r in saved["results"] if r["task"] == "train"]
    assert {r["variant"] for r in train} == {"eager", "channels_last"} and all(r["crops_per_s"] > 0 for r in train)
    assert any("torchvision peer fcn_resnet50" in n for n in saved["notes"])
    assert any("no fcn R-18-D8 model" in n for n in saved["notes"])
    assert "## Inference" in md and "fcn_r50_d8_cityscapes | torchvision" in md
    assert report["results"] == saved["results"]


def test_onnxruntime_peer_and_test_size(tmp_path):
    """The real-time table's peer: sszoo's exported model in ONNX Runtime, same logits, a ratio column."""
    pytest.importorskip("onnxruntime")
    report = R.main(["--models", "fcn_r18_d8_cityscapes", "--train-models", "--device", "cpu", "--size", "33x65",
                     "--iters", "1", "--warmup", "0", "--peers", "onnxruntime", "--variants", "eager",
                     "--out", str(tmp_path), "--tag", "ort"])
    infer = {r["impl"]: r for r in report["results"]}
    assert set(infer) == {"sszoo", "onnxruntime"}
    assert infer["sszoo"]["time_ratio"]["onnxruntime"] == pytest.approx(
        infer["sszoo"]["min_s"] / infer["onnxruntime"]["min_s"])
    note = next(n for n in report["notes"] if "ONNX Runtime vs sszoo" in n)
    assert float(note.split("max|diff| ")[1].split()[0]) < 1e-3
    assert "sszoo/onnxruntime" in (tmp_path / "ort.md").read_text()
    # an entry's test size: Cityscapes entries resize 2048x1024 keeping the ratio -> the full 1024x2048
    assert R.test_size(sszoo.get_entry("fcn_r18_d8_cityscapes")) == (1024, 2048)
    assert R.test_size(sszoo.get_entry("fcn_r50_d8_ade20k")) == (512, 1024)
