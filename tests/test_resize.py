"""sszoo's uint8 bilinear resize equals OpenCV's cv2.resize(INTER_LINEAR) to the bit.

The golden outputs come from cv2 5.0 (tools/make_resize_golden.py, run in the MMSegmentation oracle
environment); the test needs no OpenCV.
"""
import os

import numpy as np
import pytest
import torch

from sszoo.data.resize import resize_uint8_like_opencv

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "resize", "opencv_linear.npz")


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as g:
        return {k: g[k] for k in g.files}


def _cases(g):
    i = 0
    while f"in{i}" in g:
        yield i, torch.from_numpy(g[f"in{i}"]).permute(2, 0, 1), torch.from_numpy(g[f"out{i}"]).permute(2, 0, 1)
        i += 1


def test_every_case_is_bit_exact(golden):
    n = 0
    for i, img, ref in _cases(golden):
        out = resize_uint8_like_opencv(img, tuple(ref.shape[-2:]))
        diff = (out - ref.int()).abs()
        assert diff.max() == 0, (f"case {i}: {tuple(img.shape)} -> {tuple(ref.shape)}: {int((diff > 0).sum())} values differ, "
                                 f"rows {sorted(set(torch.nonzero(diff)[:, 1].tolist()))[:6]}")
        n += 1
    assert n == 9


def test_first_and_last_rows_of_an_upscale(golden):
    # Rows above the first and below the last source row keep their fractional weights and read the edge
    # row twice (columns instead take the edge pixel whole): with OpenCV's vertical rounding this is where a
    # plain clamp differs by one grey level.
    _, img, ref = next(c for c in _cases(golden) if c[0] == 0)
    out = resize_uint8_like_opencv(img, tuple(ref.shape[-2:]))
    assert torch.equal(out[:, [0, -1]], ref[:, [0, -1]].int())


def test_window_and_batch_equal_the_full_resize(golden):
    _, img, ref = next(c for c in _cases(golden) if c[0] == 1)
    size = tuple(ref.shape[-2:])
    box = (3, 120, 10, 90)
    win = resize_uint8_like_opencv(img, size, box=box)
    assert torch.equal(win, ref[:, 3:120, 10:90].int())
    both = resize_uint8_like_opencv(torch.stack([img, img.flip(-1)]), size)
    assert torch.equal(both[0], ref.int())
    assert torch.equal(both[1], resize_uint8_like_opencv(img.flip(-1), size))
