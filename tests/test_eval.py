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
    # user weights: the entry's reported number does not apply, and is neither printed nor stored
    assert saved["reported_mIoU"] is None and "weights other than" in saved["reported_note"]
    assert "torch" in saved["versions"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
           "-m", "sszoo.eval"] + ARGS + ["--weights", weights, "--device", "cpu", "--out", str(tmp_path / "two.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "two.json").read_text())
    assert two["num_images"] == 3 and two["timings"]["world_size"] == 2
    for key in ("mIoU", "mAcc", "aAcc", "out_of_range"):
        assert two[key] == pytest.approx(one[key], abs=0, nan_ok=True), key
    # undefined IoUs (NaN in Python) are JSON null in the file, in both runs alike
    assert two["IoU"] == saved["IoU"] and None in saved["IoU"]
    assert [None if v != v else v for v in one["IoU"]] == saved["IoU"]
    assert "mIoU measured" in proc.stdout


def test_cli_summary_and_bad_input(weights, tmp_path, capsys):
    res = main(ARGS + ["--weights", weights, "--limit", "1"])
    assert res["num_images"] == 1
    out = capsys.readouterr().out
    assert f"mIoU measured {res['mIoU']:.2f} (no reported number applies: weights other than" in out
    assert "vs reported" not in out
    with pytest.raises(SystemExit):
        main(ARGS + ["--weights", weights, "--mode", "slide"])
    assert "slide mode needs --crop" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--model", MODEL, "--data", str(tmp_path / "missing"), "--weights", weights, "--quiet"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "expects under it" in err and len(err.strip().splitlines()) == 1


def test_evaluate_rejects_class_mismatch():
    model = sszoo.create_model("fcn_r18_d8_cityscapes", aux=False, num_classes=5)
    ds = build_dataset("cityscapes", GOLDEN_CS)
    with pytest.raises(ValueError, match="predicts 5 classes but dataset cityscapes has 19"):
        evaluate(model, ds, progress=False)
