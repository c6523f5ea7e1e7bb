"""SAN's decode head (Xu et al., "Side Adapter Network for Open-Vocabulary Semantic Segmentation", CVPR 2023):
MMSegmentation 1.2.2's ``SideAdapterCLIPHead``.

It reads the normalised image, the CLIP image encoder's outputs (the patch tokens after the pre-norm and after
some of its layers, each a (map, class token) pair) and the text encoder's class embeddings:

* the *side adapter network*, a small ViT on the full-resolution image (a stride-16 patch conv, no padding, a
  40 x 40 position embedding trained at 640 x 640 and resized bicubically to other grids, plus ``num_queries``
  query tokens), fuses the CLIP maps in before its first layers (``fusion_index``: LayerNorm2d, a 1x1 conv,
  bilinear resize to its grid, added to the patch tokens) and re-adds the position embedding after every layer
  but the last;
* its *mask decoder* (three MLPs) turns the queries and patch features of the last layer into mask proposals
  (query . pixel embedding) and per-head attention biases;
* the *recognition* branch runs the remaining CLIP layers (``rec_with_attnbias``) on [query copies of the class
  token, class token, CLIP patch tokens], the queries' attention to the patch tokens biased by the
  max-pooled attention biases (and masked from the other queries and the class token with -100); its
  normalised, projected query tokens against the class embeddings give each proposal's class logits;
* the prediction: proposals resized bilinearly to the input size, ``sigmoid``, weighted by the softmax over the
  classes (the background's dropped) and summed over the proposals.

Attention: ``F.scaled_dot_product_attention`` (with the additive biases as ``attn_mask``) where the reference
runs ``torch.nn.MultiheadAttention``'s explicit softmax; they differ by rounding only. ONNX (opset 17): the
attention biases' adaptive max pooling is exported as separable per-bin maxima (the same values).

Only inference is built: SAN trains with Hungarian matching of the proposals and point-sampled mask losses,
which sszoo's trainer does not have (``loss`` says so).

Keys and registration order are the reference's (``side_adapter_network.{patch_embed.projection, pos_embed,
query_pos_embed, query_embed, encode_layers.{i}, conv_clips.{i}.{0,1.conv}, mask_decoder.*}``,
``rec_with_attnbias.{layers.{i}.*, ln_post, proj}``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..backbones.vit import PatchEmbed, TransformerEncoderLayer
from ..clip_text import CLIPTransformerLayer


@dataclass(frozen=True)
class SideAdapterCLIPHeadConfig:
    """MMSegmentation's ``SideAdapterCLIPHead`` arguments (``san_cfg`` and ``maskgen_cfg``) that change the
    network at inference."""

    clip_channels: int = 768
    embed_dims: int = 240
    patch_size: int = 16
    patch_bias: bool = True
    num_queries: int = 100
    train_size: tuple[int, int] = (640, 640)  # the side adapter's position embedding has this input's grid
    encode_layers: int = 8
    encode_heads: int = 6
    encode_mlp_ratio: int = 4
    fusion_index: tuple[int, ...] = (0, 1, 2, 3)
    encode_norm_eps: float = 1e-6
    decoder_heads: int = 12
    decoder_layers: int = 1
    decoder_embed_channels: int = 256
    decoder_mlp_channels: int = 256
    decoder_num_mlp: int = 3
    rescale_attn_bias: bool = True
    deep_supervision_idxs: tuple[int, ...] = (7,)  # extra proposals for the training loss only
    rec_layers: int = 3
    rec_embed_dims: int = 768
    rec_heads: int = 12
    rec_mlp_ratio: int = 4
    rec_qkv_bias: bool = True
    rec_out_dims: int = 512
    rec_final_norm: bool = True
    rec_norm_eps: float = 1e-5
    kind: str = "san"


class MLP(nn.Module):
    """``num_layers`` affine layers (Linear, or 1x1 convs for maps) with ReLU between them."""

    def __init__(self, cin: int, hidden: int, cout: int, num_layers: int, conv: bool = False) -> None:
        super().__init__()
        dims = [cin] + [hidden] * (num_layers - 1) + [cout]
        make = (lambda i, o: nn.Conv2d(i, o, 1)) if conv else nn.Linear
        self.layers = nn.ModuleList(make(i, o) for i, o in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an N x C x H x W map (mean and biased variance, as the reference)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class _Conv(nn.Module):
    """A biased 1x1 conv under the key ``conv`` (MMCV's ConvModule without norm and activation)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class MLPMaskDecoder(nn.Module):
    """Mask proposals (query . pixel embedding) and attention biases (query . per-head pixel embedding)."""

    def __init__(self, in_channels: int, heads: int, layers: int, embed_channels: int, mlp_channels: int,
                 num_mlp: int, rescale: bool) -> None:
        super().__init__()
        self.heads, self.layers = heads, layers
        self.query_mlp = MLP(in_channels, mlp_channels, embed_channels, num_mlp)
        self.pix_mlp = MLP(in_channels, mlp_channels, embed_channels, num_mlp, conv=True)
        self.attn_mlp = MLP(in_channels, mlp_channels, embed_channels * heads * layers, num_mlp, conv=True)
        self.bias_scaling = nn.Linear(1, 1) if rescale else nn.Identity()

    def forward(self, query: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        query = self.query_mlp(query)
        pix = self.pix_mlp(x)
        b, c, h, w = pix.shape
        masks = torch.einsum("bqc,bchw->bqhw", query, pix)
        attn = self.attn_mlp(x).reshape(b, self.layers, self.heads, c, h, w)
        bias = torch.einsum("bqc,blnchw->blnqhw", query, attn)
        bias = self.bias_scaling(bias[..., None]).squeeze(-1)
        return masks, [t.squeeze(1) for t in bias.chunk(self.layers, dim=1)]


class SideAdapterNetwork(nn.Module):
    """The side ViT: mask proposals and attention biases from the image and the fused CLIP maps."""

    def __init__(self, cfg: SideAdapterCLIPHeadConfig) -> None:
        super().__init__()
        d = cfg.embed_dims
        self.patch_embed = PatchEmbed(3, d, cfg.patch_size, pad="none", bias=cfg.patch_bias)
        self.pos_grid = (cfg.train_size[0] // cfg.patch_size, cfg.train_size[1] // cfg.patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.pos_grid[0] * self.pos_grid[1], d))
        self.query_pos_embed = nn.Parameter(torch.zeros(1, cfg.num_queries, d))
        self.query_embed = nn.Parameter(torch.zeros(1, cfg.num_queries, d))
        self.encode_layers = nn.ModuleList(
            TransformerEncoderLayer(d, cfg.encode_heads, cfg.encode_mlp_ratio * d, norm_eps=cfg.encode_norm_eps)
            for _ in range(cfg.encode_layers))
        self.conv_clips = nn.ModuleList(
            nn.Sequential(LayerNorm2d(cfg.clip_channels), _Conv(cfg.clip_channels, d)) for _ in cfg.fusion_index)
        self.fusion_index = tuple(cfg.fusion_index)
        for p in (self.pos_embed, self.query_pos_embed, self.query_embed):  # as the reference's init_weights
            nn.init.normal_(p, std=0.02)
        self.mask_decoder = MLPMaskDecoder(d, cfg.decoder_heads, cfg.decoder_layers, cfg.decoder_embed_channels,
                                           cfg.decoder_mlp_channels, cfg.decoder_num_mlp, cfg.rescale_attn_bias)

    def _fuse(self, i: int, x: torch.Tensor, clip_map: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Add CLIP map ``i`` (normed, 1x1 conv, resized to the side grid) to the patch tokens."""
        n = grid[0] * grid[1]
        fused = F.interpolate(self.conv_clips[i](clip_map.contiguous()), size=grid, mode="bilinear",
                              align_corners=False)
        fused = fused.permute(0, 2, 3, 1).reshape(x.shape[0], n, x.shape[2])
        return torch.cat([x[:, :-n], x[:, -n:] + fused], dim=1)

    def forward(self, image: torch.Tensor, clip_maps: list[torch.Tensor],
                supervise: tuple[int, ...] = ()) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        """Mask proposals and attention biases after the last layer (and after the layers in ``supervise``)."""
        if len(clip_maps) != len(self.fusion_index):
            raise ValueError(f"expected {len(self.fusion_index)} CLIP maps to fuse, got {len(clip_maps)}")
        x, grid = self.patch_embed(image)
        pos = self.pos_embed
        if pos.shape[1] != x.shape[1]:  # resized only when the token count differs, as the reference
            pos = pos.reshape(1, *self.pos_grid, -1).permute(0, 3, 1, 2)
            pos = F.interpolate(pos, size=grid, mode="bicubic", align_corners=False).flatten(2).permute(0, 2, 1)
        pos = torch.cat([self.query_pos_embed.expand(pos.shape[0], -1, -1), pos], dim=1)
        x = torch.cat([self.query_embed.expand(x.shape[0], -1, -1), x], dim=1) + pos
        n = grid[0] * grid[1]
        fused = 0
        if self.fusion_index[0] == 0:
            x = self._fuse(0, x, clip_maps[0], grid)
            fused = 1
        outs = []
        for index, layer in enumerate(self.encode_layers, start=1):
            x = layer(x)
            # the reference's condition: fuse after layer ``index`` while it is below the number of CLIP maps
            if index < len(self.fusion_index) and index == self.fusion_index[fused]:
                x = self._fuse(fused, x, clip_maps[fused], grid)
                fused += 1
            if index in supervise or index == len(self.encode_layers):
                feat = x[:, -n:].permute(0, 2, 1).reshape(x.shape[0], x.shape[-1], *grid)
                outs.append((x[:, :-n], feat))
            if index < len(self.encode_layers):
                x = x + pos
        decoded = [self.mask_decoder(query, feat) for query, feat in outs]
        return [m for m, _ in decoded], [b for _, b in decoded]


def adaptive_max_pool2d(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.adaptive_max_pool2d`` as two separable passes over the bins (rows of columns' maxima; bin ``i`` of
    ``n`` over ``L`` spans ``floor(i L / n)`` to ``ceil((i + 1) L / n)``): the same values (a max is exact), and
    ONNX-exportable, which the ATen op is not at input sizes the exporter cannot see."""
    def bins(t: torch.Tensor, dim: int, n: int) -> torch.Tensor:
        length = t.shape[dim]
        return torch.cat([t.narrow(dim, i * length // n, -(-(i + 1) * length // n) - i * length // n)
                          .amax(dim=dim, keepdim=True) for i in range(n)], dim=dim)
    return bins(bins(x, 3, size[1]), 2, size[0])


class RecWithAttnbias(nn.Module):
    """The last CLIP layers classify the proposals: query tokens (copies of the class token) whose attention
    to the patch tokens is biased by the side adapter; their normalised projections are the mask embeddings."""

    def __init__(self, cfg: SideAdapterCLIPHeadConfig) -> None:
        super().__init__()
        d = cfg.rec_embed_dims
        self.num_queries = cfg.num_queries
        self.num_heads = cfg.rec_heads
        self.layers = nn.ModuleList(
            CLIPTransformerLayer(d, cfg.rec_heads, cfg.rec_mlp_ratio * d, qkv_bias=cfg.rec_qkv_bias)
            for _ in range(cfg.rec_layers))
        self.ln_post = nn.LayerNorm(d, eps=cfg.rec_norm_eps)
        self.proj = nn.Linear(d, cfg.rec_out_dims, bias=False)
        self.final_norm = cfg.rec_final_norm

    def attention_masks(self, biases: list[torch.Tensor], grid: tuple[int, int]) -> list[torch.Tensor]:
        """One additive mask N x heads x (Q+1+L) x (Q+1+L) per layer: queries see themselves (0), not the
        other queries nor the class token (-100), the patch tokens with the side adapter's bias max-pooled to
        the CLIP grid; the class and patch tokens see each other freely and no query."""
        masks = []
        q = self.num_queries
        for bias in biases:
            n, heads, num_q, h, w = bias.shape
            if heads not in (1, self.num_heads):
                raise ValueError(f"attention biases for {heads} heads, the CLIP layers have {self.num_heads}")
            pool = adaptive_max_pool2d if torch.onnx.is_in_onnx_export() else F.adaptive_max_pool2d
            bias = pool(bias.reshape(n, heads * num_q, h, w), grid)
            bias = bias.reshape(n, heads, num_q, grid[0] * grid[1]).expand(n, self.num_heads, -1, -1)
            size = q + 1 + grid[0] * grid[1]
            base = bias.new_zeros(size, size)
            base[:, :q] = -100
            base[torch.arange(q), torch.arange(q)] = 0
            base[:q, q] = -100
            mask = base.expand(n, self.num_heads, size, size).clone()
            mask[..., :q, q + 1:] = bias
            masks.append(mask)
        return masks * len(self.layers) if len(masks) == 1 else masks

    def forward(self, biases: list[torch.Tensor], clip_out: list[torch.Tensor]) -> torch.Tensor:
        fmap, cls = clip_out
        b, c, h, w = fmap.shape
        x = torch.cat([cls[:, None].expand(b, self.num_queries + 1, c), fmap.reshape(b, c, h * w).transpose(1, 2)],
                      dim=1)
        for layer, mask in zip(self.layers, self.attention_masks(biases, (h, w))):
            x = layer(x, mask)
        out = self.proj(self.ln_post(x[:, :self.num_queries]))
        return F.normalize(out, dim=-1) if self.final_norm else out


class SideAdapterCLIPHead(nn.Module):
    """SAN's head: ``predict(image, clip_outputs, class_embeds)`` gives N x K x H x W at the image's size."""

    def __init__(self, cfg: SideAdapterCLIPHeadConfig, num_classes: int, align_corners: bool = False) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.align_corners = align_corners
        self.side_adapter_network = SideAdapterNetwork(cfg)
        self.rec_with_attnbias = RecWithAttnbias(cfg)
        for p in self.rec_with_attnbias.parameters():  # the reference freezes the CLIP layers it reuses
            p.requires_grad_(False)

    @classmethod
    def from_config(cls, cfg: SideAdapterCLIPHeadConfig, num_classes: int,
                    align_corners: bool = False) -> "SideAdapterCLIPHead":
        return cls(cfg, num_classes, align_corners)

    def forward(self, image: torch.Tensor, clip_outputs: list, class_embeds: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The last layer's mask proposals N x Q x h x w and their class logits N x Q x (K + 1)."""
        masks, biases = self.side_adapter_network(image, [out[0] for out in clip_outputs])
        embeds = self.rec_with_attnbias(biases[-1], clip_outputs[-1])
        return masks[-1], torch.einsum("bqc,nc->bqn", embeds, class_embeds)

    def predict(self, image: torch.Tensor, clip_outputs: list, class_embeds: torch.Tensor) -> torch.Tensor:
        """Per-class scores at the image's size: sum over proposals of sigmoid(mask) x softmax(class)."""
        masks, logits = self(image, clip_outputs, class_embeds)
        masks = F.interpolate(masks, size=image.shape[2:], mode="bilinear", align_corners=False).sigmoid()
        probs = F.softmax(logits, dim=-1)[..., :-1]
        return torch.einsum("bqc,bqhw->bchw", probs, masks)

    def loss(self, *args, **kwargs):
        raise NotImplementedError("SAN trains with Hungarian-matched mask losses, which sszoo does not build; "
                                  "its entries are for inference")

    def reset_classifier(self, num_classes: int) -> None:
        """Nothing to replace: the classes are the text encoder's (MultimodalSegmentor.reset_classifier)."""
        self.num_classes = num_classes
