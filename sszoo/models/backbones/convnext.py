"""ConvNeXt (Liu et al., "A ConvNet for the 2020s", CVPR 2022), as MMPretrain 1.2.0's ``ConvNeXt`` that
MMSegmentation 1.2.2's UPerNet configs use (``type="mmpretrain.ConvNeXt"``, ``gap_before_final_norm=False``).

A 4x4 stride-4 "patchify" stem conv + LayerNorm, then four stages of ConvNeXt blocks with a LayerNorm + 2x2
stride-2 conv between stages (strides 4, 8, 16, 32). A block is

    7x7 depthwise conv -> LayerNorm -> Linear (4x) -> GELU -> Linear -> layer scale (gamma) -> drop path, + input

with the LayerNorm and the two Linears run channels-last (N, H, W, C), as the reference does. Every stage
in ``out_indices`` is returned through its own channels-first LayerNorm (``norm{i}``). All LayerNorms have
eps 1e-6 (the reference's ``LN2d``). Stem and downsampling convs have no padding, so each side is floored
(a side of 4k + 3 loses its last 3 pixels in the stem), as in the reference.

Key names and registration order are the reference's: ``downsample_layers.{0..3}`` (the stem is entry 0),
``stages.{i}.{j}.{gamma, depthwise_conv, norm, pointwise_conv1, pointwise_conv2}``, ``norm{i}``; ``gamma``
is the block's own parameter, so it comes first in the block's state dict.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import DropPath

# MMPretrain's named architectures (depths, channels per stage) that MMSegmentation's configs use, and the rest
ARCHS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "atto": ((2, 2, 6, 2), (40, 80, 160, 320)),
    "femto": ((2, 2, 6, 2), (48, 96, 192, 384)),
    "pico": ((2, 2, 6, 2), (64, 128, 256, 512)),
    "nano": ((2, 2, 8, 2), (80, 160, 320, 640)),
    "tiny": ((3, 3, 9, 3), (96, 192, 384, 768)),
    "small": ((3, 3, 27, 3), (96, 192, 384, 768)),
    "base": ((3, 3, 27, 3), (128, 256, 512, 1024)),
    "large": ((3, 3, 27, 3), (192, 384, 768, 1536)),
    "xlarge": ((3, 3, 27, 3), (256, 512, 1024, 2048)),
    "huge": ((3, 3, 27, 3), (352, 704, 1408, 2816)),
}


@dataclass(frozen=True)
class ConvNeXtConfig:
    """Constructor arguments of :class:`ConvNeXt`, as stored in the zoo registry (``ARCHS`` names the
    published depth/width pairs; MMSegmentation's configs use tiny, small, base, large and xlarge)."""

    depths: tuple[int, ...] = (3, 3, 9, 3)
    channels: tuple[int, ...] = (96, 192, 384, 768)
    drop_path_rate: float = 0.0  # stochastic depth, rising linearly over all blocks; training only
    layer_scale_init_value: float = 1e-6  # > 0: each block has a ``gamma``; the configs set 1.0
    out_indices: tuple[int, ...] = (0, 1, 2, 3)
    frozen_stages: int = 0
    kind: str = "convnext"

    @property
    def output_stride(self) -> int:
        """The stride of the last stage: the stem's 4 times 2 per later stage."""
        return 4 * 2 ** (len(self.depths) - 1)

    @classmethod
    def from_arch(cls, arch: str, **kwargs) -> "ConvNeXtConfig":
        """The config of a named architecture (``ARCHS``), other fields from ``kwargs``."""
        if arch not in ARCHS:
            raise ValueError(f"unknown ConvNeXt arch {arch!r}; expected one of {sorted(ARCHS)}")
        depths, channels = ARCHS[arch]
        return cls(depths=depths, channels=channels, **kwargs)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an N x C x H x W map (MMPretrain's ``LN2d``): ``forward`` takes the
    channels-first map, :meth:`channels_last` an N x H x W x C one. Keys ``weight``, ``bias``."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__(num_channels, eps=eps)

    def channels_last(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"LayerNorm2d takes N x C x H x W maps, got shape {tuple(x.shape)}")
        # contiguous, as the reference: the next conv then sees the same memory layout
        return self.channels_last(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()


class ConvNeXtBlock(nn.Module):
    """7x7 depthwise conv, channels-last LayerNorm + MLP (``pointwise_conv{1,2}`` are Linears), layer scale,
    drop path, residual."""

    def __init__(self, channels: int, *, mlp_ratio: float = 4.0, drop_path_rate: float = 0.0,
                 layer_scale_init_value: float = 1e-6) -> None:
        super().__init__()
        self.depthwise_conv = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm = LayerNorm2d(channels)
        hidden = int(mlp_ratio * channels)
        self.pointwise_conv1 = nn.Linear(channels, hidden)
        self.act = nn.GELU()
        self.pointwise_conv2 = nn.Linear(hidden, channels)
        self.gamma = (nn.Parameter(layer_scale_init_value * torch.ones(channels))
                      if layer_scale_init_value > 0 else None)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise_conv(x).permute(0, 2, 3, 1)  # N, H, W, C
        y = self.pointwise_conv2(self.act(self.pointwise_conv1(self.norm.channels_last(y))))
        y = y.permute(0, 3, 1, 2)
        if self.gamma is not None:
            y = y.mul(self.gamma.view(1, -1, 1, 1))
        return x + self.drop_path(y)


class ConvNeXt(nn.Module):
    """ConvNeXt returning the LayerNorm-ed outputs of the stages in ``out_indices`` (strides 4 ... 32)."""

    def __init__(self, depths=(3, 3, 9, 3), channels=(96, 192, 384, 768), *, drop_path_rate: float = 0.0,
                 layer_scale_init_value: float = 1e-6, out_indices=(0, 1, 2, 3), frozen_stages: int = 0) -> None:
        super().__init__()
        depths, channels = tuple(depths), tuple(channels)
        if len(depths) != len(channels) or not depths:
            raise ValueError(f"ConvNeXt needs one depth per stage width, got {depths} and {channels}")
        n = len(depths)
        # negative indices count from the end, as the reference's (which adds 4)
        out = tuple(i + n if i < 0 else i for i in out_indices)
        if any(i not in range(n) for i in out):
            raise ValueError(f"out_indices must be in range(-{n}, {n}), got {tuple(out_indices)}")
        self.out_indices = out
        self.frozen_stages = frozen_stages
        # The reference takes the rates from a float32 linspace (then .item()): the same numbers here (on the
        # CPU even when the model is built on the meta device).
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.downsample_layers = nn.ModuleList([nn.Sequential(nn.Conv2d(3, channels[0], 4, stride=4),
                                                              LayerNorm2d(channels[0]))])
        for i in range(1, n):
            self.downsample_layers.append(nn.Sequential(LayerNorm2d(channels[i - 1]),
                                                        nn.Conv2d(channels[i - 1], channels[i], 2, stride=2)))
        self.stages = nn.ModuleList()
        start = 0
        for i in range(n):
            self.stages.append(nn.Sequential(*[
                ConvNeXtBlock(channels[i], drop_path_rate=rates[start + j],
                              layer_scale_init_value=layer_scale_init_value) for j in range(depths[i])]))
            start += depths[i]
        for i in range(n):
            if i in self.out_indices:
                self.add_module(f"norm{i}", LayerNorm2d(channels[i]))
        self.out_channels: list[int] = [channels[i] for i in sorted(self.out_indices)]
        self.output_stride = 4 * 2 ** (n - 1)
        self._freeze_stages()

    @classmethod
    def from_config(cls, cfg: ConvNeXtConfig) -> "ConvNeXt":
        return cls(cfg.depths, cfg.channels, drop_path_rate=cfg.drop_path_rate,
                   layer_scale_init_value=cfg.layer_scale_init_value, out_indices=cfg.out_indices,
                   frozen_stages=cfg.frozen_stages)

    def _freeze_stages(self) -> None:
        # the first ``frozen_stages`` (downsampling layer + blocks) train no parameters and stay in eval mode
        for i in range(self.frozen_stages):
            for m in (self.downsample_layers[i], self.stages[i]):
                m.eval()
                m.requires_grad_(False)

    def train(self, mode: bool = True) -> "ConvNeXt":
        super().train(mode)
        self._freeze_stages()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if min(x.shape[2:]) < self.output_stride:
            raise ValueError(f"ConvNeXt needs inputs of at least {self.output_stride} x {self.output_stride} pixels "
                             f"(its last stage has stride {self.output_stride}), got {tuple(x.shape[2:])}")
        outs = []
        for i, (down, stage) in enumerate(zip(self.downsample_layers, self.stages)):
            x = stage(down(x))
            if i in self.out_indices:
                outs.append(getattr(self, f"norm{i}")(x))
        return outs

