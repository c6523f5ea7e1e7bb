"""The evaluator and its CLI: results, JSON, bad input, and a two-process torchrun run on CPU (gloo)."""
import json
import os
import subprocess
import sys

import pytest
import torch

import sszoo
from sszoo.data import build_dataset
from sszoo.eval import evaluate, main

GOLDEN_CS = os.path.join(os.path.dirname(__file__), "golden", "eval", "cityscapes")
MODEL = "fcn_r18_d8_cityscapes.512x1024_80k"
ARGS = ["--model", MODEL, "--data", GOLDEN_CS, "--scale", "96x48", "--workers", "0", "--quiet"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = sszoo.create_model(MODEL, aux=False)
    path = tmp_path_factory.mktemp("w") / "weights.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    return str(path)


def test_cli_single_process_and_torchrun_agree(weights, tmp_path):
    one = main(ARGS + ["--weights", weights, "--out", str(tmp_path / "one.json")])
    saved = json.loads((tmp_path / "one.json").read_text())
    assert saved["num_images"] == one["num_images"] == 3
    assert saved["mIoU"] == pytest.approx(one["mIoU"])
    assert len(saved["per_class"]) == 19 and saved["settings"]["protocol"]["scale"] == [96, 48]
    assert saved["reported_mIoU"] == sszoo.get_entry(MODEL).reported.miou and "torch" in saved["versions"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
           "-m", "sszoo.eval"] + ARGS + ["--weights", weights, "--device", "cpu", "--out", str(tmp_path / "two.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "two.json").read_text())
    assert two["num_images"] == 3 and two["timings"]["world_size"] == 2
    for key in ("mIoU", "mAcc", "aAcc", "out_of_range"):
        assert two[key] == pytest.approx(one[key], abs=0, nan_ok=True), key
    assert two["IoU"] == pytest.approx(one["IoU"], abs=0, nan_ok=True)
    assert "mIoU measured" in proc.stdout


def test_cli_summary_and_bad_input(weights, tmp_path, capsys):
    res = main(ARGS + ["--weights", weights, "--limit", "1"])
    assert res["num_images"] == 1
    out = capsys.readouterr().out
    assert f"mIoU measured {res['mIoU']:.2f} vs reported" in out
    with pytest.raises(SystemExit, match="slide mode needs --crop"):
        main(ARGS + ["--weights", weights, "--mode", "slide"])
    from sszoo.data import DataError
    with pytest.raises(DataError, match="expects under it"):
        main(["--model", MODEL, "--data", str(tmp_path / "missing"), "--weights", weights, "--quiet"])


def test_evaluate_rejects_class_mismatch():
    model = sszoo.create_model("fcn_r18_d8_cityscapes", aux=False, num_classes=5)
    ds = build_dataset("cityscapes", GOLDEN_CS)
    with pytest.raises(ValueError, match="predicts 5 classes but dataset cityscapes has 19"):
        evaluate(model, ds, progress=False)
