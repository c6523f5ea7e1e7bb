"""Converting published checkpoints to sszoo's key layout (which is MMSegmentation's).

* MMSegmentation: ``{'state_dict': ..., 'meta': {'CLASSES': ..., 'PALETTE': ...}}``; keys already match.
* sssegmentation: ``{'model': ...}`` with ``backbone_net.*``, ``ppm_net.*``, ``aspp_net.*``, ``shortcut.*``,
  ``decoder.*`` and ``auxiliary_decoder.*`` keys. Its ASPP concatenates the image-pool branch last
  where MMSegmentation (and sszoo) put it first, so the fusing conv's input channels are reordered.
* Plain state dicts in sszoo's layout (what ``python -m sszoo.hub convert`` writes).
* ImageNet backbones: torchvision's ResNet (``conv1``, ``bn1``, ``layerN``, ``fc``) and MMCV's ResNetV1c
  (``stem.*``, ``layerN.*``), with the classifier dropped.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import torch

from .checkpoint import CheckpointError, check_tensors

MMSEG, SSSEG, SSZOO = "mmseg", "ssseg", "sszoo"


@dataclass
class Converted:
    """A state dict in sszoo's layout plus what the original file said about itself."""

    state_dict: dict[str, torch.Tensor]
    source_format: str
    classes: Optional[list[str]] = None
    notes: list[str] = field(default_factory=list)


def _unwrap(obj: Any) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """(the tensor mapping, the metadata mapping) of a loaded checkpoint object."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"a checkpoint must be a mapping of tensors, got {type(obj).__name__}")
    meta = obj.get("meta") if isinstance(obj.get("meta"), Mapping) else {}
    for key in ("state_dict", "model", "module"):
        inner = obj.get(key)
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            return inner, meta
    return obj, meta


def _tensors_of(tensors: Mapping[Any, Any], source: str) -> dict[str, torch.Tensor]:
    """The tensor entries with ``module.`` stripped, after :func:`check_tensors` (before any copy or cat)."""
    bad = [repr(k) for k, v in tensors.items() if isinstance(v, torch.Tensor) and not isinstance(k, str)]
    if bad:
        raise CheckpointError(f"{source} has tensors under keys that are not names ({', '.join(bad[:4])}); "
                              "not a state dict")
    sd = {k.removeprefix("module."): v for k, v in tensors.items() if isinstance(v, torch.Tensor)}
    check_tensors(sd, source=source)
    return sd


def _classes_from_meta(meta: Mapping[str, Any]) -> Optional[list[str]]:
    classes = meta.get("CLASSES")
    if classes is None and isinstance(meta.get("dataset_meta"), Mapping):
        classes = meta["dataset_meta"].get("classes")
    if isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes):
        return list(classes)
    return None


def detect_format(keys) -> str:
    """``"ssseg"``, ``"mmseg"`` (= sszoo) or ``"unknown"`` from the key names."""
    keys = list(keys)
    if any(k.startswith("backbone_net.") for k in keys):
        return SSSEG
    if any(k.startswith(("backbone.", "decode_head.")) for k in keys):
        return MMSEG
    return "unknown"


def fill_bn_counters(sd: dict[str, torch.Tensor]) -> list[str]:
    """Add the ``num_batches_tracked`` buffers that older files omit (they do not affect inference)."""
    added = []
    for k in list(sd):
        if k.endswith(".running_mean"):
            counter = k[: -len("running_mean")] + "num_batches_tracked"
            if counter not in sd:
                sd[counter] = torch.tensor(0, dtype=torch.long)
                added.append(counter)
    return added


def to_sszoo(obj: Any, fmt: Optional[str] = None) -> Converted:
    """Convert a loaded checkpoint (MMSegmentation, sssegmentation or plain) to sszoo's key layout.

    Args:
        obj: what :func:`sszoo.hub.checkpoint.read_checkpoint` returned.
        fmt: how to label a file in MMSegmentation's layout (``"mmseg"`` or ``"sszoo"``); the layout itself
            is always detected from the keys.
    """
    tensors, meta = _unwrap(obj)
    sd = _tensors_of(tensors, "the checkpoint")
    if not sd:
        raise CheckpointError("no tensors found in the checkpoint (expected {'state_dict': ...}, {'model': ...} "
                              "or a plain mapping of tensors)")
    found = detect_format(sd)  # the keys decide; ``fmt`` only labels an MMSegmentation-layout file
    if found == SSSEG:
        out = from_ssseg(sd)
        source_format = SSSEG
    elif found == MMSEG:
        out = dict(sd)
        source_format = fmt if fmt in (MMSEG, SSZOO) else MMSEG
    else:
        raise CheckpointError(f"unrecognised checkpoint layout (first keys: {', '.join(list(sd)[:4])}); expected "
                              "MMSegmentation keys (backbone.*, decode_head.*) or sssegmentation keys (backbone_net.*)")
    notes = []
    added = fill_bn_counters(out)
    if added:
        notes.append(f"added {len(added)} num_batches_tracked buffers")
    return Converted(out, source_format, _classes_from_meta(meta), notes)


# sssegmentation -> sszoo renames, tried in order; the decoders are handled by _sequential_head.
_SSSEG_RULES: list[tuple[str, str]] = [
    (r"^backbone_net\.", "backbone."),
    (r"^ppm_net\.branches\.(\d+)\.1\.", r"decode_head.psp_modules.\1.1.conv."),
    (r"^ppm_net\.branches\.(\d+)\.2\.", r"decode_head.psp_modules.\1.1.bn."),
    (r"^ppm_net\.bottleneck\.0\.", "decode_head.bottleneck.conv."),
    (r"^ppm_net\.bottleneck\.1\.", "decode_head.bottleneck.bn."),
    (r"^aspp_net\.parallel_branches\.(\d+)\.0\.", r"decode_head.aspp_modules.\1.conv."),
    (r"^aspp_net\.parallel_branches\.(\d+)\.1\.", r"decode_head.aspp_modules.\1.bn."),
    (r"^aspp_net\.parallel_branches\.(\d+)\.(depthwise|pointwise)_conv\.", r"decode_head.aspp_modules.\1.\2_conv.conv."),
    (r"^aspp_net\.parallel_branches\.(\d+)\.(depthwise|pointwise)_bn\.", r"decode_head.aspp_modules.\1.\2_conv.bn."),
    (r"^aspp_net\.global_branch\.1\.", "decode_head.image_pool.1.conv."),
    (r"^aspp_net\.global_branch\.2\.", "decode_head.image_pool.1.bn."),
    (r"^aspp_net\.bottleneck\.0\.", "decode_head.bottleneck.conv."),
    (r"^aspp_net\.bottleneck\.1\.", "decode_head.bottleneck.bn."),
    (r"^shortcut\.0\.", "decode_head.c1_bottleneck.conv."),
    (r"^shortcut\.1\.", "decode_head.c1_bottleneck.bn."),
]


def _sequential_head(sd: Mapping[str, torch.Tensor], prefix: str, target: str) -> dict[str, str]:
    """Renames for an ``nn.Sequential`` of [conv, bn, relu] * n + [dropout, conv] (sssegmentation's decoders).

    The convs (4-D weights) in index order become ``convs.i.conv``, the module after each ``convs.i.bn``,
    and the last conv the classifier ``conv_seg``.
    """
    pat = re.compile(re.escape(prefix) + r"(\d+)\.(.+)$")
    by_index: dict[int, list[str]] = {}
    for k in sd:
        m = pat.match(k)
        if m:
            by_index.setdefault(int(m.group(1)), []).append(k)
    conv_idx = sorted(i for i, ks in by_index.items() if any(k.endswith(".weight") and sd[k].dim() == 4 for k in ks))
    if not conv_idx:
        return {}
    renames: dict[str, str] = {}
    *hidden, classifier = conv_idx
    for k in by_index[classifier]:
        renames[k] = f"{target}conv_seg.{pat.match(k).group(2)}"
    for n, i in enumerate(hidden):
        for k in by_index[i]:
            renames[k] = f"{target}convs.{n}.conv.{pat.match(k).group(2)}"
        for k in by_index.get(i + 1, []):
            renames[k] = f"{target}convs.{n}.bn.{pat.match(k).group(2)}"
    return renames


def _sep_decoder(sd: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """DeepLabV3+ decoder: two depthwise-separable blocks, dropout, classifier."""
    renames = {}
    pat = re.compile(r"^decoder\.(\d+)\.(depthwise|pointwise)_(conv|bn)\.(.+)$")
    cls_pat = re.compile(r"^decoder\.(\d+)\.(weight|bias)$")
    for k in sd:
        m = pat.match(k)
        if m:
            part = "conv" if m.group(3) == "conv" else "bn"
            renames[k] = f"decode_head.sep_bottleneck.{m.group(1)}.{m.group(2)}_conv.{part}.{m.group(4)}"
        elif cls_pat.match(k):
            renames[k] = f"decode_head.conv_seg.{cls_pat.match(k).group(2)}"
    return renames


def from_ssseg(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """sssegmentation's FCN/PSPNet/DeepLabV3/DeepLabV3+ keys to sszoo's, reordering the ASPP fusion input."""
    renames: dict[str, str] = {}
    if any(k.startswith("shortcut.") for k in sd):
        renames.update(_sep_decoder(sd))
    else:  # FCN ([conv, bn, relu] * n, dropout, classifier) or PSPNet/DeepLabV3 (dropout, classifier)
        renames.update(_sequential_head(sd, "decoder.", "decode_head."))
    renames.update(_sequential_head(sd, "auxiliary_decoder.", "auxiliary_head."))
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for k, v in sd.items():
        new = renames.get(k)
        if new is None:
            for pat, repl in _SSSEG_RULES:
                if re.match(pat, k):
                    new = re.sub(pat, repl, k)
                    break
        if new is None:
            unknown.append(k)
        else:
            out[new] = v
    if unknown:
        raise CheckpointError(f"sssegmentation checkpoint has keys sszoo cannot place ({len(unknown)}): "
                              f"{', '.join(unknown[:6])}; only FCN, PSPNet, DeepLabV3 and DeepLabV3+ are supported")
    w = out.get("decode_head.bottleneck.conv.weight")
    if w is not None and "decode_head.image_pool.1.conv.weight" in out:
        # sssegmentation concatenates [branch_0..branch_n-1, image_pool]; sszoo [image_pool, branch_0..n-1].
        n = len({k.split(".")[2] for k in out if k.startswith("decode_head.aspp_modules.")})
        width = w.shape[1] // (n + 1)
        out["decode_head.bottleneck.conv.weight"] = torch.cat([w[:, n * width:], w[:, : n * width]], dim=1)
    return out


# ---- ImageNet backbones -------------------------------------------------------------------------

def backbone_to_sszoo(obj: Any) -> tuple[dict[str, torch.Tensor], str]:
    """An ImageNet ResNet checkpoint (torchvision, MMCV ResNetV1c/mmcls) as sszoo ``ResNet`` keys.

    Returns the state dict (without a ``backbone.`` prefix, classifier dropped) and the layout found.
    """
    tensors, _ = _unwrap(obj)
    sd = _tensors_of(tensors, "the backbone checkpoint")
    if any(k.startswith("backbone.") for k in sd):  # mmcls-style classifier checkpoints, or a whole segmentor
        sd = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
    elif any(k.startswith("backbone_net.") for k in sd):
        sd = {k[len("backbone_net."):]: v for k, v in sd.items() if k.startswith("backbone_net.")}
    if "stem.0.weight" in sd:
        layout = "mmcv-resnet"
    elif "conv1.weight" in sd:
        layout = "torchvision"
    else:
        raise CheckpointError(f"not a ResNet checkpoint: expected stem.* (V1c) or conv1.* (V1b) keys, "
                              f"found {', '.join(list(sd)[:4])}")
    out = {k: v for k, v in sd.items() if not k.startswith(("fc.", "head."))}
    fill_bn_counters(out)
    return out, layout


def check_backbone(sd: Mapping[str, torch.Tensor], source: str) -> int:
    """The ResNet depth whose keys and shapes ``sd`` matches exactly; raises CheckpointError otherwise."""
    from ..models import ResNet
    deep = "stem.0.weight" in sd
    blocks = len({k.split(".")[1] for k in sd if k.startswith("layer3.")})
    bottleneck = any(k.endswith("conv3.weight") for k in sd)
    candidates = {(False, 2): 18, (False, 6): 34, (True, 6): 50, (True, 23): 101, (True, 36): 152}
    depth = candidates.get((bottleneck, blocks))
    if depth is None:
        raise CheckpointError(f"{source}: a ResNet with {blocks} blocks in stage 3 is not one sszoo builds")
    own = ResNet(depth, deep_stem=deep).state_dict()
    missing = sorted(set(own) - set(sd))
    extra = sorted(set(sd) - set(own))
    bad = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or extra or bad:
        raise CheckpointError(f"{source} does not fit sszoo's ResNet-{depth}: missing {missing[:4]}, "
                              f"unexpected {extra[:4]}, shape mismatches {bad[:4]}")
    from .checkpoint import check_finite, check_fits
    check_fits(sd, own, source=source, strict=True)  # dtypes: no integer/bool weights cast to float
    check_finite(sd, source=source)
    return depth
