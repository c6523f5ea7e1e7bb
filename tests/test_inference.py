"""The inference helper: sliding window vs the reference's logits, whole vs slide, precision, inputs."""
import numpy as np
import pytest
import torch

from oracle_weights import case_arch, cases, oracle_checkpoint
import sszoo
from sszoo.hub import load_state_dict_strict
from sszoo.models import build_model
from sszoo.registry import UnknownModelError
from sszoo.inference import Protocol, infer, rescale_size, resize_uint8_like_opencv, slide_windows

RAW = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))  # golden inputs are already normalised


@pytest.mark.parametrize("case", cases("slide_"))
def test_slide_matches_reference_logits(case, tmp_path):
    ckpt = tmp_path / "c.pth"
    x, ref, info = oracle_checkpoint(case, str(ckpt))
    try:
        model = sszoo.create_model(info["config"], pretrained=str(ckpt), num_classes=info["num_classes"])
    except UnknownModelError:  # no zoo entry (yet, or a CONFIG@HxW golden of a fixed-size backbone): load by hand
        model = build_model(case_arch(info))
        load_state_dict_strict(model, torch.load(ckpt, weights_only=True)["state_dict"], source=case)
        model.eval()
    p = Protocol(mode="slide", crop=(info["crop"],) * 2, stride=(info["stride"],) * 2,
                 align_corners=info["align_corners"], **RAW)
    out = infer(model, x[0], p, output="logits", batch_size=4)
    n = info.get("logits_stride", 1)  # a strided golden keeps every n-th row and column of the logits
    out = out[..., ::n, ::n]
    assert out.shape == ref[0].shape
    tol = 1e-4 * max(1.0, ref.abs().max().item())
    assert (out - ref[0]).abs().max().item() <= tol


def test_slide_windows_shift_inside_and_cover():
    wins = slide_windows(90, 121, (64, 64), (40, 40))
    assert len(wins) == 2 * 3
    assert all(y2 - y1 == 64 and x2 - x1 == 64 and y2 <= 90 and x2 <= 121 for y1, y2, x1, x2 in wins)
    assert wins[-1] == (26, 90, 57, 121)
    assert slide_windows(30, 50, (64, 64), (40, 40)) == [(0, 30, 0, 50)]   # image smaller than the crop


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    model = sszoo.create_model("fcn_r18_d8_cityscapes", aux=False, num_classes=5)
    g = torch.Generator().manual_seed(1)
    img = torch.randint(0, 256, (3, 45, 67), dtype=torch.uint8, generator=g)
    return model, img


def test_whole_equals_slide_when_one_window_covers_the_image(small):
    model, img = small
    p = Protocol(scale=(80, 50), align_corners=False)
    size = p.resized_size(45, 67)
    whole = infer(model, img, p, output="logits")
    slide = infer(model, img, p.with_(mode="slide", crop=size, stride=(8, 8)), output="logits")
    assert torch.equal(whole, slide)


def _network_input(img: torch.Tensor, p: Protocol, size: tuple[int, int]) -> torch.Tensor:
    """The protocol's network input by hand: OpenCV-exact resize, then normalisation."""
    x = resize_uint8_like_opencv(img[None], size).float()
    return (x - torch.tensor(p.mean).view(1, 3, 1, 1)) / torch.tensor(p.std).view(1, 3, 1, 1)


def test_resize_logits_once(small):
    """sssegmentation's whole-image protocol: feature-resolution logits resized straight to the image."""
    model, img = small
    p = Protocol(scale=(80, 50), resize_logits_once=True)
    rh, rw = p.resized_size(45, 67)
    assert (rh, rw) != (45, 67)
    x = _network_input(img, p, (rh, rw))
    with torch.no_grad():
        feats = model.decode_head(model.backbone(x))
    expected = torch.nn.functional.interpolate(feats, size=(45, 67), mode="bilinear", align_corners=False)[0]
    once = infer(model, img, p, output="logits")
    torch.testing.assert_close(once, expected, rtol=1e-5, atol=1e-5)
    twice = infer(model, img, p.with_(resize_logits_once=False), output="logits")
    assert (once - twice).abs().max() > 1e-2 * once.abs().max()  # the two protocols really differ
    # the same through the batched path and with flip TTA (the resize applies at every scale)
    torch.testing.assert_close(infer(model, [img, img], p, output="logits")[1], once)
    tta = infer(model, img, p.with_(msflip_ratios=(1.0,)), tta=True, output="probs")
    torch.testing.assert_close(tta, (once.softmax(0) + infer(model, img.flip(-1), p, output="logits").softmax(0).flip(-1)) / 2)
    # slide mode ignores it (windows are resized to the window, as both references do)
    slide = p.with_(mode="slide", crop=(32, 32), stride=(24, 24))
    assert torch.equal(infer(model, img, slide, output="logits"),
                       infer(model, img, slide.with_(resize_logits_once=False), output="logits"))


def test_window_softmax_averages_window_probabilities(small):
    """sssegmentation's Pascal Context slide protocol: each window's softmax, summed and divided by the count."""
    model, img = small
    p = Protocol(scale=(80, 50), mode="slide", crop=(32, 32), stride=(24, 24), window_softmax=True)
    rh, rw = p.resized_size(45, 67)
    x = _network_input(img, p, (rh, rw))
    total, count = torch.zeros(5, rh, rw), torch.zeros(1, rh, rw)
    with torch.no_grad():
        for y1, y2, x1, x2 in slide_windows(rh, rw, p.crop, p.stride):
            total[:, y1:y2, x1:x2] += model(x[:, :, y1:y2, x1:x2]).softmax(dim=1)[0]
            count[:, y1:y2, x1:x2] += 1
    expected = torch.nn.functional.interpolate((total / count)[None], size=(45, 67), mode="bilinear",
                                               align_corners=False)[0]
    got = infer(model, img, p, output="logits", batch_size=1)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert torch.allclose(got.sum(0), torch.ones(45, 67), atol=1e-5)  # probabilities, not logits
    assert sszoo.get_entry("deeplabv3_r101_d8_pascal_context59.ssseg").test.window_softmax
    assert not sszoo.get_entry("deeplabv3_r101_d8_pascal_context59").test.window_softmax


def test_low_precision_close_to_fp32(small):
    model, img = small
    p = Protocol(scale=(80, 50))
    ref = infer(model, img, p, output="labels")
    for precision in ("bf16", "fp16"):
        lab = infer(model, img, p, output="labels", precision=precision)
        assert (lab == ref).float().mean() > 0.9, precision


def test_inputs_and_outputs(small):
    model, img = small
    p = Protocol(scale=(80, 50))
    hwc = img.permute(1, 2, 0).numpy()
    one = infer(model, img, p)
    assert one.shape == (45, 67) and one.dtype == torch.int64
    assert torch.equal(infer(model, hwc, p), one)                   # numpy H x W x 3
    from PIL import Image
    assert torch.equal(infer(model, Image.fromarray(hwc), p), one)  # PIL
    other = torch.randint(0, 256, (3, 30, 41), dtype=torch.uint8)
    outs = infer(model, [img, other, img.float()], p, batch_size=2)  # float 0-255 too
    assert [o.shape for o in outs] == [(45, 67), (30, 41), (45, 67)] and torch.equal(outs[0], one)
    assert torch.equal(outs[2], infer(model, img.float(), p))
    # float pixels are resized with float bilinear interpolation, uint8 ones as OpenCV does: nearly the same labels
    assert (outs[2] == one).float().mean() > 0.98
    batch = infer(model, torch.stack([img, img]), p, output="probs")
    assert batch.shape == (2, 5, 45, 67) and torch.allclose(batch.sum(1), torch.ones(2, 45, 67), atol=1e-5)
    tta = infer(model, img, p.with_(msflip_ratios=(0.5, 1.0)), tta=True, output="probs")
    assert tta.shape == (5, 45, 67) and torch.allclose(tta.sum(0), torch.ones(45, 67), atol=1e-5)
    with pytest.raises(ValueError, match="3 colour channels"):
        infer(model, torch.zeros(4, 10, 10), p)
    with pytest.raises(ValueError, match="output must be"):
        infer(model, img, p, output="mask")
    with pytest.raises(ValueError, match="precision"):
        infer(model, img, p, precision="int8")
    with pytest.raises(ValueError, match="slide mode needs crop"):
        Protocol(mode="slide")


def test_rescale_size_is_mmcv_arithmetic():
    # factor = min(2048 / 500, 512 / 375) = 1.36533..; 500 * f + 0.5 -> 683, 375 * f + 0.5 -> 512
    assert rescale_size(375, 500, (2048, 512)) == (512, 683)
    assert rescale_size(1024, 2048, (2048, 1024)) == (1024, 2048)
    assert rescale_size(97, 131, (2049, 1025)) == (1025, 1384)
    assert rescale_size(10, 20, (30, 40), keep_ratio=False) == (40, 30)


def test_uint8_resize_matches_opencv_hand_computed():
    # 2 -> 3 pixels: OpenCV's half-pixel positions -0.1667 (clamped), 0.5, 1.1667 (clamped)
    img = torch.tensor([[[[10, 200]]]])
    out = resize_uint8_like_opencv(img, (1, 3))
    # middle pixel: weights 1024/1024, horizontal 10*1024+200*1024=215040; vertical ((215040>>4)*2048>>16 + 2)>>2
    assert out.flatten().tolist() == [10.0, 105.0, 200.0]
    # an exact 2x downscale is a rounded 2x2 average, as OpenCV's INTER_AREA fast path
    img = torch.tensor([[[[1, 2], [3, 5]]]])
    assert resize_uint8_like_opencv(img, (1, 1)).item() == 3.0


def test_protocol_work_by_hand_and_the_cpu_warning(small, monkeypatch):
    """240x320 under a 769x769 Cityscapes entry: resized to 1025x1367 (f = min(2049/320, 1025/240)),
    2 x 3 windows of 769x769 with stride 513; the warning says so once, and scale=None skips the resize."""
    from sszoo.inference import SlowProtocolWarning, protocol_work
    p = Protocol.from_entry(sszoo.get_entry("fcn_r18_d8_cityscapes.769x769_80k"))
    work = protocol_work(p, 240, 320)
    assert work.resized == (1025, 1367) and work.windows == 6 and work.network_pixels == 6 * 769 * 769
    assert "upsamples 240x320 to 1025x1367" in work.describe(p, False) and "6 sliding windows" in work.describe(p, False)
    assert protocol_work(p.with_(scale=None), 240, 320).network_pixels == 240 * 320   # one window, own size
    assert protocol_work(Protocol(scale=(80, 50), msflip_ratios=(0.5, 1.0)), 45, 67, tta=True).windows == 4
    model, _ = small
    img = torch.zeros(3, 40, 40, dtype=torch.uint8)
    # the threshold is a megapixel per image; lowered here so that the test runs small images
    monkeypatch.setattr(sszoo.inference, "LARGE_CPU_WORK", 100 * 100)
    big = Protocol(scale=(120, 110))     # 40x40 -> 110x110, over the (lowered) threshold
    with pytest.warns(SlowProtocolWarning, match=r"upsamples 40x40 to 110x110.*--scale none"):
        infer(model, img, big, device="cpu")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        infer(model, img, big, device="cpu")                # once per protocol
        infer(model, img, Protocol(scale=None), device="cpu")   # small work: no warning


def test_too_large_sizes_are_refused_before_allocating(small):
    from sszoo.inference import InferenceSizeError, check_fits, estimate_bytes
    model, img = small
    # the lower bound by hand: resized 3 x 2 x HW + logits K x 2 x HW (+ at the image size) + features, float32
    p = Protocol(scale=(400, 300))
    hw = 300 * 400
    assert estimate_bytes(p, 300, 400, 5) == 4 * (3 * hw * 2 + 5 * hw * 2 + 5 * hw * 2 + 2048 * 38 * 51 * 2)
    with pytest.raises(InferenceSizeError, match=r"45x67 to \d+x\d+.*GiB.*--scale"):
        infer(model, img, Protocol(scale=(10 ** 6, 10 ** 6)))
    check_fits(p, [(300, 400)], 5, torch.device("cpu"))     # an ordinary size passes


def test_window_progress_only_on_a_terminal(small, monkeypatch, capsys):
    model, img = small
    p = Protocol(scale=(80, 50), mode="slide", crop=(32, 32), stride=(24, 24))   # 50x75: 2 x 3 windows
    infer(model, img, p, batch_size=1)
    assert capsys.readouterr().err == ""                    # pytest's stderr is not a terminal
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    infer(model, img, p, batch_size=1)
    err = capsys.readouterr().err
    assert "\r" in err and "6/6 windows" in err and err.endswith("\n")
    infer(model, img, p, batch_size=1, progress=False)
    assert capsys.readouterr().err == ""


class _GlobalMean(torch.nn.Module):
    """Every output pixel is the mean over all input pixels: zero padding visibly lowers it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True).expand(-1, -1, *x.shape[2:]).contiguous()


def test_size_divisor_pads_the_normalised_input_and_crops_the_logits():
    # 37 x 45 pads to 64 x 64 (MMSegmentation's test_cfg.size_divisor=32): the mean of the normalised image
    # over the padded area, i.e. sum / (64 * 64), at every pixel of the original size
    img = torch.randint(0, 256, (3, 37, 45), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mean, std = (120.0, 110.0, 100.0), (50.0, 60.0, 70.0)
    x = (img.double() - torch.tensor(mean, dtype=torch.float64)[:, None, None]) / torch.tensor(std)[:, None, None]
    expected = x.sum(dim=(1, 2)) / (64 * 64)
    out = infer(_GlobalMean(), img, Protocol(mean=mean, std=std, size_divisor=32), output="logits")
    assert out.shape == (3, 37, 45)
    torch.testing.assert_close(out[:, 0, 0].double(), expected, rtol=1e-5, atol=1e-6)
    assert bool((out == out[:, :1, :1]).all())
    # without it: the plain mean; and sizes already divisible are not padded
    plain = infer(_GlobalMean(), img, Protocol(mean=mean, std=std), output="logits")
    torch.testing.assert_close(plain[:, 0, 0].double(), x.mean(dim=(1, 2)), rtol=1e-5, atol=1e-6)
    img64 = torch.zeros(3, 64, 32, dtype=torch.uint8)
    same = infer(_GlobalMean(), img64, Protocol(mean=mean, std=std, size_divisor=32), output="logits")
    torch.testing.assert_close(same[:, 0, 0].double(), -torch.tensor(mean, dtype=torch.float64) / torch.tensor(std),
                               rtol=1e-5, atol=1e-6)


def test_segnext_entries_test_with_size_divisor_32():
    from sszoo.registry import get_entry, list_models

    names = list_models("segnext*")
    assert names and all(Protocol.from_entry(get_entry(n)).size_divisor == 32 for n in names)
    assert Protocol.from_entry(get_entry(list_models("pspnet*")[0])).size_divisor is None
