"""CLIP's text transformer as SAN's class embedder: MMSegmentation 1.2.2's ``CLIPTextEncoder``.

SAN (Xu et al., CVPR 2023) classifies its mask proposals by their cosine similarity to text embeddings of the
class names. The reference builds them once from the dataset's class names: every name is put into each
prompt template of the "vild" set (14 templates, "a photo of a {}." ...), tokenised with CLIP's byte-pair
encoder, run through the text transformer (causal attention, final LayerNorm, the end-of-text token's feature
projected by ``text_projection``), L2-normalised, averaged over the templates and normalised again; a learnt
background embedding is appended, everything normalised once more and scaled by ``exp(logit_scale)``.

The token ids depend on the class names only, never on weights, so sszoo does not tokenise at run time (no
tokenizer, no vocabulary file): ``sszoo/data/clip_prompts.json`` holds the ids that MMSegmentation's own
tokenizer gives for each dataset's prompts (written once by tools/clip_prompt_tokens.py). The transformer runs
on them with the checkpoint's weights. A model built for ``num_classes`` classes embeds the first
``num_classes`` names of the dataset's vocabulary (all of them for the zoo's entries).

The embeddings are computed at the first forward and cached, as the reference does; the cache is recomputed
whenever a text-encoder parameter changes (loading a state dict, ``.to()``, an in-place edit: the parameters'
storage and version counters are its key) or the dtype/device differs.

Attention: ``F.scaled_dot_product_attention`` with the causal mask added (the reference runs
``torch.nn.MultiheadAttention``'s explicit ``softmax(q k^T / sqrt(d) + mask) v``; they differ by rounding only).

Keys and registration order are the reference's: ``positional_embedding``, ``text_projection``, ``logit_scale``,
``bg_embed``, ``token_embedding``, ``transformer.{i}.attentions.0.attn.*`` / ``ffns.0.layers.*`` /
``norms.{0,1}`` (MMCV's ``BaseTransformerLayer``), ``ln_final``.
"""
from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from .backbones.vit import FFN, MultiheadAttention

PROMPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "clip_prompts.json")


@dataclass(frozen=True)
class CLIPTextEncoderConfig:
    """MMSegmentation's ``CLIPTextEncoder`` arguments that change the network; ``dataset`` names the vocabulary
    (a key of sszoo/data/clip_prompts.json) whose prompts are embedded."""

    dataset: str = "coco-stuff164k"
    vocab_size: int = 49408
    context_length: int = 77
    embed_dims: int = 512
    num_layers: int = 12
    num_heads: int = 8
    mlp_ratio: int = 4
    output_dims: int = 512
    cat_bg: bool = True  # append the learnt background embedding (the last class, dropped from the logits)
    norm_eps: float = 1e-5
    kind: str = "clip_text"


@functools.lru_cache(maxsize=None)
def _prompts() -> dict:
    with open(PROMPTS) as f:
        return json.load(f)


def prompt_tokens(dataset: str, num_classes: int, context_length: int = 77) -> tuple[list[str], torch.Tensor]:
    """The first ``num_classes`` class names of ``dataset``'s vocabulary and their prompts' token ids,
    T x num_classes x ``context_length`` (templates first, zero-padded as the reference's tokenizer pads)."""
    vocabularies = _prompts()["vocabularies"]
    if dataset not in vocabularies:
        raise ValueError(f"no CLIP prompts for dataset {dataset!r}; sszoo/data/clip_prompts.json has "
                         f"{sorted(vocabularies)} (tools/clip_prompt_tokens.py writes more)")
    vocab = vocabularies[dataset]
    if not 1 <= num_classes <= len(vocab["classes"]):
        raise ValueError(f"{dataset!r} has {len(vocab['classes'])} class names, cannot embed {num_classes} classes")
    per_class = vocab["tokens"][:num_classes]
    out = torch.zeros(len(per_class[0]), num_classes, context_length, dtype=torch.long)
    for c, templates in enumerate(per_class):
        for t, ids in enumerate(templates):
            if len(ids) > context_length:
                raise ValueError(f"a prompt of {dataset!r} has {len(ids)} tokens, more than {context_length}")
            out[t, c, :len(ids)] = torch.tensor(ids)
    return vocab["classes"][:num_classes], out


class CLIPTransformerLayer(nn.Module):
    """MMCV's ``BaseTransformerLayer`` with operation order (norm, self_attn, norm, ffn): ``x + attn(LN(x))``,
    then ``x + ffn(LN(x))``; tokens batch-first here (the reference runs them sequence-first; the same numbers)."""

    def __init__(self, embed_dims: int, num_heads: int, hidden: int, *, qkv_bias: bool = True,
                 norm_eps: float = 1e-5, act: str = "quick_gelu") -> None:
        super().__init__()
        self.attentions = nn.ModuleList([MultiheadAttention(embed_dims, num_heads, bias=qkv_bias)])
        self.ffns = nn.ModuleList([FFN(embed_dims, hidden, 2, act=act)])
        self.norms = nn.ModuleList([nn.LayerNorm(embed_dims, eps=norm_eps) for _ in range(2)])

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.attentions[0](self.norms[0](x), identity=x, attn_mask=attn_mask)
        return self.ffns[0](self.norms[1](x), identity=x)


class CLIPTextEncoder(nn.Module):
    """The class embeddings ``num_classes (+1 background) x output_dims``, scaled by ``exp(logit_scale)``."""

    def __init__(self, *, dataset: str, num_classes: int, vocab_size: int = 49408, context_length: int = 77,
                 embed_dims: int = 512, num_layers: int = 12, num_heads: int = 8, mlp_ratio: int = 4,
                 output_dims: int = 512, cat_bg: bool = True, norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.dataset, self.context_length = dataset, context_length
        self.class_names, tokens = prompt_tokens(dataset, num_classes, context_length)
        self.register_buffer("tokens", tokens, persistent=False)
        self.token_embedding = nn.Embedding(vocab_size, embed_dims)
        self.positional_embedding = nn.Parameter(torch.zeros(context_length, embed_dims))
        self.text_projection = nn.Parameter(torch.zeros(embed_dims, output_dims))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.transformer = nn.ModuleList(
            CLIPTransformerLayer(embed_dims, num_heads, mlp_ratio * embed_dims, norm_eps=norm_eps)
            for _ in range(num_layers))
        # causal: each token attends to itself and the tokens before it
        self.register_buffer("attn_mask", torch.full((context_length, context_length), float("-inf")).triu_(1),
                             persistent=False)
        self.ln_final = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.bg_embed = nn.Parameter(torch.zeros(1, output_dims)) if cat_bg else None
        for p in self.parameters():  # the reference freezes CLIP's text tower; only bg_embed trains
            p.requires_grad_(False)
        if self.bg_embed is not None:
            self.bg_embed.requires_grad_(True)
        # random initialisation as CLIP's (the entries load all of it from their checkpoints)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=embed_dims ** -0.5)
        if self.bg_embed is not None:
            nn.init.normal_(self.bg_embed, std=output_dims ** -0.5)
        self._cache: tuple | None = None

    @classmethod
    def from_config(cls, cfg: CLIPTextEncoderConfig, num_classes: int) -> "CLIPTextEncoder":
        return cls(dataset=cfg.dataset, num_classes=num_classes, vocab_size=cfg.vocab_size,
                   context_length=cfg.context_length, embed_dims=cfg.embed_dims, num_layers=cfg.num_layers,
                   num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio, output_dims=cfg.output_dims,
                   cat_bg=cfg.cat_bg, norm_eps=cfg.norm_eps)

    def select_classes(self, num_classes: int) -> None:
        """Embed the first ``num_classes`` names of the vocabulary from now on (the weights stay)."""
        self.class_names, tokens = prompt_tokens(self.dataset, num_classes, self.context_length)
        self.tokens = tokens.to(self.tokens.device)
        self._cache = None

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """L2-normalised text features of token-id rows P x context_length (the end-of-text token's)."""
        x = self.token_embedding(tokens) + self.positional_embedding
        mask = self.attn_mask.to(x.dtype)
        for layer in self.transformer:
            x = layer(x, mask)
        x = self.ln_final(x)
        # the end-of-text token has the largest id of each prompt
        x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)] @ self.text_projection
        return F.normalize(x, dim=-1)

    @torch.no_grad()
    def class_embeddings(self) -> torch.Tensor:
        """The prompts' embeddings averaged over the templates and normalised, num_classes x output_dims."""
        per_template = torch.stack([self.encode_text(t) for t in self.tokens])
        mean = per_template.mean(dim=0)
        return mean / mean.norm(dim=-1, keepdim=True)

    def _cache_key(self) -> tuple:
        own = [p for name, p in self.named_parameters() if name != "bg_embed"]
        return tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in own)

    def forward(self) -> torch.Tensor:
        key = self._cache_key()
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self.class_embeddings())
        embeds = self._cache[1]
        if self.bg_embed is not None:
            embeds = F.normalize(torch.cat([embeds, self.bg_embed]), p=2, dim=-1)
        return self.logit_scale.exp() * embeds
