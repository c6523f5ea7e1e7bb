"""MaskFormer's head (Cheng et al., "Per-Pixel Classification is Not All You Need for Semantic Segmentation",
NeurIPS 2021), as MMSegmentation 1.2.2 builds it (its ``MaskFormerHead`` wraps MMDetection 3.3.0's).

- Pixel decoder (MMDetection's ``PixelDecoder``, an FPN): the deepest map through ``last_feat_conv`` (3x3 +
  GroupNorm + ReLU), then from coarse to fine a 1x1 ``lateral_conv`` + GN plus the *nearest*-upsampled coarser
  output and a 3x3 ``output_conv`` + GN + ReLU; ``mask_feature`` (3x3 conv) of the finest output. The
  transformer's memory is the raw deepest backbone map, projected by ``decoder_input_proj`` (1x1 conv) when its
  width is not the decoder's.
- Transformer decoder (DETR's, post-norm): ``num_queries`` zero queries with learned positions (``query_embed``);
  per layer self-attention, cross-attention to the memory (plus its sine positions), FFN, each followed by a
  LayerNorm; the shared ``post_norm`` of every layer's output gives class logits (``cls_embed``, K + 1 with
  "no object") and mask logits (``mask_embed`` MLP dotted with ``mask_feature``).
- Semantic inference as Mask2Former's (:mod:`.mask2former`): the last layer's masks resized to the input's size,
  ``sum_q softmax(cls)[q, c] * sigmoid(mask)[q]`` without "no object".

The sine positions are float32 whatever the model's dtype, as the reference's; attention is the explicit
``torch.nn.MultiheadAttention`` computation (the reference's key padding mask is all False for an unpadded input
and adds exact zeros). The decoder's dropouts (0.1 in the configs) act in training only.

Keys: ``pixel_decoder.{lateral_convs,output_convs,last_feat_conv,mask_feature}``, ``transformer_decoder.{layers.{i}.
{self_attn,cross_attn}.attn.*,ffn,norms},post_norm}``, ``decoder_input_proj``, ``query_embed``, ``cls_embed``,
``mask_embed``; registered in the reference's order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
import torch.nn.functional as F

from ..mask_losses import MaskClassificationLoss
from ..layers import ConvGN
from .mask2former import FFN, MaskClassificationHead, MultiheadAttention, sine_position_encoding


@dataclass(frozen=True)
class MaskFormerHeadConfig:
    in_channels: tuple[int, ...] = (256, 512, 1024, 2048)
    in_index: tuple[int, ...] = (0, 1, 2, 3)
    feat_channels: int = 256
    out_channels: int = 256  # mask_feature's channels, the mask embedding's and the decoder's width
    num_queries: int = 100
    enforce_decoder_input_project: bool = False
    num_groups: int = 32  # the pixel decoder's GroupNorms
    pos_num_feats: int = 128  # sine position encoding: 2 x this many channels
    decoder_layers: int = 6
    decoder_heads: int = 8
    decoder_ffn_channels: int = 2048
    dropout: float = 0.1  # the decoder's attention, projection and FFN dropouts (training only)
    # training only: class, focal mask and dice loss weights, the "no object" class weight, the focal loss's
    # alpha and gamma
    cls_weight: float = 1.0
    mask_weight: float = 20.0
    dice_weight: float = 1.0
    no_object_weight: float = 0.1
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    kind: str = "maskformer"


class PixelDecoder(nn.Module):
    """MMDetection's ``PixelDecoder``: returns (``mask_feature``, the deepest input map as the memory)."""

    def __init__(self, in_channels: Sequence[int], feat_channels: int, out_channels: int, num_groups: int) -> None:
        super().__init__()
        self.lateral_convs = nn.ModuleList(ConvGN(c, feat_channels, 1, num_groups, bias=False, relu=False)
                                           for c in in_channels[:-1])
        self.output_convs = nn.ModuleList(ConvGN(feat_channels, feat_channels, 3, num_groups, bias=False, relu=True)
                                          for _ in in_channels[:-1])
        self.last_feat_conv = ConvGN(in_channels[-1], feat_channels, 3, num_groups, bias=False, relu=True)
        self.mask_feature = nn.Conv2d(feat_channels, out_channels, 3, padding=1)

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.last_feat_conv(feats[-1])
        for i in range(len(feats) - 2, -1, -1):
            cur = self.lateral_convs[i](feats[i])
            y = self.output_convs[i](cur + F.interpolate(y, size=cur.shape[-2:], mode="nearest"))
        return self.mask_feature(y), feats[-1]


class DetrDecoderLayer(nn.Module):
    """Self-attention, cross-attention, FFN, each followed by a LayerNorm (``norms.0/1/2``)."""

    def __init__(self, embed_dims: int, num_heads: int, ffn_channels: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(embed_dims, num_heads, dropout, dropout)
        self.cross_attn = MultiheadAttention(embed_dims, num_heads, dropout, dropout)
        self.ffn = FFN(embed_dims, ffn_channels, dropout)
        self.norms = nn.ModuleList(nn.LayerNorm(embed_dims) for _ in range(3))

    def forward(self, query: torch.Tensor, memory: torch.Tensor, query_pos: torch.Tensor,
                memory_pos: torch.Tensor) -> torch.Tensor:
        query = self.norms[0](self.self_attn(query, query, query, query_pos, query_pos))
        query = self.norms[1](self.cross_attn(query, memory, memory, query_pos, memory_pos))
        return self.norms[2](self.ffn(query))


class DetrTransformerDecoder(nn.Module):
    """``layers`` and the ``post_norm`` of every layer's output."""

    def __init__(self, num_layers: int, embed_dims: int, num_heads: int, ffn_channels: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DetrDecoderLayer(embed_dims, num_heads, ffn_channels, dropout)
                                    for _ in range(num_layers))
        self.post_norm = nn.LayerNorm(embed_dims)

    def forward(self, query: torch.Tensor, memory: torch.Tensor, query_pos: torch.Tensor,
                memory_pos: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for layer in self.layers:
            query = layer(query, memory, query_pos, memory_pos)
            outs.append(self.post_norm(query))
        return outs


class MaskFormerHead(MaskClassificationHead):
    """FPN pixel decoder + DETR decoder; :meth:`forward` gives every layer's predictions (for the losses),
    :meth:`predict` the per-class semantic map at the input's size."""

    align_corners = False  # the reference's predict resizes the masks with align_corners=False whatever the config

    def __init__(self, cfg: MaskFormerHeadConfig, num_classes: int) -> None:
        super().__init__()
        if len(cfg.in_channels) != len(cfg.in_index) or len(cfg.in_channels) < 2:
            raise ValueError("MaskFormerHead needs at least two maps, with in_channels and in_index alike")
        c, d = cfg.feat_channels, cfg.out_channels
        self.cfg = cfg
        self.num_classes = num_classes
        self.in_index = tuple(cfg.in_index)
        self.pixel_decoder = PixelDecoder(cfg.in_channels, c, d, cfg.num_groups)
        # the decoder's width is the query embedding's, out_channels (equal to feat_channels in every config)
        self.transformer_decoder = DetrTransformerDecoder(cfg.decoder_layers, d, cfg.decoder_heads,
                                                          cfg.decoder_ffn_channels, cfg.dropout)
        self.decoder_input_proj = (nn.Conv2d(cfg.in_channels[-1], d, 1)
                                   if d != cfg.in_channels[-1] or cfg.enforce_decoder_input_project else nn.Identity())
        self.query_embed = nn.Embedding(cfg.num_queries, d)
        self.cls_embed = nn.Linear(c, num_classes + 1)
        self.mask_embed = nn.Sequential(nn.Linear(c, c), nn.ReLU(inplace=True), nn.Linear(c, c), nn.ReLU(inplace=True),
                                        nn.Linear(c, d))

    @classmethod
    def from_config(cls, cfg: MaskFormerHeadConfig, num_classes: int, align_corners: bool) -> "MaskFormerHead":
        return cls(cfg, num_classes)

    def forward(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Class logits (N x Q x (K + 1)) and mask logits (N x Q x H/4 x W/4) of every decoder layer."""
        feats = [features[i] for i in self.in_index]
        n = feats[0].shape[0]
        mask_feature, memory = self.pixel_decoder(feats)
        pos = sine_position_encoding(memory, self.cfg.pos_num_feats)
        memory = self.decoder_input_proj(memory).flatten(2).permute(0, 2, 1)
        pos = pos.to(torch.promote_types(pos.dtype, memory.dtype)).flatten(2).permute(0, 2, 1)
        query_pos = self.query_embed.weight.unsqueeze(0).repeat(n, 1, 1)
        outs = self.transformer_decoder(torch.zeros_like(query_pos), memory, query_pos, pos)
        cls_preds = [self.cls_embed(q) for q in outs]
        mask_preds = [torch.einsum("bqc,bchw->bqhw", self.mask_embed(q), mask_feature) for q in outs]
        return cls_preds, mask_preds

    def loss_settings(self) -> MaskClassificationLoss:
        """The matcher and loss settings of :mod:`sszoo.models.mask_losses` for this head: focal mask loss and
        Dice at full mask resolution, matched with ClassificationCost + FocalLossCost + DiceCost whose weights
        are the loss weights (1, 20, 1 in every MMSegmentation MaskFormer config)."""
        c = self.cfg
        return MaskClassificationLoss(kind="maskformer", cls_weight=c.cls_weight, mask_weight=c.mask_weight,
                                      dice_weight=c.dice_weight, no_object_weight=c.no_object_weight,
                                      cost_cls=c.cls_weight, cost_mask=c.mask_weight, cost_dice=c.dice_weight,
                                      focal_alpha=c.focal_alpha, focal_gamma=c.focal_gamma)
