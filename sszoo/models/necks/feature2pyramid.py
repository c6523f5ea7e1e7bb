"""Feature2Pyramid: MMSegmentation's neck between a plain transformer (BEiT, MAE) and a pyramid head (UPerNet).

The backbone's maps all have the patch stride (16); each is rescaled by one factor of ``rescales`` to make a
pyramid: 4 (ConvTranspose 2x2 stride 2 -> BN -> GELU -> ConvTranspose 2x2 stride 2), 2 (one such transposed
conv), 1 (identity), 0.5 (2x2 max pool of stride 2) or 0.25 (4x4 max pool of stride 4). As in the reference, the
ops are applied by position, not by the factor listed: the inputs get (4x, 2x, 1x, 0.5x) when 4 is among the
rescales, else (2x, 1x, 0.5x, 0.25x); sszoo builds only rescales that are one of these two lists.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

_LAYOUTS = ((4.0, 2.0, 1.0, 0.5), (2.0, 1.0, 0.5, 0.25))


@dataclass(frozen=True)
class Feature2PyramidConfig:
    embed_dim: int = 768
    rescales: tuple[float, ...] = (4.0, 2.0, 1.0, 0.5)
    norm_eps: float = 1e-5  # the 4x branch's BatchNorm
    kind: str = "feature2pyramid"


class Feature2Pyramid(nn.Module):
    """Rescale four same-stride maps to strides (4, 8, 16, 32) of the patch grid (keys ``upsample_4x.{0,1,3}``,
    ``upsample_2x.0``; the identity and max pools have none)."""

    def __init__(self, embed_dim: int, rescales: tuple[float, ...] = (4.0, 2.0, 1.0, 0.5), *,
                 norm_eps: float = 1e-5) -> None:
        super().__init__()
        rescales = tuple(float(r) for r in rescales)
        if rescales not in _LAYOUTS:
            raise ValueError(f"Feature2Pyramid rescales must be one of {_LAYOUTS}, got {rescales}")
        self.rescales = rescales
        self.upsample_4x = None
        if 4.0 in rescales:
            self.upsample_4x = nn.Sequential(
                nn.ConvTranspose2d(embed_dim, embed_dim, kernel_size=2, stride=2),
                nn.BatchNorm2d(embed_dim, eps=norm_eps), nn.GELU(),
                nn.ConvTranspose2d(embed_dim, embed_dim, kernel_size=2, stride=2))
        self.upsample_2x = nn.Sequential(nn.ConvTranspose2d(embed_dim, embed_dim, kernel_size=2, stride=2))
        self.out_channels = [embed_dim] * 4

    @classmethod
    def from_config(cls, cfg: Feature2PyramidConfig) -> "Feature2Pyramid":
        return cls(cfg.embed_dim, cfg.rescales, norm_eps=cfg.norm_eps)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(features) != 4:
            raise ValueError(f"Feature2Pyramid expects 4 feature maps, got {len(features)}")
        if self.upsample_4x is not None:
            ops = [self.upsample_4x, self.upsample_2x, nn.Identity(), lambda x: F.max_pool2d(x, 2, stride=2)]
        else:
            ops = [self.upsample_2x, nn.Identity(), lambda x: F.max_pool2d(x, 2, stride=2),
                   lambda x: F.max_pool2d(x, 4, stride=4)]
        return [op(x) for op, x in zip(ops, features)]
