"""``create_model``: from a zoo name to a ready network."""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Union

from .hub import load_pretrained, load_state_dict_strict
from .hub.checkpoint import checkpoint_num_classes
from .models import ArchConfig, Segmentor, build_model
from .registry import get_entry

Pretrained = Union[bool, str, os.PathLike]
_OVERRIDABLE = {f.name for f in dataclasses.fields(ArchConfig)} - {"num_classes"}


def create_model(name: str, pretrained: Pretrained = False, num_classes: int | None = None, *,
                 aux: bool = True, **overrides: Any) -> Segmentor:
    """Build the network of zoo entry ``name`` and optionally load its weights.

    Args:
        name: a zoo name (``pspnet_r101_d8_cityscapes``, ``pspnet_r101_d8_cityscapes.769x769_40k``) or an
            MMSegmentation config name (``pspnet_r101-d8_4xb2-80k_cityscapes-512x1024``).
        pretrained: ``False`` for random weights, ``True`` for the entry's published checkpoint, or a
            checkpoint location (a local path; see the README for URLs, mirrors and ``hf-hub:``).
        num_classes: a class count other than the entry's replaces the classifier layers only
            (for fine-tuning); every other weight still loads strictly.
        aux: keep the auxiliary head (used by the training loss only).
        **overrides: fields of :class:`sszoo.models.ArchConfig` to change, e.g. ``align_corners=True``.

    Returns:
        a :class:`sszoo.models.Segmentor` in eval mode whose ``forward`` maps a normalised N x 3 x H x W
        tensor to logits N x K x H x W; for a detection entry (``faster_rcnn_r50_fpn_fp16_1x_coco``, ...)
        a :class:`sszoo.detection.Detector` (see :func:`create_detector`).
    """
    entry = get_entry(name)
    if getattr(entry, "task", "segmentation") == "detection":
        if not aux:
            raise TypeError("aux applies to segmentation entries only")
        return create_detector(entry, pretrained, num_classes, **overrides)
    bad = set(overrides) - _OVERRIDABLE
    if bad:
        raise TypeError(f"create_model() got unknown overrides {sorted(bad)}; allowed: {sorted(_OVERRIDABLE)}")
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    config = dataclasses.replace(entry.arch, **overrides)
    state = None
    if pretrained is not False and pretrained is not None:
        # the architecture is passed so that weights that do not fit it are refused before they are cached
        state = load_pretrained(entry, pretrained, arch=config)
        ckpt_classes = checkpoint_num_classes(state)
        if num_classes is not None and ckpt_classes == num_classes:
            # a checkpoint already fine-tuned to num_classes (e.g. one exported by sszoo.train)
            config = config.with_num_classes(num_classes)
    model = build_model(config)
    if state is not None:
        if not aux or model.auxiliary_head is None:
            state = {k: v for k, v in state.items() if not k.startswith("auxiliary_head.")}
            model.drop_auxiliary_head()
        source = pretrained if isinstance(pretrained, (str, os.PathLike)) else entry.weights.url
        load_state_dict_strict(model, state, source=f"checkpoint {source}")
    elif not aux:
        model.drop_auxiliary_head()
    if num_classes is not None and num_classes != config.num_classes:
        model.reset_classifier(num_classes)
    model.entry = entry  # type: ignore[attr-defined]  # the record travels with the model
    return model.eval()



def create_detector(entry, pretrained: Pretrained = False, num_classes: int | None = None, **overrides: Any):
    """A detection entry's network: a :class:`sszoo.detection.Detector` in eval mode whose ``forward`` maps a
    normalised N x 3 x H x W tensor (or a list of 3 x H x W tensors) to one dict of ``boxes``, ``scores``,
    ``labels`` (and ``masks``) per image. ``overrides`` replace fields of its
    :class:`sszoo.detection.DetectorConfig` (e.g. ``rcnn_test=RCNNTestConfig(score_thr=0.3)``);
    ``num_classes`` other than the entry's gives randomly initialised class-sized layers (no pretrained load).
    """
    from .detection import DetectorConfig, build_detector

    bad = set(overrides) - {f.name for f in dataclasses.fields(DetectorConfig)} - {"kind", "num_classes"}
    bad |= set(overrides) & {"kind", "num_classes"}
    if bad:
        raise TypeError(f"create_model() got unknown overrides {sorted(bad)} for detector {entry.name}")
    config = dataclasses.replace(entry.arch, **overrides)
    if num_classes is not None:
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        if pretrained is not False and pretrained is not None and num_classes != config.num_classes:
            raise ValueError(f"{entry.name}: fine-tuning a detector to another class count is not supported; "
                             f"load it with num_classes={config.num_classes} (or None)")
        config = dataclasses.replace(config, num_classes=num_classes)
    model = build_detector(config)
    if pretrained is not False and pretrained is not None:
        state = load_pretrained(entry, pretrained, arch=config)
        source = pretrained if isinstance(pretrained, (str, os.PathLike)) else entry.weights.url
        load_state_dict_strict(model, state, source=f"checkpoint {source}")
    model.entry = entry  # type: ignore[attr-defined]
    return model.eval()
