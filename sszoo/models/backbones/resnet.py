"""Dilated ResNet backbones: ResNetV1c (deep 3x3 stem) and ResNetV1b (7x7 stem).

Both are the "pytorch" style ResNet (stride on the 3x3 conv of a bottleneck). Output stride is set by
per-stage ``strides`` and ``dilations``:

    OS 8:  strides (1, 2, 1, 1), dilations (1, 1, 2, 4)
    OS 16: strides (1, 2, 2, 1), dilations (1, 1, 1, 2)
    OS 32: strides (1, 2, 2, 2), dilations (1, 1, 1, 1)

``contract_dilation`` gives the first block of a dilated stage half the stage's dilation, and
``multi_grid`` (for example (1, 2, 4)) sets the dilation of each block of the last stage directly,
which is how MMSegmentation builds the checkpoints this zoo serves.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

_BLOCKS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)),
           101: ("bottleneck", (3, 4, 23, 3)), 152: ("bottleneck", (3, 8, 36, 3))}


@dataclass(frozen=True)
class ResNetConfig:
    """Constructor arguments of :class:`ResNet`, as stored in the zoo registry."""

    depth: int = 50
    deep_stem: bool = True  # True: ResNetV1c (3x3 convs 3-32-32-64); False: ResNetV1b (one 7x7 conv)
    strides: tuple[int, int, int, int] = (1, 2, 1, 1)
    dilations: tuple[int, int, int, int] = (1, 1, 2, 4)
    contract_dilation: bool = True
    multi_grid: tuple[int, ...] | None = None
    # BatchNorm weights and biases not trained (MMCV's norm_cfg requires_grad=False: Mask2Former's R-50/101);
    # their running statistics still update in training
    norm_frozen: bool = False
    kind: str = "resnet"

    @property
    def output_stride(self) -> int:
        out = 4
        for s in self.strides:
            out *= s
        return out


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        # The reference implementation dilates only the first conv of a basic block.
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _stage_dilations(num_blocks: int, dilation: int, contract: bool, multi_grid: tuple[int, ...] | None) -> list[int]:
    if multi_grid is not None:
        if len(multi_grid) != num_blocks:
            raise ValueError(f"multi_grid {multi_grid} needs one rate per block of the last stage ({num_blocks})")
        return list(multi_grid)
    first = dilation // 2 if (contract and dilation > 1) else dilation
    return [first] + [dilation] * (num_blocks - 1)


class ResNet(nn.Module):
    """ResNet returning the outputs of its four stages (strides 4, 8, 8|16, 8|16|32)."""

    def __init__(self, depth: int = 50, *, deep_stem: bool = True, strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4),
                 contract_dilation: bool = True, multi_grid: tuple[int, ...] | None = None) -> None:
        super().__init__()
        if depth not in _BLOCKS:
            raise ValueError(f"ResNet depth must be one of {sorted(_BLOCKS)}, got {depth}")
        kind, counts = _BLOCKS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.depth = depth
        self.deep_stem = deep_stem
        if deep_stem:
            self.stem = nn.Sequential(
                nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
                nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
                nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            )
        else:
            self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)

        inplanes = 64
        self.out_channels: list[int] = []
        for i, (n, s, d) in enumerate(zip(counts, strides, dilations)):
            planes = 64 * 2 ** i
            grid = multi_grid if i == 3 else None
            rates = _stage_dilations(n, d, contract_dilation, grid)
            downsample = None
            if s != 1 or inplanes != planes * block.expansion:
                downsample = nn.Sequential(nn.Conv2d(inplanes, planes * block.expansion, 1, stride=s, bias=False),
                                           nn.BatchNorm2d(planes * block.expansion))
            layers = [block(inplanes, planes, s, rates[0], downsample)]
            inplanes = planes * block.expansion
            layers += [block(inplanes, planes, 1, r) for r in rates[1:]]
            self.add_module(f"layer{i + 1}", nn.Sequential(*layers))
            self.out_channels.append(inplanes)

    @classmethod
    def from_config(cls, cfg: ResNetConfig) -> "ResNet":
        net = cls(cfg.depth, deep_stem=cfg.deep_stem, strides=cfg.strides, dilations=cfg.dilations,
                  contract_dilation=cfg.contract_dilation, multi_grid=cfg.multi_grid)
        if cfg.norm_frozen:
            for m in net.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.requires_grad_(False)
        return net

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x) if self.deep_stem else self.relu(self.bn1(self.conv1(x)))
        x = self.maxpool(x)
        outs = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            outs.append(x)
        return outs
