"""Pretrained weights: download, verify, convert, cache as safetensors; mirrors, the Hugging Face Hub, offline use.

Public entry points:

* :func:`load_pretrained` - the state dict of a zoo entry (``create_model(..., pretrained=...)`` calls it);
* :func:`load_backbone_weights` - ImageNet ResNet weights for the trainer (``open-mmlab://resnet50_v1c``, ...);
* :func:`hub_dir`, :func:`is_offline` - the cache root and the offline switch;
* ``python -m sszoo.hub`` - download, lock, ls, verify, rm, convert, push (see docs/hub.md);
* every error is a :class:`HubError` (see :mod:`sszoo.hub.errors`).
"""
from .cache import Provenance, hub_dir, is_offline
from .checkpoint import (NonFiniteWeightsWarning, check_finite, check_fits, check_tensors, extract_state_dict,
                         load_state_dict_strict, read_checkpoint)
from .convert import Converted, from_ssseg, to_sszoo
from .download import DownloadPolicy, download_file
from .errors import (CacheCorruptError, CacheNotWritableError, CacheWriteError, CheckpointError, DownloadError,
                     HashMismatchError, HashRequiredError, HubError, LockFileError, LockTimeoutError, NetworkError,
                     OfflineError, SpecError)
from .lockfile import Pin, lockfile_path, read_pins, require_hashes, write_pins
from .sources import (BACKBONES, UnverifiedWeightsWarning, WeakHashWarning, load_backbone_weights, load_pretrained,
                      mirror_url)

__all__ = ["BACKBONES", "CacheCorruptError", "CacheNotWritableError", "CacheWriteError", "CheckpointError",
           "Converted", "DownloadError", "DownloadPolicy", "HashMismatchError", "HashRequiredError", "HubError",
           "LockFileError", "LockTimeoutError", "NetworkError", "NonFiniteWeightsWarning", "OfflineError", "Pin",
           "Provenance", "SpecError",
           "UnverifiedWeightsWarning", "WeakHashWarning", "check_finite", "check_fits", "check_tensors",
           "download_file", "extract_state_dict", "from_ssseg", "hub_dir", "is_offline", "load_backbone_weights",
           "load_pretrained", "load_state_dict_strict", "lockfile_path", "mirror_url", "read_checkpoint",
           "read_pins", "require_hashes", "to_sszoo", "write_pins"]
