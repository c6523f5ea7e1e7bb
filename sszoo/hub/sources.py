"""Where weights come from: the registry URL, a mirror, a URL, a local file, the Hugging Face Hub, the cache.

Every remote file goes through :func:`fetch`: under an inter-process lock, a verified cache entry is
used as is; otherwise the original is downloaded (hash-checked), converted to sszoo's layout and
cached as safetensors with its provenance, and the original is deleted.
"""
from __future__ import annotations

import logging
import os
import re
import warnings
from typing import Any, Callable, Optional, Union
from urllib.parse import urlsplit

import torch

from . import cache
from .checkpoint import CheckpointError, read_checkpoint
from .convert import Converted, backbone_to_sszoo, check_backbone, to_sszoo
from .download import download_file, file_sha256, sha256_prefix_from_name

log = logging.getLogger("sszoo.hub")

# ImageNet backbones the recipes start from. URLs (and the sha256 prefixes in their names) as published
# by OpenMMLab and in torchvision's weight enums (IMAGENET1K_V1).
BACKBONES: dict[str, str] = {
    "open-mmlab://resnet18_v1c": "https://download.openmmlab.com/pretrain/third_party/resnet18_v1c-b5776b93.pth",
    "open-mmlab://resnet50_v1c": "https://download.openmmlab.com/pretrain/third_party/resnet50_v1c-2cccc1ad.pth",
    "open-mmlab://resnet101_v1c": "https://download.openmmlab.com/pretrain/third_party/resnet101_v1c-e67eebb6.pth",
    "torchvision://resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "torchvision://resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "torchvision://resnet101": "https://download.pytorch.org/models/resnet101-63fe2227.pth",
    # sssegmentation's ResNets with the 3x3 stem start from the same OpenMMLab V1c files: its
    # backbones/resnet.py lists them as DEFAULT_MODEL_URLS["resnet{N}stem"] (older releases named the
    # structure "resnet{N}conv3x3stem"), loaded non-strictly into the same stem/layer key layout.
    "sssegmentation://resnet18": "https://download.openmmlab.com/pretrain/third_party/resnet18_v1c-b5776b93.pth",
    "sssegmentation://resnet50": "https://download.openmmlab.com/pretrain/third_party/resnet50_v1c-2cccc1ad.pth",
    "sssegmentation://resnet101": "https://download.openmmlab.com/pretrain/third_party/resnet101_v1c-e67eebb6.pth",
}


class OfflineError(FileNotFoundError):
    """Offline mode is on and the weights are not in the cache."""


class UnverifiedWeightsWarning(UserWarning):
    """The weights' source publishes no hash, so the first download cannot be checked against one."""


def mirror_url(url: str) -> str:
    """``url`` with its scheme and host replaced by ``SSZOO_MIRROR`` (the path is kept), when that is set."""
    base = os.environ.get("SSZOO_MIRROR", "").strip()
    if not base:
        return url
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"SSZOO_MIRROR={base!r} must be an http(s) base URL, e.g. https://mirror.example.org/zoo")
    parts = urlsplit(url)
    return base.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")


def _file_name(url: str) -> str:
    name = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    if not name:
        raise ValueError(f"cannot tell a file name from the URL {url!r}")
    return name


def _offline_error(key: str, url: str, raw_path: str, problem: str = "") -> OfflineError:
    folder = cache.entry_dir(key)
    return OfflineError(
        f"offline mode (SSZOO_OFFLINE or HF_HUB_OFFLINE is set) and the weights for {key!r} are not cached"
        f"{' (' + problem + ')' if problem else ''}.\n"
        f"  looked in: {os.path.join(folder, cache.WEIGHTS_FILE)} (converted cache)\n"
        f"         and {raw_path} (original file put there by hand)\n"
        f"  to fix it: download {url} on a connected machine and copy the file to {raw_path}; sszoo verifies and\n"
        f"  converts it on first use. Or copy the folder {folder} from a machine where it is cached\n"
        f"  (`python -m sszoo.hub download {key}` there). Or unset SSZOO_OFFLINE/HF_HUB_OFFLINE.")


def fetch(key: str, url: str, convert: Callable[[Any], Converted], *, sha256_prefix: Optional[str] = None,
          entry: Optional[str] = None, progress: Optional[bool] = None) -> tuple[dict[str, torch.Tensor], cache.Provenance]:
    """The converted weights of ``url`` from the cache, downloading and converting them once if needed.

    Args:
        key: the cache key (zoo entry name, ``backbone--...`` or ``url--...``).
        url: the published location; ``SSZOO_MIRROR`` replaces its scheme and host.
        convert: maps the loaded original checkpoint to sszoo's layout.
        sha256_prefix: the published hash prefix; None means the source publishes none (unverified).
        entry: the zoo entry name, recorded in the provenance.
    """
    if sha256_prefix is None:
        sha256_prefix = sha256_prefix_from_name(url)
    source = mirror_url(url)
    raw = os.path.join(cache.downloads_dir(), _file_name(url))
    if cache.is_offline():
        try:
            prov = cache.lookup(key)
        except cache.CacheCorruptError as e:
            prov = None
            problem = f"the cached copy is damaged: {e}"
        else:
            problem = ""
        if prov is not None:
            return cache.load_cached(key), prov
        if not os.path.isfile(raw):
            raise _offline_error(key, url, raw, problem)
    with cache.file_lock(key):
        try:
            prov = cache.lookup(key)
        except cache.CacheCorruptError as e:
            warnings.warn(f"sszoo: cached weights for {key!r} failed verification ({e}); deleting them and "
                          "fetching the file again", RuntimeWarning, stacklevel=3)
            cache.remove(key)
            prov = None
        if prov is not None:
            return cache.load_cached(key), prov
        digest = None
        if os.path.isfile(raw):  # put there by hand for offline use, or left by an interrupted run
            digest = file_sha256(raw)
            if sha256_prefix is not None and not digest.startswith(sha256_prefix):
                os.remove(raw)
                if cache.is_offline():
                    raise _offline_error(key, url, raw, f"the file there had sha256 {digest}, expected "
                                         f"{sha256_prefix}...; it was deleted")
                digest = None
        if digest is None:
            log.info("downloading %s", source)
            digest = download_file(source, raw, sha256_prefix=sha256_prefix, progress=progress,
                                   on_retry=lambda n, why: log.warning("retry %d for %s: %s", n, source, why))
            if sha256_prefix is None:
                warnings.warn(f"sszoo: {url} has no published hash, so this first download could not be verified "
                              f"(sha256 {digest}); it is recorded as unverified and checked against this hash from "
                              "now on", UnverifiedWeightsWarning, stacklevel=3)
        converted = convert(read_checkpoint(raw))
        prov = cache.store(key, converted.state_dict, source_url=url if source == url else f"{url} (via {source})",
                           source_sha256=digest, source_verified=sha256_prefix is not None,
                           source_format=converted.source_format, entry=entry, classes=converted.classes,
                           extra={"notes": converted.notes} if converted.notes else None)
        os.remove(raw)  # the verified safetensors replaces the original
        return cache.load_cached(key), prov


def _url_key(url: str) -> str:
    stem = _file_name(url).rsplit(".", 1)[0]
    return f"url--{stem}"


def parse_hf_spec(spec: str) -> tuple[str, Optional[str]]:
    """``hf-hub:org/repo@rev`` -> (``org/repo``, ``rev``)."""
    body = spec[len("hf-hub:"):]
    repo, _, rev = body.partition("@")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
        raise ValueError(f"bad Hugging Face spec {spec!r}; expected hf-hub:org/repo or hf-hub:org/repo@revision")
    return repo, (rev or None)


def hf_file(spec: str, filename: str = cache.WEIGHTS_FILE) -> str:
    """A local path to ``filename`` of a Hugging Face repo, through huggingface_hub's own cache.

    Offline mode (``SSZOO_OFFLINE``/``HF_HUB_OFFLINE``) reads that cache only.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    repo, rev = parse_hf_spec(spec)
    offline = cache.is_offline()
    try:
        return hf_hub_download(repo, filename, revision=rev, local_files_only=offline)
    except LocalEntryNotFoundError as e:
        from huggingface_hub import constants
        raise OfflineError(
            f"{filename} of {repo}{'@' + rev if rev else ''} is not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}) and offline mode is {'on' if offline else 'off (the Hub was unreachable)'}.\n"
            f"  to fix it: run `huggingface-cli download {repo}{' --revision ' + rev if rev else ''}` on a connected "
            "machine and copy its cache folder here (or point HF_HUB_CACHE at it).") from e


def _load_local(path: str, fmt: Optional[str]) -> Converted:
    if os.path.isdir(path):
        inner = os.path.join(path, cache.WEIGHTS_FILE)
        if not os.path.isfile(inner):
            raise FileNotFoundError(f"{path} is a folder without {cache.WEIGHTS_FILE}; pass the checkpoint file itself")
        path = inner
    return to_sszoo(read_checkpoint(path), fmt)


Pretrained = Union[bool, str, os.PathLike]


def load_pretrained(entry, pretrained: Pretrained, *, progress: Optional[bool] = None) -> dict[str, torch.Tensor]:
    """The state dict for zoo ``entry`` in sszoo's (= MMSegmentation's) key layout.

    Args:
        entry: a :class:`sszoo.registry.ZooEntry`.
        pretrained: ``True`` (the entry's published URL, or ``SSZOO_MIRROR``), a local file or folder with
            ``model.safetensors``, an http(s) URL, or ``hf-hub:org/repo[@revision]``.
        progress: force the download progress bar on or off.
    """
    if pretrained is True:
        url = entry.weights.url
        if not url:
            raise CheckpointError(f"{entry.name} has no published checkpoint; train it (python -m sszoo.train) or "
                                  "pass pretrained=<path to a checkpoint>")
        fmt = entry.weights.format
        state, _ = fetch(entry.name, url, lambda obj: to_sszoo(obj, fmt), sha256_prefix=entry.weights.sha256_prefix,
                         entry=entry.name, progress=progress)
        return state
    if isinstance(pretrained, bool) or not isinstance(pretrained, (str, os.PathLike)):
        raise TypeError(f"pretrained must be True, a path, a URL or 'hf-hub:org/repo[@rev]', got {pretrained!r}")
    spec = os.fspath(pretrained)
    if spec.startswith("hf-hub:"):
        return to_sszoo(read_checkpoint(hf_file(spec)), "sszoo").state_dict
    if spec.startswith(("http://", "https://")):
        state, _ = fetch(_url_key(spec), spec, lambda obj: to_sszoo(obj), entry=entry.name, progress=progress)
        return state
    path = os.path.expanduser(spec)
    if not os.path.exists(path):
        raise FileNotFoundError(f"pretrained={spec!r}: no such file or folder. Pass True for the published weights, "
                                "a checkpoint path, an http(s) URL or 'hf-hub:org/repo[@revision]'.")
    return _load_local(path, entry.weights.format).state_dict


def _backbone_converter(spec: str) -> Callable[[Any], Converted]:
    def convert(obj: Any) -> Converted:
        sd, layout = backbone_to_sszoo(obj)
        check_backbone(sd, spec)
        return Converted(sd, layout)
    return convert


def load_backbone_weights(spec: Union[str, os.PathLike], *, progress: Optional[bool] = None) -> dict[str, torch.Tensor]:
    """ImageNet weights for sszoo's ``ResNet`` (keys without the ``backbone.`` prefix, classifier dropped).

    Args:
        spec: ``open-mmlab://resnet{18,50,101}_v1c`` (deep stem, V1c), ``torchvision://resnet{18,50,101}``
            (7x7 stem, V1b), ``sssegmentation://resnet{18,50,101}``, a local file, or an http(s) URL.
    """
    spec = os.fspath(spec)
    if spec in BACKBONES:
        url = BACKBONES[spec]
        key = "backbone--" + spec.replace("://", "-")
        state, _ = fetch(key, url, _backbone_converter(spec), progress=progress)
        return state
    if "://" in spec and not spec.startswith(("http://", "https://")):
        raise KeyError(f"unknown backbone weights {spec!r}; known: {', '.join(sorted(BACKBONES))}, "
                       "a local path or an http(s) URL")
    if spec.startswith(("http://", "https://")):
        state, _ = fetch("backbone--" + _url_key(spec), spec, _backbone_converter(spec), progress=progress)
        return state
    path = os.path.expanduser(spec)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"backbone weights {spec!r}: no such file")
    return _backbone_converter(spec)(read_checkpoint(path)).state_dict
