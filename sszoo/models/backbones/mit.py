"""The Mix Transformer (MiT-B0 ... B5) of SegFormer (Xie et al., "SegFormer: Simple and Efficient Design for
Semantic Segmentation with Transformers", NeurIPS 2021), as MMSegmentation 1.2.2's ``MixVisionTransformer``.

Four stages, each:

- an *overlapping* patch embedding: a ``patch_sizes[i]`` conv with stride ``strides[i]`` and zero padding
  ``patch_sizes[i] // 2`` on every side (7/4/3 for the first stage, 3/2/1 after), then LayerNorm. With the odd
  kernels of every published config an ``n``-pixel side gives ``ceil(n / stride)`` tokens, so odd input sizes
  need no extra padding (none is added: unlike Swin's or Twins' embeddings there is no corner padding);
- ``num_layers[i]`` pre-norm layers: ``x + attn(norm1(x))`` then ``x + mix_ffn(norm2(x))``;
- a LayerNorm, and the tokens back to a (B, C, h, w) map, which is the stage's output and the next stage's input.

The stage widths are ``embed_dims * num_heads[i]`` (B0: 32 x (1, 2, 5, 8); B1-B5: 64 x (1, 2, 5, 8)), so every
head is ``embed_dims`` wide. Every LayerNorm has eps 1e-6.

Efficient self-attention: the queries are all tokens; keys and values come from the map reduced by an
``sr_ratio`` x ``sr_ratio`` conv with the same stride and no padding (+ LayerNorm), so an ``h`` x ``w`` map
gives ``floor(h / r) * floor(w / r)`` keys (``sr_ratio`` 1: plain global attention). The smallest input is the
one whose stage maps still hold one reduction window each: 29 x 29 for the published configs (the first
stage's ``ceil(n / 4)`` must reach 8); smaller inputs raise a ``ValueError`` naming it.

Mix-FFN: 1x1 conv to ``mlp_ratio`` x width, a depthwise 3x3 conv (zero padding 1: the only positional
information the network has), GELU, 1x1 conv back.

Attention is ``F.scaled_dot_product_attention``, chosen by float64 parity: on the golden cases (segformer_*) it
misses MMSegmentation's float64 logits by 3.3e-15 to 4.4e-15 of their scale, against 0 to 4.2e-15 for an explicit
``softmax(q / sqrt(d) k^T) v`` as the reference computes it (``nn.MultiheadAttention`` with ``need_weights=True``),
both far inside the 1e-8 bound (float32: 2.6e-6 to 3.8e-6 either way). It needs no (queries x keys) weight
matrix in memory where fused kernels exist, and exports to ONNX (opset 17). tests/test_segformer.py checks it
against torch's own ``nn.MultiheadAttention``.

Key names and registration order are MMSegmentation's, so its checkpoints load strictly:
``layers.{i}.0`` the patch embedding (``projection``, ``norm``), ``layers.{i}.1.{j}`` the layers (``norm1``,
``attn.attn.in_proj_weight`` / ``in_proj_bias`` / ``out_proj`` as MMCV's ``MultiheadAttention`` wrapper names
torch's, then ``attn.sr`` and ``attn.norm``; ``norm2``; ``ffn.layers.0`` / ``.1`` / ``.4`` the two 1x1 convs and
the depthwise conv between them), ``layers.{i}.2`` the stage's LayerNorm.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import DropPath, InProjections


@dataclass(frozen=True)
class MiTConfig:
    """MiT: per-stage lists, one entry per stage. B0: ``embed_dims`` 32, ``num_layers`` (2, 2, 2, 2); B1: 64 and
    (2, 2, 2, 2); B2 (3, 4, 6, 3); B3 (3, 4, 18, 3); B4 (3, 8, 27, 3); B5 (3, 6, 40, 3)."""

    embed_dims: int = 64
    num_layers: tuple[int, ...] = (3, 4, 6, 3)
    num_heads: tuple[int, ...] = (1, 2, 5, 8)
    patch_sizes: tuple[int, ...] = (7, 3, 3, 3)
    strides: tuple[int, ...] = (4, 2, 2, 2)
    sr_ratios: tuple[int, ...] = (8, 4, 2, 1)
    out_indices: tuple[int, ...] = (0, 1, 2, 3)
    mlp_ratio: int = 4
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    drop_path_rate: float = 0.1  # stochastic depth, training only
    kind: str = "mit"

    @property
    def output_stride(self) -> int:
        """The last stage's stride (32): the product of the patch embeddings' strides."""
        return math.prod(self.strides)

    @property
    def min_input_side(self) -> int:
        """The least input side the network takes (29 for the published configs)."""
        return min_input_side(self.patch_sizes, self.strides, self.sr_ratios)


def embed_out_side(n: int, kernel: int, stride: int) -> int:
    """Tokens along an ``n``-pixel side after a patch embedding (conv, zero padding ``kernel // 2``)."""
    return (n + 2 * (kernel // 2) - kernel) // stride + 1


def min_input_side(patch_sizes, strides, sr_ratios) -> int:
    """The least input side at which every stage's map is at least ``sr_ratio`` long, so that the spatial
    reduction conv (no padding) has one window: 29 for the published configs."""
    def fits(n: int) -> bool:
        for k, s, r in zip(patch_sizes, strides, sr_ratios):
            n = embed_out_side(n, k, s)
            if n < max(r, 1):
                return False
        return True

    n = 1
    while not fits(n):  # monotone in n; a few hundred steps at most
        n += 1
    return n


class OverlapPatchEmbed(nn.Module):
    """A ``kernel_size`` conv with stride ``stride`` and zero padding ``kernel_size // 2``, then LayerNorm
    (MMSegmentation's ``PatchEmbed`` with an integer padding: no adaptive padding). Returns the tokens
    (B, h*w, C) and the map's size (h, w)."""

    def __init__(self, in_channels: int, embed_dims: int, kernel_size: int, stride: int, eps: float) -> None:
        super().__init__()
        self.projection = nn.Conv2d(in_channels, embed_dims, kernel_size, stride=stride, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(embed_dims, eps=eps)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.projection(x)
        hw = (x.shape[2], x.shape[3])
        return self.norm(x.flatten(2).transpose(1, 2)), hw


class EfficientAttention(nn.Module):
    """SegFormer's efficient self-attention: every token attends to the map reduced by an ``sr_ratio`` strided
    conv (+ LayerNorm); keys and values share one projection of the reduced map (the reference's packed
    ``in_proj`` applied to ``key is value``). Returns the branch (without the residual)."""

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias: bool, sr_ratio: int, eps: float,
                 drop_path: float) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f"embed_dims {embed_dims} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.sr_ratio = sr_ratio
        # registration order as the reference: attn (torch's MHA), proj_drop, dropout_layer, sr, norm
        self.attn = InProjections(embed_dims, qkv_bias)
        self.proj_drop = nn.Dropout(0.0)
        self.dropout_layer = DropPath(drop_path)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(embed_dims, embed_dims, sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(embed_dims, eps=eps)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape
        kv = x
        if self.sr_ratio > 1:
            kv = self.sr(x.transpose(1, 2).reshape(b, c, hw[0], hw[1]))
            kv = self.norm(kv.flatten(2).transpose(1, 2))
        p = self.attn
        w_q, w_kv = p.in_proj_weight.split([c, 2 * c])
        b_q, b_kv = p.in_proj_bias.split([c, 2 * c]) if p.in_proj_bias is not None else (None, None)
        d = c // self.num_heads
        q = F.linear(x, w_q, b_q).reshape(b, n, self.num_heads, d).transpose(1, 2)
        k, v = F.linear(kv, w_kv, b_kv).reshape(b, -1, 2, self.num_heads, d).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
        return self.dropout_layer(self.proj_drop(p.out_proj(out)))


class MixFFN(nn.Module):
    """1x1 conv -> depthwise 3x3 conv -> GELU -> 1x1 conv on the token map (keys ``layers.0``, ``layers.1``,
    ``layers.4``, as the reference's Sequential with its activation and dropouts in between). Returns the
    branch (without the residual)."""

    def __init__(self, embed_dims: int, hidden: int, drop_path: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(embed_dims, hidden, 1),
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden),
            nn.GELU(),
            nn.Dropout(0.0),
            nn.Conv2d(hidden, embed_dims, 1),
            nn.Dropout(0.0),
        )
        self.dropout_layer = DropPath(drop_path)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape
        out = self.layers(x.transpose(1, 2).reshape(b, c, hw[0], hw[1]))
        return self.dropout_layer(out.flatten(2).transpose(1, 2))


class MiTLayer(nn.Module):
    """Pre-norm layer: ``x + attn(norm1(x))``, then ``x + ffn(norm2(x))`` (the branches' stochastic depth is
    inside the attention and the FFN, as the reference's ``dropout_layer``)."""

    def __init__(self, embed_dims: int, num_heads: int, hidden: int, qkv_bias: bool, sr_ratio: int, eps: float,
                 drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=eps)
        self.attn = EfficientAttention(embed_dims, num_heads, qkv_bias, sr_ratio, eps, drop_path)
        self.norm2 = nn.LayerNorm(embed_dims, eps=eps)
        self.ffn = MixFFN(embed_dims, hidden, drop_path)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), hw)
        return x + self.ffn(self.norm2(x), hw)


class MixVisionTransformer(nn.Module):
    """MiT: per stage an overlapping patch embedding, efficient-attention layers and a LayerNorm
    (``layers[i]`` = [patch_embed, layers, norm]); returns the stages' maps (B, C, h, w) listed by ``out_indices``
    (strides 4, 8, 16, 32)."""

    def __init__(self, embed_dims: int = 64, num_layers=(3, 4, 6, 3), num_heads=(1, 2, 5, 8),
                 patch_sizes=(7, 3, 3, 3), strides=(4, 2, 2, 2), sr_ratios=(8, 4, 2, 1), *,
                 out_indices=(0, 1, 2, 3), mlp_ratio: int = 4, qkv_bias: bool = True, norm_eps: float = 1e-6,
                 drop_path_rate: float = 0.0, in_channels: int = 3) -> None:
        super().__init__()
        stages = len(num_layers)
        if any(len(v) != stages for v in (num_heads, patch_sizes, strides, sr_ratios)):
            raise ValueError("MixVisionTransformer needs one entry per stage in every per-stage setting")
        if any(not 0 <= i < stages for i in out_indices):
            raise ValueError(f"out_indices {tuple(out_indices)} must name stages 0 to {stages - 1}")
        self.out_indices = tuple(out_indices)
        self.min_input_side = min_input_side(patch_sizes, strides, sr_ratios)
        widths = [embed_dims * h for h in num_heads]
        self.out_channels: list[int] = [widths[i] for i in self.out_indices]
        # the reference's stochastic-depth rates: float32 linspace over all layers, as Python floats (on the CPU
        # even while building on the meta device)
        dpr = [r.item() for r in torch.linspace(0, drop_path_rate, sum(num_layers), device="cpu")]
        self.layers = nn.ModuleList()
        start, c_in = 0, in_channels
        for i in range(stages):
            w = widths[i]
            embed = OverlapPatchEmbed(c_in, w, patch_sizes[i], strides[i], norm_eps)
            blocks = nn.ModuleList(MiTLayer(w, num_heads[i], mlp_ratio * w, qkv_bias, sr_ratios[i], norm_eps,
                                            dpr[start + j]) for j in range(num_layers[i]))
            self.layers.append(nn.ModuleList([embed, blocks, nn.LayerNorm(w, eps=norm_eps)]))
            start += num_layers[i]
            c_in = w

    @classmethod
    def from_config(cls, cfg: MiTConfig) -> "MixVisionTransformer":
        return cls(cfg.embed_dims, cfg.num_layers, cfg.num_heads, cfg.patch_sizes, cfg.strides, cfg.sr_ratios,
                   out_indices=cfg.out_indices, mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias,
                   norm_eps=cfg.norm_eps, drop_path_rate=cfg.drop_path_rate)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[-2] < self.min_input_side or x.shape[-1] < self.min_input_side:
            raise ValueError(f"MixVisionTransformer takes inputs of at least {self.min_input_side} x "
                             f"{self.min_input_side} pixels (its spatial-reduction convs need that), "
                             f"got {x.shape[-2]} x {x.shape[-1]}")
        outs = []
        b = x.shape[0]
        for i, stage in enumerate(self.layers):
            embed, blocks, norm = stage[0], stage[1], stage[2]
            x, hw = embed(x)
            for block in blocks:
                x = block(x, hw)
            x = norm(x)
            x = x.transpose(1, 2).reshape(b, -1, hw[0], hw[1]).contiguous()
            if i in self.out_indices:
                outs.append(x)
        return outs
