"""ERFNet (Romera et al., "ERFNet: Efficient Residual Factorized ConvNet for Real-time Semantic Segmentation",
T-ITS 2018).

As in MMSegmentation the "backbone" is the whole encoder-decoder: the encoder's downsampler blocks (a 3x3
stride-2 conv concatenated with a 2x2 max pool, then BN + ReLU) and non-bottleneck-1d blocks (3x1 and 1x3
convs, the second pair dilated) reach 1/8; the decoder's upsampler blocks (3x3 stride-2 transposed convs,
each exactly doubling the size) and non-bottleneck-1d blocks bring it back to 1/2. The FCN head that follows
only classifies. Returns ``[decoder output]``.

The blocks use their own BatchNorm ``eps = 1e-3`` (MMSegmentation builds them with its defaults, not the
backbone's ``norm_cfg``). At odd sizes the max pool's map is one pixel smaller than the stride-2 conv's; the
reference resizes it bilinearly to the conv's size, and so does this module.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import resize

_EPS = 1e-3


@dataclass(frozen=True)
class ERFNetConfig:
    """Constructor arguments of :class:`ERFNet` (MMSegmentation's names)."""

    enc_downsample_channels: tuple[int, ...] = (16, 64, 128)
    enc_stage_non_bottlenecks: tuple[int, ...] = (5, 8)
    enc_non_bottleneck_dilations: tuple[int, ...] = (2, 4, 8, 16)
    dec_stages_non_bottleneck: tuple[int, ...] = (2, 2)
    dec_non_bottleneck_channels: tuple[int, ...] = (64, 16)
    dropout_ratio: float = 0.1
    kind: str = "erfnet"

    @property
    def output_stride(self) -> int:
        """The encoder's deepest stride: 2 per downsampler block (8)."""
        return 2 ** len(self.enc_downsample_channels)


class DownsamplerBlock(nn.Module):
    """[3x3 stride-2 conv to ``out - in`` channels | 2x2 max pool of the input] -> BN -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2, stride=2)
        self.bn = nn.BatchNorm2d(out_channels, eps=_EPS)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv(x)
        pool = resize(self.pool(x), conv.shape[2:], align_corners=False)  # floor vs ceil at odd sizes
        return self.act(self.bn(torch.cat([conv, pool], dim=1)))


class NonBottleneck1d(nn.Module):
    """Residual block of two factorised 3x3 convs (3x1 then 1x3, biased): the first pair undilated, the
    second dilated by ``dilation`` and followed by dropout. Keys ``convs_layers.{0,2,3,5,7,8}`` as the reference's
    flat list (conv, relu, conv, bn, relu, conv, relu, conv, bn, dropout)."""

    def __init__(self, channels: int, drop_rate: float = 0.0, dilation: int = 1) -> None:
        super().__init__()
        d = dilation
        self.convs_layers = nn.ModuleList([
            nn.Conv2d(channels, channels, (3, 1), padding=(1, 0)), nn.ReLU(),
            nn.Conv2d(channels, channels, (1, 3), padding=(0, 1)), nn.BatchNorm2d(channels, eps=_EPS), nn.ReLU(),
            nn.Conv2d(channels, channels, (3, 1), padding=(d, 0), dilation=(d, 1)), nn.ReLU(),
            nn.Conv2d(channels, channels, (1, 3), padding=(0, d), dilation=(1, d)), nn.BatchNorm2d(channels, eps=_EPS),
            nn.Dropout(p=drop_rate),
        ])
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.convs_layers:
            out = layer(out)
        return self.act(out + x)


class UpsamplerBlock(nn.Module):
    """3x3 stride-2 transposed conv (padding 1, output padding 1: exactly twice the size) -> BN -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1)
        self.bn = nn.BatchNorm2d(out_channels, eps=_EPS)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class ERFNet(nn.Module):
    """ERFNet's encoder and decoder (``encoder.*``, ``decoder.*``), returning the decoder's 1/2 map."""

    def __init__(self, *, enc_downsample_channels=(16, 64, 128), enc_stage_non_bottlenecks=(5, 8),
                 enc_non_bottleneck_dilations=(2, 4, 8, 16), dec_stages_non_bottleneck=(2, 2),
                 dec_non_bottleneck_channels=(64, 16), dropout_ratio: float = 0.1) -> None:
        super().__init__()
        down = list(enc_downsample_channels)
        dilations = list(enc_non_bottleneck_dilations)
        if len(enc_stage_non_bottlenecks) != len(down) - 1:
            raise ValueError("one encoder non-bottleneck stage per downsampler after the first")
        if enc_stage_non_bottlenecks[-1] % len(dilations):
            raise ValueError("the last encoder stage's block count must be a multiple of the number of dilations")
        if len(dec_stages_non_bottleneck) != len(dec_non_bottleneck_channels):
            raise ValueError("one decoder non-bottleneck stage per upsampler")
        self.encoder = nn.ModuleList([DownsamplerBlock(3, down[0])])
        for i in range(len(down) - 1):
            self.encoder.append(DownsamplerBlock(down[i], down[i + 1]))
            if i == len(down) - 2:  # the last stage cycles through the dilations
                rates = dilations * (enc_stage_non_bottlenecks[-1] // len(dilations))
            else:
                rates = [1] * enc_stage_non_bottlenecks[i]
            self.encoder.extend(NonBottleneck1d(down[i + 1], dropout_ratio, r) for r in rates)
        self.decoder = nn.ModuleList()
        cin = down[-1]
        for n, c in zip(dec_stages_non_bottleneck, dec_non_bottleneck_channels):
            self.decoder.append(UpsamplerBlock(cin, c))
            self.decoder.extend(NonBottleneck1d(c) for _ in range(n))  # the decoder's blocks have no dropout
            cin = c
        self.out_channels = [cin]

    @classmethod
    def from_config(cls, cfg: ERFNetConfig) -> "ERFNet":
        return cls(enc_downsample_channels=cfg.enc_downsample_channels,
                   enc_stage_non_bottlenecks=cfg.enc_stage_non_bottlenecks,
                   enc_non_bottleneck_dilations=cfg.enc_non_bottleneck_dilations,
                   dec_stages_non_bottleneck=cfg.dec_stages_non_bottleneck,
                   dec_non_bottleneck_channels=cfg.dec_non_bottleneck_channels, dropout_ratio=cfg.dropout_ratio)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        for block in self.encoder:
            x = block(x)
        for block in self.decoder:
            x = block(x)
        return [x]
