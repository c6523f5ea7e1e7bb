"""Mask2Former's head (Cheng et al., "Masked-attention Mask Transformer for Universal Image Segmentation",
CVPR 2022), as MMSegmentation 1.2.2 builds it (its ``Mask2FormerHead`` wraps MMDetection 3.3.0's).

- Pixel decoder (MMDetection's ``MSDeformAttnPixelDecoder``): the ``num_transformer_feat_level`` coarsest
  backbone maps, each projected by a 1x1 conv + GroupNorm (``input_convs``, coarsest first), go through
  ``encoder_layers`` deformable-attention encoder layers as one token sequence (sine position encoding plus a
  learned ``level_encoding``; reference points at the pixel centres). The finer maps then join FPN-like: a
  1x1 ``lateral_conv`` + GN plus the upsampled coarser output, a 3x3 ``output_conv`` + GN + ReLU. The finest
  output gives ``mask_feature`` (1x1 conv); the first ``num_outs`` outputs feed the transformer decoder.
- Transformer decoder: ``num_queries`` learned queries (``query_feat``, with positions ``query_embed``), per
  layer masked cross-attention to one level (round robin, coarsest first, plus ``level_embed`` and its sine
  positions), self-attention, FFN, each followed by a LayerNorm (post-norm). After the initial queries and
  after every layer the shared ``post_norm`` gives class logits (``cls_embed``, K + 1 with "no object") and
  mask logits (``mask_embed`` MLP dotted with ``mask_feature``). The next layer's attention mask is the mask
  logits resized to that level's size and thresholded (``sigmoid < 0.5`` masks a key); a query whose keys are
  all masked attends to all of them instead, as the reference does.
- Semantic inference (the reference's ``predict``): the last layer's masks are resized to the input's size,
  then per class ``sum_q softmax(cls)[q, c] * sigmoid(mask)[q]`` without the "no object" class.

Numerics follow the reference where it leaves float64: the sine position encodings and the pixel decoder's
reference points are computed in float32 whatever the model's dtype (as MMDetection does), then promoted.
Attention is the explicit ``softmax(q k^T * sqrt(1/d)) v`` of ``torch.nn.MultiheadAttention`` with
``need_weights`` (what the reference runs; the float64 goldens then match bit for bit), not
``F.scaled_dot_product_attention``. The thresholded attention masks make the float32 forward sensitive: a mask
logit within float32 rounding of 0 can flip one key, which moves the output by about 1% of its scale. Shapes
are taken from the maps without ``int()`` (position encodings and reference points from cumulative sums of
ones, exact), so the head exports to ONNX (opset 17: GridSample) and ``torch.export`` with symbolic H and W.

Keys: ``pixel_decoder.{input_convs,encoder.layers,level_encoding,lateral_convs,output_convs,mask_feature}``,
``transformer_decoder.{layers.{i}.{self_attn,cross_attn}.attn.*,ffn,norms},post_norm}``, ``query_embed``,
``query_feat``, ``level_embed``, ``cls_embed``, ``mask_embed``; registered in the reference's order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import ConvGN, InProjections
from ..mask_losses import MaskClassificationLoss, mask_classification_losses
from ._msda import MultiScaleDeformableAttention


@dataclass(frozen=True)
class Mask2FormerHeadConfig:
    in_channels: tuple[int, ...] = (256, 512, 1024, 2048)
    strides: tuple[int, ...] = (4, 8, 16, 32)
    feat_channels: int = 256
    out_channels: int = 256  # mask_feature's channels (the mask embedding's size)
    num_queries: int = 100
    num_transformer_feat_level: int = 3
    enforce_decoder_input_project: bool = False
    num_groups: int = 32  # the pixel decoder's GroupNorms
    pos_num_feats: int = 128  # sine position encoding: 2 x this many channels
    encoder_layers: int = 6
    encoder_heads: int = 8
    encoder_points: int = 4
    encoder_ffn_channels: int = 1024
    num_outs: int = 3
    decoder_layers: int = 9
    decoder_heads: int = 8
    decoder_ffn_channels: int = 2048
    # training only (the matching and losses): weights of the class, mask (BCE) and dice terms, the
    # "no object" class weight, and the point sampling of the mask losses
    cls_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    no_object_weight: float = 0.1
    num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    kind: str = "mask2former"


def sine_position_encoding(like: torch.Tensor, num_feats: int, temperature: float = 10000, scale: float = 2 * math.pi,
                           eps: float = 1e-6) -> torch.Tensor:
    """MMDetection's normalised ``SinePositionalEncoding`` of an unpadded map shaped as ``like`` (N x C x H x W):
    float32 N x 2F x H x W, the y channels then the x channels, each interleaving sin and cos. Computed in float32
    with the reference's operations: cumulative sums of an all-ones "not padded" mask (which also keeps H and W
    symbolic in an exported graph)."""
    not_mask = torch.ones_like(like[:, 0], dtype=torch.float32)
    y = not_mask.cumsum(1, dtype=torch.float32)
    x = not_mask.cumsum(2, dtype=torch.float32)
    y = y / (y[:, -1:, :] + eps) * scale
    x = x / (x[:, :, -1:] + eps) * scale
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=like.device)
    dim_t = temperature ** (2 * (dim_t // 2) / num_feats)
    pos_x = x[:, :, :, None] / dim_t
    pos_y = y[:, :, :, None] / dim_t
    pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


def _promoted_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a + b`` in the promoted dtype, cast explicitly (the float32 encodings meet float64 or float16 tensors)."""
    dtype = torch.promote_types(a.dtype, b.dtype)
    return a.to(dtype) + b.to(dtype)


class FFN(nn.Module):
    """MMCV's ``FFN`` with ReLU and its identity shortcut: ``x + layers(x)`` (``layers.0.0`` and ``layers.1``)."""

    def __init__(self, embed_dims: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        first = nn.Sequential(nn.Linear(embed_dims, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.layers = nn.Sequential(first, nn.Linear(hidden, embed_dims), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class _Attention(InProjections):
    """``torch.nn.MultiheadAttention``'s parameters and its ``need_weights`` forward (batch first; separate
    q, k and v projections, a boolean mask where True hides a key; ``attn_drop`` on the attention weights)."""

    def __init__(self, embed_dims: int, num_heads: int, attn_drop: float = 0.0) -> None:
        if embed_dims % num_heads:
            raise ValueError(f"embed_dims {embed_dims} is not divisible by num_heads {num_heads}")
        super().__init__(embed_dims, bias=True)
        self.attn_drop = attn_drop
        self.num_heads = num_heads
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``q`` N x L x C, ``k``/``v`` N x S x C, ``mask`` (N * heads) x L x S (batch-major, as the reference)."""
        n, lq, c = q.shape
        d = c // self.num_heads
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)

        def heads(t: torch.Tensor) -> torch.Tensor:  # N x L x C -> (N * heads) x L x d
            return t.view(n, -1, self.num_heads, d).transpose(1, 2).reshape(n * self.num_heads, -1, d)

        q, k, v = heads(F.linear(q, w_q, b_q)), heads(F.linear(k, w_k, b_k)), heads(F.linear(v, w_v, b_v))
        scores = torch.bmm(q * math.sqrt(1.0 / float(d)), k.transpose(-2, -1))
        if mask is not None:
            scores = scores.masked_fill(mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        if self.attn_drop > 0.0 and self.training:
            weights = F.dropout(weights, p=self.attn_drop)
        out = torch.bmm(weights, v)
        out = out.view(n, self.num_heads, lq, d).transpose(1, 2).reshape(n, lq, c)
        return self.out_proj(out)


class MultiheadAttention(nn.Module):
    """MMCV's ``MultiheadAttention`` (key ``attn.*``): positions added to query and key, identity shortcut
    (``proj_drop`` on the attention's output)."""

    def __init__(self, embed_dims: int, num_heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.attn = _Attention(embed_dims, num_heads, attn_drop)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, query_pos: torch.Tensor,
                key_pos: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        return query + self.proj_drop(self.attn(query + query_pos, key + key_pos, value, mask))


class DeformableEncoderLayer(nn.Module):
    """Deformable self-attention over all levels' tokens, LayerNorm, FFN, LayerNorm (``norms.0/1``)."""

    def __init__(self, embed_dims: int, num_heads: int, num_levels: int, num_points: int, ffn_channels: int) -> None:
        super().__init__()
        self.self_attn = MultiScaleDeformableAttention(embed_dims, num_heads, num_levels, num_points)
        self.ffn = FFN(embed_dims, ffn_channels)
        self.norms = nn.ModuleList(nn.LayerNorm(embed_dims) for _ in range(2))

    def forward(self, x: torch.Tensor, pos: torch.Tensor, reference_points: torch.Tensor,
                spatial_shapes: Sequence[tuple[int, int]], normalizer: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = self.norms[0](self.self_attn(x, x, pos, reference_points, spatial_shapes, normalizer))
        return self.norms[1](self.ffn(x))


class _Encoder(nn.Module):
    """Holds ``layers`` (the key ``pixel_decoder.encoder.layers.{i}``)."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)


def reference_points(like: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """MMDetection's pixel-centre points of a level shaped as ``like`` (N x C x H x W), normalised to [0, 1]:
    float32 (H * W) x 2 as (x, y), computed as the reference does (centres in input pixels divided by the map's
    extent in input pixels; the pixel indices come from cumulative sums, exact, so that H and W stay symbolic in
    an exported graph). Also returns the level's (W, H) as float32, the deformable offsets' normaliser."""
    ones = torch.ones_like(like[0, 0], dtype=torch.float32)  # H x W
    xx = (ones.cumsum(1) - 0.5) * stride  # (x + 0.5) * stride
    yy = (ones.cumsum(0) - 0.5) * stride
    wh = torch.stack([ones.sum(1)[0], ones.sum(0)[0]])  # (W, H)
    points = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)
    return points / (wh * stride), wh


class MSDeformAttnPixelDecoder(nn.Module):
    """MMDetection's ``MSDeformAttnPixelDecoder``: returns (``mask_feature``, the first ``num_outs`` maps)."""

    def __init__(self, in_channels: Sequence[int], strides: Sequence[int], feat_channels: int, out_channels: int, *,
                 num_levels: int = 3, num_outs: int = 3, num_groups: int = 32, pos_num_feats: int = 128,
                 num_layers: int = 6, num_heads: int = 8, num_points: int = 4, ffn_channels: int = 1024) -> None:
        super().__init__()
        n_in = len(in_channels)
        if not 1 <= num_levels <= n_in or len(strides) != n_in:
            raise ValueError(f"need 1 <= num_levels ({num_levels}) <= len(in_channels) ({n_in}) = len(strides)")
        self.strides, self.num_levels, self.num_outs = tuple(strides), num_levels, num_outs
        self.pos_num_feats = pos_num_feats
        self.input_convs = nn.ModuleList(ConvGN(in_channels[i], feat_channels, 1, num_groups, bias=True, relu=False)
                                         for i in range(n_in - 1, n_in - num_levels - 1, -1))
        self.encoder = _Encoder([DeformableEncoderLayer(feat_channels, num_heads, num_levels, num_points, ffn_channels)
                                 for _ in range(num_layers)])
        self.level_encoding = nn.Embedding(num_levels, feat_channels)
        # built from the finest remaining level down to 0, but indexed by level in forward (as the reference)
        rest = range(n_in - num_levels - 1, -1, -1)
        self.lateral_convs = nn.ModuleList(ConvGN(in_channels[i], feat_channels, 1, num_groups, bias=False, relu=False)
                                           for i in rest)
        self.output_convs = nn.ModuleList(ConvGN(feat_channels, feat_channels, 3, num_groups, bias=False, relu=True)
                                          for _ in rest)
        self.mask_feature = nn.Conv2d(feat_channels, out_channels, 1)

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        n = feats[0].shape[0]
        n_in = len(feats)
        tokens, pos, points, sizes, shapes = [], [], [], [], []
        for i in range(self.num_levels):
            lvl = n_in - i - 1
            feat = feats[lvl]
            x = self.input_convs[i](feat)
            p = _promoted_sum(self.level_encoding.weight[i].view(1, -1, 1, 1),
                              sine_position_encoding(feat, self.pos_num_feats))
            tokens.append(x.flatten(2).permute(0, 2, 1))
            pos.append(p.flatten(2).permute(0, 2, 1))
            pts, wh = reference_points(feat, self.strides[lvl])
            points.append(pts)
            sizes.append(wh)
            shapes.append((feat.shape[2], feat.shape[3]))  # not int(): symbolic when exported
        x = torch.cat(tokens, dim=1)
        pos = torch.cat(pos, dim=1)
        ref = torch.cat(points, dim=0)[None, :, None].repeat(n, 1, self.num_levels, 1)
        normalizer = torch.stack(sizes)
        for layer in self.encoder.layers:
            x = layer(x, pos, ref, shapes, normalizer)
        memory = x.permute(0, 2, 1)
        outs = [m.reshape(n, -1, h, w) for m, (h, w) in zip(memory.split([h * w for h, w in shapes], dim=-1), shapes)]
        for i in range(n_in - self.num_levels - 1, -1, -1):
            cur = self.lateral_convs[i](feats[i])
            y = cur + F.interpolate(outs[-1], size=cur.shape[-2:], mode="bilinear", align_corners=False)
            outs.append(self.output_convs[i](y))
        return self.mask_feature(outs[-1]), outs[:self.num_outs]


class Mask2FormerDecoderLayer(nn.Module):
    """Masked cross-attention, self-attention, FFN, each followed by a LayerNorm. The parameters register as
    the reference's (``self_attn`` before ``cross_attn``), which runs them the other way round."""

    def __init__(self, embed_dims: int, num_heads: int, ffn_channels: int) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(embed_dims, num_heads)
        self.cross_attn = MultiheadAttention(embed_dims, num_heads)
        self.ffn = FFN(embed_dims, ffn_channels)
        self.norms = nn.ModuleList(nn.LayerNorm(embed_dims) for _ in range(3))

    def forward(self, query: torch.Tensor, memory: torch.Tensor, query_pos: torch.Tensor, memory_pos: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        query = self.norms[0](self.cross_attn(query, memory, memory, query_pos, memory_pos, mask))
        query = self.norms[1](self.self_attn(query, query, query, query_pos, query_pos))
        return self.norms[2](self.ffn(query))


class Mask2FormerTransformerDecoder(nn.Module):
    """``layers`` and the ``post_norm`` shared by every prediction."""

    def __init__(self, num_layers: int, embed_dims: int, num_heads: int, ffn_channels: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Mask2FormerDecoderLayer(embed_dims, num_heads, ffn_channels)
                                    for _ in range(num_layers))
        self.post_norm = nn.LayerNorm(embed_dims)


class MaskClassificationHead(nn.Module):
    """What MaskFormer and Mask2Former share once :meth:`forward` has given every decoder layer's class logits
    (N x Q x (K + 1), the last "no object") and mask logits (N x Q x h x w): the semantic prediction, the
    training loss (from the subclass's :meth:`loss_settings`) and the classifier reset."""

    def predict(self, features: list[torch.Tensor], *, img_size: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Per-class scores N x K x H x W at ``img_size`` (the network input's H x W, which the segmentor
        passes): the last layer's masks resized there, sigmoid, weighted by the class probabilities."""
        if img_size is None:
            raise TypeError(f"{type(self).__name__}.predict needs img_size, the input's (H, W): the masks are "
                            "resized to it before the sigmoid")
        cls_preds, mask_preds = self(features)
        masks = F.interpolate(mask_preds[-1], size=tuple(img_size), mode="bilinear", align_corners=False)
        scores = F.softmax(cls_preds[-1], dim=-1)[..., :-1]
        return torch.einsum("bqc,bqhw->bchw", scores, masks.sigmoid())

    def loss_settings(self) -> MaskClassificationLoss:
        raise NotImplementedError

    def loss(self, output, label: torch.Tensor, *, ignore_index: int = 255) -> dict[str, torch.Tensor]:
        """The reference's ``loss_by_feat`` terms (``loss_cls``, ``loss_mask``, ``loss_dice`` of the last layer,
        ``d{i}.loss_*`` of the earlier ones), each already weighted, for :meth:`forward`'s output and B x H x W
        label maps (one target mask per class present, ``ignore_index`` excluded). Draws the reference's random
        points from torch's global generator (:func:`sszoo.models.mask_losses.mask_classification_losses`)."""
        cls_preds, mask_preds = output
        return mask_classification_losses(cls_preds, mask_preds, label, ignore_index, self.loss_settings())

    def reset_classifier(self, num_classes: int) -> None:
        """Replace ``cls_embed`` with a freshly initialised one of ``num_classes`` + 1 ("no object") outputs."""
        old = self.cls_embed
        self.cls_embed = nn.Linear(old.in_features, num_classes + 1).to(old.weight.device, old.weight.dtype)
        self.num_classes = num_classes


class Mask2FormerHead(MaskClassificationHead):
    """Pixel decoder + masked-attention transformer decoder; :meth:`forward` gives every prediction (for the
    losses), :meth:`predict` the per-class semantic map at the input's size."""

    align_corners = False  # the reference's predict resizes the masks with align_corners=False whatever the config

    def __init__(self, cfg: Mask2FormerHeadConfig, num_classes: int) -> None:
        super().__init__()
        if len(cfg.in_channels) != len(cfg.strides):
            raise ValueError("in_channels and strides must have the same length")
        c = cfg.feat_channels
        self.cfg = cfg
        self.num_classes = num_classes
        self.num_levels = cfg.num_transformer_feat_level
        self.num_heads = cfg.decoder_heads
        self.pixel_decoder = MSDeformAttnPixelDecoder(
            cfg.in_channels, cfg.strides, c, cfg.out_channels, num_levels=self.num_levels, num_outs=cfg.num_outs,
            num_groups=cfg.num_groups, pos_num_feats=cfg.pos_num_feats, num_layers=cfg.encoder_layers,
            num_heads=cfg.encoder_heads, num_points=cfg.encoder_points, ffn_channels=cfg.encoder_ffn_channels)
        # the decoder works in feat_channels (MMDetection's embed_dims of the decoder layers equal it in every config)
        self.transformer_decoder = Mask2FormerTransformerDecoder(cfg.decoder_layers, c, cfg.decoder_heads,
                                                                 cfg.decoder_ffn_channels)
        self.decoder_input_projs = nn.ModuleList(
            nn.Conv2d(c, c, 1) if cfg.enforce_decoder_input_project else nn.Identity() for _ in range(self.num_levels))
        self.query_embed = nn.Embedding(cfg.num_queries, c)
        self.query_feat = nn.Embedding(cfg.num_queries, c)
        self.level_embed = nn.Embedding(self.num_levels, c)
        self.cls_embed = nn.Linear(c, num_classes + 1)
        self.mask_embed = nn.Sequential(nn.Linear(c, c), nn.ReLU(inplace=True), nn.Linear(c, c), nn.ReLU(inplace=True),
                                        nn.Linear(c, cfg.out_channels))

    @classmethod
    def from_config(cls, cfg: Mask2FormerHeadConfig, num_classes: int, align_corners: bool) -> "Mask2FormerHead":
        return cls(cfg, num_classes)

    def _predict_masks(self, query: torch.Tensor, mask_feature: torch.Tensor,
                       attn_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Class logits, mask logits and the next cross-attention's mask (True: hidden) from the queries."""
        query = self.transformer_decoder.post_norm(query)
        cls_pred = self.cls_embed(query)
        mask_pred = torch.einsum("bqc,bchw->bqhw", self.mask_embed(query), mask_feature)
        attn = F.interpolate(mask_pred, attn_size, mode="bilinear", align_corners=False)
        attn = attn.flatten(2).unsqueeze(1).repeat((1, self.num_heads, 1, 1)).flatten(0, 1)
        return cls_pred, mask_pred, (attn.sigmoid() < 0.5).detach()

    def forward(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Class logits (N x Q x (K + 1)) and mask logits (N x Q x H/4 x W/4) of the initial queries and of
        every decoder layer."""
        n = features[0].shape[0]
        mask_feature, maps = self.pixel_decoder(features)
        memories, memory_pos, sizes = [], [], []
        for i in range(self.num_levels):
            memories.append(self.decoder_input_projs[i](maps[i]).flatten(2).permute(0, 2, 1)
                            + self.level_embed.weight[i].view(1, 1, -1))
            pos = sine_position_encoding(maps[i], self.cfg.pos_num_feats)
            memory_pos.append(pos.to(torch.promote_types(pos.dtype, maps[i].dtype)).flatten(2).permute(0, 2, 1))
            sizes.append(maps[i].shape[-2:])  # not int(): symbolic when exported
        query = self.query_feat.weight.unsqueeze(0).repeat((n, 1, 1))
        query_pos = self.query_embed.weight.unsqueeze(0).repeat((n, 1, 1))
        cls_pred, mask_pred, attn_mask = self._predict_masks(query, mask_feature, sizes[0])
        cls_preds, mask_preds = [cls_pred], [mask_pred]
        for i, layer in enumerate(self.transformer_decoder.layers):
            lvl = i % self.num_levels
            # a query that would see no key at all sees every key instead
            attn_mask = attn_mask & (attn_mask.sum(-1) != attn_mask.shape[-1]).unsqueeze(-1)
            query = layer(query, memories[lvl], query_pos, memory_pos[lvl], attn_mask)
            cls_pred, mask_pred, attn_mask = self._predict_masks(query, mask_feature, sizes[(i + 1) % self.num_levels])
            cls_preds.append(cls_pred)
            mask_preds.append(mask_pred)
        return cls_preds, mask_preds

    def loss_settings(self) -> MaskClassificationLoss:
        """The matcher and loss settings of :mod:`sszoo.models.mask_losses` for this head. The matching cost
        weights are the loss weights (ClassificationCost 2, CrossEntropyLossCost 5, DiceCost 5 with eps 1 in
        every MMSegmentation config; tools/mmseg_arch.py refuses others)."""
        c = self.cfg
        return MaskClassificationLoss(kind="mask2former", cls_weight=c.cls_weight, mask_weight=c.mask_weight,
                                      dice_weight=c.dice_weight, no_object_weight=c.no_object_weight,
                                      cost_cls=c.cls_weight, cost_mask=c.mask_weight, cost_dice=c.dice_weight,
                                      num_points=c.num_points, oversample_ratio=c.oversample_ratio,
                                      importance_sample_ratio=c.importance_sample_ratio)
