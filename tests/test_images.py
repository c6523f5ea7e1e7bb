"""Image files of every kind become the 8-bit RGB a user expects, the same in eval, predict and infer.

The rules (docs/eval.md, "Image files"): 16-bit pixels keep their high byte (v >> 8, as OpenCV's imread
and Pillow's 16-bit RGB decoder), palette/grey/CMYK become RGB, alpha is dropped, the EXIF orientation
of files is applied, float and wide-integer images are refused with a message.
"""
from __future__ import annotations

import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import sszoo
from sszoo.data import ImageReadError, build_dataset, synthetic
from sszoo.data.io import read_image as eval_read
from sszoo.eval import evaluate
from sszoo.inference import Protocol, infer
from sszoo.predict import read_image as predict_read

RNG = np.random.default_rng(0)
RGB8 = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def _png16_rgb(path, arr16: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG written byte by byte (Pillow cannot write one)."""
    h, w, _ = arr16.shape
    raw = b"".join(b"\x00" + arr16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _both(path) -> np.ndarray:
    """predict's and eval's readers agree; the H x W x 3 result."""
    a = predict_read(path)
    b = eval_read(str(path)).permute(1, 2, 0).numpy()
    assert a.dtype == np.uint8 and a.shape[2] == 3
    assert np.array_equal(a, b)
    return a


def test_16_bit_grey_and_rgb_keep_the_high_byte(tmp_path):
    grey16 = np.array([[0, 255, 256, 257], [32767, 32768, 65280, 65535]], np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    want = np.repeat((grey16 >> 8).astype(np.uint8)[..., None], 3, axis=2)
    assert want[1].tolist() == [[127] * 3, [128] * 3, [255] * 3, [255] * 3]   # by hand
    assert np.array_equal(_both(tmp_path / "g16.png"), want)
    # an 8-bit image stored as 16 bits (v * 257, the usual widening) reads back exactly
    _png16_rgb(tmp_path / "rgb16.png", RGB8.astype(np.uint16) * 257)
    assert np.array_equal(_both(tmp_path / "rgb16.png"), RGB8)
    # and a PIL image handed to infer follows the same rule
    model = sszoo.create_model("fcn_r18_d8_cityscapes", aux=False, num_classes=3)
    p = Protocol(scale=None)
    img16 = Image.open(tmp_path / "g16.png")
    assert torch.equal(infer(model, img16, p), infer(model, want, p))


def test_palette_alpha_grey_and_cmyk(tmp_path):
    idx = RNG.integers(0, 4, (5, 7), dtype=np.uint8)
    pal = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], np.uint8)
    im = Image.fromarray(idx, mode="P")
    im.putpalette(pal.ravel().tolist() + [0] * (768 - 12))
    im.save(tmp_path / "p.png")
    assert np.array_equal(_both(tmp_path / "p.png"), pal[idx])
    rgba = np.concatenate([RGB8, RNG.integers(0, 256, (5, 7, 1), dtype=np.uint8)], axis=2)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    assert np.array_equal(_both(tmp_path / "rgba.png"), RGB8)          # alpha dropped, not composited
    la = np.stack([RGB8[..., 0], RGB8[..., 1]], axis=2)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    assert np.array_equal(_both(tmp_path / "la.png"), np.repeat(RGB8[..., :1], 3, axis=2))
    # CMYK (lossless TIFF): pure cyan, magenta, yellow, black and white
    cmyk = np.array([[[255, 0, 0, 0], [0, 255, 0, 0], [0, 0, 255, 0], [0, 0, 0, 255], [0, 0, 0, 0]]], np.uint8)
    Image.fromarray(cmyk, mode="CMYK").save(tmp_path / "cmyk.tif")
    assert _both(tmp_path / "cmyk.tif").tolist() == [[[0, 255, 255], [255, 0, 255], [255, 255, 0], [0, 0, 0],
                                                      [255, 255, 255]]]


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6          # "rotate 90 degrees clockwise to display"
    Image.fromarray(RGB8).save(tmp_path / "rot.png", exif=exif)
    assert np.array_equal(_both(tmp_path / "rot.png"), np.rot90(RGB8, k=-1))
    big = np.kron(RGB8, np.ones((8, 8, 1), np.uint8))     # JPEG through torchvision's decoder in eval
    Image.fromarray(big).save(tmp_path / "rot.jpg", exif=exif, quality=100)
    got = _both(tmp_path / "rot.jpg")
    assert got.shape == (56, 40, 3)
    right = np.abs(got.astype(int) - np.rot90(big, k=-1)).mean()    # JPEG rounding on random 8x8 blocks
    wrong = np.abs(got.astype(int) - np.rot90(big, k=1)).mean()     # the other way round
    assert right < 10 < 30 < wrong


def test_float_and_wide_integer_images_are_refused(tmp_path):
    Image.fromarray(np.full((4, 4), 0.5, np.float32), mode="F").save(tmp_path / "f.tif")
    Image.fromarray(np.full((4, 4), 1 << 20, np.int32), mode="I").save(tmp_path / "i32.tif")
    for name, needle in (("f.tif", "32-bit float"), ("i32.tif", "32-bit integer")):
        for reader in (predict_read, eval_read):
            with pytest.raises(ImageReadError, match=needle) as e:
                reader(str(tmp_path / name))
            assert name in str(e.value)


def test_infer_takes_read_only_arrays_without_warning_and_refuses_16_bit_arrays():
    model = sszoo.create_model("fcn_r18_d8_cityscapes", aux=False, num_classes=3)
    p = Protocol(scale=None)
    ro = np.asarray(Image.fromarray(RGB8))
    assert not ro.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = infer(model, ro, p)
    assert torch.equal(out, infer(model, RGB8.copy(), p))
    with pytest.raises(TypeError, match=r"uint16 pixels.*img >> 8"):
        infer(model, RGB8.astype(np.uint16) * 257, p)


def test_eval_on_16_bit_images_equals_eval_on_8_bit(tmp_path):
    """The same scenes stored as 16-bit PNGs (v * 257) give the same per-class counts."""
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        synthetic.generate(str(root), "cityscapes", 2, size=(40, 24), seed=5)
    for img_path, _ in build_dataset("cityscapes", str(b)).samples:
        _png16_rgb(__import__("pathlib").Path(img_path), np.asarray(Image.open(img_path)).astype(np.uint16) * 257)
    torch.manual_seed(0)
    model = sszoo.create_model("fcn_r18_d8_cityscapes", aux=False)
    p = Protocol(scale=None)
    ra = evaluate(model, build_dataset("cityscapes", str(a)), p, progress=False, device="cpu")
    rb = evaluate(model, build_dataset("cityscapes", str(b)), p, progress=False, device="cpu")
    assert [r["intersect"] for r in ra["per_class"]] == [r["intersect"] for r in rb["per_class"]]
    assert [r["union"] for r in ra["per_class"]] == [r["union"] for r in rb["per_class"]]
