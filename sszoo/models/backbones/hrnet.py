"""HRNetV2 (Sun et al., "High-Resolution Representations for Labeling Pixels and Regions", arXiv 2019;
"Deep High-Resolution Representation Learning for Human Pose Estimation", CVPR 2019).

A stride-4 stem (two 3x3 stride-2 convs) and a Bottleneck ``layer1``, then three stages that each add one
lower-resolution branch (``transition{1,2,3}``) and run ``num_modules`` high-resolution modules. A module
runs its branches (BasicBlocks or Bottlenecks) and fuses them: every output branch ``i`` sums all inputs,
lower-resolution ones through a 1x1 conv + BN and a bilinear upsampling, higher-resolution ones through
a chain of 3x3 stride-2 convs. The backbone returns the four branches of the last stage (strides 4, 8, 16,
32); HRNetV2's heads resize them to the first and concatenate.

Key names and registration order are MMSegmentation's (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``layer1``,
``transition1``, ``stage2``, ...), so its checkpoints load strictly.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import resize
from .resnet import BasicBlock, Bottleneck

_BLOCKS: dict[str, type[nn.Module]] = {"BASIC": BasicBlock, "BOTTLENECK": Bottleneck}


@dataclass(frozen=True)
class HRNetConfig:
    """The four stages of MMSegmentation's ``extra`` (stage1 ... stage4), one tuple entry per stage.

    ``num_blocks[s]`` and ``num_channels[s]`` have one entry per branch of stage ``s``. The HRNetV2 widths:
    W18-Small (num_modules 1, 1, 3, 2; 2 blocks per branch), W18 and W48 (1, 1, 4, 3; 4 blocks).
    """

    num_modules: tuple[int, ...] = (1, 1, 4, 3)
    num_branches: tuple[int, ...] = (1, 2, 3, 4)
    block: tuple[str, ...] = ("BOTTLENECK", "BASIC", "BASIC", "BASIC")
    num_blocks: tuple[tuple[int, ...], ...] = ((4,), (4, 4), (4, 4, 4), (4, 4, 4, 4))
    num_channels: tuple[tuple[int, ...], ...] = ((64,), (18, 36), (18, 36, 72), (18, 36, 72, 144))
    kind: str = "hrnet"

    @property
    def output_stride(self) -> int:
        """The stride of the lowest-resolution branch (32 for four branches): the stem's 4 x one 2 per new branch."""
        return 4 * 2 ** (self.num_branches[-1] - 1)


def _conv_bn(cin: int, cout: int, kernel_size: int, stride: int = 1, relu: bool = False) -> nn.Sequential:
    """Conv (no bias) + BN (+ ReLU) as an unnamed Sequential: keys ``0.weight``, ``1.*``."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
                               nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _blocks(block: type[nn.Module], inplanes: int, planes: int, count: int) -> nn.Sequential:
    """``count`` residual blocks at stride 1; the first gets a 1x1 conv + BN shortcut if the width changes."""
    out = planes * block.expansion
    downsample = None
    if inplanes != out:
        downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, bias=False), nn.BatchNorm2d(out))
    layers = [block(inplanes, planes, 1, 1, downsample)] + [block(out, planes) for _ in range(count - 1)]
    return nn.Sequential(*layers)


class Upsample(nn.Module):
    """Bilinear upsampling by an integer factor (MMSegmentation's ``Upsample``: output size = factor x input,
    align_corners False). Parameter-free; it sits inside the fuse layers so that their indices match."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize(x, (x.shape[-2] * self.factor, x.shape[-1] * self.factor), align_corners=False)


class HRModule(nn.Module):
    """One high-resolution module: parallel branches, then the exchange between all resolutions."""

    def __init__(self, block: type[nn.Module], num_blocks: tuple[int, ...], in_channels: list[int],
                 num_channels: tuple[int, ...], multiscale_output: bool = True) -> None:
        super().__init__()
        n = len(num_blocks)
        if not len(in_channels) == len(num_channels) == n:
            raise ValueError("num_blocks, in_channels and num_channels need one entry per branch")
        self.num_branches = n
        self.branches = nn.ModuleList(_blocks(block, in_channels[i], num_channels[i], num_blocks[i]) for i in range(n))
        ch = [c * block.expansion for c in num_channels]
        self.out_channels = ch
        self.fuse_layers = None
        if n > 1:
            fuse = []
            for i in range(n if multiscale_output else 1):
                row: list[nn.Module | None] = []
                for j in range(n):
                    if j > i:  # lower resolution: 1x1 conv to branch i's width, then upsample
                        row.append(nn.Sequential(nn.Conv2d(ch[j], ch[i], 1, bias=False), nn.BatchNorm2d(ch[i]),
                                                 Upsample(2 ** (j - i))))
                    elif j == i:
                        row.append(None)
                    else:  # higher resolution: i - j stride-2 3x3 convs, the last to branch i's width without ReLU
                        steps = [_conv_bn(ch[j], ch[j], 3, 2, relu=True) for _ in range(i - j - 1)]
                        last = _conv_bn(ch[j], ch[i], 3, 2)
                        row.append(nn.Sequential(*steps, last))
                fuse.append(nn.ModuleList(row))
            self.fuse_layers = nn.ModuleList(fuse)
        self.relu = nn.ReLU()

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.fuse_layers is None:
            return [self.branches[0](x[0])]
        x = [branch(t) for branch, t in zip(self.branches, x)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = x[0] if i == 0 else row[0](x[0])
            for j in range(1, self.num_branches):
                if j == i:
                    y = y + x[j]
                elif j > i:
                    # The upsampled map is 2^(j-i) times branch j's size, which differs from branch i's when
                    # the input size is not a multiple of 32 (the stride-2 convs round up): the reference then
                    # resizes once more, bilinearly, to branch i's size.
                    y = y + resize(row[j](x[j]), x[i].shape[2:], align_corners=False)
                else:
                    y = y + row[j](x[j])
            out.append(self.relu(y))
        return out


class HRNet(nn.Module):
    """HRNetV2 backbone returning the last stage's branches (strides 4, 8, 16, 32)."""

    def __init__(self, num_modules=(1, 1, 4, 3), num_branches=(1, 2, 3, 4),
                 block=("BOTTLENECK", "BASIC", "BASIC", "BASIC"),
                 num_blocks=((4,), (4, 4), (4, 4, 4), (4, 4, 4, 4)),
                 num_channels=((64,), (18, 36), (18, 36, 72), (18, 36, 72, 144))) -> None:
        super().__init__()
        if not len(num_modules) == len(num_branches) == len(block) == len(num_blocks) == len(num_channels) == 4:
            raise ValueError("HRNet needs four stages")
        for s in range(4):
            if not len(num_blocks[s]) == len(num_channels[s]) == num_branches[s]:
                raise ValueError(f"stage{s + 1}: num_blocks and num_channels need num_branches entries")
        if num_branches[0] != 1:
            raise ValueError("stage1 of HRNet has one branch")
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        stem_block = _BLOCKS[block[0]]
        self.layer1 = _blocks(stem_block, 64, num_channels[0][0], num_blocks[0][0])
        pre = [num_channels[0][0] * stem_block.expansion]
        for s in range(1, 4):
            b = _BLOCKS[block[s]]
            cur = [c * b.expansion for c in num_channels[s]]
            self.add_module(f"transition{s}", self._transition(pre, cur))
            modules = []
            for _ in range(num_modules[s]):
                m = HRModule(b, tuple(num_blocks[s]), list(cur), tuple(num_channels[s]))
                modules.append(m)
                cur = m.out_channels
            self.add_module(f"stage{s + 1}", nn.Sequential(*modules))
            pre = cur
        self.out_channels: list[int] = pre

    @staticmethod
    def _transition(pre: list[int], cur: list[int]) -> nn.ModuleList:
        """Branches kept (a 3x3 conv where the width changes, else None) and new ones made by stride-2 3x3 convs
        from the lowest-resolution branch."""
        layers: list[nn.Module | None] = []
        for i, c in enumerate(cur):
            if i < len(pre):
                layers.append(_conv_bn(pre[i], c, 3, 1, relu=True) if c != pre[i] else None)
            else:
                k = i + 1 - len(pre)
                layers.append(nn.Sequential(*[_conv_bn(pre[-1], c if step == k - 1 else pre[-1], 3, 2, relu=True)
                                              for step in range(k)]))
        return nn.ModuleList(layers)

    @classmethod
    def from_config(cls, cfg: HRNetConfig) -> "HRNet":
        return cls(cfg.num_modules, cfg.num_branches, cfg.block, cfg.num_blocks, cfg.num_channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        y = [self.layer1(x)]
        for s in range(1, 4):
            transition = getattr(self, f"transition{s}")
            # As the reference: a transition that exists is applied to the lowest-resolution branch (for new
            # branches that is the design; kept branches never have one in the published widths).
            xs = [t(y[-1]) if t is not None else y[i] for i, t in enumerate(transition)]
            y = getattr(self, f"stage{s + 1}")(xs)
        return y
