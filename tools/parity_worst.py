"""Print, per golden parity case, the worst |sszoo - reference| logit difference: float32 and float64 through
Segmentor.forward (whose final upsampling runs in float32), and float64 end to end (heads + resize in float64).

    PYTHONPATH=. python tools/parity_worst.py CASE [CASE ...]
"""
import os, sys
import torch
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from oracle_weights import case_arch, load_case, randomise_like_oracle  # noqa: E402
from sszoo.models import build_model  # noqa: E402
from sszoo.models.layers import resize  # noqa: E402

torch.set_num_threads(1)
for case in sys.argv[1:]:
    x, ref, info = load_case(case)
    m = build_model(case_arch(info))
    randomise_like_oracle(m, info["seed"], tuple(info["calib_shape"]), float64=info.get("dtype") == "float64")
    with torch.no_grad():
        o32 = m(x.float()).double()
        m.double()
        o64 = m(x)
        o64e = resize(m.decode_heads[0].predict(m.forward_features(x)), x.shape[2:], m.align_corners)
    n = info.get("logits_stride", 1)  # a strided golden: every n-th row and column
    d = lambda o: (o[..., ::n, ::n] - ref).abs().max().item()  # noqa: E731
    print(f"{case}: max|ref| {ref.abs().max():.3f}  f32 {d(o32):.2e}  f64 {d(o64):.2e}  f64 end-to-end {d(o64e):.2e}")
