"""MSCAN, SegNeXt's backbone (Guo et al., "SegNeXt: Rethinking Convolutional Attention Design for Semantic
Segmentation", NeurIPS 2022), as MMSegmentation 1.2.2's ``MSCAN``.

Four stages (strides 4, 8, 16, 32). Stage 1 embeds the image with a stem of two 3x3 stride-2 convs
(conv -> BN -> GELU -> conv -> BN, ``patch_embed1.proj.{0,1,3,4}``); later stages with one 3x3 stride-2 conv
and a BN (``patch_embed{i}.proj``, ``.norm``). A block is

    x + drop_path(layer_scale_1 * (proj_2(MSCA(GELU(proj_1(y)))) + y)),   y = BN(x)
    x + drop_path(layer_scale_2 * Mlp(BN(x)))

where the multi-scale convolutional attention MSCA multiplies its input by
``conv3(a + strip_7(a) + strip_11(a) + strip_21(a))``, ``a`` a 5x5 depthwise conv of the input and
``strip_k`` a depthwise 1 x k conv followed by a depthwise k x 1 conv (``conv{i}_1``, ``conv{i}_2``); the
Mlp is 1x1 conv -> 3x3 depthwise conv -> GELU -> 1x1 conv. Each stage ends with a LayerNorm (eps 1e-5)
over the channels of its tokens (``norm{i}``). All four maps are returned.

As the reference, the map travels between blocks as N x HW x C tokens and each block views it as an
N x C x H x W map (channels-last memory), so the convolutions see the reference's memory layout.
Key names and registration order are the reference's; ``layer_scale_{1,2}`` are the block's own
parameters, so they come first in its state dict. Drop path (rising linearly to ``drop_path_rate`` over all
blocks, exactly the reference's float32 ``linspace``) only acts in training.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import DropPath

KernelSpec = tuple  # an int (square kernel) or an (h, w) pair, as the reference's lists


@dataclass(frozen=True)
class MSCANConfig:
    """Constructor arguments of :class:`MSCAN`, as stored in the zoo registry (MMSegmentation's MSCAN-T/S/B/L
    differ in ``embed_dims``, ``mlp_ratios`` and ``depths``)."""

    embed_dims: tuple[int, ...] = (64, 128, 256, 512)
    mlp_ratios: tuple[float, ...] = (4, 4, 4, 4)
    depths: tuple[int, ...] = (3, 4, 6, 3)
    # the 5x5 square kernel, then the (1, k) strip of each branch (its (k, 1) partner is the transpose)
    attention_kernel_sizes: tuple = (5, (1, 7), (1, 11), (1, 21))
    attention_kernel_paddings: tuple = (2, (0, 3), (0, 5), (0, 10))
    drop_rate: float = 0.0  # dropout in the Mlp; training only
    drop_path_rate: float = 0.0  # stochastic depth; training only
    kind: str = "mscan"

    @property
    def output_stride(self) -> int:
        """The stride of the last stage: the stem's 4 times 2 per later stage."""
        return 4 * 2 ** (len(self.depths) - 1)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


class Mlp(nn.Module):
    """1x1 conv -> 3x3 depthwise conv -> GELU -> dropout -> 1x1 conv -> dropout (``fc1``, ``dwconv``, ``fc2``)."""

    def __init__(self, channels: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, 1, 1, bias=True, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.act(self.dwconv(self.fc1(x))))
        return self.drop(self.fc2(x))


class MSCAAttention(nn.Module):
    """The multi-scale convolutional attention: a square depthwise conv ``conv0``, three strip-conv branches
    (``conv{i}_1`` then ``conv{i}_2``), summed, mixed by the 1x1 ``conv3`` and multiplied with the input."""

    def __init__(self, channels: int, kernel_sizes: tuple, paddings: tuple) -> None:
        super().__init__()
        if len(kernel_sizes) != 4 or len(paddings) != 4:
            raise ValueError("MSCA has one square kernel and three strip branches: 4 kernel sizes and paddings, "
                             f"got {kernel_sizes} / {paddings}")
        self.conv0 = nn.Conv2d(channels, channels, _pair(kernel_sizes[0]), padding=_pair(paddings[0]),
                               groups=channels)
        for i, (k, p) in enumerate(zip(kernel_sizes[1:], paddings[1:])):
            k, p = _pair(k), _pair(p)
            # the strip and its transpose, registered in this order as the reference
            self.add_module(f"conv{i}_1", nn.Conv2d(channels, channels, k, padding=p, groups=channels))
            self.add_module(f"conv{i}_2", nn.Conv2d(channels, channels, k[::-1], padding=p[::-1], groups=channels))
        self.conv3 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = self.conv0(x)
        a0 = self.conv0_2(self.conv0_1(attn))
        a1 = self.conv1_2(self.conv1_1(attn))
        a2 = self.conv2_2(self.conv2_1(attn))
        attn = self.conv3(attn + a0 + a1 + a2)  # summed left to right, as the reference
        return attn * x


class MSCASpatialAttention(nn.Module):
    """1x1 ``proj_1`` -> GELU -> MSCA (``spatial_gating_unit``) -> 1x1 ``proj_2``, plus the input."""

    def __init__(self, channels: int, kernel_sizes: tuple, paddings: tuple) -> None:
        super().__init__()
        self.proj_1 = nn.Conv2d(channels, channels, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = MSCAAttention(channels, kernel_sizes, paddings)
        self.proj_2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x)))) + x


class MSCABlock(nn.Module):
    """BN -> attention and BN -> Mlp residual branches, each scaled per channel and drop-pathed."""

    def __init__(self, channels: int, kernel_sizes: tuple, paddings: tuple, *, mlp_ratio: float = 4.0,
                 drop: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(channels)
        self.attn = MSCASpatialAttention(channels, kernel_sizes, paddings)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.BatchNorm2d(channels)
        self.mlp = Mlp(channels, int(channels * mlp_ratio), drop)
        self.layer_scale_1 = nn.Parameter(1e-2 * torch.ones(channels))
        self.layer_scale_2 = nn.Parameter(1e-2 * torch.ones(channels))

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        x = x.permute(0, 2, 1).view(b, c, h, w)
        x = x + self.drop_path(self.layer_scale_1.unsqueeze(-1).unsqueeze(-1) * self.attn(self.norm1(x)))
        x = x + self.drop_path(self.layer_scale_2.unsqueeze(-1).unsqueeze(-1) * self.mlp(self.norm2(x)))
        return x.view(b, c, n).permute(0, 2, 1)


class StemConv(nn.Module):
    """Stage 1's embedding: 3x3 stride-2 conv (to half the width) -> BN -> GELU -> 3x3 stride-2 conv -> BN."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(
            nn.Conv2d(in_channels, out_channels // 2, 3, stride=2, padding=1),
            nn.BatchNorm2d(out_channels // 2),
            nn.GELU(),
            nn.Conv2d(out_channels // 2, out_channels, 3, stride=2, padding=1),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[2:]
        return x.flatten(2).transpose(1, 2), h, w


class OverlapPatchEmbed(nn.Module):
    """A later stage's embedding: 3x3 stride-2 conv (``proj``, padding 1) -> BN (``norm``)."""

    def __init__(self, in_channels: int, out_channels: int, patch_size: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, patch_size, stride=stride, padding=patch_size // 2)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        h, w = x.shape[2:]
        return self.norm(x).flatten(2).transpose(1, 2), h, w


class MSCAN(nn.Module):
    """``patch_embed{i}``, ``block{i}`` (MSCABlocks) and ``norm{i}`` (LayerNorm) per stage; returns every stage's
    N x C x H x W map."""

    def __init__(self, embed_dims: tuple[int, ...] = (64, 128, 256, 512), mlp_ratios: tuple[float, ...] = (4, 4, 4, 4),
                 depths: tuple[int, ...] = (3, 4, 6, 3), *,
                 attention_kernel_sizes: tuple = (5, (1, 7), (1, 11), (1, 21)),
                 attention_kernel_paddings: tuple = (2, (0, 3), (0, 5), (0, 10)), drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        if not len(embed_dims) == len(mlp_ratios) == len(depths):
            raise ValueError("embed_dims, mlp_ratios and depths need one entry per stage")
        self.num_stages = len(depths)
        # the reference's float32 linspace, read back as Python floats (on the CPU: also under a meta device)
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, sum(depths), device="cpu")]
        cur = 0
        for i in range(self.num_stages):
            embed = StemConv(3, embed_dims[0]) if i == 0 else OverlapPatchEmbed(embed_dims[i - 1], embed_dims[i])
            blocks = nn.ModuleList(
                MSCABlock(embed_dims[i], attention_kernel_sizes, attention_kernel_paddings, mlp_ratio=mlp_ratios[i],
                          drop=drop_rate, drop_path=dpr[cur + j]) for j in range(depths[i]))
            cur += depths[i]
            setattr(self, f"patch_embed{i + 1}", embed)
            setattr(self, f"block{i + 1}", blocks)
            setattr(self, f"norm{i + 1}", nn.LayerNorm(embed_dims[i]))
        self.out_channels: list[int] = [int(c) for c in embed_dims]
        self.output_stride = 4 * 2 ** (self.num_stages - 1)

    @classmethod
    def from_config(cls, cfg: MSCANConfig) -> "MSCAN":
        return cls(cfg.embed_dims, cfg.mlp_ratios, cfg.depths, attention_kernel_sizes=cfg.attention_kernel_sizes,
                   attention_kernel_paddings=cfg.attention_kernel_paddings, drop_rate=cfg.drop_rate,
                   drop_path_rate=cfg.drop_path_rate)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b = x.shape[0]
        outs = []
        for i in range(1, self.num_stages + 1):
            x, h, w = getattr(self, f"patch_embed{i}")(x)
            for blk in getattr(self, f"block{i}"):
                x = blk(x, h, w)
            x = getattr(self, f"norm{i}")(x)
            x = x.reshape(b, h, w, -1).permute(0, 3, 1, 2).contiguous()
            outs.append(x)
        return outs
