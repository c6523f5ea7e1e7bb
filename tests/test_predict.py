"""predict: label maps, colour maps in the dataset palette, overlays and legends; clear errors on bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import sszoo
from sszoo.inference import Protocol
from sszoo.predict import ImageReadError, collect_images, main, predict, read_image
from sszoo.registry import get_dataset
from sszoo.visualize import class_shares, colorize, overlay

NAME = "fcn_r18_d8_cityscapes"
NO_RESIZE = Protocol(scale=None)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    """Seeded random weights with a sharpened classifier, so that several classes win somewhere."""
    torch.manual_seed(0)
    m = sszoo.create_model(NAME, aux=False)
    with torch.no_grad():
        m.decode_head.conv_seg.weight.mul_(300.0)
    return m.eval()


@pytest.fixture(scope="module")
def weights(model, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("ckpt") / "fcn.safetensors"
    save_file(model.state_dict(), str(path))
    return str(path)


def _scene(h: int, w: int, seed: int) -> np.ndarray:
    """A structured test picture: colour bands, a box and noise."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 3] = (70, 130, 180)
    img[h // 3: 2 * h // 3] = (107, 142, 35)
    img[2 * h // 3:] = (128, 64, 128)
    img[h // 4: h // 2, w // 4: w // 2] = (220, 20, 60)
    noise = rng.integers(-25, 26, size=img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(_scene(61, 87, 0)).save(folder / "street.png")
    Image.fromarray(_scene(45, 40, 1)).save(folder / "small.jpg", quality=95)
    Image.fromarray(_scene(50, 70, 2)[..., 0]).save(folder / "grey.png")   # single channel -> RGB
    (folder / "notes.txt").write_text("not an image")                       # skipped in folders
    return folder


def test_cli_writes_palette_colour_maps_overlays_and_legends(model, weights, images, tmp_path, capsys):
    out = tmp_path / "out"
    res = main([str(images), "--model", NAME, "--weights", weights, "--out", str(out), "--opacity", "0.3",
                "--scale", "none", "--save-ids"])
    assert res["model"] == sszoo.get_entry(NAME).name
    assert [p["image"].rsplit("/", 1)[1] for p in res["predictions"]] == ["grey.png", "small.jpg", "street.png"]
    palette = np.array(get_dataset("cityscapes").palette, dtype=np.uint8)
    seen_classes = set()
    for p in res["predictions"]:
        image = np.asarray(Image.open(p["image"]).convert("RGB"))
        h, w = image.shape[:2]
        ids = np.asarray(Image.open(p["ids"]))
        color = np.asarray(Image.open(p["color"]))
        blend = np.asarray(Image.open(p["overlay"]))
        assert ids.shape == (h, w) and color.shape == (h, w, 3) and blend.shape == (h, w, 3)
        # the label ids are the model's prediction at the image's own size
        labels = predict(model, p["image"], NO_RESIZE).numpy()
        assert np.array_equal(ids, labels)
        # every pixel has the Cityscapes palette colour of its predicted class
        assert np.array_equal(color, palette[ids])
        # overlay = 0.7 image + 0.3 colour, rounded
        want = np.rint(0.7 * image.astype(np.float64) + 0.3 * color.astype(np.float64))
        assert np.abs(blend.astype(int) - want.astype(int)).max() <= 1
        # the legend lists the classes present with their pixel shares
        counts = np.bincount(ids.ravel(), minlength=19)
        assert {int(k): v for k, v in p["classes"].items()} == pytest.approx(
            {c: counts[c] / ids.size for c in np.flatnonzero(counts)})
        legend = Image.open(p["legend"])
        assert legend.size[1] >= 24 * len(p["classes"])
        seen_classes |= set(p["classes"])
    assert len(seen_classes) >= 2, "the test model should predict more than one class"
    assert "wrote 3 prediction(s)" in capsys.readouterr().out


def test_predict_python_api_accepts_arrays_pil_and_lists(model):
    img = _scene(33, 47, 3)
    a = predict(model, img, NO_RESIZE)
    assert a.shape == (33, 47) and a.dtype == torch.int64
    b = predict(model, Image.fromarray(img), NO_RESIZE)
    c = predict(model, [img, _scene(20, 21, 4)], NO_RESIZE)
    assert torch.equal(a, b) and torch.equal(a, c[0]) and c[1].shape == (20, 21)


def test_resizing_protocol_returns_the_original_size(model):
    # keep-ratio resize to fit (64, 32) -> 32 x 53, inference, logits back to the image's 24 x 40
    labels = predict(model, _scene(24, 40, 5), Protocol(scale=(64, 32)))
    assert labels.shape == (24, 40)


def _png_bytes() -> bytes:
    import io
    buf = io.BytesIO()
    Image.fromarray(_scene(40, 40, 7)).save(buf, format="PNG")
    return buf.getvalue()


def test_globs_files_and_unique_names(model, weights, images, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(_scene(30, 30, 6)).save(other / "street.png")  # same stem as imgs/street.png
    found = collect_images([str(images / "*.png"), str(other / "street.png")])
    assert [p.rsplit("/", 2)[-2:] for p in found] == [["imgs", "grey.png"], ["imgs", "street.png"],
                                                      ["other", "street.png"]]
    res = main([str(images / "street.png"), str(other / "street.png"), "--model", NAME, "--weights", weights,
                "--out", str(tmp_path / "o"), "--scale", "none"])
    names = sorted(p["overlay"].rsplit("/", 1)[1] for p in res["predictions"])
    assert names == ["street_1_overlay.png", "street_overlay.png"]


def test_visualize_helpers_by_hand():
    pal = np.array([[10, 20, 30], [200, 100, 0]], np.uint8)
    lab = np.array([[0, 1], [255, 1]])
    col = colorize(lab, pal)
    assert col.tolist() == [[[10, 20, 30], [200, 100, 0]], [[0, 0, 0], [200, 100, 0]]]
    img = np.full((2, 2, 3), 100, np.uint8)
    assert overlay(img, col, 0.25)[0, 1].tolist() == [125, 100, 75]  # 0.75*100 + 0.25*(200,100,0)
    assert class_shares(lab, 2) == {1: 2 / 3, 0: 1 / 3}
    with pytest.raises(ValueError, match="outside the palette"):
        colorize(np.array([[2]]), pal)
    with pytest.raises(ValueError, match="opacity"):
        overlay(img, col, 1.5)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: _write(d / "broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40), "cannot read image"),
    (lambda d: _write(d / "truncated.png", _png_bytes()[:120]), "damaged or truncated"),
    (lambda d: _write(d / "notes.txt", b"hello"), "not an image format"),
    (lambda d: d / "missing.png", "no such file"),
    (lambda d: d / "*.jpeg", "no files match the pattern"),
])
def test_bad_images_exit_with_a_clear_message(make, message, weights, tmp_path, capsys):
    path = make(tmp_path)
    with pytest.raises(SystemExit) as e:
        main([str(path), "--model", NAME, "--weights", weights, "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and str(path.name) in err
    assert not (tmp_path / "o").exists()


def test_bad_options_exit_with_a_clear_message(weights, images, tmp_path, capsys):
    for argv, message in ((["--opacity", "1.5"], "--opacity must be between 0 and 1"),
                          (["--scale", "big"], "--scale: expected LONGxSHORT"),
                          (["--mode", "slide"], "--mode slide needs a crop size")):
        with pytest.raises(SystemExit):
            main([str(images / "street.png"), "--model", NAME, "--weights", weights, *argv])
        assert message in capsys.readouterr().err
    with pytest.raises(ImageReadError, match="no images"):
        collect_images([str(tmp_path)])
    with pytest.raises(ImageReadError, match="it is a folder"):
        read_image(str(images))


def test_a_corrupt_image_among_others_is_named_and_skipped(weights, images, tmp_path, capsys, monkeypatch):
    (images / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    out = tmp_path / "o"
    res = main([str(images), "--model", NAME, "--weights", weights, "--out", str(out), "--scale", "none"])
    assert [p["image"].rsplit("/", 1)[1] for p in res["predictions"]] == ["grey.png", "small.jpg", "street.png"]
    assert res["skipped"] == [str(images / "zz_broken.png")]
    err = capsys.readouterr().err
    assert "warning: cannot read image" in err and "zz_broken.png" in err and "skipped 1 unreadable" in err
    assert not list(out.glob("zz_broken*"))
    # the console script reports the skip in its exit status
    from sszoo.predict import console_main
    monkeypatch.setattr("sys.argv", ["sszoo-predict", str(images), "--model", NAME, "--weights", weights,
                                     "--out", str(tmp_path / "o2"), "--scale", "none"])
    assert console_main() == 1
    # --strict stops before loading the model
    with pytest.raises(SystemExit) as e:
        main([str(images), "--model", NAME, "--weights", weights, "--out", str(tmp_path / "o3"), "--strict"])
    assert e.value.code == 2 and "zz_broken.png" in capsys.readouterr().err
    assert not (tmp_path / "o3").exists()
