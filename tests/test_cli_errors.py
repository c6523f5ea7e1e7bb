"""User errors in every command end in one line (exit status 2), not a traceback; help texts are complete."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import sszoo
from sszoo.cliargs import check_checkpoint_file, check_device, default_workers, one_line
from sszoo.data import synthetic
from sszoo.hub import CheckpointError

MODEL = "fcn_r18_d8_cityscapes"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", SSZOO_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=ROOT)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("cs")
    synthetic.generate(str(root), "cityscapes", 2, size=(48, 24))
    return str(root)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("ckpt")
    text = d / "model.pth"
    text.write_text("<html>404 Not Found</html>\n")
    torch.manual_seed(0)
    psp = d / "psp.pth"   # another architecture's weights: they do not fit an FCN
    torch.save({"state_dict": sszoo.create_model("pspnet_r18_d8_cityscapes", aux=False).state_dict()}, psp)
    return {"text": str(text), "psp": str(psp)}


def _one_line_error(proc: subprocess.CompletedProcess, prog: str, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith(f"{prog}: error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_eval_user_errors_are_one_line(data, files, tmp_path):
    base = ["sszoo.eval", "--model", MODEL, "--workers", "0", "--quiet"]
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["--data", str(tmp_path / "missing"), "--random-weights"], ["does not exist", "leftImg8bit/val"]),
        (["--data", str(empty), "--random-weights"], ["not found under", "gtFine/val"]),
        (["--data", data, "--random-weights", "--dataset", "kitti"], ["unknown dataset 'kitti'"]),
        (["--data", data, "--weights", files["text"]], ["is not a checkpoint", "holds text"]),
        (["--data", data, "--weights", files["psp"]], ["does not fit"]),
        (["--data", data, "--random-weights", "--scale", "200000x100000"], ["GiB", "--scale"]),
        (["--model", "fcn_r18_d8_cityscapez", "--data", data, "--random-weights"], ["unknown model"]),
    ]
    if not torch.cuda.is_available():
        cases.append((["--data", data, "--random-weights", "--device", "cuda"], ["no CUDA GPU"]))
    for extra, needles in cases:
        _one_line_error(_run(*base, *extra), "sszoo.eval", *needles)


def test_eval_names_a_corrupt_image_also_from_loader_workers(data, tmp_path):
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(data, bad)
    victim = sorted((bad / "leftImg8bit" / "val").rglob("*.png"))[1]
    victim.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    proc = _run("sszoo.eval", "--model", MODEL, "--data", str(bad), "--random-weights", "--scale", "none",
                "--workers", "2", "--quiet")
    _one_line_error(proc, "sszoo.eval", "cannot read image", victim.name)


def test_predict_and_export_and_train_user_errors(data, files, tmp_path):
    img = sorted(os.path.join(r, f) for r, _, fs in os.walk(os.path.join(data, "leftImg8bit")) for f in fs)[0]
    _one_line_error(_run("sszoo.predict", img, "--model", MODEL, "--weights", files["text"], "--out",
                         str(tmp_path / "p")), "sszoo.predict", "is not a checkpoint")
    _one_line_error(_run("sszoo.predict", img, "--model", MODEL, "--random-weights", "--scale", "300000x150000",
                         "--out", str(tmp_path / "p")), "sszoo.predict", "GiB")
    _one_line_error(_run("sszoo.export", "--model", MODEL, "--weights", files["text"], "--out",
                         str(tmp_path / "m.onnx")), "sszoo.export", "is not a checkpoint")
    proc = _run("sszoo.train", "--model", MODEL, "--data", data, "--init-from", files["text"], "--iters", "1")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and "is not a checkpoint" in proc.stderr
    if not torch.cuda.is_available():
        _one_line_error(_run("sszoo.predict", img, "--model", MODEL, "--random-weights", "--device", "cuda",
                             "--out", str(tmp_path / "p")), "sszoo.predict", "no CUDA GPU")
        proc = _run("sszoo.train", "--model", MODEL, "--data", data, "--device", "cuda", "--iters", "1")
        assert proc.returncode != 0 and "Traceback" not in proc.stderr and "no CUDA GPU" in proc.stderr


def test_synthetic_user_errors(tmp_path):
    _one_line_error(_run("sszoo.data.synthetic", str(tmp_path), "--layout", "voc", "--num", "0"),
                    "python -m sszoo.data.synthetic", "at least 1")
    _one_line_error(_run("sszoo.data.synthetic", str(tmp_path), "--layout", "voc", "--num", "1", "--size",
                         "400000x400000"), "python -m sszoo.data.synthetic", "GiB", "--size")
    assert not any(tmp_path.iterdir())


def test_checks_by_hand(tmp_path):
    assert 0 <= default_workers() <= 4 and default_workers(limit=0) == 0
    check_device(None)
    check_device("cpu")
    with pytest.raises(ValueError, match="not a device name"):
        check_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            check_device("cuda:1")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty file"):
        check_checkpoint_file(str(empty))
    zipped = tmp_path / "ok.pth"
    torch.save({"w": torch.zeros(1)}, zipped)
    check_checkpoint_file(str(zipped))          # a real torch.save file passes
    legacy = tmp_path / "legacy.pth"
    torch.save({"w": torch.zeros(1)}, legacy, _use_new_zipfile_serialization=False)
    check_checkpoint_file(str(legacy))          # and so does the old pickle format
    wrapped = ValueError("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent "
                         "call last):\n  File \"x.py\", line 1\nsszoo.data.io.DataError: cannot read image a.png")
    assert one_line(wrapped) == "cannot read image a.png"
    assert one_line(KeyError("unknown model 'x'")) == "unknown model 'x'"


def test_help_texts():
    from sszoo.eval import build_parser as eval_parser
    from sszoo.train.cli import build_parser as train_parser

    text = train_parser().format_help()
    assert "(default: None)" not in text and "(default: the recipe's) (default" not in text
    assert "(default: off)" in text                       # real defaults are still shown
    helps = {a.dest: a.help for a in eval_parser()._actions}
    for dest in ("split", "batch_size", "workers", "random_weights", "save_predictions", "format", "gt"):
        assert helps[dest], dest
    assert eval_parser().get_default("workers") == default_workers()


def test_train_refuses_a_crop_too_large_for_memory(data):
    proc = _run("sszoo.train", "--model", MODEL, "--data", data, "--crop", "200000x200000", "--batch-size", "2",
                "--iters", "1", "--print-recipe")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "GiB" in proc.stderr and "--crop or --batch-size" in proc.stderr
