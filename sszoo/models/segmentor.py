"""The segmentor: a backbone, an optional neck, decode head(s) and optional auxiliary head(s).

``Segmentor.forward`` takes a normalised float tensor N x 3 x H x W (RGB, the entry's mean/std
applied) and returns float32 logits N x K x H x W at the input's size, resized bilinearly with the
entry's ``align_corners`` exactly as the reference implementation does.

The decode head may be a *cascade* (a tuple of head configs): head ``i > 0`` takes the features and
head ``i - 1``'s logits, and the last head's logits are the prediction (OCRNet, PointRend). Several
auxiliary heads may be given; they only feed the training loss. State-dict keys follow MMSegmentation:
``decode_head.*`` for one head, ``decode_head.{i}.*`` for a cascade, the same for ``auxiliary_head``.

A config with a ``text_encoder`` builds :class:`MultimodalSegmentor` (MMSegmentation's
``MultimodalEncoderDecoder``, SAN): the backbone is a CLIP image encoder (key ``image_encoder``) that sees the
input resized by ``encoder_resolution``, the text encoder gives the class embeddings, and the decode head reads
the input, the image encoder's outputs and the class embeddings.
"""
from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, replace
from typing import Any, NamedTuple, Optional

import torch
from torch import nn

import torch.nn.functional as F

from .builder import (BACKBONES, HEADS, NECKS, TEXT_ENCODERS, build_backbone, build_head, build_neck,
                      build_text_encoder, config_from_dict)
from .layers import resize


@dataclass(frozen=True)
class ArchConfig:
    """Everything needed to build one network of the zoo.

    ``decode_head`` is one head config or a cascade (a tuple of them); ``auxiliary_head`` is None, one head
    config or a tuple of them. ``text_encoder`` (with ``encoder_resolution``, the image encoder's input scale)
    makes it a multimodal network (SAN); the two are left out of :meth:`to_dict` when unset.
    """

    backbone: Any
    decode_head: Any
    auxiliary_head: Any = None
    num_classes: int = 19
    align_corners: bool = False
    neck: Any = None
    text_encoder: Any = None
    encoder_resolution: Optional[float] = None

    @property
    def decode_heads(self) -> tuple:
        return self.decode_head if isinstance(self.decode_head, tuple) else (self.decode_head,)

    @property
    def auxiliary_heads(self) -> tuple:
        if self.auxiliary_head is None:
            return ()
        return self.auxiliary_head if isinstance(self.auxiliary_head, tuple) else (self.auxiliary_head,)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("text_encoder", "encoder_resolution"):
            if d[k] is None:
                del d[k]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArchConfig":
        """Inverse of :meth:`to_dict` (lists become tuples; configs are picked by their ``kind``)."""
        def heads(h):
            if h is None:
                return None
            if isinstance(h, (list, tuple)):
                return tuple(config_from_dict(x, HEADS, "head") for x in h)
            return config_from_dict(h, HEADS, "head")

        # tables written before backbones had a kind are all ResNets
        backbone = config_from_dict(d["backbone"], BACKBONES, "backbone", default_kind="resnet")
        neck = config_from_dict(d["neck"], NECKS, "neck") if d.get("neck") else None
        text = config_from_dict(d["text_encoder"], TEXT_ENCODERS, "text encoder") if d.get("text_encoder") else None
        res = d.get("encoder_resolution")
        return cls(backbone=backbone, decode_head=heads(d["decode_head"]), auxiliary_head=heads(d.get("auxiliary_head")),
                   num_classes=int(d["num_classes"]), align_corners=bool(d["align_corners"]), neck=neck,
                   text_encoder=text, encoder_resolution=None if res is None else float(res))

    def with_num_classes(self, num_classes: int) -> "ArchConfig":
        return replace(self, num_classes=num_classes)


class HeadOutputs(NamedTuple):
    """Training-mode outputs at feature resolution: one per decode head (cascade order), one per auxiliary head."""

    decode: list
    aux: list


def _heads(configs: tuple, num_classes: int, align_corners: bool, single: bool) -> nn.Module:
    built = [build_head(c, num_classes, align_corners) for c in configs]
    return built[0] if single else nn.ModuleList(built)


class Segmentor(nn.Module):
    """Backbone (+ neck) + decode head(s) (+ auxiliary heads, used only by the training loss)."""

    def __init__(self, config: ArchConfig) -> None:
        super().__init__()
        self.config = config
        self.num_classes = config.num_classes
        self.align_corners = config.align_corners
        self.backbone = build_backbone(config.backbone)
        self.neck = build_neck(config.neck) if config.neck is not None else None
        self.decode_head = _heads(config.decode_heads, config.num_classes, config.align_corners,
                                  single=not isinstance(config.decode_head, tuple))
        self.auxiliary_head = (_heads(config.auxiliary_heads, config.num_classes, config.align_corners,
                                      single=not isinstance(config.auxiliary_head, tuple))
                               if config.auxiliary_head is not None else None)

    @property
    def decode_heads(self) -> list[nn.Module]:
        return list(self.decode_head) if isinstance(self.decode_head, nn.ModuleList) else [self.decode_head]

    @property
    def auxiliary_heads(self) -> list[nn.Module]:
        if self.auxiliary_head is None:
            return []
        return list(self.auxiliary_head) if isinstance(self.auxiliary_head, nn.ModuleList) else [self.auxiliary_head]

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor of shape N x 3 x H x W, got {type(x).__name__}")
        if x.dim() != 4:
            hint = " (add a batch dimension with x.unsqueeze(0))" if x.dim() == 3 else ""
            raise ValueError(f"expected a 4-D input N x 3 x H x W, got shape {tuple(x.shape)}{hint}")
        if x.shape[1] != 3:
            raise ValueError(f"expected 3 input channels (RGB) in dimension 1, got shape {tuple(x.shape)}; "
                             "images in N x H x W x 3 layout need x.permute(0, 3, 1, 2)")
        if not x.is_floating_point():
            raise TypeError(f"expected a floating-point input normalised with the entry's mean/std, got {x.dtype}; "
                            "use sszoo.inference for raw uint8 images")

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The features the heads read: the backbone's stage outputs, through the neck if there is one."""
        feats = self.backbone(x)
        return self.neck(feats) if self.neck is not None else feats

    def forward_heads(self, x: torch.Tensor) -> HeadOutputs:
        """Every head's training output at feature resolution (the losses resize them to the labels)."""
        self._check_input(x)
        feats = self.forward_features(x)
        # decode heads first, as the reference: the heads' dropout layers then draw random numbers in its order
        heads = self.decode_heads
        decode: list = [heads[0](feats)]
        prev = None
        for i in range(1, len(heads)):
            # As the reference's cascade: the previous stage runs again (in training mode, so with fresh
            # dropout and BN statistics) to give the logits the next stage refines.
            prev = heads[0](feats) if i == 1 else heads[i - 1](feats, _logits(prev))
            decode.append(heads[i](feats, _logits(prev)))
        aux = [head(feats) for head in self.auxiliary_heads]
        return HeadOutputs(decode, aux)

    def forward(self, x: torch.Tensor, out_size: Optional[tuple[int, int]] = None) -> torch.Tensor:
        """Logits N x K x H x W at the input's size, or resized straight from the feature resolution to
        ``out_size`` (sssegmentation's tester resizes once to the original image)."""
        self._check_input(x)
        feats = self.forward_features(x)
        heads = self.decode_heads
        logits = heads[0].predict(feats, **_img_size(heads[0], x))
        for head in heads[1:]:
            logits = head.predict(feats, logits)
        # The 8x upsampling runs in float32 even under autocast: rounding the full-size logits to fp16/bf16
        # flips labels at near-tie pixels. (float32 and float64 logits keep their precision.)
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        return resize(logits, x.shape[2:] if out_size is None else out_size, self.align_corners)

    def loss(self, outputs: HeadOutputs, label: torch.Tensor, *, aux_weight: float | None = None,
             ignore_index: int = 255, valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Weighted training losses ``{"decode", "aux", "total"}`` of :meth:`forward_heads`' ``outputs``.

        Each head's terms are weighted by its config's ``loss_weight``; a head whose config lists ``losses``
        returns terms already weighted by them (its ``loss_weight`` is the first term's weight). ``aux_weight``,
        when given, replaces the weight of every auxiliary head (for a head with several weighted terms it
        rescales them so that the first has that weight). ``valid`` (N x 2 unpadded crop sizes) goes to the heads
        whose ``loss`` takes it (PIDNet's boundary targets ignore the padding, as the reference's).
        """
        def weight(cfg, override):
            if getattr(cfg, "losses", ()):
                return 1.0 if override is None else override / cfg.loss_weight
            return cfg.loss_weight if override is None else override

        def total(heads, configs, outs, override):
            terms = [weight(cfg, override) * t
                     for head, cfg, out in zip(heads, configs, outs)
                     for t in head.loss(out, label, ignore_index=ignore_index, **_valid(head, valid)).values()]
            return torch.stack(terms).sum() if terms else torch.zeros((), device=label.device)

        decode = total(self.decode_heads, self.config.decode_heads, outputs.decode, None)
        aux = total(self.auxiliary_heads, self.config.auxiliary_heads, outputs.aux, aux_weight)
        return {"decode": decode, "aux": aux, "total": decode + aux}

    def drop_auxiliary_head(self) -> "Segmentor":
        """Remove the auxiliary head(s) (they only matter for training); returns self."""
        self.auxiliary_head = None
        return self

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier layers (and nothing else) for ``num_classes`` outputs."""
        for head in self.decode_heads + self.auxiliary_heads:
            head.reset_classifier(num_classes)
        self.num_classes = num_classes
        self.config = self.config.with_num_classes(num_classes)


def _valid(head: nn.Module, valid) -> dict:
    """``{"valid": valid}`` for a head whose loss takes the crops' unpadded sizes, else nothing."""
    if valid is None or "valid" not in inspect.signature(head.loss).parameters:
        return {}
    return {"valid": valid}


def _img_size(head: nn.Module, x: torch.Tensor) -> dict:
    """``{"img_size": (H, W)}`` of the input for a head whose ``predict`` takes it (Mask2Former's resizes its mask
    logits to the input before the sigmoid, as the reference's), else nothing."""
    if "img_size" not in inspect.signature(head.predict).parameters:
        return {}
    return {"img_size": tuple(x.shape[2:])}


def _logits(output):
    """A head's logits from its training output (some heads return extra tensors for their losses)."""
    return output[0] if isinstance(output, (tuple, list)) else output


class MultimodalSegmentor(Segmentor):
    """MMSegmentation's ``MultimodalEncoderDecoder`` (SAN): ``image_encoder`` (the config's backbone, a CLIP ViT
    run on the input resized by ``encoder_resolution``), ``text_encoder`` (the class embeddings) and one decode
    head that reads the input, the image encoder's outputs and the class embeddings. Inference only."""

    def __init__(self, config: ArchConfig) -> None:
        nn.Module.__init__(self)  # not Segmentor's: the modules and their keys differ (image_encoder, text_encoder)
        if isinstance(config.decode_head, tuple) or config.auxiliary_head is not None or config.neck is not None:
            raise ValueError("a multimodal segmentor has one decode head, no neck and no auxiliary head")
        self.config = config
        self.num_classes = config.num_classes
        self.align_corners = config.align_corners
        self.encoder_resolution = config.encoder_resolution
        self.image_encoder = build_backbone(config.backbone)
        for name, p in self.image_encoder.named_parameters():  # the reference trains only CLIP's position embedding
            p.requires_grad_(name == "pos_embed")
        self.text_encoder = build_text_encoder(config.text_encoder, config.num_classes)
        self.decode_head = build_head(config.decode_head, config.num_classes, config.align_corners)
        self.auxiliary_head = None

    @property
    def backbone(self) -> nn.Module:
        """The image encoder (the role a backbone has elsewhere)."""
        return self.image_encoder

    def forward_features(self, x: torch.Tensor) -> list:
        """The image encoder's outputs (map, class token) for the input resized by ``encoder_resolution``."""
        if self.encoder_resolution is not None:
            # scale_factor, not a size: the reference's interpolation samples with this exact scale
            x = F.interpolate(x, scale_factor=self.encoder_resolution, mode="bilinear", align_corners=False)
        return self.image_encoder(x)

    def forward(self, x: torch.Tensor, out_size: Optional[tuple[int, int]] = None) -> torch.Tensor:
        """Per-class scores N x K x H x W at the input's size (or resized to ``out_size``)."""
        self._check_input(x)
        logits = self.decode_head.predict(x, self.forward_features(x), self.text_encoder())
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        return logits if out_size is None else resize(logits, out_size, self.align_corners)

    def forward_heads(self, x: torch.Tensor) -> HeadOutputs:
        raise NotImplementedError("sszoo builds SAN for inference only (its Hungarian-matched losses are not built)")

    def reset_classifier(self, num_classes: int) -> None:
        """The classes are the text prompts: embed the first ``num_classes`` names of the text encoder's
        vocabulary (no layer is replaced, the weights stay)."""
        self.text_encoder.select_classes(num_classes)
        self.decode_head.reset_classifier(num_classes)
        self.num_classes = num_classes
        self.config = self.config.with_num_classes(num_classes)


def build_model(config: ArchConfig) -> Segmentor:
    """Build the network described by ``config`` (randomly initialised)."""
    return MultimodalSegmentor(config) if config.text_encoder is not None else Segmentor(config)
