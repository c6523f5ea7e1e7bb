"""The segmentor: a ResNet backbone, a decode head and an optional auxiliary FCN head.

``Segmentor.forward`` takes a normalised float tensor N x 3 x H x W (RGB, the entry's mean/std
applied) and returns float32 logits N x K x H x W at the input's size, resized bilinearly with the
entry's ``align_corners`` exactly as the reference implementation does.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Optional, Union

import torch
from torch import nn

from .deeplabv3 import ASPPHead, ASPPHeadConfig
from .deeplabv3plus import SepASPPHead, SepASPPHeadConfig
from .fcn import FCNHead, FCNHeadConfig
from .layers import ClassifierHead, resize
from .pspnet import PSPHead, PSPHeadConfig
from .resnet import ResNet, ResNetConfig

HeadConfig = Union[FCNHeadConfig, PSPHeadConfig, ASPPHeadConfig, SepASPPHeadConfig]

# head config type -> head class; the only dispatch in model building.
_HEADS: dict[type, type[ClassifierHead]] = {
    FCNHeadConfig: FCNHead, PSPHeadConfig: PSPHead, ASPPHeadConfig: ASPPHead, SepASPPHeadConfig: SepASPPHead,
}
_HEAD_CONFIGS = {c.kind: c for c in (FCNHeadConfig(), PSPHeadConfig(), ASPPHeadConfig(), SepASPPHeadConfig())}


@dataclass(frozen=True)
class ArchConfig:
    """Everything needed to build one network of the zoo."""

    backbone: ResNetConfig
    decode_head: HeadConfig
    auxiliary_head: FCNHeadConfig | None = field(default=None)
    num_classes: int = 19
    align_corners: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArchConfig":
        """Inverse of :meth:`to_dict` (lists become tuples; heads are picked by their ``kind``)."""
        def tup(v):
            return tuple(v) if isinstance(v, list) else v

        def head(h):
            if h is None:
                return None
            proto = _HEAD_CONFIGS.get(h.get("kind"))
            if proto is None:
                raise ValueError(f"unknown head kind {h.get('kind')!r}; expected one of {sorted(_HEAD_CONFIGS)}")
            return type(proto)(**{k: tup(v) for k, v in h.items()})

        bb = ResNetConfig(**{k: tup(v) for k, v in d["backbone"].items()})
        return cls(backbone=bb, decode_head=head(d["decode_head"]), auxiliary_head=head(d.get("auxiliary_head")),
                   num_classes=int(d["num_classes"]), align_corners=bool(d["align_corners"]))

    def with_num_classes(self, num_classes: int) -> "ArchConfig":
        return replace(self, num_classes=num_classes)


class Segmentor(nn.Module):
    """Backbone + decode head (+ auxiliary head, used only by the training loss)."""

    def __init__(self, config: ArchConfig) -> None:
        super().__init__()
        self.config = config
        self.num_classes = config.num_classes
        self.align_corners = config.align_corners
        self.backbone = ResNet.from_config(config.backbone)
        head_cls = _HEADS[type(config.decode_head)]
        self.decode_head = head_cls.from_config(config.decode_head, config.num_classes, config.align_corners)
        self.auxiliary_head = (FCNHead.from_config(config.auxiliary_head, config.num_classes, config.align_corners)
                               if config.auxiliary_head is not None else None)

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
        """The four backbone stage outputs."""
        return self.backbone(x)

    def forward_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Decode and auxiliary logits at feature resolution (the training loss resizes them to the labels)."""
        self._check_input(x)
        feats = self.backbone(x)
        # decode head first, as the reference: the heads' dropout layers then draw random numbers in its order
        decode = self.decode_head(feats)
        aux = self.auxiliary_head(feats) if self.auxiliary_head is not None else None
        return decode, aux

    def forward(self, x: torch.Tensor, out_size: Optional[tuple[int, int]] = None) -> torch.Tensor:
        """Logits N x K x H x W at the input's size, or resized straight from the feature resolution to
        ``out_size`` (sssegmentation's tester resizes once to the original image)."""
        self._check_input(x)
        logits = self.decode_head(self.backbone(x))
        # The 8x upsampling runs in float32 even under autocast: rounding the full-size logits to fp16/bf16
        # flips labels at near-tie pixels. (In fp32 this changes nothing.)
        return resize(logits.float(), x.shape[2:] if out_size is None else out_size, self.align_corners)

    def drop_auxiliary_head(self) -> "Segmentor":
        """Remove the auxiliary head (it only matters for training); returns self."""
        self.auxiliary_head = None
        return self

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier layers (and nothing else) for ``num_classes`` outputs."""
        self.decode_head.reset_classifier(num_classes)
        if self.auxiliary_head is not None:
            self.auxiliary_head.reset_classifier(num_classes)
        self.num_classes = num_classes
        self.config = self.config.with_num_classes(num_classes)


def build_model(config: ArchConfig) -> Segmentor:
    """Build the network described by ``config`` (randomly initialised)."""
    return Segmentor(config)
