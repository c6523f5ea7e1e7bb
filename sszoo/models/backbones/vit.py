"""The plain Vision Transformer (Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image
Recognition at Scale", ICLR 2021), as MMSegmentation 1.2.2's ``VisionTransformer`` builds it; DeiT (Touvron et
al., ICML 2021) and SETR's ViT-L are the same class with other widths and settings.

A stride-``patch_size`` conv embeds the image (the input first zero-padded at the bottom and right to a multiple
of the patch, "corner" padding), a class token is prepended and the absolute position embedding added, then
``num_layers`` pre-norm encoder layers (LN -> multi-head self-attention -> residual, LN -> MLP -> residual)
run. The outputs of the layers in ``out_indices`` are returned as maps N x C x H/p x W/p (class token removed);
``final_norm`` normalises the last layer's tokens first.

Position embedding at other input sizes, exactly as the reference's ``resize_pos_embed``: the grid part of the
embedding (trained at ``img_size / patch_size``) is interpolated (``interpolate_mode``, align_corners False) to
the token grid and the class token's entry is kept. As there, it is resized only when the token *count* differs
from the trained one: a grid of the same count but another shape (e.g. 16 x 64 tokens for a 32 x 32 training
grid) adds the embedding unresized, flattened.

Attention: ``F.scaled_dot_product_attention``. The reference runs ``torch.nn.MultiheadAttention`` with
``need_weights=True``, i.e. an explicit ``softmax(q / sqrt(d) @ k^T) @ v``; the fused kernel differs from it
only by rounding. Measured on the DeiT-S goldens in float64: max|diff| of the logits 3.5e-15 and 2.1e-15 of their
scale with it (0 with the explicit path, ``_InProjAttention.fused = False``), against the 1e-8 bound; float32
1e-6 either way. tests/test_vit.py checks the two paths against each other. It exports to ONNX (opset 17).

Key names and registration order are MMSegmentation's (``cls_token``, ``pos_embed``, ``patch_embed.projection``,
``layers.{i}.ln1``, ``layers.{i}.attn.attn.in_proj_weight`` / ``in_proj_bias`` / ``out_proj``, ``layers.{i}.ln2``,
``layers.{i}.ffn.layers.0.0`` / ``ffn.layers.1``, ``ln1`` for the final norm, ``ln_pre``, ``patch_embed.norm``),
so its checkpoints load strictly.

CLIP's image tower (SAN's image encoder) is the same class with ``patch_pad="none"`` (the reference's
``patch_pad=0``: no padding, the patch conv floors), ``pre_norm``, QuickGELU (``act="quick_gelu"``) and
``output_cls_token``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import InProjections, drop_path


@dataclass(frozen=True)
class ViTConfig:
    """MMSegmentation's ``VisionTransformer`` arguments that change the network (dropouts other than drop
    path are 0 in every published config and not built)."""

    img_size: tuple[int, int] = (224, 224)  # the training size: the position embedding has its token grid
    patch_size: int = 16
    patch_pad: str = "corner"  # "corner": zero-pad bottom/right to a multiple of the patch; "same": both sides;
    # "none": no padding, the conv drops the remainder (the reference's patch_pad=0)
    embed_dims: int = 768
    num_layers: int = 12
    num_heads: int = 12
    mlp_ratio: int = 4
    num_fcs: int = 2
    out_indices: tuple[int, ...] = (11,)
    qkv_bias: bool = True
    with_cls_token: bool = True   # False: the class token is dropped after the position embedding (SETR-MLA)
    output_cls_token: bool = False  # each output a (map, class token) pair (needs with_cls_token)
    out_origin: bool = False  # also output the embedded tokens before the first layer
    patch_norm: bool = False
    patch_bias: bool = False
    pre_norm: bool = False
    final_norm: bool = False
    interpolate_mode: str = "bicubic"
    norm_eps: float = 1e-6
    drop_path_rate: float = 0.0  # stochastic depth of the MLP branches, linear in depth (training only)
    act: str = "gelu"  # the MLP's activation: "gelu" or "quick_gelu" (CLIP's x * sigmoid(1.702 x))
    kind: str = "vit"

    @property
    def output_stride(self) -> int:
        """The token grid's stride: one token per patch."""
        return self.patch_size


def _pad_amount(size: int, patch: int) -> int:
    """Rows (or columns) that make ``size`` a multiple of ``patch`` (the reference's AdaptivePadding)."""
    return (math.ceil(size / patch) - 1) * patch + patch - size if size % patch else 0


class PatchEmbed(nn.Module):
    """Pad to a multiple of the patch, a patch x patch conv of stride patch, tokens N x L x C (+ LN)."""

    def __init__(self, in_channels: int, embed_dims: int, patch_size: int, *, pad: str = "corner",
                 bias: bool = False, norm_eps: float | None = None) -> None:
        super().__init__()
        if pad not in ("corner", "same", "none"):
            raise ValueError(f"patch padding must be 'corner', 'same' or 'none', got {pad!r}")
        self.patch_size = patch_size
        self.pad = pad
        self.projection = nn.Conv2d(in_channels, embed_dims, patch_size, stride=patch_size, bias=bias)
        self.norm = nn.LayerNorm(embed_dims, eps=norm_eps) if norm_eps is not None else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        ph, pw = _pad_amount(x.shape[-2], self.patch_size), _pad_amount(x.shape[-1], self.patch_size)
        if (ph or pw) and self.pad != "none":
            if self.pad == "corner":
                x = F.pad(x, [0, pw, 0, ph])
            else:
                x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        x = self.projection(x)
        hw = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)
        if self.norm is not None:
            x = self.norm(x)
        return x, hw


class _InProjAttention(InProjections):
    """``torch.nn.MultiheadAttention``'s parameters (``in_proj_weight``, ``in_proj_bias``, ``out_proj``, in its
    registration order) with a batch-first self-attention forward. ``fused`` False computes the reference's
    explicit ``softmax(q k^T / sqrt(d)) v`` instead of ``F.scaled_dot_product_attention``. ``attn_mask``, if
    given, is added to the attention logits (broadcast to N x heads x L x L; -inf masks a key out)."""

    fused: bool = True

    def __init__(self, embed_dims: int, num_heads: int, bias: bool = True) -> None:
        if embed_dims % num_heads:
            raise ValueError(f"embed_dims {embed_dims} is not divisible by num_heads {num_heads}")
        super().__init__(embed_dims, bias)
        self.num_heads = num_heads

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, c = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        else:  # the reference's explicit path (tests/test_vit.py compares the two)
            logits = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)
            attn = torch.softmax(logits if attn_mask is None else logits + attn_mask, dim=-1)
            out = attn @ v
        return self.out_proj(out.transpose(1, 2).reshape(b, n, c))


class MultiheadAttention(nn.Module):
    """MMCV's ``MultiheadAttention`` wrapper (key ``attn.attn.*``): attention plus the identity shortcut."""

    def __init__(self, embed_dims: int, num_heads: int, bias: bool = True) -> None:
        super().__init__()
        self.attn = _InProjAttention(embed_dims, num_heads, bias)

    def forward(self, x: torch.Tensor, identity: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        return identity + self.attn(x, attn_mask)


class QuickGELU(nn.Module):
    """CLIP's GELU approximation ``x * sigmoid(1.702 x)`` (MMSegmentation's ``QuickGELU``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


ACTIVATIONS = {"gelu": nn.GELU, "quick_gelu": QuickGELU}


class FFN(nn.Module):
    """MMCV's ``FFN``: ``layers.0`` = (Linear, GELU, Dropout) x (num_fcs - 1), then Linear and Dropout, plus the
    identity; drop path on the branch. ``act`` "quick_gelu" is CLIP's activation."""

    def __init__(self, embed_dims: int, hidden: int, num_fcs: int = 2, drop_path_rate: float = 0.0,
                 act: str = "gelu") -> None:
        super().__init__()
        if num_fcs < 2:
            raise ValueError(f"num_fcs must be at least 2, got {num_fcs}")
        if act not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {act!r}")
        blocks: list[nn.Module] = []
        cin = embed_dims
        for _ in range(num_fcs - 1):
            blocks.append(nn.Sequential(nn.Linear(cin, hidden), ACTIVATIONS[act](), nn.Dropout(0.0)))
            cin = hidden
        blocks += [nn.Linear(hidden, embed_dims), nn.Dropout(0.0)]
        self.layers = nn.Sequential(*blocks)
        self.drop_path_rate = drop_path_rate

    def forward(self, x: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        return identity + drop_path(self.layers(x), self.drop_path_rate, self.training)


class TransformerEncoderLayer(nn.Module):
    """Pre-norm encoder layer: ``x + attn(ln1(x))``, then ``x + ffn(ln2(x))`` (drop path on the MLP branch
    only, as the reference: its attention's shortcut has no drop path)."""

    def __init__(self, embed_dims: int, num_heads: int, hidden: int, *, num_fcs: int = 2, qkv_bias: bool = True,
                 drop_path_rate: float = 0.0, norm_eps: float = 1e-6, act: str = "gelu") -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = MultiheadAttention(embed_dims, num_heads, bias=qkv_bias)
        self.ln2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.ffn = FFN(embed_dims, hidden, num_fcs, drop_path_rate, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attn(self.ln1(x), identity=x)
        return self.ffn(self.ln2(x), identity=x)


def resize_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int], trained: tuple[int, int],
                     mode: str) -> torch.Tensor:
    """``pos_embed`` (1 x (1 + h*w) x C, class token first) with its ``trained`` h x w grid part interpolated to
    ``grid`` (``mode``, align_corners False); the class token's entry is kept as it is."""
    th, tw = trained
    cls = pos_embed[:, :1]
    weight = pos_embed[:, -th * tw:].reshape(1, th, tw, pos_embed.shape[2]).permute(0, 3, 1, 2)
    weight = F.interpolate(weight, size=tuple(grid), mode=mode, align_corners=False)
    return torch.cat((cls, weight.flatten(2).transpose(1, 2)), dim=1)


class VisionTransformer(nn.Module):
    """ViT backbone: patch embedding, class token, position embedding, encoder layers; maps at ``out_indices``."""

    def __init__(self, *, img_size: tuple[int, int] = (224, 224), patch_size: int = 16, patch_pad: str = "corner",
                 in_channels: int = 3, embed_dims: int = 768, num_layers: int = 12, num_heads: int = 12,
                 mlp_ratio: int = 4, num_fcs: int = 2, out_indices: tuple[int, ...] = (11,), qkv_bias: bool = True,
                 with_cls_token: bool = True, output_cls_token: bool = False, out_origin: bool = False,
                 patch_norm: bool = False, patch_bias: bool = False, pre_norm: bool = False,
                 final_norm: bool = False, interpolate_mode: str = "bicubic", norm_eps: float = 1e-6,
                 drop_path_rate: float = 0.0, act: str = "gelu") -> None:
        super().__init__()
        if output_cls_token and not with_cls_token:
            raise ValueError("output_cls_token needs with_cls_token")
        out_indices = tuple(num_layers + i if i < 0 else i for i in out_indices)
        if any(not 0 <= i < num_layers for i in out_indices):
            raise ValueError(f"out_indices {out_indices} outside the {num_layers} layers")
        self.img_size = tuple(img_size)
        self.patch_size = patch_size
        self.interpolate_mode = interpolate_mode
        self.with_cls_token = with_cls_token
        self.output_cls_token = output_cls_token
        self.out_origin = out_origin
        self.out_indices = out_indices
        self.patch_embed = PatchEmbed(in_channels, embed_dims, patch_size, pad=patch_pad, bias=patch_bias,
                                      norm_eps=norm_eps if patch_norm else None)
        self.pos_grid = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.pos_grid[0] * self.pos_grid[1] + 1, embed_dims))
        # key "ln_pre", the name MMCV's build_norm_layer gives LayerNorm with the postfix "_pre"
        self.ln_pre = nn.LayerNorm(embed_dims, eps=norm_eps) if pre_norm else None
        # stochastic depth rising linearly from 0 at the first layer to drop_path_rate at the last
        # (float32 linspace on the CPU, as the reference, whatever the default device: values bit-identical)
        rates = torch.linspace(0, drop_path_rate, num_layers, device="cpu").tolist()
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(embed_dims, num_heads, mlp_ratio * embed_dims, num_fcs=num_fcs, qkv_bias=qkv_bias,
                                    drop_path_rate=r, norm_eps=norm_eps, act=act) for r in rates)
        self.ln1 = nn.LayerNorm(embed_dims, eps=norm_eps) if final_norm else None
        self.out_channels = [embed_dims] * (len(out_indices) + int(out_origin))

    @classmethod
    def from_config(cls, cfg: ViTConfig) -> "VisionTransformer":
        return cls(img_size=cfg.img_size, patch_size=cfg.patch_size, patch_pad=cfg.patch_pad,
                   embed_dims=cfg.embed_dims, num_layers=cfg.num_layers, num_heads=cfg.num_heads,
                   mlp_ratio=cfg.mlp_ratio, num_fcs=cfg.num_fcs, out_indices=cfg.out_indices, qkv_bias=cfg.qkv_bias,
                   with_cls_token=cfg.with_cls_token, output_cls_token=cfg.output_cls_token,
                   out_origin=cfg.out_origin, patch_norm=cfg.patch_norm, patch_bias=cfg.patch_bias,
                   pre_norm=cfg.pre_norm, final_norm=cfg.final_norm, interpolate_mode=cfg.interpolate_mode,
                   norm_eps=cfg.norm_eps, drop_path_rate=cfg.drop_path_rate, act=cfg.act)

    def position_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        """The position embedding for a token grid ``grid`` (class token first), resized as the reference does:
        only when the token count differs from the trained grid's."""
        if grid[0] * grid[1] == self.pos_grid[0] * self.pos_grid[1]:
            return self.pos_embed
        return resize_pos_embed(self.pos_embed, grid, self.pos_grid, self.interpolate_mode)

    def _out(self, x: torch.Tensor, grid: tuple[int, int]):
        tokens = x[:, 1:] if self.with_cls_token else x
        out = tokens.reshape(x.shape[0], grid[0], grid[1], x.shape[2]).permute(0, 3, 1, 2).contiguous()
        return [out, x[:, 0]] if self.output_cls_token else out

    def forward(self, x: torch.Tensor) -> list:
        x, grid = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.position_embedding(grid)
        if not self.with_cls_token:
            x = x[:, 1:]
        if self.ln_pre is not None:
            x = self.ln_pre(x)
        outs = [self._out(x, grid)] if self.out_origin else []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i == len(self.layers) - 1 and self.ln1 is not None:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(self._out(x, grid))
        return outs
