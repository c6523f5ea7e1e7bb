"""PIDNet (Xu et al., "PIDNet: A Real-time Semantic Segmentation Network Inspired by PID Controllers",
CVPR 2023): three branches after a shared stem, a high-resolution *P* (detail) branch at 1/8, a
low-resolution *I* (context) branch at 1/16 - 1/64 with a pyramid pooling module, and a *D* (boundary)
branch at 1/8. The I branch feeds P through pixel-attention-guided fusion (PagFM) and D through added
3x3 convs; a boundary-attention-guided fusion (Bag, or LightBag for S/M) merges the three, weighting P
against I by sigmoid(D).

Variants (MMSegmentation 1.2.2 configs): S (channels 32, PAPPM, LightBag), M (channels 64, PAPPM,
LightBag), L (channels 64, 3 stem blocks, 4 branch blocks, DAPPM, Bag). State-dict keys are
MMSegmentation's. Input sides must be multiples of 8 (see :mod:`.ddrnet`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import resize
from .ddrnet import DAPPM, PAPPM, BasicBlock, Bottleneck, ConvNorm, NormActConv, check_multiple_of_8, make_layer


class PagFM(nn.Module):
    """Pixel-attention-guided fusion: ``sigma * up(x_i) + (1 - sigma) * x_p`` with
    ``sigma = sigmoid(sum_c f_p(x_p) * up(f_i(x_i)))`` (the reference's defaults: no ReLU first, no channel
    attention; upsampling is bilinear with ``align_corners=False`` whatever the backbone's setting)."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.f_i = ConvNorm(in_channels, channels, 1, act=False)
        self.f_p = ConvNorm(in_channels, channels, 1, act=False)

    def forward(self, x_p: torch.Tensor, x_i: torch.Tensor) -> torch.Tensor:
        size = x_p.shape[2:]
        f_i = resize(self.f_i(x_i), size, False)
        sigma = torch.sigmoid((self.f_p(x_p) * f_i).sum(dim=1, keepdim=True))
        return sigma * resize(x_i, size, False) + (1 - sigma) * x_p


class Bag(nn.Module):
    """Boundary-attention-guided fusion (PIDNet-L): a pre-activated 3x3 conv of
    ``sigmoid(d) * p + (1 - sigmoid(d)) * i``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = NormActConv(in_channels, out_channels, 3, padding=1)

    def forward(self, x_p: torch.Tensor, x_i: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
        sigma = torch.sigmoid(x_d)
        return self.conv(sigma * x_p + (1 - sigma) * x_i)


class LightBag(nn.Module):
    """Light Bag (PIDNet-S/M): ``f_p((1 - s) * i + p) + f_i(i + s * p)`` with ``s = sigmoid(d)``, 1x1 ConvNorms."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.f_p = ConvNorm(in_channels, out_channels, 1, act=False)
        self.f_i = ConvNorm(in_channels, out_channels, 1, act=False)

    def forward(self, x_p: torch.Tensor, x_i: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
        sigma = torch.sigmoid(x_d)
        return self.f_p((1 - sigma) * x_i + x_p) + self.f_i(x_i + sigma * x_p)


@dataclass(frozen=True)
class PIDNetConfig:
    """Constructor arguments of :class:`PIDNet` (S: channels 32; M: 64; L: 64 with 3 stem / 4 branch blocks)."""

    channels: int = 64
    ppm_channels: int = 96
    num_stem_blocks: int = 2
    num_branch_blocks: int = 3
    in_channels: int = 3
    align_corners: bool = False
    kind: str = "pidnet"

    @property
    def output_stride(self) -> int:
        """The stride of the features the head reads (the P/D branches)."""
        return 8

    @property
    def size_divisor(self) -> int:
        """Input sides must be multiples of this (see :mod:`.ddrnet`)."""
        return 8


class PIDNet(nn.Module):
    """PIDNet backbone. Eval mode returns ``[features]`` (1/8, ``4 * channels``); training mode
    ``[P features after stage 3, features, D features after stage 4]`` (both ``2 * channels``), which
    PIDHead turns into its P logits, main (I) logits and boundary logits."""

    def __init__(self, channels: int = 64, ppm_channels: int = 96, num_stem_blocks: int = 2,
                 num_branch_blocks: int = 3, in_channels: int = 3, align_corners: bool = False) -> None:
        super().__init__()
        c = channels
        self.align_corners = align_corners
        self.out_channels = [2 * c, 4 * c, 2 * c]

        def layer(block, cin, cout, n, stride=1):
            return make_layer(block, cin, cout, n, stride, conv_module_downsample=True)

        def single(block, cin, cout):
            # one block ending without ReLU, with a ConvModule projection when the widths differ
            down = ConvNorm(cin, cout * block.expansion, 1, act=False) if cin != cout * block.expansion else None
            return block(cin, cout, 1, down, act_out=False)

        n = num_stem_blocks
        self.stem = nn.Sequential(
            ConvNorm(in_channels, c, 3, stride=2, padding=1), ConvNorm(c, c, 3, stride=2, padding=1),
            layer(BasicBlock, c, c, n), nn.ReLU(), layer(BasicBlock, c, 2 * c, n, stride=2), nn.ReLU())
        self.relu = nn.ReLU()
        self.i_branch_layers = nn.ModuleList([
            layer(BasicBlock, 2 * c, 4 * c, num_branch_blocks, stride=2),
            layer(BasicBlock, 4 * c, 8 * c, num_branch_blocks, stride=2),
            layer(Bottleneck, 8 * c, 8 * c, 2, stride=2)])
        self.p_branch_layers = nn.ModuleList([
            layer(BasicBlock, 2 * c, 2 * c, n), layer(BasicBlock, 2 * c, 2 * c, n), layer(Bottleneck, 2 * c, 2 * c, 1)])
        self.compression_1 = ConvNorm(4 * c, 2 * c, 1, act=False)
        self.compression_2 = ConvNorm(8 * c, 2 * c, 1, act=False)
        self.pag_1 = PagFM(2 * c, c)
        self.pag_2 = PagFM(2 * c, c)
        light = num_stem_blocks == 2  # the reference picks S/M's lighter D branch, PAPPM and LightBag this way
        if light:
            d_layers = [single(BasicBlock, 2 * c, c), layer(Bottleneck, c, c, 1)]
        else:
            d_layers = [single(BasicBlock, 2 * c, 2 * c), single(BasicBlock, 2 * c, 2 * c)]
        self.d_branch_layers = nn.ModuleList(d_layers)
        self.diff_1 = ConvNorm(4 * c, c if light else 2 * c, 3, padding=1, act=False)
        self.diff_2 = ConvNorm(8 * c, 2 * c, 3, padding=1, act=False)
        self.spp = (PAPPM if light else DAPPM)(16 * c, ppm_channels, 4 * c, num_scales=5)
        self.dfm = LightBag(4 * c, 4 * c) if light else Bag(4 * c, 4 * c)
        # appended last, as in the reference; inside the ModuleList its parameters still enumerate before diff_1's
        self.d_branch_layers.append(layer(Bottleneck, 2 * c, 2 * c, 1))

    @classmethod
    def from_config(cls, cfg: PIDNetConfig) -> "PIDNet":
        return cls(cfg.channels, cfg.ppm_channels, cfg.num_stem_blocks, cfg.num_branch_blocks, cfg.in_channels,
                   cfg.align_corners)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_multiple_of_8(x, "PIDNet")
        out_size = (x.shape[-2] // 8, x.shape[-1] // 8)
        x = self.stem(x)
        # stage 3
        x_i = self.relu(self.i_branch_layers[0](x))
        x_p = self.p_branch_layers[0](x)
        x_d = self.d_branch_layers[0](x)
        x_p = self.pag_1(x_p, self.compression_1(x_i))
        x_d = x_d + resize(self.diff_1(x_i), out_size, self.align_corners)
        p_stage3 = x_p
        # stage 4
        x_i = self.relu(self.i_branch_layers[1](x_i))
        x_p = self.p_branch_layers[1](self.relu(x_p))
        x_d = self.d_branch_layers[1](self.relu(x_d))
        x_p = self.pag_2(x_p, self.compression_2(x_i))
        x_d = x_d + resize(self.diff_2(x_i), out_size, self.align_corners)
        d_stage4 = x_d
        # stage 5
        x_i = self.i_branch_layers[2](x_i)
        x_p = self.p_branch_layers[2](self.relu(x_p))
        x_d = self.d_branch_layers[2](self.relu(x_d))
        x_i = resize(self.spp(x_i), out_size, self.align_corners)
        out = self.dfm(x_p, x_i, x_d)
        return [p_stage3, out, d_stage4] if self.training else [out]
