"""ICNet's three-resolution backbone (Zhao et al., "ICNet for Real-Time Semantic Segmentation on
High-Resolution Images", ECCV 2018), as MMSegmentation builds it over a dilated ResNetV1c.

Three branches share one ResNet:

- sub1, full resolution: three stride-2 3x3 ConvBNReLUs (a light branch, stride 8);
- sub2, the input downsampled by 2: the ResNet stem, its max-pool (``ceil_mode=True``, as the reference
  replaces it) and layers 1-2 (stride 16 of the input), projected by a 1x1 ConvBNReLU;
- sub4, sub2's layer-2 map downsampled by 2 again: layers 3-4 (dilated, stride 32 of the input), a
  PSP pooling module whose branches are concatenated *before* the map itself, a 3x3 fusion conv and a
  1x1 projection.

Both downsamplings are ``F.interpolate(scale_factor=0.5, mode="bilinear")``: given a scale factor (not a
size), PyTorch samples source pixel ``(i + 0.5) * 2 - 0.5`` even for odd sizes (where the output is
``floor(n / 2)`` and ``n / out`` is not 2), so this is not a resize to a size.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import ConvBNReLU, adaptive_avg_pool2d, resize
from .resnet import ResNet, ResNetConfig


def _resnet_config(cfg) -> ResNetConfig:
    if isinstance(cfg, ResNetConfig):
        return cfg
    names = {f.name for f in fields(ResNetConfig)}
    unknown = set(cfg) - names
    if unknown:
        raise ValueError(f"ICNet's backbone_cfg has no fields {sorted(unknown)}")
    return ResNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})


@dataclass(frozen=True)
class ICNetConfig:
    """Constructor arguments of :class:`ICNet`, as stored in the zoo registry (``backbone_cfg`` nested)."""

    backbone_cfg: ResNetConfig = field(default_factory=ResNetConfig)
    layer_channels: tuple[int, int] = (512, 2048)
    light_branch_middle_channels: int = 32
    psp_out_channels: int = 512
    out_channels: tuple[int, int, int] = (64, 256, 256)
    pool_scales: tuple[int, ...] = (1, 2, 3, 6)
    align_corners: bool = False
    kind: str = "icnet"

    def __post_init__(self) -> None:
        # zoo.json stores the nested ResNet config as a plain dict
        object.__setattr__(self, "backbone_cfg", _resnet_config(self.backbone_cfg))

    @property
    def depth(self) -> int:
        return self.backbone_cfg.depth

    @property
    def output_stride(self) -> int:
        return 2 * self.backbone_cfg.output_stride * 2  # sub4 reads the input halved, then halved again


class _AdaptiveAvgPool(nn.Module):
    """Adaptive average pooling that exports to ONNX when the bins do not divide the map."""

    def __init__(self, output_size: int) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return adaptive_avg_pool2d(x, self.output_size)


class PPM(nn.ModuleList):
    """PSPNet's pooling pyramid: per scale, pool -> 1x1 ConvBNReLU -> bilinear upsampling to the input."""

    def __init__(self, pool_scales: tuple[int, ...], in_channels: int, channels: int, align_corners: bool) -> None:
        super().__init__(nn.Sequential(_AdaptiveAvgPool(s), ConvBNReLU(in_channels, channels, 1)) for s in pool_scales)
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [resize(branch(x), x.shape[2:], self.align_corners) for branch in self]


def _half(x: torch.Tensor, align_corners: bool) -> torch.Tensor:
    # scale_factor, not a size: see the module docstring
    return F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=align_corners)


class ICNet(nn.Module):
    """Returns the three branches' maps ``[sub1 (stride 8), sub2 (stride 16), sub4 (stride 32)]``."""

    def __init__(self, backbone_cfg: ResNetConfig, *, layer_channels: tuple[int, int] = (512, 2048),
                 light_branch_middle_channels: int = 32, psp_out_channels: int = 512,
                 out_channels: tuple[int, int, int] = (64, 256, 256), pool_scales: tuple[int, ...] = (1, 2, 3, 6),
                 align_corners: bool = False) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.backbone = ResNet.from_config(backbone_cfg)
        # The reference swaps in a ceil_mode max-pool "to keep information in the corner of feature map".
        self.backbone.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True)
        self.psp_modules = PPM(pool_scales, layer_channels[1], psp_out_channels, align_corners)
        self.psp_bottleneck = ConvBNReLU(layer_channels[1] + len(pool_scales) * psp_out_channels, psp_out_channels, 3,
                                         padding=1)
        mid = light_branch_middle_channels
        self.conv_sub1 = nn.Sequential(ConvBNReLU(3, mid, 3, stride=2, padding=1),
                                       ConvBNReLU(mid, mid, 3, stride=2, padding=1),
                                       ConvBNReLU(mid, out_channels[0], 3, stride=2, padding=1))
        self.conv_sub2 = ConvBNReLU(layer_channels[0], out_channels[1], 1)
        self.conv_sub4 = ConvBNReLU(psp_out_channels, out_channels[2], 1)
        self.out_channels = list(out_channels)

    @classmethod
    def from_config(cls, cfg: ICNetConfig) -> "ICNet":
        return cls(cfg.backbone_cfg, layer_channels=cfg.layer_channels,
                   light_branch_middle_channels=cfg.light_branch_middle_channels,
                   psp_out_channels=cfg.psp_out_channels, out_channels=cfg.out_channels,
                   pool_scales=cfg.pool_scales, align_corners=cfg.align_corners)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        sub1 = self.conv_sub1(x)
        r = self.backbone
        y = _half(x, self.align_corners)
        y = r.stem(y) if r.deep_stem else r.relu(r.bn1(r.conv1(y)))
        y = r.layer2(r.layer1(r.maxpool(y)))
        sub2 = self.conv_sub2(y)
        y = r.layer4(r.layer3(_half(y, self.align_corners)))
        # the pooled branches first, the map itself last (PSPHead puts the map first)
        y = self.psp_bottleneck(torch.cat(self.psp_modules(y) + [y], dim=1))
        return [sub1, sub2, self.conv_sub4(y)]
