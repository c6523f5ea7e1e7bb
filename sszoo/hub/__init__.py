"""Pretrained weights: download, verify, convert, cache as safetensors; mirrors, the Hugging Face Hub, offline use.

Public entry points:

* :func:`load_pretrained` - the state dict of a zoo entry (``create_model(..., pretrained=...)`` calls it);
* :func:`load_backbone_weights` - ImageNet ResNet weights for the trainer (``open-mmlab://resnet50_v1c``, ...);
* :func:`hub_dir`, :func:`is_offline` - the cache root and the offline switch;
* ``python -m sszoo.hub`` - download, ls, verify, rm, convert, push (see docs/hub.md).
"""
from .cache import CacheCorruptError, Provenance, hub_dir, is_offline
from .checkpoint import CheckpointError, extract_state_dict, load_state_dict_strict, read_checkpoint
from .convert import Converted, from_ssseg, to_sszoo
from .download import DownloadError, DownloadPolicy, HashMismatchError, download_file
from .sources import (BACKBONES, OfflineError, UnverifiedWeightsWarning, load_backbone_weights, load_pretrained,
                      mirror_url)

__all__ = ["BACKBONES", "CacheCorruptError", "CheckpointError", "Converted", "DownloadError", "DownloadPolicy",
           "HashMismatchError", "OfflineError", "Provenance", "UnverifiedWeightsWarning", "download_file",
           "extract_state_dict", "from_ssseg", "hub_dir", "is_offline", "load_backbone_weights",
           "load_pretrained", "load_state_dict_strict", "mirror_url", "read_checkpoint", "to_sszoo"]
