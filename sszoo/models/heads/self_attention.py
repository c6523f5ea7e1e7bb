"""Building blocks of the attention heads (DANet, ANN, ISANet, CCNet): a learnable scalar and the generic
key/query/value self-attention block (Vaswani et al., "Attention Is All You Need", NeurIPS 2017; Wang et
al., "Non-local Neural Networks", CVPR 2018) that those heads specialise.

Submodule names (``key_project``, ``query_project``, ``value_project``, ``out_project``, ``scale``)
follow MMSegmentation's checkpoints; modules are created in its order so parameters enumerate alike.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import ConvBNReLU


class Scale(nn.Module):
    """Multiplies its input by one learnable scalar (a 0-dim parameter named ``scale``)."""

    def __init__(self, init: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def projection(in_channels: int, out_channels: int, num_convs: int, with_norm: bool) -> nn.Module:
    """``num_convs`` 1x1 layers: ConvBNReLUs when ``with_norm``, else plain biased convs. A single layer is
    returned bare (no ``Sequential`` around it), which is what keeps the keys free of a ``.0``."""
    def layer(cin: int) -> nn.Module:
        return ConvBNReLU(cin, out_channels, 1) if with_norm else nn.Conv2d(cin, out_channels, 1)

    layers = [layer(in_channels)] + [layer(out_channels) for _ in range(num_convs - 1)]
    return layers[0] if len(layers) == 1 else nn.Sequential(*layers)


class SelfAttentionBlock(nn.Module):
    """Attention of every query position over the (optionally downsampled) key positions.

    ``query = query_project(q)``, ``key = key_project(k)``, ``value = value_project(k)``; the context
    ``softmax(query^T key [/ sqrt(channels)]) value`` is reshaped to the query map and passed through
    ``out_project`` when ``with_out``. With ``share_key_query`` one projection serves both (the state dict
    then lists it under both names, as the reference's).
    """

    def __init__(self, key_in_channels: int, query_in_channels: int, channels: int, out_channels: int, *,
                 share_key_query: bool, query_downsample: Optional[nn.Module], key_downsample: Optional[nn.Module],
                 key_query_num_convs: int, key_query_norm: bool, value_out_num_convs: int, value_out_norm: bool,
                 matmul_norm: bool, with_out: bool) -> None:
        super().__init__()
        if share_key_query and key_in_channels != query_in_channels:
            raise ValueError("a shared key/query projection needs key_in_channels == query_in_channels")
        self.channels = channels
        self.matmul_norm = matmul_norm
        self.key_project = projection(key_in_channels, channels, key_query_num_convs, key_query_norm)
        self.query_project = (self.key_project if share_key_query else
                              projection(query_in_channels, channels, key_query_num_convs, key_query_norm))
        self.value_project = projection(key_in_channels, channels if with_out else out_channels,
                                        value_out_num_convs, value_out_norm)
        self.out_project = (projection(channels, out_channels, value_out_num_convs, value_out_norm)
                            if with_out else None)
        self.query_downsample = query_downsample
        self.key_downsample = key_downsample

    def forward(self, query_feats: torch.Tensor, key_feats: torch.Tensor) -> torch.Tensor:
        n = query_feats.shape[0]
        query = self.query_project(query_feats)
        if self.query_downsample is not None:
            query = self.query_downsample(query)
        query = query.flatten(2).transpose(1, 2)  # N x Q x C
        key = self.key_project(key_feats)
        value = self.value_project(key_feats)
        if self.key_downsample is not None:
            key, value = self.key_downsample(key), self.key_downsample(value)
        key = key.flatten(2)  # N x C x K
        value = value.flatten(2).transpose(1, 2)  # N x K x C'
        sim = torch.matmul(query, key)
        if self.matmul_norm:
            sim = sim * self.channels ** -0.5
        context = torch.matmul(F.softmax(sim, dim=-1), value)  # N x Q x C'
        context = context.transpose(1, 2).reshape(n, -1, *query_feats.shape[2:])
        return self.out_project(context) if self.out_project is not None else context
