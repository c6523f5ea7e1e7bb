"""BEiT (Bao et al., "BEiT: BERT Pre-Training of Image Transformers", ICLR 2022) and the MAE-pretrained ViT
(He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022), as MMSegmentation 1.2.2's ``BEiT``
and ``MAE`` backbones build them.

A stride-``patch_size`` conv embeds the image (no padding: the conv floors), a class token is prepended
(MAE then adds its absolute position embedding), and ``num_layers`` pre-norm encoder layers run:
``x + gamma_1 * attn(ln1(x))``, then ``x + gamma_2 * mlp(ln2(x))`` (learnt per-channel layer scales). Each
layer's attention adds a learnt *relative position bias*: a table of ``(2 Wh - 1)(2 Ww - 1) + 3`` rows (one per
2-D offset between two patches, plus class-to-patch, patch-to-class and class-to-class), gathered by a fixed
index buffer ``relative_position_index`` into an (N + 1) x (N + 1) bias per head. The outputs of the layers in
``out_indices`` are returned as maps N x C x H/p x W/p (class token removed).

Fixed input size: the tables and index are built for one token grid, ``img_size / patch_size`` (40 x 40 for the
640 x 640 BEiT configs, 32 x 32 for the 512 x 512 MAE one), and the reference's forward adds that bias to the
attention logits unchanged, so it runs only where the patch conv yields that grid (inputs of 640 x 640, or up to
15 more pixels per side, which the conv's floor drops). sszoo raises a ``ValueError`` naming the accepted size for
any other input; sliding-window inference with the config's crop gives such windows. Resizing the tables to
another grid happens in the reference only when a *pretraining* checkpoint is loaded (``resize_rel_pos_embed``,
scipy's cubic ``interp2d``), never at inference; the published segmentation checkpoints already have the
fine-tuning size, so sszoo has no resizing.

Attention: the reference's explicit ``softmax(q / sqrt(d) @ k^T + bias) @ v`` (matmul + softmax), kept for exact
float64 parity; an ``attn_mask`` in ``scaled_dot_product_attention`` would differ only by rounding.

Key names and registration order are MMSegmentation's (``cls_token``, MAE's ``pos_embed``,
``patch_embed.projection``, ``layers.{i}.gamma_1`` / ``gamma_2``, ``layers.{i}.ln1``, ``layers.{i}.attn.q_bias`` /
``v_bias`` (BEiT; MAE has a biased ``qkv`` instead) / ``relative_position_bias_table`` / ``relative_position_index``
/ ``qkv`` / ``proj``, ``layers.{i}.ln2``, ``layers.{i}.ffn.layers.0.0`` / ``ffn.layers.1``, ``ln1`` for the final
norm), so the published checkpoints load strictly.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import drop_path
from .vit import FFN


@dataclass(frozen=True)
class BEiTConfig:
    """MMSegmentation's ``BEiT`` arguments that change the network (attention dropout is 0 in every config)."""

    img_size: tuple[int, int] = (640, 640)  # the one input size it runs on (its token grid sizes the tables)
    patch_size: int = 16
    embed_dims: int = 768
    num_layers: int = 12
    num_heads: int = 12
    mlp_ratio: int = 4
    num_fcs: int = 2
    out_indices: tuple[int, ...] = (3, 5, 7, 11)
    qv_bias: bool = True  # learnt q and v biases (k has none); False: no qkv bias at all
    patch_norm: bool = False
    final_norm: bool = False
    norm_eps: float = 1e-6
    init_values: float = 0.1  # the layer scales' initial value (fresh models only)
    drop_path_rate: float = 0.0  # stochastic depth of both branches, linear in depth (training only)
    kind: str = "beit"

    @property
    def output_stride(self) -> int:
        return self.patch_size


@dataclass(frozen=True)
class MAEConfig:
    """MMSegmentation's ``MAE`` arguments: BEiT's layers with a biased qkv and an absolute position embedding."""

    img_size: tuple[int, int] = (512, 512)
    patch_size: int = 16
    embed_dims: int = 768
    num_layers: int = 12
    num_heads: int = 12
    mlp_ratio: int = 4
    num_fcs: int = 2
    out_indices: tuple[int, ...] = (3, 5, 7, 11)
    patch_norm: bool = False
    final_norm: bool = False
    norm_eps: float = 1e-6
    init_values: float = 1.0
    drop_path_rate: float = 0.0
    kind: str = "mae"

    @property
    def output_stride(self) -> int:
        return self.patch_size


def relative_position_index(window: tuple[int, int]) -> torch.Tensor:
    """The (Wh*Ww + 1) x (Wh*Ww + 1) row of the bias table for each (query, key) token pair, class token first.

    Patch pairs take row ``(dh + Wh - 1) * (2 Ww - 1) + (dw + Ww - 1)`` for their offset (dh, dw) (query minus key,
    patches numbered row-major); the class token's row as query is ``R - 3``, as key ``R - 2``, with itself
    ``R - 1``, where ``R`` is the table's length.
    """
    wh, ww = window
    size = (2 * wh - 1) * (2 * ww - 1) + 3
    ys, xs = torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")
    coords = torch.stack((ys.flatten(), xs.flatten()))  # 2 x N
    rel = coords[:, :, None] - coords[:, None, :]  # 2 x N x N
    index = torch.empty((wh * ww + 1,) * 2, dtype=torch.long)
    index[1:, 1:] = (rel[0] + wh - 1) * (2 * ww - 1) + (rel[1] + ww - 1)
    index[0, :] = size - 3
    index[:, 0] = size - 2
    index[0, 0] = size - 1
    return index


class BEiTAttention(nn.Module):
    """Multi-head self-attention with a relative position bias over one fixed token grid (``window``)."""

    def __init__(self, embed_dims: int, num_heads: int, window: tuple[int, int], *, bias: str | bool = "qv") -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f"embed_dims {embed_dims} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.scale = (embed_dims // num_heads) ** -0.5
        self.window = tuple(window)
        self.qv_bias = bias == "qv"
        # registration order as the reference: q/v biases, the table (and its index), then qkv and proj
        if self.qv_bias:
            self.q_bias = nn.Parameter(torch.zeros(embed_dims))
            self.v_bias = nn.Parameter(torch.zeros(embed_dims))
        wh, ww = self.window
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1) + 3, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(self.window))
        self.qkv = nn.Linear(embed_dims, 3 * embed_dims, bias=bool(bias) and not self.qv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def position_bias(self) -> torch.Tensor:
        """The bias added to the attention logits: heads x (N + 1) x (N + 1)."""
        n = self.relative_position_index.shape[0]
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)].reshape(n, n, -1)
        return bias.permute(2, 0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        if self.qv_bias:
            qkv = F.linear(x, self.qkv.weight, torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias)))
        else:
            qkv = self.qkv(x)
        q, k, v = qkv.reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1) + self.position_bias().unsqueeze(0)
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class BEiTLayer(nn.Module):
    """Pre-norm encoder layer with layer scales: ``x + gamma_1 * attn(ln1(x))``, ``x + gamma_2 * ffn(ln2(x))``
    (drop path on both branches)."""

    def __init__(self, embed_dims: int, num_heads: int, hidden: int, window: tuple[int, int], *,
                 bias: str | bool = "qv", num_fcs: int = 2, norm_eps: float = 1e-6, init_values: float = 0.1,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = BEiTAttention(embed_dims, num_heads, window, bias=bias)
        self.ln2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.ffn = FFN(embed_dims, hidden, num_fcs)  # only its ``layers`` run: the shortcut is added here
        self.gamma_1 = nn.Parameter(init_values * torch.ones(embed_dims))
        self.gamma_2 = nn.Parameter(init_values * torch.ones(embed_dims))
        self.drop_path_rate = drop_path_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + drop_path(self.gamma_1 * self.attn(self.ln1(x)), self.drop_path_rate, self.training)
        return x + drop_path(self.gamma_2 * self.ffn.layers(self.ln2(x)), self.drop_path_rate, self.training)


class _PatchEmbed(nn.Module):
    """A patch x patch conv of stride patch without padding (``projection``), tokens N x L x C (+ LN)."""

    def __init__(self, embed_dims: int, patch_size: int, norm_eps: float | None) -> None:
        super().__init__()
        self.projection = nn.Conv2d(3, embed_dims, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dims, eps=norm_eps) if norm_eps is not None else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.projection(x)
        grid = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)
        return (self.norm(x) if self.norm is not None else x), grid


class BEiT(nn.Module):
    """BEiT backbone: patch embedding, class token, encoder layers with relative position bias and layer scales;
    maps at ``out_indices``. ``abs_pos_embed`` (MAE) adds a learnt position embedding after the class token."""

    def __init__(self, *, img_size: tuple[int, int] = (640, 640), patch_size: int = 16, embed_dims: int = 768,
                 num_layers: int = 12, num_heads: int = 12, mlp_ratio: int = 4, num_fcs: int = 2,
                 out_indices: tuple[int, ...] = (3, 5, 7, 11), qv_bias: bool = True, patch_norm: bool = False,
                 final_norm: bool = False, norm_eps: float = 1e-6, init_values: float = 0.1,
                 drop_path_rate: float = 0.0, abs_pos_embed: bool = False) -> None:
        super().__init__()
        out_indices = tuple(num_layers + i if i < 0 else i for i in out_indices)
        if any(not 0 <= i < num_layers for i in out_indices):
            raise ValueError(f"out_indices {out_indices} outside the {num_layers} layers")
        self.img_size = tuple(img_size)
        self.patch_size = patch_size
        self.window = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
        self.out_indices = out_indices
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        if abs_pos_embed:
            self.pos_embed = nn.Parameter(torch.zeros(1, self.window[0] * self.window[1] + 1, embed_dims))
        else:
            self.pos_embed = None
        self.patch_embed = _PatchEmbed(embed_dims, patch_size, norm_eps if patch_norm else None)
        # stochastic depth rising linearly over the layers (float32 linspace on the CPU, as the reference)
        rates = torch.linspace(0, drop_path_rate, num_layers, device="cpu").tolist()
        # MAE's layers have a biased qkv (the reference's bias=True); BEiT's q and v biases only, or none
        bias: str | bool = True if abs_pos_embed else ("qv" if qv_bias else False)
        self.layers = nn.ModuleList(
            BEiTLayer(embed_dims, num_heads, mlp_ratio * embed_dims, self.window, bias=bias, num_fcs=num_fcs,
                      norm_eps=norm_eps, init_values=init_values, drop_path_rate=r) for r in rates)
        self.ln1 = nn.LayerNorm(embed_dims, eps=norm_eps) if final_norm else None
        self.out_channels = [embed_dims] * len(out_indices)

    @classmethod
    def from_config(cls, cfg: BEiTConfig) -> "BEiT":
        return cls(img_size=cfg.img_size, patch_size=cfg.patch_size, embed_dims=cfg.embed_dims,
                   num_layers=cfg.num_layers, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio, num_fcs=cfg.num_fcs,
                   out_indices=cfg.out_indices, qv_bias=cfg.qv_bias, patch_norm=cfg.patch_norm,
                   final_norm=cfg.final_norm, norm_eps=cfg.norm_eps, init_values=cfg.init_values,
                   drop_path_rate=cfg.drop_path_rate)

    def check_input(self, height: int, width: int) -> None:
        """Raise unless an H x W input gives the token grid the relative position tables are built for."""
        p = self.patch_size
        if (height // p, width // p) != self.window:
            raise ValueError(
                f"{type(self).__name__} runs only on {self.img_size[0]}x{self.img_size[1]} inputs (its relative "
                f"position bias is built for a {self.window[0]}x{self.window[1]} grid of {p}-pixel patches), got "
                f"{height}x{width}; use sliding-window inference with {self.img_size[0]}x{self.img_size[1]} crops")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.check_input(x.shape[-2], x.shape[-1])
        x, grid = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        outs = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i == len(self.layers) - 1 and self.ln1 is not None:
                x = self.ln1(x)
            if i in self.out_indices:
                tokens = x[:, 1:]
                outs.append(tokens.reshape(x.shape[0], grid[0], grid[1], x.shape[2]).permute(0, 3, 1, 2).contiguous())
        return outs


class MAE(BEiT):
    """The MAE-pretrained ViT: BEiT's layers with a biased qkv, plus an absolute position embedding."""

    def __init__(self, *, img_size: tuple[int, int] = (512, 512), patch_size: int = 16, embed_dims: int = 768,
                 num_layers: int = 12, num_heads: int = 12, mlp_ratio: int = 4, num_fcs: int = 2,
                 out_indices: tuple[int, ...] = (3, 5, 7, 11), patch_norm: bool = False, final_norm: bool = False,
                 norm_eps: float = 1e-6, init_values: float = 1.0, drop_path_rate: float = 0.0) -> None:
        super().__init__(img_size=img_size, patch_size=patch_size, embed_dims=embed_dims, num_layers=num_layers,
                         num_heads=num_heads, mlp_ratio=mlp_ratio, num_fcs=num_fcs, out_indices=out_indices,
                         patch_norm=patch_norm, final_norm=final_norm, norm_eps=norm_eps, init_values=init_values,
                         drop_path_rate=drop_path_rate, abs_pos_embed=True)

    @classmethod
    def from_config(cls, cfg: MAEConfig) -> "MAE":
        return cls(img_size=cfg.img_size, patch_size=cfg.patch_size, embed_dims=cfg.embed_dims,
                   num_layers=cfg.num_layers, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio, num_fcs=cfg.num_fcs,
                   out_indices=cfg.out_indices, patch_norm=cfg.patch_norm, final_norm=cfg.final_norm,
                   norm_eps=cfg.norm_eps, init_values=cfg.init_values, drop_path_rate=cfg.drop_path_rate)
