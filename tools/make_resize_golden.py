"""Golden outputs of OpenCV's bilinear resize (cv2.INTER_LINEAR on uint8), the reference test pipeline's
resize, for tests/test_resize.py.

Run with a python that has OpenCV, e.g. the oracle environment (MMSegmentation's own cv2):

    /work/oracle/bin/python tools/make_resize_golden.py

Writes tests/golden/resize/opencv_linear.npz: for each case a random uint8 input (seeded) and
cv2.resize's output, plus the OpenCV version. The cases cover upscaling (first and last output rows
read outside the image), non-integer downscaling, the exact 2x reduction, an unchanged size, one-row
and tiny inputs, and a single-channel image.
"""
from __future__ import annotations

import os

import cv2
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "golden", "resize",
                   "opencv_linear.npz")
# (input H, W, channels) -> (output h, w)
CASES = [
    ((37, 53, 3), (100, 131)),
    ((61, 83, 3), (150, 97)),
    ((97, 131, 3), (64, 90)),
    ((64, 96, 3), (32, 48)),
    ((50, 70, 3), (50, 70)),
    ((2, 3, 3), (7, 11)),
    ((1, 40, 3), (5, 17)),
    ((45, 67, 3), (81, 121)),
    ((33, 29, 1), (70, 41)),
]


def main() -> None:
    rng = np.random.default_rng(2024)
    arrays: dict[str, np.ndarray] = {"cv2_version": np.array(cv2.__version__)}
    for i, ((h, w, c), (oh, ow)) in enumerate(CASES):
        img = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
        src = img[:, :, 0] if c == 1 else img
        out = cv2.resize(src, (ow, oh), interpolation=cv2.INTER_LINEAR)
        arrays[f"in{i}"] = img
        arrays[f"out{i}"] = out.reshape(oh, ow, c)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    np.savez_compressed(OUT, **arrays)
    print(f"{len(CASES)} cases written to {OUT} (cv2 {cv2.__version__})")


if __name__ == "__main__":
    main()
