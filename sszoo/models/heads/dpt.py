"""The DPT decoder (Ranftl et al., "Vision Transformers for Dense Prediction", ICCV 2021), as MMSegmentation
1.2.2's ``DPTHead`` over a ViT that outputs (map, class token) pairs.

Reassemble (``reassemble_blocks``): each of the four token maps takes its class token in (``readout_type``
"ignore": dropped; "add": added to every patch; "project": concatenated to every patch and projected back by
Linear + GELU), is projected by a 1x1 conv to its ``post_process_channels`` width and resized to strides 4, 8,
16, 32 of the image (4x4 and 2x2 transposed convs of the same stride, identity, a 3x3 conv of stride 2). A 3x3
conv (no bias) brings each to ``channels``. Fusion (``fusion_blocks``), coarsest first: a block adds a
pre-activation residual unit (ReLU -> conv -> BN, twice, plus the input) of the next finer map (resized bilinearly
to the running map's size if they differ), runs a second such unit, upsamples 2x (bilinear, align_corners True)
and projects by a 1x1 conv; the first block has no skip input (and no ``res_conv_unit1``). Then a 3x3
ConvBNReLU (``project``) and the classifier.

The reference's residual units apply their ReLU in place on their input (it clones the input first for the
shortcut); sszoo's ReLU is not in place: the inputs it would overwrite are not read again, so the result is the
same. Key names and registration order are MMSegmentation's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import ClassifierHead, Conv, ConvBNReLU, resize


@dataclass(frozen=True)
class DPTHeadConfig:
    in_channels: tuple[int, ...] = (768, 768, 768, 768)
    channels: int = 256
    in_index: tuple[int, ...] = (0, 1, 2, 3)
    embed_dims: int = 768
    post_process_channels: tuple[int, ...] = (96, 192, 384, 768)
    readout_type: str = "ignore"  # "ignore", "add" or "project"
    expand_channels: bool = False
    norm_eps: float = 1e-5
    dropout: float = 0.1
    loss_weight: float = 1.0
    kind: str = "dpt"


class _ConvNoBias(nn.Module):
    """A ConvModule with neither norm nor activation and no bias (key ``conv``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _ActConvBN(nn.Module):
    """A ConvModule in MMCV's ("act", "conv", "norm") order: ReLU -> 3x3 conv (no bias) -> BN."""

    def __init__(self, channels: int, norm_eps: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels, eps=norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(F.relu(x)))


class PreActResidualConvUnit(nn.Module):
    """``x + conv2(conv1(x))`` with pre-activation conv units."""

    def __init__(self, channels: int, norm_eps: float) -> None:
        super().__init__()
        self.conv1 = _ActConvBN(channels, norm_eps)
        self.conv2 = _ActConvBN(channels, norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + x


class FeatureFusionBlock(nn.Module):
    """Add a residual unit of the skip map, a second residual unit, 2x bilinear upsampling, 1x1 projection."""

    def __init__(self, channels: int, norm_eps: float, *, with_skip: bool = True) -> None:
        super().__init__()
        self.project = Conv(channels, channels, 1)
        self.res_conv_unit1 = PreActResidualConvUnit(channels, norm_eps) if with_skip else None
        self.res_conv_unit2 = PreActResidualConvUnit(channels, norm_eps)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            if skip.shape != x.shape:
                skip = resize(skip, x.shape[2:], align_corners=False)
            x = x + self.res_conv_unit1(skip)
        x = self.res_conv_unit2(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.project(x)


class ReassembleBlocks(nn.Module):
    """Class-token readout, 1x1 projection and resizing of the four token maps to strides 4, 8, 16, 32."""

    def __init__(self, in_channels: int, out_channels: tuple[int, ...], readout_type: str) -> None:
        super().__init__()
        if readout_type not in ("ignore", "add", "project"):
            raise ValueError(f"readout_type must be 'ignore', 'add' or 'project', got {readout_type!r}")
        if len(out_channels) != 4:
            raise ValueError(f"DPT reassembles 4 maps, got post_process_channels {out_channels}")
        self.readout_type = readout_type
        self.projects = nn.ModuleList(Conv(in_channels, c, 1) for c in out_channels)
        c = out_channels
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(c[0], c[0], kernel_size=4, stride=4), nn.ConvTranspose2d(c[1], c[1], kernel_size=2, stride=2),
            nn.Identity(), nn.Conv2d(c[3], c[3], kernel_size=3, stride=2, padding=1)])
        if readout_type == "project":
            self.readout_projects = nn.ModuleList(
                nn.Sequential(nn.Linear(2 * in_channels, in_channels), nn.GELU()) for _ in out_channels)

    def forward(self, inputs: list) -> list[torch.Tensor]:
        out = []
        for i, (x, cls_token) in enumerate(inputs):
            b, c, h, w = x.shape
            if self.readout_type == "project":
                tokens = x.flatten(2).permute(0, 2, 1)
                tokens = self.readout_projects[i](torch.cat((tokens, cls_token.unsqueeze(1).expand_as(tokens)), -1))
                x = tokens.permute(0, 2, 1).reshape(b, c, h, w)
            elif self.readout_type == "add":
                x = (x.flatten(2) + cls_token.unsqueeze(-1)).reshape(b, c, h, w)
            out.append(self.resize_layers[i](self.projects[i](x)))
        return out


class DPTHead(ClassifierHead):
    """Reassemble the ViT's four (map, class token) outputs into a pyramid and fuse it coarse to fine."""

    def __init__(self, in_channels: tuple[int, ...], channels: int, num_classes: int, *,
                 in_index: tuple[int, ...] = (0, 1, 2, 3), embed_dims: int = 768,
                 post_process_channels: tuple[int, ...] = (96, 192, 384, 768), readout_type: str = "ignore",
                 expand_channels: bool = False, norm_eps: float = 1e-5, dropout: float = 0.1,
                 align_corners: bool = False) -> None:
        super().__init__()
        if len(in_index) != 4:
            raise ValueError(f"DPTHead reads 4 backbone outputs, got in_index {in_index}")
        self._init_classifier(channels, num_classes, dropout)
        self.in_index = tuple(in_index)
        self.align_corners = align_corners
        self.reassemble_blocks = ReassembleBlocks(embed_dims, tuple(post_process_channels), readout_type)
        widths = [c * 2 ** i if expand_channels else c for i, c in enumerate(post_process_channels)]
        # (the reference's widths are floats, c * math.pow(2, i), when expanding: the same integer values)
        self.convs = nn.ModuleList(_ConvNoBias(int(c), channels, 3, padding=1) for c in widths)
        self.fusion_blocks = nn.ModuleList(
            FeatureFusionBlock(channels, norm_eps, with_skip=i > 0) for i in range(len(widths)))
        self.project = ConvBNReLU(channels, channels, 3, padding=1)

    @classmethod
    def from_config(cls, cfg: DPTHeadConfig, num_classes: int, align_corners: bool) -> "DPTHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, embed_dims=cfg.embed_dims,
                   post_process_channels=cfg.post_process_channels, readout_type=cfg.readout_type,
                   expand_channels=cfg.expand_channels, norm_eps=cfg.norm_eps, dropout=cfg.dropout,
                   align_corners=align_corners)

    def forward(self, features: list) -> torch.Tensor:
        x = self.reassemble_blocks([features[i] for i in self.in_index])
        x = [conv(f) for conv, f in zip(self.convs, x)]
        out = self.fusion_blocks[0](x[-1])
        for i in range(1, len(self.fusion_blocks)):
            out = self.fusion_blocks[i](out, x[-(i + 1)])
        return self.cls_seg(self.project(out))
