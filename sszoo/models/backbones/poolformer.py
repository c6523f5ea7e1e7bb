"""PoolFormer (Yu et al., "MetaFormer is Actually What You Need for Vision", CVPR 2022), as MMPretrain
1.2.0's ``PoolFormer`` that MMSegmentation 1.2.2's Semantic FPN configs use (``type="mmpretrain.PoolFormer"``).

A 7x7 stride-4 patch embedding (padding 2), then four stages of MetaFormer blocks with a 3x3 stride-2
patch embedding (padding 1) between stages. A block is

    x + layer_scale_1 * (AvgPool3x3(GN(x)) - GN(x)),   then   x + layer_scale_2 * Mlp(GN(x))

where the pooling token mixer averages over the window's pixels inside the image only
(``count_include_pad=False``) and subtracts its input, every norm is a GroupNorm with one group (eps 1e-5),
and the Mlp is 1x1 conv (4x) -> GELU -> 1x1 conv. Stages and downsamplings sit in one list, ``network``
(stage ``s`` at index ``2s``, the downsampling after it at ``2s + 1``); ``out_indices`` index that list
(MMSegmentation's configs: 0, 2, 4, 6, the four stages, strides 4 ... 32), each output through its own
GroupNorm ``norm{i}`` (the reference's "fork_feat" behaviour: per-stage maps, no classifier).

As the reference, the input patch embedding never trains: its ``frozen_stages >= 0`` check freezes it
even at the configs' ``frozen_stages=0``.

Key names and registration order are the reference's: ``patch_embed.proj``,
``network.{2s}.{j}.{layer_scale_1, layer_scale_2, norm1, norm2, mlp.fc1, mlp.fc2}``, ``network.{2s+1}.proj``,
``norm{i}``; the layer scales are the block's own parameters, so they come first in its state dict.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import DropPath

# MMPretrain's named architectures: blocks per stage, widths, MLP ratios, layer-scale initial value
ARCHS: dict[str, dict] = {
    "s12": dict(layers=(2, 2, 6, 2), embed_dims=(64, 128, 320, 512), mlp_ratios=(4, 4, 4, 4),
                layer_scale_init_value=1e-5),
    "s24": dict(layers=(4, 4, 12, 4), embed_dims=(64, 128, 320, 512), mlp_ratios=(4, 4, 4, 4),
                layer_scale_init_value=1e-5),
    "s36": dict(layers=(6, 6, 18, 6), embed_dims=(64, 128, 320, 512), mlp_ratios=(4, 4, 4, 4),
                layer_scale_init_value=1e-6),
    "m36": dict(layers=(6, 6, 18, 6), embed_dims=(96, 192, 384, 768), mlp_ratios=(4, 4, 4, 4),
                layer_scale_init_value=1e-6),
    "m48": dict(layers=(8, 8, 24, 8), embed_dims=(96, 192, 384, 768), mlp_ratios=(4, 4, 4, 4),
                layer_scale_init_value=1e-6),
}


@dataclass(frozen=True)
class PoolFormerConfig:
    """Constructor arguments of :class:`PoolFormer`, as stored in the zoo registry (``ARCHS`` names the
    published sizes s12, s24, s36, m36, m48)."""

    layers: tuple[int, ...] = (2, 2, 6, 2)
    embed_dims: tuple[int, ...] = (64, 128, 320, 512)
    mlp_ratios: tuple[float, ...] = (4, 4, 4, 4)
    layer_scale_init_value: float = 1e-5
    pool_size: int = 3
    in_patch_size: int = 7
    in_stride: int = 4
    in_pad: int = 2
    down_patch_size: int = 3
    down_stride: int = 2
    down_pad: int = 1
    drop_rate: float = 0.0  # dropout in the Mlp; training only
    drop_path_rate: float = 0.0  # stochastic depth, rising linearly over all blocks; training only
    out_indices: tuple[int, ...] = (0, 2, 4, 6)
    frozen_stages: int = 0
    kind: str = "poolformer"

    @property
    def output_stride(self) -> int:
        """The stride of the last stage: the input embedding's times one ``down_stride`` per later stage."""
        return self.in_stride * self.down_stride ** (len(self.layers) - 1)

    @classmethod
    def from_arch(cls, arch: str, **kwargs) -> "PoolFormerConfig":
        """The config of a named architecture (``ARCHS``), other fields from ``kwargs``."""
        if arch not in ARCHS:
            raise ValueError(f"unknown PoolFormer arch {arch!r}; expected one of {sorted(ARCHS)}")
        return cls(**ARCHS[arch], **kwargs)


class PatchEmbed(nn.Module):
    """A strided conv with bias (``proj``); the reference's norm slot here is an identity."""

    def __init__(self, in_channels: int, out_channels: int, patch_size: int, stride: int, padding: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, patch_size, stride=stride, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Pooling(nn.Module):
    """The pooling token mixer: a stride-1 average over the window's in-image pixels, minus the input."""

    def __init__(self, pool_size: int = 3) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) - x


class Mlp(nn.Module):
    """1x1 conv -> GELU -> dropout -> 1x1 conv -> dropout (keys ``fc1``, ``fc2``)."""

    def __init__(self, channels: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class PoolFormerBlock(nn.Module):
    """GroupNorm -> pooling mixer and GroupNorm -> Mlp residual branches, each scaled per channel."""

    def __init__(self, dim: int, *, pool_size: int = 3, mlp_ratio: float = 4.0, drop: float = 0.0,
                 drop_path: float = 0.0, layer_scale_init_value: float = 1e-5) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(1, dim, eps=1e-5)
        self.token_mixer = Pooling(pool_size)
        self.norm2 = nn.GroupNorm(1, dim, eps=1e-5)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.layer_scale_1 = nn.Parameter(layer_scale_init_value * torch.ones(dim))
        self.layer_scale_2 = nn.Parameter(layer_scale_init_value * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale_1[:, None, None] * self.token_mixer(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x)))


class PoolFormer(nn.Module):
    """PoolFormer returning the GroupNorm-ed outputs of the ``network`` entries in ``out_indices``."""

    def __init__(self, layers=(2, 2, 6, 2), embed_dims=(64, 128, 320, 512), mlp_ratios=(4, 4, 4, 4), *,
                 layer_scale_init_value: float = 1e-5, pool_size: int = 3, in_patch_size: int = 7,
                 in_stride: int = 4, in_pad: int = 2, down_patch_size: int = 3, down_stride: int = 2,
                 down_pad: int = 1, drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 out_indices=(0, 2, 4, 6), frozen_stages: int = 0) -> None:
        super().__init__()
        layers, embed_dims = tuple(layers), tuple(embed_dims)
        n = len(layers)
        if not n == len(embed_dims) == len(mlp_ratios) or n == 0:
            raise ValueError("layers, embed_dims and mlp_ratios need one entry per stage")
        # The reference downsamples only between stages of different widths, and then indexes its output
        # norms as if it always did; sszoo builds the published layout, where every stage is wider.
        if any(a == b for a, b in zip(embed_dims, embed_dims[1:])):
            raise ValueError(f"sszoo's PoolFormer downsamples between every two stages; got widths {embed_dims}")
        length = 2 * n - 1
        out = tuple(i + length if i < 0 else i for i in out_indices)
        if any(i not in range(length) for i in out):
            raise ValueError(f"out_indices index the {length} stages and downsamplings, got {tuple(out_indices)}")
        self.out_indices = out
        self.frozen_stages = frozen_stages
        self.patch_embed = PatchEmbed(3, embed_dims[0], in_patch_size, in_stride, in_pad)
        total = sum(layers)
        network: list[nn.Module] = []
        for s in range(n):
            # the reference's linear rule in Python floats (all configs: 0)
            blocks = [PoolFormerBlock(embed_dims[s], pool_size=pool_size, mlp_ratio=mlp_ratios[s], drop=drop_rate,
                                      drop_path=drop_path_rate * (j + sum(layers[:s])) / (total - 1),
                                      layer_scale_init_value=layer_scale_init_value) for j in range(layers[s])]
            network.append(nn.Sequential(*blocks))
            if s < n - 1:
                network.append(PatchEmbed(embed_dims[s], embed_dims[s + 1], down_patch_size, down_stride, down_pad))
        self.network = nn.ModuleList(network)
        for i in self.out_indices:  # in the configs' order, as the reference registers them
            self.add_module(f"norm{i}", nn.GroupNorm(1, embed_dims[(i + 1) // 2], eps=1e-5))
        self.out_channels: list[int] = [embed_dims[(i + 1) // 2] for i in sorted(self.out_indices)]
        self.output_stride = in_stride * down_stride ** (n - 1)
        self._freeze_stages()

    @classmethod
    def from_config(cls, cfg: PoolFormerConfig) -> "PoolFormer":
        return cls(cfg.layers, cfg.embed_dims, cfg.mlp_ratios, layer_scale_init_value=cfg.layer_scale_init_value,
                   pool_size=cfg.pool_size, in_patch_size=cfg.in_patch_size, in_stride=cfg.in_stride,
                   in_pad=cfg.in_pad, down_patch_size=cfg.down_patch_size, down_stride=cfg.down_stride,
                   down_pad=cfg.down_pad, drop_rate=cfg.drop_rate, drop_path_rate=cfg.drop_path_rate,
                   out_indices=cfg.out_indices, frozen_stages=cfg.frozen_stages)

    def _freeze_stages(self) -> None:
        # the reference's rule: the input embedding whenever frozen_stages >= 0 (so always in the configs),
        # then the first ``frozen_stages`` entries of ``network`` and their output norms
        if self.frozen_stages >= 0:
            self.patch_embed.eval()
            self.patch_embed.requires_grad_(False)
        for i in range(self.frozen_stages):
            modules = [self.network[i]] + ([getattr(self, f"norm{i}")] if i in self.out_indices else [])
            for m in modules:
                m.eval()
                m.requires_grad_(False)

    def train(self, mode: bool = True) -> "PoolFormer":
        super().train(mode)
        self._freeze_stages()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(x)
        outs = []
        for i, block in enumerate(self.network):
            x = block(x)
            if i in self.out_indices:
                outs.append(getattr(self, f"norm{i}")(x))
        return outs
