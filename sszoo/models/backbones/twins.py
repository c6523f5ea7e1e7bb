"""Twins-PCPVT and Twins-SVT (Chu et al., "Twins: Revisiting the Design of Spatial Attention in Vision
Transformers", NeurIPS 2021), as MMSegmentation 1.2.2's ``PCPVT`` and ``SVT`` backbones.

Four stages, each a patch embedding (a ``patch_size`` conv with stride ``stride`` over the input zero-padded
at the bottom and right to a multiple of the stride, then LayerNorm) and ``depth`` pre-norm transformer
layers (attention + GELU MLP, both residual). The positional encoding generator (PEG; MMSegmentation's
``position_encodings``, the paper's ``pos_block``) is a depthwise 3x3 conv plus identity applied after the
*first* layer of each stage. Every stage's map is returned (strides 4, 8, 16, 32).

- PCPVT: every layer is global sub-sampled attention (GSA, as SegFormer's efficient attention): keys and
  values come from the map reduced by an ``sr_ratio`` x ``sr_ratio`` conv with the same stride (+ LayerNorm).
- SVT: layers alternate locally-grouped self-attention (LSA: attention inside ``window_size`` windows of
  the map zero-padded at the bottom and right to a multiple of the window; even layers) and GSA (odd
  layers), and each stage ends with a LayerNorm (``norm_list``).

Reference quirks kept on purpose (they change the published models' numbers):

- LSA masks padded tokens off real ones with an additive -1000 (not -inf) only when the map is padded both
  at the bottom and at the right. When only one side is padded the reference marks *every* token as padding
  (``mask[:, -0:]`` selects the whole axis), so no mask is applied and real tokens attend to the zero-padded
  ones (whose keys and values are the qkv bias).
- Stochastic depth (training only) is applied twice to GSA's attention branch and to every MLP branch (once
  by the attention / FFN module, once by the layer), once to LSA's attention branch.

Attention is ``F.scaled_dot_product_attention``, chosen by float64 parity: on the golden cases it misses
MMSegmentation's float64 logits by 4e-15 (PCPVT-S) and 6e-15 (SVT-S) of their scale, against 0 and 4e-15 for an
explicit ``softmax(q k^T / sqrt(d)) v`` as the reference computes it (``nn.MultiheadAttention`` with
``need_weights=True`` for GSA, matmuls for LSA); float32 2.7e-6 to 3.1e-6 either way. tests/test_twins.py
checks GSA against torch's ``nn.MultiheadAttention`` and LSA against a window-by-window loop. It exports to
ONNX (opset 17), with static and dynamic sizes.

Key names and registration order are MMSegmentation's (``patch_embeds``, ``layers``, ``position_encodings``,
``norm_list``; GSA's projections as ``attn.attn.in_proj_weight`` / ``attn.attn.out_proj``, LSA's as
``attn.qkv`` / ``attn.proj``), so its checkpoints load strictly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import DropPath, InProjections


@dataclass(frozen=True)
class PCPVTConfig:
    """Twins-PCPVT: one entry per stage. S/B/L differ in ``depths`` ((3, 4, 6, 3), (3, 4, 18, 3), (3, 8, 27, 3))."""

    embed_dims: tuple[int, ...] = (64, 128, 320, 512)
    patch_sizes: tuple[int, ...] = (4, 2, 2, 2)
    strides: tuple[int, ...] = (4, 2, 2, 2)
    num_heads: tuple[int, ...] = (1, 2, 5, 8)
    mlp_ratios: tuple[int, ...] = (8, 8, 4, 4)
    depths: tuple[int, ...] = (3, 4, 6, 3)
    sr_ratios: tuple[int, ...] = (8, 4, 2, 1)
    qkv_bias: bool = True
    norm_after_stage: bool = False
    out_indices: tuple[int, ...] = (0, 1, 2, 3)
    drop_path_rate: float = 0.2  # stochastic depth, training only
    kind: str = "pcpvt"

    @property
    def output_stride(self) -> int:
        """The last stage's stride (32): the product of the patch embeddings' strides."""
        return math.prod(self.strides)

    @property
    def min_input_side(self) -> int:
        """The least input side the network takes (29 for the published configs)."""
        return min_input_side(self.strides, self.sr_ratios)


def min_input_side(strides, sr_ratios) -> int:
    """The least input side at which every stage's map holds one sub-sampling window: stage ``k``'s map has
    ``ceil(side / (strides[0] * ... * strides[k]))`` pixels and GSA's ``sr_ratio`` conv has no padding
    (the published configs: the first stage's ``ceil(side / 4)`` must reach 8, so 29)."""
    need, stride = 1, 1
    for s, r in zip(strides, sr_ratios):
        stride *= s
        need = max(need, (r - 1) * stride + 1)
    return need


@dataclass(frozen=True)
class SVTConfig(PCPVTConfig):
    """Twins-SVT (the paper's ALTGVT): PCPVT's stages with LSA in the even layers, and a LayerNorm after each
    stage. S/B/L: widths 64/96/128 x (1, 2, 4, 8), depths (2, 2, 10, 4) or (2, 2, 18, 2)."""

    embed_dims: tuple[int, ...] = (64, 128, 256, 512)
    num_heads: tuple[int, ...] = (2, 4, 8, 16)
    mlp_ratios: tuple[int, ...] = (4, 4, 4, 4)
    depths: tuple[int, ...] = (2, 2, 10, 4)
    window_sizes: tuple[int, ...] = (7, 7, 7, 7)
    norm_after_stage: bool = True
    kind: str = "svt"


class PatchEmbed(nn.Module):
    """Zero-pad bottom/right to a multiple of the stride, a ``kernel_size`` conv with that stride, LayerNorm.
    Returns the tokens (B, h*w, C) and the map's size (h, w)."""

    def __init__(self, in_channels: int, embed_dims: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        if kernel_size < stride:  # the published configs have kernel == stride; the padding below assumes >=
            raise ValueError(f"a patch embedding with kernel {kernel_size} < stride {stride} is not supported")
        self.kernel_size, self.stride = kernel_size, stride
        self.projection = nn.Conv2d(in_channels, embed_dims, kernel_size, stride=stride)
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        # MMSegmentation's AdaptivePadding("corner"): the least padding for ceil(side / stride) outputs. Only
        # non-negative integer division: ONNX's Div truncates, so -(-n // s) would export as floor(n / s).
        s, k = self.stride, self.kernel_size
        # (no Python branch on the sizes: a graph exported with dynamic sizes pads as needed at every size)
        pad_h, pad_w = [((n + s - 1) // s - 1) * s + k - n for n in x.shape[-2:]]
        x = F.pad(x, [0, pad_w, 0, pad_h])
        x = self.projection(x)
        hw = (x.shape[2], x.shape[3])
        return self.norm(x.flatten(2).transpose(1, 2)), hw


class FFN(nn.Module):
    """Linear -> GELU -> Linear (MMCV's FFN with two layers: keys ``layers.0.0``, ``layers.1``), without its
    identity; its stochastic depth is the reference's inner one."""

    def __init__(self, embed_dims: int, hidden: int, drop_path: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Sequential(nn.Linear(embed_dims, hidden), nn.GELU(), nn.Dropout(0.0)),
                                    nn.Linear(hidden, embed_dims), nn.Dropout(0.0))
        self.dropout_layer = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout_layer(self.layers(x))


class GlobalSubsampledAttention(nn.Module):
    """GSA: every token attends to the map sub-sampled by an ``sr_ratio`` strided conv (+ LayerNorm); with
    ``sr_ratio`` 1 plain global attention. Keys and values share one projection of the reduced map."""

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias: bool, sr_ratio: int, drop_path: float) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f"embed_dims {embed_dims} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.attn = InProjections(embed_dims, qkv_bias)
        self.dropout_layer = DropPath(drop_path)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(embed_dims, embed_dims, sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape
        kv = x
        if self.sr_ratio > 1:
            kv = self.norm(self.sr(x.transpose(1, 2).reshape(b, c, hw[0], hw[1])).flatten(2).transpose(1, 2))
        p = self.attn
        w_q, w_kv = p.in_proj_weight.split([c, 2 * c])
        b_q, b_kv = p.in_proj_bias.split([c, 2 * c]) if p.in_proj_bias is not None else (None, None)
        d = c // self.num_heads
        q = F.linear(x, w_q, b_q).reshape(b, n, self.num_heads, d).transpose(1, 2)
        k, v = F.linear(kv, w_kv, b_kv).reshape(b, -1, 2, self.num_heads, d).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
        return self.dropout_layer(p.out_proj(out))


def _pad_to(n: int, window: int) -> int:
    """Padding of ``n`` pixels to a multiple of ``window`` (non-negative operands only, which ONNX's Mod and Div
    compute as Python does)."""
    return (window - n % window) % window


def lsa_mask(h: int, w: int, window: int, like: torch.Tensor) -> torch.Tensor:
    """The additive mask of LSA on an ``h`` x ``w`` map padded to multiples of ``window``: (windows, N, N) with
    -1000 between a padded and a real token and 0 elsewhere (windows and tokens row-major).

    As the reference: only a map padded both at the bottom and at the right is masked; with one side unpadded
    its ``mask[:, -0:]`` marks every token as padding, and the difference of equal flags is zero everywhere.
    Written with integer arithmetic and tensor comparisons only (no Python branch on the sizes), so that an
    ONNX graph exported with dynamic sizes masks as the reference at every size.
    """
    pad_b, pad_r = _pad_to(h, window), _pad_to(w, window)
    hp, wp = h + pad_b, w + pad_r
    # 1 if the bottom (right) is padded, else 0 (0 <= pad < window); an unpadded side flags every row (column)
    padded_b, padded_r = (pad_b + window - 1) // window, (pad_r + window - 1) // window
    rows = torch.arange(hp, device=like.device) >= h - hp * (1 - padded_b)
    cols = torch.arange(wp, device=like.device) >= w - wp * (1 - padded_r)
    flags = (rows.unsqueeze(1) | cols.unsqueeze(0)).reshape(hp // window, window, wp // window, window)
    flags = flags.transpose(1, 2).reshape(-1, window * window)
    differ = flags.unsqueeze(1) != flags.unsqueeze(2)
    return torch.zeros(differ.shape, dtype=like.dtype, device=like.device).masked_fill(differ, -1000.0)


class LocallyGroupedSelfAttention(nn.Module):
    """LSA: attention inside non-overlapping ``window_size`` x ``window_size`` windows of the map, zero-padded
    at the bottom and right to whole windows (the padding is cropped off after the attention)."""

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias: bool, window_size: int) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f"embed_dims {embed_dims} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.window_size = window_size
        self.qkv = nn.Linear(embed_dims, 3 * embed_dims, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape
        h, w = hw
        ws = self.window_size
        x = F.pad(x.view(b, h, w, c), (0, 0, 0, _pad_to(w, ws), 0, _pad_to(h, ws)))
        gh, gw = x.shape[1] // ws, x.shape[2] // ws
        # windows: (B, gh * gw, ws * ws, C), row-major over the windows and over the pixels inside each
        x = x.reshape(b, gh, ws, gw, ws, c).transpose(2, 3).reshape(b, gh * gw, ws * ws, c)
        q, k, v = self.qkv(x).reshape(b, gh * gw, ws * ws, 3, self.num_heads, c // self.num_heads).permute(3, 0, 1, 4, 2, 5)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=lsa_mask(h, w, ws, x).unsqueeze(1))
        out = out.transpose(2, 3).reshape(b, gh, gw, ws, ws, c).transpose(2, 3).reshape(b, gh * ws, gw * ws, c)
        return self.proj(out[:, :h, :w].reshape(b, n, c))


class EncoderLayer(nn.Module):
    """Pre-norm transformer layer: ``x + attn(norm1(x))``, then ``x + ffn(norm2(x))`` (each branch through
    the layer's own stochastic depth as well)."""

    def __init__(self, attn: nn.Module, embed_dims: int, hidden: int, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = attn
        self.norm2 = nn.LayerNorm(embed_dims)
        self.ffn = FFN(embed_dims, hidden, drop_path)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return x + self.drop_path(self.ffn(self.norm2(x)))


class PositionEncoding(nn.Module):
    """The PEG (conditional position encoding): tokens + a depthwise 3x3 conv of their map."""

    def __init__(self, embed_dims: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(embed_dims, embed_dims, 3, padding=1, groups=embed_dims)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape
        feat = x.transpose(1, 2).reshape(b, c, hw[0], hw[1])
        return (self.proj(feat) + feat).flatten(2).transpose(1, 2)


class PCPVT(nn.Module):
    """Twins-PCPVT: patch embedding, GSA layers with a PEG after the first, per stage; returns the stages'
    maps (B, C, h, w) listed by ``out_indices``."""

    def __init__(self, embed_dims=(64, 128, 320, 512), patch_sizes=(4, 2, 2, 2), strides=(4, 2, 2, 2),
                 num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4), depths=(3, 4, 6, 3), sr_ratios=(8, 4, 2, 1), *,
                 qkv_bias: bool = True, norm_after_stage: bool = False, out_indices=(0, 1, 2, 3),
                 drop_path_rate: float = 0.0, window_sizes=None) -> None:
        super().__init__()
        stages = len(depths)
        lists = [embed_dims, patch_sizes, strides, num_heads, mlp_ratios, sr_ratios]
        if window_sizes is not None:
            lists.append(window_sizes)
        if any(len(v) != stages for v in lists):
            raise ValueError("Twins needs one entry per stage in every per-stage setting")
        if any(not 0 <= i < stages for i in out_indices):
            raise ValueError(f"out_indices {tuple(out_indices)} must name stages 0 to {stages - 1}")
        self.out_indices = tuple(out_indices)
        self.min_input_side = min_input_side(strides, sr_ratios)
        self.out_channels: list[int] = [embed_dims[i] for i in self.out_indices]
        # registration order as the reference: patch_embeds, layers, position_encodings, norm_list
        self.patch_embeds = nn.ModuleList(PatchEmbed(3 if i == 0 else embed_dims[i - 1], embed_dims[i],
                                                     patch_sizes[i], strides[i]) for i in range(stages))
        # the reference's stochastic-depth rates: float32 linspace over all layers, as Python floats (on the CPU
        # even while building on the meta device)
        dpr = [r.item() for r in torch.linspace(0, drop_path_rate, sum(depths), device="cpu")]
        self.layers = nn.ModuleList()
        start = 0
        for k in range(stages):
            blocks = []
            for i in range(depths[k]):
                dim, rate = embed_dims[k], dpr[start + i]
                if window_sizes is not None and i % 2 == 0:  # SVT: LSA in the even layers
                    attn: nn.Module = LocallyGroupedSelfAttention(dim, num_heads[k], qkv_bias, window_sizes[k])
                    # LSA has no stochastic depth of its own; its FFN still does
                else:
                    attn = GlobalSubsampledAttention(dim, num_heads[k], qkv_bias, sr_ratios[k], rate)
                blocks.append(EncoderLayer(attn, dim, mlp_ratios[k] * dim, rate))
            self.layers.append(nn.ModuleList(blocks))
            start += depths[k]
        self.position_encodings = nn.ModuleList(PositionEncoding(d) for d in embed_dims)
        self.norm_list = nn.ModuleList(nn.LayerNorm(d) for d in embed_dims) if norm_after_stage else None

    @classmethod
    def from_config(cls, cfg: PCPVTConfig) -> "PCPVT":
        return cls(cfg.embed_dims, cfg.patch_sizes, cfg.strides, cfg.num_heads, cfg.mlp_ratios, cfg.depths,
                   cfg.sr_ratios, qkv_bias=cfg.qkv_bias, norm_after_stage=cfg.norm_after_stage,
                   out_indices=cfg.out_indices, drop_path_rate=cfg.drop_path_rate,
                   window_sizes=getattr(cfg, "window_sizes", None))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[-2] < self.min_input_side or x.shape[-1] < self.min_input_side:
            raise ValueError(f"Twins takes inputs of at least {self.min_input_side} x {self.min_input_side} pixels "
                             f"(its sub-sampled attention needs that), got {x.shape[-2]} x {x.shape[-1]}")
        outs = []
        b = x.shape[0]
        for i, embed in enumerate(self.patch_embeds):
            x, hw = embed(x)
            for j, layer in enumerate(self.layers[i]):
                x = layer(x, hw)
                if j == 0:
                    x = self.position_encodings[i](x, hw)
            if self.norm_list is not None:
                x = self.norm_list[i](x)
            x = x.reshape(b, hw[0], hw[1], -1).permute(0, 3, 1, 2).contiguous()
            if i in self.out_indices:
                outs.append(x)
        return outs


class SVT(PCPVT):
    """Twins-SVT: PCPVT with LSA in the even layers of each stage (GSA in the odd ones) and a LayerNorm after
    each stage."""

    def __init__(self, embed_dims=(64, 128, 256, 512), patch_sizes=(4, 2, 2, 2), strides=(4, 2, 2, 2),
                 num_heads=(2, 4, 8, 16), mlp_ratios=(4, 4, 4, 4), depths=(2, 2, 10, 4), sr_ratios=(8, 4, 2, 1), *,
                 qkv_bias: bool = True, norm_after_stage: bool = True, out_indices=(0, 1, 2, 3),
                 drop_path_rate: float = 0.0, window_sizes=(7, 7, 7, 7)) -> None:
        super().__init__(embed_dims, patch_sizes, strides, num_heads, mlp_ratios, depths, sr_ratios,
                         qkv_bias=qkv_bias, norm_after_stage=norm_after_stage, out_indices=out_indices,
                         drop_path_rate=drop_path_rate, window_sizes=window_sizes)
