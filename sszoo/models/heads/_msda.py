"""Multi-scale deformable attention (Zhu et al., "Deformable DETR", ICLR 2021) in pure PyTorch.

The numerics are those of MMCV 2.1's own PyTorch path (``multi_scale_deformable_attn_pytorch``, which the
reference runs on CPU): each head samples ``num_points`` bilinear points per level around its reference point
with ``F.grid_sample`` (``align_corners=False``, zero padding, so points outside a map read zeros) and sums them
with softmax weights over all levels and points. ``F.grid_sample`` exports to ONNX from opset 16.

Key layout (MMCV's ``MultiScaleDeformableAttention``): ``sampling_offsets``, ``attention_weights``,
``value_proj``, ``output_proj``, registered in that order.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
import torch.nn.functional as F


def multi_scale_deformable_attn(value: torch.Tensor, spatial_shapes: Sequence[tuple[int, int]],
                                sampling_locations: torch.Tensor, attention_weights: torch.Tensor) -> torch.Tensor:
    """Deformable attention over several maps.

    ``value``: N x S x heads x d, the levels' pixels concatenated (level ``l`` is ``spatial_shapes[l]`` = (h, w),
    row-major); ``sampling_locations``: N x Q x heads x L x P x 2 in [0, 1] (x, y) of each map;
    ``attention_weights``: N x Q x heads x L x P. Returns N x Q x (heads * d).
    """
    n, _, heads, d = value.shape
    _, q, _, levels, points, _ = sampling_locations.shape
    values = value.split([h * w for h, w in spatial_shapes], dim=1)
    grids = 2 * sampling_locations - 1  # grid_sample's [-1, 1] coordinates
    sampled = []
    for lvl, (h, w) in enumerate(spatial_shapes):
        v = values[lvl].flatten(2).transpose(1, 2).reshape(n * heads, d, h, w)
        g = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)  # (N * heads) x Q x P x 2
        sampled.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    weights = attention_weights.transpose(1, 2).reshape(n * heads, 1, q, levels * points)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * weights).sum(-1).view(n, heads * d, q)
    return out.transpose(1, 2).contiguous()


class MultiScaleDeformableAttention(nn.Module):
    """MMCV's ``MultiScaleDeformableAttention`` (batch first, no key padding): ``identity + output_proj(attn)``.

    Offsets are in pixels of each level (divided by its width and height), added to 2-D reference points.
    """

    def __init__(self, embed_dims: int = 256, num_heads: int = 8, num_levels: int = 4, num_points: int = 4) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f"embed_dims {embed_dims} is not divisible by num_heads {num_heads}")
        self.embed_dims, self.num_heads, self.num_levels, self.num_points = embed_dims, num_heads, num_levels, num_points
        self.sampling_offsets = nn.Linear(embed_dims, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dims, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference's initialisation: zero offsets biased to a ring of points per head, uniform weights."""
        nn.init.zeros_(self.sampling_offsets.weight)
        thetas = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi / self.num_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.num_heads, 1, 1, 2)
        grid = grid.repeat(1, self.num_levels, self.num_points, 1) * torch.arange(
            1, self.num_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for lin in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, query: torch.Tensor, value: torch.Tensor, query_pos: torch.Tensor,
                reference_points: torch.Tensor, spatial_shapes: Sequence[tuple[int, int]]) -> torch.Tensor:
        """``query`` N x Q x C (its own identity), ``value`` N x S x C, ``reference_points`` N x Q x L x 2."""
        identity = query
        query = query + query_pos
        n, nq, _ = query.shape
        value = self.value_proj(value).view(n, value.shape[1], self.num_heads, -1)
        offsets = self.sampling_offsets(query).view(n, nq, self.num_heads, self.num_levels, self.num_points, 2)
        weights = self.attention_weights(query).view(n, nq, self.num_heads, self.num_levels * self.num_points)
        weights = weights.softmax(-1).view(n, nq, self.num_heads, self.num_levels, self.num_points)
        # (w, h) of each level; the reference divides by its integer shape tensor, i.e. by these exact values
        normalizer = torch.tensor([[w, h] for h, w in spatial_shapes], dtype=offsets.dtype, device=offsets.device)
        # the reference's points are float32 whatever the model's dtype; promoted explicitly (ONNX has no implicit promotion)
        dtype = torch.promote_types(reference_points.dtype, offsets.dtype)
        locations = (reference_points[:, :, None, :, None, :].to(dtype)
                     + (offsets / normalizer[None, None, None, :, None, :]).to(dtype))
        out = multi_scale_deformable_attn(value, spatial_shapes, locations, weights)
        return self.output_proj(out) + identity
