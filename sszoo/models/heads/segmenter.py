"""Segmenter's mask-transformer decoder (Strudel et al., "Segmenter: Transformer for Semantic Segmentation",
ICCV 2021), as MMSegmentation 1.2.2's ``SegmenterMaskTransformerHead``.

The backbone's last map (N x C x h x w, the ViT's patch tokens) is flattened to tokens and projected
(``dec_proj``); one learnt embedding per class (``cls_emb``, 1 x K x D) is appended and ``num_layers`` ViT encoder
layers run over patches and classes together, then a LayerNorm (``decoder_norm``). Patch and class tokens are
projected (``patch_proj``, ``classes_proj``, no bias), L2-normalised, and their dot products are the masks,
N x (h w) x K, normalised over the classes by a LayerNorm (``mask_norm``) and reshaped to N x K x h x w logits.

There is no 1x1 classifier (``conv_seg``): the class count lives in ``cls_emb`` and ``mask_norm``, which
:meth:`SegmenterMaskTransformerHead.reset_classifier` replaces. The encoder layers are the ViT's
(sszoo.models.backbones.vit: MMCV's key layout, ``F.scaled_dot_product_attention``), with the head's own
LayerNorm eps (1e-5, the reference's default ``norm_cfg``; its configs set none).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..backbones.vit import TransformerEncoderLayer
from ..layers import ClassifierHead


@dataclass(frozen=True)
class SegmenterMaskHeadConfig:
    in_channels: int = 768
    embed_dims: int = 768
    num_layers: int = 2
    num_heads: int = 12
    mlp_ratio: int = 4
    num_fcs: int = 2
    qkv_bias: bool = True
    in_index: int = -1
    norm_eps: float = 1e-5
    drop_path_rate: float = 0.1  # stochastic depth of the layers' MLP branches (training only)
    loss_weight: float = 1.0
    kind: str = "segmenter_mask"


class SegmenterMaskTransformerHead(ClassifierHead):
    """Class embeddings decoded jointly with the patch tokens; logits are the patch-class cosine similarities,
    LayerNorm-ed over the classes."""

    def __init__(self, in_channels: int, embed_dims: int, num_classes: int, *, num_layers: int = 2,
                 num_heads: int = 12, mlp_ratio: int = 4, num_fcs: int = 2, qkv_bias: bool = True,
                 in_index: int = -1, norm_eps: float = 1e-5, drop_path_rate: float = 0.1,
                 align_corners: bool = False) -> None:
        super().__init__()
        self.in_index = in_index
        self.align_corners = align_corners
        self.num_classes = num_classes
        self.norm_eps = norm_eps
        # registration order as the reference (its conv_seg is deleted; cls_emb, the module's own parameter,
        # enumerates first)
        rates = torch.linspace(0, drop_path_rate, num_layers, device="cpu").tolist()
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(embed_dims, num_heads, mlp_ratio * embed_dims, num_fcs=num_fcs, qkv_bias=qkv_bias,
                                    drop_path_rate=r, norm_eps=norm_eps) for r in rates)
        self.dec_proj = nn.Linear(in_channels, embed_dims)
        self.cls_emb = nn.Parameter(0.02 * torch.randn(1, num_classes, embed_dims))
        self.patch_proj = nn.Linear(embed_dims, embed_dims, bias=False)
        self.classes_proj = nn.Linear(embed_dims, embed_dims, bias=False)
        self.decoder_norm = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.mask_norm = nn.LayerNorm(num_classes, eps=norm_eps)

    @classmethod
    def from_config(cls, cfg: SegmenterMaskHeadConfig, num_classes: int,
                    align_corners: bool) -> "SegmenterMaskTransformerHead":
        return cls(cfg.in_channels, cfg.embed_dims, num_classes, num_layers=cfg.num_layers, num_heads=cfg.num_heads,
                   mlp_ratio=cfg.mlp_ratio, num_fcs=cfg.num_fcs, qkv_bias=cfg.qkv_bias, in_index=cfg.in_index,
                   norm_eps=cfg.norm_eps, drop_path_rate=cfg.drop_path_rate, align_corners=align_corners)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[self.in_index]
        b, c, h, w = x.shape
        x = self.dec_proj(x.permute(0, 2, 3, 1).reshape(b, h * w, c))
        x = torch.cat((x, self.cls_emb.expand(b, -1, -1)), dim=1)
        for layer in self.layers:
            x = layer(x)
        x = self.decoder_norm(x)
        k = self.num_classes
        patches = F.normalize(self.patch_proj(x[:, :-k]), dim=2, p=2)
        classes = F.normalize(self.classes_proj(x[:, -k:]), dim=2, p=2)
        masks = self.mask_norm(patches @ classes.transpose(1, 2))  # N x hw x K
        # contiguous: a view of the permuted masks is channels_last, whose bilinear upsampling to the image is ~40x
        # slower on the CPU (and keeps the 150-class logits in that layout)
        return masks.permute(0, 2, 1).contiguous().view(b, k, h, w)

    def reset_classifier(self, num_classes: int) -> None:
        """Fresh class embeddings (the reference's init: std 0.02) and class-wise LayerNorm for ``num_classes``."""
        like = self.cls_emb
        self.cls_emb = nn.Parameter(0.02 * torch.randn(1, num_classes, like.shape[2], device=like.device,
                                                       dtype=like.dtype))
        self.mask_norm = nn.LayerNorm(num_classes, eps=self.norm_eps).to(like.device, like.dtype)
        self.num_classes = num_classes
