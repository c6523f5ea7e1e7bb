"""OCR head (Yuan, Chen and Wang, "Object-Contextual Representations for Semantic Segmentation", ECCV 2020).

The second stage of OCRNet's cascade: it receives the first stage's (an FCN head's) logits ``prev``.
``bottleneck`` (3x3 ConvBNReLU) maps the input to ``channels``; the *spatial gather* turns ``prev`` into
one soft region per class (softmax over the pixels) and averages the features over each region (the
object representations, N x C x K x 1); the *object attention* block lets every pixel attend over the K
object representations (key/query: two 1x1 ConvBNReLUs to ``ocr_channels``, value/out: one each, the
similarity scaled by ``ocr_channels ** -0.5``) and fuses the result with the pixel's own feature
(``bottleneck``: 1x1 ConvBNReLU of the concatenation [context, feature]); ``conv_seg`` classifies.

Keys (``object_context_block.{key,query,value,out}_project``, ``object_context_block.bottleneck``,
``bottleneck``, ``conv_seg``) and registration order are MMSegmentation's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.nn.functional as F

from ..layers import ClassifierHead, ConvBNReLU
from .fcn import select_inputs, total_channels
from .self_attention import SelfAttentionBlock


@dataclass(frozen=True)
class OCRHeadConfig:
    in_channels: Union[int, tuple[int, ...]] = 2048
    channels: int = 512
    in_index: Union[int, tuple[int, ...]] = 3
    ocr_channels: int = 256
    dropout: float = 0.1
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    input_transform: Optional[str] = None  # "resize_concat" on HRNet (tuples in_channels / in_index)
    kind: str = "ocr"


def spatial_gather(feats: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Object representations N x C x K x 1: the features ``feats`` (N x C x H x W) averaged over each class's
    soft region, a softmax over the pixels of the class logits ``probs`` (N x K x H x W, the same H x W)."""
    weights = F.softmax(probs.flatten(2), dim=2)  # N x K x HW
    context = torch.matmul(weights, feats.flatten(2).transpose(1, 2))  # N x K x C
    return context.transpose(1, 2).unsqueeze(3)


class ObjectAttentionBlock(SelfAttentionBlock):
    """Pixel-to-object attention (queries: the pixels, keys and values: the K object representations), then the
    1x1 ``bottleneck`` over [context, pixel feature]."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__(in_channels, in_channels, channels, in_channels, share_key_query=False,
                         query_downsample=None, key_downsample=None, key_query_num_convs=2, key_query_norm=True,
                         value_out_num_convs=1, value_out_norm=True, matmul_norm=True, with_out=True)
        self.bottleneck = ConvBNReLU(in_channels * 2, in_channels, 1)

    def forward(self, query_feats: torch.Tensor, key_feats: torch.Tensor) -> torch.Tensor:
        context = super().forward(query_feats, key_feats)
        return self.bottleneck(torch.cat([context, query_feats], dim=1))


class OCRHead(ClassifierHead):
    """OCRNet's object-contextual head; ``forward(features, prev_logits)``."""

    def __init__(self, in_channels: Union[int, tuple[int, ...]], channels: int, num_classes: int, *,
                 in_index: Union[int, tuple[int, ...]] = 3, ocr_channels: int = 256, dropout: float = 0.1,
                 align_corners: bool = False, input_transform: Optional[str] = None) -> None:
        super().__init__()
        in_channels = total_channels(in_channels, input_transform)
        # The classifier first, then the attention block, then the input bottleneck: the reference's order.
        self._init_classifier(channels, num_classes, dropout)
        self.in_index = in_index
        self.input_transform = input_transform
        self.align_corners = align_corners
        self.object_context_block = ObjectAttentionBlock(channels, ocr_channels)
        self.bottleneck = ConvBNReLU(in_channels, channels, 3, padding=1)

    @classmethod
    def from_config(cls, cfg: OCRHeadConfig, num_classes: int, align_corners: bool) -> "OCRHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, ocr_channels=cfg.ocr_channels,
                   dropout=cfg.dropout, align_corners=align_corners, input_transform=cfg.input_transform)

    def forward(self, features: list[torch.Tensor], prev: torch.Tensor) -> torch.Tensor:
        x = select_inputs(features, self.in_index, self.input_transform, self.align_corners)
        feats = self.bottleneck(x)
        objects = spatial_gather(feats, prev)
        return self.cls_seg(self.object_context_block(feats, objects))
