"""Swin Transformer (Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows",
ICCV 2021), as MMSegmentation 1.2.2's ``SwinTransformer`` backbone.

A non-overlapping patch embedding (a ``patch_size`` conv + LayerNorm; the image is zero-padded at the bottom
and right to a multiple of the patch size first), then four stages of Swin blocks. Each block is pre-norm
window attention + MLP; odd blocks shift the windows by half a window (a cyclic roll) and mask attention
between the regions that the roll brought together. Between stages a PatchMerging layer (zero-pad to even,
concatenate each 2x2 neighbourhood, LayerNorm, bias-free linear to twice the width) halves the resolution.
Every output stage has its own LayerNorm (``norm{i}``). The backbone returns N x C x H x W maps at strides
4, 8, 16, 32 (rounded up).

Numerics follow the reference exactly, including its quirks:

* the feature map of every block is zero-padded to a multiple of the window size *after* ``norm1`` and
  *before* the roll, and the padded tokens are not masked: they take part in the attention as keys (with
  their qkv bias), as in MMSegmentation (the original Swin code pads the same way);
* the window is never shrunk to the feature map (a 4 x 5 map is padded to one 7 x 7 window and, in the
  shifted blocks, still rolled by 3 and masked);
* the shift mask is -100 between tokens of different regions and 0 within one.

Attention: ``torch.nn.functional.scaled_dot_product_attention`` with the relative position bias (plus the
shift mask) as an additive float mask. Its float64 result agrees with the reference's explicit
``softmax((q * scale) @ k^T + bias + mask) @ v`` to 6e-15 of the logit scale on the Swin-T UPerNet goldens
(tests/test_parity.py; the bound is 1e-8) and to 5e-14 on the bare backbone's outputs, where the explicit form
gives the reference's bits exactly; so the faster fused kernel is used. In training with ``attn_drop_rate > 0``
the explicit form runs instead, so that the attention dropout draws its random numbers as the reference's
``nn.Dropout`` does (every published config has ``attn_drop_rate`` 0).

Key names and registration order are MMSegmentation's (``patch_embed.projection``, ``stages.{i}.blocks.{j}
.attn.w_msa.relative_position_bias_table``, ``...ffn.layers.0.0``, ``stages.{i}.downsample.reduction``,
``norm{i}``, ...); ``relative_position_index`` is a persistent buffer there, so it is one here too and its
key is in the state dict.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import DropPath


@dataclass(frozen=True)
class SwinConfig:
    """MMSegmentation's ``SwinTransformer`` arguments that change the network (all LayerNorm + GELU).

    Tiny: embed_dims 96, depths (2, 2, 6, 2), heads (3, 6, 12, 24); Small: depths (2, 2, 18, 2); Base: 128,
    heads (4, 8, 16, 32); Large: 192, heads (6, 12, 24, 48). ``pretrain_img_size`` only sizes the absolute
    position embedding (``use_abs_pos_embed``, which no published config sets). The dropout rates only act
    in training.
    """

    embed_dims: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    patch_size: int = 4
    strides: tuple[int, ...] = (4, 2, 2, 2)
    mlp_ratio: float = 4.0
    out_indices: tuple[int, ...] = (0, 1, 2, 3)
    qkv_bias: bool = True
    qk_scale: Optional[float] = None
    patch_norm: bool = True
    use_abs_pos_embed: bool = False
    pretrain_img_size: tuple[int, int] = (224, 224)
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.1
    kind: str = "swin"

    @property
    def output_stride(self) -> int:
        """The stride of the last stage's map: the patch size times every merging stride (32)."""
        return math.prod(self.strides)


def _corner_pad(size: int, kernel: int, stride: int) -> int:
    """Zero rows/columns added at the bottom/right so that a ``kernel``/``stride`` window covers ``size``
    (MMSegmentation's AdaptivePadding in 'corner' mode)."""
    return max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """B x H x W x C (H, W multiples of ``window_size``) -> (B * nW) x ws x ws x C, windows in row-major
    order within each image, images one after the other."""
    b, h, w, c = x.shape
    x = x.view(b, h // window_size, window_size, w // window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, c)


def window_reverse(windows: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nW) x ws x ws x C -> B x H x W x C."""
    ws = windows.shape[1]
    b = windows.shape[0] // ((h // ws) * (w // ws))
    x = windows.view(b, h // ws, w // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1)


def shift_mask(h: int, w: int, window_size: int, shift: int, *, dtype: torch.dtype = torch.float32,
               device: torch.device | None = None) -> torch.Tensor:
    """The shifted-window attention mask, nW x ws^2 x ws^2: 0 between tokens of the same region, -100 else.

    After the roll by ``-shift``, each axis of the padded ``h`` x ``w`` map has three regions: [0, h - ws),
    [h - ws, h - shift) and [h - shift, h) (the rolled-in border). A token's region is its (row, column)
    region pair."""
    def regions(n: int) -> torch.Tensor:
        i = torch.arange(n, device=device)
        return (i >= n - window_size).long() + (i >= n - shift).long()

    label = regions(h)[:, None] * 3 + regions(w)[None, :]          # h x w
    windows = window_partition(label[None, :, :, None], window_size).reshape(-1, window_size * window_size)
    same = windows[:, None, :] == windows[:, :, None]              # nW x ws^2 x ws^2
    zero = torch.zeros((), dtype=dtype, device=device)
    return torch.where(same, zero, zero - 100.0)


def relative_position_index(window_size: int) -> torch.Tensor:
    """ws^2 x ws^2 int64: entry (a, b) indexes the bias table row of the offset between window tokens a and b,
    ``(row_a - row_b + ws - 1) * (2 ws - 1) + (col_a - col_b + ws - 1)``."""
    rows = torch.arange(window_size).repeat_interleave(window_size)
    cols = torch.arange(window_size).repeat(window_size)
    dr = rows[:, None] - rows[None, :] + window_size - 1
    dc = cols[:, None] - cols[None, :] + window_size - 1
    return (dr * (2 * window_size - 1) + dc).contiguous()


class WindowMSA(nn.Module):
    """Multi-head self-attention within each window, with a learned relative position bias per head."""

    def __init__(self, embed_dims: int, num_heads: int, window_size: int, *, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, attn_drop_rate: float = 0.0, proj_drop_rate: float = 0.0) -> None:
        super().__init__()
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.window_size = window_size
        self.scale = qk_scale or (embed_dims // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop_rate)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x``: (B * nW) x ws^2 x C windows; ``mask``: None or nW x ws^2 x ws^2 (0 or -100)."""
        b, n, c = x.shape
        heads = self.num_heads
        q, k, v = self.qkv(x).reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(n, n, heads).permute(2, 0, 1)                      # heads x N x N
        if mask is None:
            bias = bias.unsqueeze(0)                                        # 1 x heads x N x N
        else:
            nw = mask.shape[0]
            bias = bias.unsqueeze(0) + mask.to(bias.dtype).unsqueeze(1)     # nW x heads x N x N
            bias = bias.unsqueeze(0).expand(b // nw, nw, heads, n, n).reshape(b, heads, n, n)
        if self.training and self.attn_drop.p > 0:
            # explicit, so that the attention dropout draws random numbers as the reference's nn.Dropout
            attn = self.attn_drop(((q * self.scale) @ k.transpose(-2, -1) + bias).softmax(dim=-1))
            out = attn @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=self.scale)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, c)))


class ShiftWindowMSA(nn.Module):
    """Window attention over a token map, with the windows shifted by ``shift_size`` (0: not shifted)."""

    def __init__(self, embed_dims: int, num_heads: int, window_size: int, shift_size: int = 0, *,
                 qkv_bias: bool = True, qk_scale: Optional[float] = None, attn_drop_rate: float = 0.0,
                 proj_drop_rate: float = 0.0, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ValueError(f"shift_size must be in [0, window_size), got {shift_size}")
        self.window_size = window_size
        self.shift_size = shift_size
        self.w_msa = WindowMSA(embed_dims, num_heads, window_size, qkv_bias=qkv_bias, qk_scale=qk_scale,
                               attn_drop_rate=attn_drop_rate, proj_drop_rate=proj_drop_rate)
        self.drop = DropPath(drop_path_rate)

    def forward(self, x: torch.Tensor, hw_shape: tuple[int, int]) -> torch.Tensor:
        b, length, c = x.shape
        h, w = hw_shape
        if length != h * w:
            raise ValueError(f"{length} tokens do not make a {h} x {w} map")
        ws, shift = self.window_size, self.shift_size
        x = x.view(b, h, w, c)
        # zero-pad to whole windows (after the norm, before the roll; the padded tokens are not masked)
        x = F.pad(x, (0, 0, 0, (ws - w % ws) % ws, 0, (ws - h % ws) % ws))
        hp, wp = x.shape[1], x.shape[2]
        mask = None
        if shift > 0:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
            mask = shift_mask(hp, wp, ws, shift, dtype=x.dtype, device=x.device)
        windows = self.w_msa(window_partition(x, ws).reshape(-1, ws * ws, c), mask)
        x = window_reverse(windows.view(-1, ws, ws, c), hp, wp)
        if shift > 0:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        x = x[:, :h, :w, :].reshape(b, h * w, c)
        return self.drop(x)


class FFN(nn.Module):
    """mmcv's two-layer ``FFN`` (Linear, GELU, Dropout, Linear, Dropout) with the residual added after a
    DropPath; keys ``layers.0.0`` and ``layers.1``."""

    def __init__(self, embed_dims: int, feedforward_channels: int, *, ffn_drop: float = 0.0,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Sequential(nn.Linear(embed_dims, feedforward_channels), nn.GELU(), nn.Dropout(ffn_drop)),
            nn.Linear(feedforward_channels, embed_dims), nn.Dropout(ffn_drop))
        self.dropout_layer = DropPath(drop_path_rate)

    def forward(self, x: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        return identity + self.dropout_layer(self.layers(x))


class SwinBlock(nn.Module):
    """``x + attn(norm1(x))``, then ``x + ffn(norm2(x))``; the attention's windows shifted when ``shift``."""

    def __init__(self, embed_dims: int, num_heads: int, feedforward_channels: int, window_size: int = 7,
                 shift: bool = False, *, qkv_bias: bool = True, qk_scale: Optional[float] = None,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = ShiftWindowMSA(embed_dims, num_heads, window_size, window_size // 2 if shift else 0,
                                   qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop_rate=attn_drop_rate,
                                   proj_drop_rate=drop_rate, drop_path_rate=drop_path_rate)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.ffn = FFN(embed_dims, feedforward_channels, ffn_drop=drop_rate, drop_path_rate=drop_path_rate)

    def forward(self, x: torch.Tensor, hw_shape: tuple[int, int]) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), hw_shape)
        return self.ffn(self.norm2(x), identity=x)


class PatchMerging(nn.Module):
    """2 x 2 neighbourhoods (zero-padded at the bottom/right to even first) concatenated channel-major, as
    ``nn.Unfold`` orders them (channel c's four pixels at 4c .. 4c + 3, row-major), LayerNorm, bias-free
    linear to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2, norm: bool = True) -> None:
        super().__init__()
        if stride != 2:
            raise ValueError(f"sszoo's PatchMerging merges 2 x 2 patches with stride 2, got stride {stride}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.norm = nn.LayerNorm(4 * in_channels) if norm else None
        self.reduction = nn.Linear(4 * in_channels, out_channels, bias=False)

    def forward(self, x: torch.Tensor, hw_shape: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
        b, length, c = x.shape
        h, w = hw_shape
        if length != h * w:
            raise ValueError(f"{length} tokens do not make a {h} x {w} map")
        x = x.view(b, h, w, c).permute(0, 3, 1, 2)
        x = F.pad(x, (0, _corner_pad(w, 2, 2), 0, _corner_pad(h, 2, 2)))
        h2, w2 = x.shape[2] // 2, x.shape[3] // 2
        # B x C x H/2 x 2 x W/2 x 2 -> B x H/2 x W/2 x C x 2 x 2: the unfold's order, without im2col
        x = x.reshape(b, c, h2, 2, w2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, h2 * w2, 4 * c)
        if self.norm is not None:
            x = self.norm(x)
        return self.reduction(x), (h2, w2)


class SwinBlockSequence(nn.Module):
    """One stage: ``depth`` blocks (every second one shifted), then the optional PatchMerging."""

    def __init__(self, embed_dims: int, num_heads: int, feedforward_channels: int, depth: int, window_size: int,
                 drop_path_rates: list[float], downsample: Optional[PatchMerging], *, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, drop_rate: float = 0.0, attn_drop_rate: float = 0.0) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(embed_dims, num_heads, feedforward_channels, window_size, shift=i % 2 == 1, qkv_bias=qkv_bias,
                      qk_scale=qk_scale, drop_rate=drop_rate, attn_drop_rate=attn_drop_rate,
                      drop_path_rate=drop_path_rates[i])
            for i in range(depth))
        self.downsample = downsample

    def forward(self, x: torch.Tensor, hw_shape: tuple[int, int]):
        """(next stage's tokens, their shape, this stage's output tokens, their shape)."""
        for block in self.blocks:
            x = block(x, hw_shape)
        if self.downsample is None:
            return x, hw_shape, x, hw_shape
        down, down_shape = self.downsample(x, hw_shape)
        return down, down_shape, x, hw_shape


class PatchEmbed(nn.Module):
    """Zero-pad the image (bottom/right) to a multiple of the patch size, a patch-size conv, flatten to
    tokens, LayerNorm (``norm``, when ``patch_norm``)."""

    def __init__(self, in_channels: int, embed_dims: int, patch_size: int, norm: bool = True) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.projection = nn.Conv2d(in_channels, embed_dims, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dims) if norm else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        p = self.patch_size
        x = F.pad(x, (0, _corner_pad(x.shape[3], p, p), 0, _corner_pad(x.shape[2], p, p)))
        x = self.projection(x)
        hw = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)
        if self.norm is not None:
            x = self.norm(x)
        return x, hw


class SwinTransformer(nn.Module):
    """Patch embedding, four Swin stages, a LayerNorm per output; returns the ``out_indices`` stages' maps."""

    def __init__(self, embed_dims: int = 96, depths: tuple[int, ...] = (2, 2, 6, 2),
                 num_heads: tuple[int, ...] = (3, 6, 12, 24), *, window_size: int = 7, patch_size: int = 4,
                 strides: tuple[int, ...] = (4, 2, 2, 2), mlp_ratio: float = 4.0,
                 out_indices: tuple[int, ...] = (0, 1, 2, 3), qkv_bias: bool = True, qk_scale: Optional[float] = None,
                 patch_norm: bool = True, use_abs_pos_embed: bool = False,
                 pretrain_img_size: tuple[int, int] = (224, 224), drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1) -> None:
        super().__init__()
        n = len(depths)
        if len(num_heads) != n or len(strides) != n:
            raise ValueError("depths, num_heads and strides need one entry per stage")
        if strides[0] != patch_size:
            raise ValueError("the patch embedding is non-overlapping: strides[0] must equal patch_size")
        if any(not 0 <= i < n for i in out_indices):
            raise ValueError(f"out_indices {out_indices} out of range for {n} stages")
        self.out_indices = tuple(out_indices)
        self.use_abs_pos_embed = use_abs_pos_embed
        self.patch_embed = PatchEmbed(3, embed_dims, patch_size, norm=patch_norm)
        if use_abs_pos_embed:
            self.pos_grid = (pretrain_img_size[0] // patch_size, pretrain_img_size[1] // patch_size)
            self.pretrain_img_size = tuple(pretrain_img_size)
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, self.pos_grid[0] * self.pos_grid[1], embed_dims))
        self.drop_after_pos = nn.Dropout(drop_rate)
        # stochastic depth rises linearly over all blocks (computed in float32, as the reference's linspace)
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, sum(depths), device="cpu")]
        self.stages = nn.ModuleList()
        channels = embed_dims
        for i in range(n):
            down = PatchMerging(channels, 2 * channels, strides[i + 1], norm=patch_norm) if i < n - 1 else None
            self.stages.append(SwinBlockSequence(
                channels, num_heads[i], int(mlp_ratio * channels), depths[i], window_size,
                dpr[sum(depths[:i]):sum(depths[:i + 1])], down, qkv_bias=qkv_bias, qk_scale=qk_scale,
                drop_rate=drop_rate, attn_drop_rate=attn_drop_rate))
            if down is not None:
                channels = down.out_channels
        self.num_features = [int(embed_dims * 2 ** i) for i in range(n)]
        for i in self.out_indices:
            self.add_module(f"norm{i}", nn.LayerNorm(self.num_features[i]))
        self.out_channels = [self.num_features[i] for i in self.out_indices]

    @classmethod
    def from_config(cls, cfg: SwinConfig) -> "SwinTransformer":
        return cls(cfg.embed_dims, cfg.depths, cfg.num_heads, window_size=cfg.window_size, patch_size=cfg.patch_size,
                   strides=cfg.strides, mlp_ratio=cfg.mlp_ratio, out_indices=cfg.out_indices, qkv_bias=cfg.qkv_bias,
                   qk_scale=cfg.qk_scale, patch_norm=cfg.patch_norm, use_abs_pos_embed=cfg.use_abs_pos_embed,
                   pretrain_img_size=cfg.pretrain_img_size, drop_rate=cfg.drop_rate,
                   attn_drop_rate=cfg.attn_drop_rate, drop_path_rate=cfg.drop_path_rate)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x, hw = self.patch_embed(x)
        if self.use_abs_pos_embed:
            # the reference adds the embedding as it is (no resizing): only the pretraining size works
            if hw != self.pos_grid:
                p = self.patch_embed.patch_size
                raise ValueError(f"this Swin Transformer's absolute position embedding accepts inputs of "
                                 f"{self.pretrain_img_size[0]} x {self.pretrain_img_size[1]} only (a "
                                 f"{self.pos_grid[0]} x {self.pos_grid[1]} patch grid), got "
                                 f"{hw[0] * p} x {hw[1] * p} (after padding to the patch size)")
            x = x + self.absolute_pos_embed
        x = self.drop_after_pos(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x, hw, out, out_hw = stage(x, hw)
            if i in self.out_indices:
                out = getattr(self, f"norm{i}")(out)
                outs.append(out.view(-1, out_hw[0], out_hw[1], self.num_features[i]).permute(0, 3, 1, 2).contiguous())
        return outs
