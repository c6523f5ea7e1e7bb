"""Golden float64 outputs of MMSegmentation 1.2.2's SwinTransformer backbone in the variants the Swin-T
UPerNet parity goldens do not reach (run with the oracle environment's python):

    /work/oracle/bin/python tools/make_swin_golden.py

* ``w12_384``: window 12 and pretrain_img_size 384 (the Swin-B / Mask2Former settings), slim widths;
* ``abs_qk_nonorm``: the absolute position embedding at its pretraining size, patch size 2, ``qk_scale``,
  ``patch_norm=False``, mlp_ratio 3, an odd number of blocks in a stage and ``out_indices=(1, 3)``;
* ``train_droppath``: training mode with stochastic depth, dropout and attention dropout, batch 3: sszoo
  must draw the same random numbers in the same order (DropPath per sample, the attention dropout's mask).

Each backbone gets the oracle's seeded parameters (tools/oracle_dump64.py's draw_parameters, registration
order), and a seeded float32 standard-normal input (generator seed ``seed + 1``, as float64); the forward
runs after ``torch.manual_seed(seed + 2)``. Only the outputs are stored; tests/test_swin.py rebuilds the
weights and the input from the seeds. Written to tests/golden/heads/swin_variants.pt.
"""
from __future__ import annotations

import os
import sys
import warnings

warnings.filterwarnings("ignore")

import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from mmseg_arch import _swin  # noqa: E402
from oracle_dump64 import draw_parameters  # noqa: E402
OUT = os.path.join(os.path.dirname(HERE), "tests", "golden", "heads", "swin_variants.pt")

# name: (SwinTransformer kwargs, input shape, seed, training mode)
CASES = {
    "w12_384": (dict(embed_dims=8, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8], window_size=12, pretrain_img_size=384),
                (1, 3, 61, 75), 0, False),
    "abs_qk_nonorm": (dict(embed_dims=12, depths=[1, 2, 3, 1], num_heads=[3, 3, 6, 6], window_size=5, patch_size=2,
                           strides=[2, 2, 2, 2], pretrain_img_size=40, use_abs_pos_embed=True, qk_scale=0.25,
                           patch_norm=False, mlp_ratio=3, out_indices=[1, 3]),
                      (2, 3, 39, 40), 1, False),
    "train_droppath": (dict(embed_dims=8, depths=[2, 2, 2, 2], num_heads=[2, 2, 4, 4], window_size=7,
                            drop_path_rate=0.5, drop_rate=0.1, attn_drop_rate=0.2),
                       (3, 3, 45, 53), 2, True),
}


def main() -> None:
    import mmseg.models  # noqa: F401  (registers the backbone)
    from mmseg.registry import MODELS

    out = {}
    for name, (kwargs, shape, seed, training) in CASES.items():
        cfg = dict(type="SwinTransformer", **kwargs)
        torch.manual_seed(seed)
        net = MODELS.build(cfg)
        draw_parameters(net, torch.Generator().manual_seed(seed))
        net.double()
        net.train(training)
        x = torch.randn(shape, generator=torch.Generator().manual_seed(seed + 1)).double()
        torch.manual_seed(seed + 2)
        with torch.no_grad():
            ys = net(x)
        out[name] = dict(arch=_swin(cfg), shape=list(shape), seed=seed, training=training,
                         n_params=sum(p.numel() for p in net.parameters()),
                         keys=list(net.state_dict()), outputs=[y.clone() for y in ys])
        print(name, [tuple(y.shape) for y in ys])
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    torch.save(out, OUT)


if __name__ == "__main__":
    main()
