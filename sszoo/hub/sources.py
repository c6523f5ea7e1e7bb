"""Where weights come from: the registry URL, a mirror, a URL, a local file, the Hugging Face Hub, the cache.

Every remote file goes through :func:`fetch`: a verified cache entry is used as is (no lock, so a
read-only cache works); otherwise, under the inter-process lock of the source file, the original is
downloaded (hash-checked against the lock file's pin or the published prefix), converted to sszoo's
layout, checked against the model, cached as safetensors with its provenance, and deleted.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import warnings
from typing import Any, Callable, Optional, Union
from urllib.parse import urlsplit

import torch

from . import cache, lockfile
from .checkpoint import (CheckpointError, check_finite, check_fits, checkpoint_num_classes, expected_state,
                         read_checkpoint)
from .convert import Converted, backbone_to_sszoo, check_backbone, to_sszoo
from .download import download_file, file_sha256, sha256_prefix_from_name
from .errors import HashMismatchError, HashRequiredError, NetworkError, OfflineError, SpecError

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


class UnverifiedWeightsWarning(UserWarning):
    """The weights' source publishes no hash, so the first download cannot be checked against one."""


class WeakHashWarning(UnverifiedWeightsWarning):
    """A file from a mirror or a URL was checked only against a short published hash prefix (32 bits)."""


def mirror_url(url: str) -> str:
    """``url`` with its scheme and host replaced by ``SSZOO_MIRROR`` (the path is kept), when that is set."""
    base = os.environ.get("SSZOO_MIRROR", "").strip()
    if not base:
        return url
    if not base.startswith(("http://", "https://")):
        raise SpecError(f"SSZOO_MIRROR={base!r} must be an http(s) base URL, e.g. https://mirror.example.org/zoo")
    parts = urlsplit(url)
    return base.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")


def _file_name(url: str) -> str:
    name = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    if not name:
        raise ValueError(f"cannot tell a file name from the URL {url!r}")
    return name


def source_id(source_key: str) -> str:
    """A short, stable id of a normalised source: part of the download, lock and URL-entry names."""
    return hashlib.sha256(source_key.encode()).hexdigest()[:12]


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


def _offline_hint(key: str, url: str, hand_path: str) -> str:
    return (f"\n  on a machine without network: set SSZOO_OFFLINE=1 (use the cache only), download {url} on a "
            f"connected machine and copy the file to {hand_path} (sszoo verifies and converts it on first use), or "
            f"copy the folder {cache.entry_dir(key)} from a machine where it is cached.")


def _strict_error(what: str, level: str) -> HashRequiredError:
    where = lockfile.lockfile_path() or f"none found (SSZOO_LOCKFILE unset, no ./{lockfile.LOCKFILE_NAME})"
    return HashRequiredError(
        f"SSZOO_REQUIRE_HASHES is set and {what} has no full sha256 in the lock file ({where}); its only check would "
        f"be {level}. On a trusted machine run `python -m sszoo.hub lock NAME...`, commit the sszoo.lock it writes "
        "and point SSZOO_LOCKFILE at it; or unset SSZOO_REQUIRE_HASHES.")


def _discard(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _usable_entry(key: str, source_key: str, pin: Optional[lockfile.Pin], *,
                  repair: bool) -> Optional[cache.Provenance]:
    """The provenance of a verified cache entry made from ``source_key`` (and from the pinned file), or None.

    Without ``repair`` (no lock held) a damaged or stale entry is only reported as None; with it, it is
    deleted (with a warning when damaged) so that the caller fetches it again.
    """
    try:
        prov = cache.lookup(key)
    except cache.CacheCorruptError as e:
        if repair:
            warnings.warn(f"sszoo: cached weights for {key!r} failed verification ({e}); deleting them and "
                          "fetching the file again", RuntimeWarning, stacklevel=4)
            cache.remove(key)
        return None
    if prov is None:
        return None
    stale = prov.source_key is not None and prov.source_key != source_key
    unpinned = pin is not None and prov.source_sha256 != pin.sha256
    if stale or unpinned:
        if repair:
            if unpinned:
                warnings.warn(f"sszoo: cached weights for {key!r} were made from a file with sha256 "
                              f"{prov.source_sha256}, the lock file pins {pin.sha256}; fetching the pinned file",
                              RuntimeWarning, stacklevel=4)
            cache.remove(key)
        return None
    if pin is not None and prov.verification != lockfile.FULL:
        prov.verification = lockfile.FULL  # the recorded full hash of the original equals the pin
    return prov


def _check_original(path: str, prefix: Optional[str], pin: Optional[lockfile.Pin]) -> Optional[str]:
    """The sha256 of an original file found in downloads/, or None after deleting it when it fails the checks."""
    digest = file_sha256(path)
    if (prefix is not None and not digest.startswith(prefix)) or (pin is not None and digest != pin.sha256):
        _discard(path)
        return None
    return digest


def fetch(key: str, url: str, convert: Callable[[Any], Converted], *, sha256_prefix: Optional[str] = None,
          entry: Optional[str] = None, progress: Optional[bool] = None,
          validate: Optional[Callable[[dict[str, torch.Tensor]], None]] = None,
          user_url: bool = False) -> tuple[dict[str, torch.Tensor], cache.Provenance]:
    """The converted weights of ``url`` from the cache, downloading and converting them once if needed.

    Args:
        key: the cache key (zoo entry name, ``backbone--...`` or ``url--...``).
        url: the published location; ``SSZOO_MIRROR`` replaces its scheme and host.
        convert: maps the loaded original checkpoint to sszoo's layout.
        sha256_prefix: the published hash prefix; None means the source publishes none (unverified).
        entry: the zoo entry name, recorded in the provenance.
        validate: checks the converted weights against the model (names, shapes, dtypes, values) before
            anything is cached; raises :class:`CheckpointError` for weights that do not fit.
        user_url: ``url`` was given by the user (not the registry): a prefix-only check warns even without a mirror.

    A verified entry is used without taking a lock (so a read-only cache works); a download, a repair or
    a conversion happens under the one lock of the source file.
    """
    if sha256_prefix is None:
        sha256_prefix = sha256_prefix_from_name(url)
    prefix = sha256_prefix.lower() if sha256_prefix else None
    source_key = lockfile.normalise_url(url)
    pin = lockfile.pin_for(source_key)
    level = lockfile.FULL if pin else (lockfile.prefix_level(prefix) if prefix else lockfile.NONE)
    if pin is None and lockfile.require_hashes():
        raise _strict_error(url, level)
    source = mirror_url(url)
    name = _file_name(url)
    lock_name = f"{source_id(source_key)}-{name}"
    raw = os.path.join(cache.downloads_dir(), lock_name)   # where this source's download goes
    hand = os.path.join(cache.downloads_dir(), name)       # where a user puts the published file by hand
    prov = _usable_entry(key, source_key, pin, repair=False)
    if prov is not None:
        if os.path.lexists(raw):  # an original left by a process killed after caching: clean it when we can
            with contextlib.suppress(cache.CacheNotWritableError, cache.LockTimeoutError):
                with cache.file_lock(lock_name, timeout=0):
                    if _usable_entry(key, source_key, pin, repair=False) is not None:
                        _discard(raw)
        return cache.load_cached(key), prov
    if cache.is_offline() and not (os.path.isfile(raw) or os.path.isfile(hand)):
        try:
            cache.lookup(key)
            problem = ""
        except cache.CacheCorruptError as e:
            problem = f"the cached copy is damaged: {e}"
        raise _offline_error(key, url, hand, problem)
    with cache.file_lock(lock_name, what=f"fetching the weights for {key!r}"):
        prov = _usable_entry(key, source_key, pin, repair=True)
        if prov is not None:  # another process made it while we waited
            _discard(raw)
            return cache.load_cached(key), prov
        path, digest = None, None
        for candidate in (raw, hand):  # a verified download left by a killed run, or a file put there by hand
            if os.path.isfile(candidate):
                digest = _check_original(candidate, prefix, pin)
                if digest is not None:
                    path = candidate
                    break
                if cache.is_offline():
                    raise _offline_error(key, url, hand, f"the file {candidate} did not have the expected sha256 "
                                         f"({pin.sha256 if pin else prefix + '...'}); it was deleted")
        if path is None:
            if cache.is_offline():
                raise _offline_error(key, url, hand)
            if level.startswith("prefix-") and (user_url or source != url):
                warnings.warn(f"sszoo: {source} is checked only against the {len(prefix)}-hex-digit hash prefix in "
                              f"its name ({level}: forgeable with about 2^{4 * len(prefix)} work); pin its full "
                              f"sha256 with `python -m sszoo.hub lock` (see docs/hub.md)", WeakHashWarning,
                              stacklevel=3)
            log.info("downloading %s", source)
            try:
                digest = download_file(source, raw, sha256_prefix=prefix, sha256=pin.sha256 if pin else None,
                                       expected_size=pin.size if pin else None, progress=progress,
                                       on_retry=lambda n, why: log.warning("retry %d for %s: %s", n, source, why))
            except NetworkError as e:
                raise NetworkError(f"{e}{_offline_hint(key, url, hand)}") from e
            path = raw
            if level == lockfile.NONE:
                warnings.warn(f"sszoo: {url} has no published hash, so this first download could not be verified "
                              f"(sha256 {digest}); it is recorded as unverified and checked against this hash from "
                              "now on", UnverifiedWeightsWarning, stacklevel=3)
        try:
            converted = convert(read_checkpoint(path))
            if validate is not None:
                validate(converted.state_dict)
        except CheckpointError as e:
            _discard(path)  # a refused file must not stick: the next load asks the server again
            raise CheckpointError(f"{e}\n  ({path} was deleted)") from e
        except Exception:  # (an interrupt keeps the verified file for the next run)
            _discard(path)
            raise
        size = os.path.getsize(path)
        try:
            prov = cache.store(key, converted.state_dict, source_url=url if source == url else f"{url} (via {source})",
                               source_sha256=digest, verification=level, source_format=converted.source_format,
                               entry=entry, classes=converted.classes, source_key=source_key, source_size=size,
                               extra={"notes": converted.notes} if converted.notes else None)
        except cache.CacheWriteError as e:
            raise type(e)(f"{e} The verified original is kept at {path}; the next load converts it without "
                          "downloading again.") from e
        _discard(path)  # the verified safetensors replaces the original
        return cache.load_cached(key), prov


def _url_key(url: str) -> str:
    stem = _file_name(url).rsplit(".", 1)[0]
    return f"url--{stem}-{source_id(lockfile.normalise_url(url))}"


def backbone_key(url: str) -> str:
    """The cache key of backbone weights: by their source file, so specs naming one file share one entry
    (``open-mmlab://resnet50_v1c`` and ``sssegmentation://resnet50``)."""
    return "backbone--" + _url_key(url)[len("url--"):]


_HF_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
_HF_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,254}")


def parse_hf_spec(spec: str) -> tuple[str, Optional[str]]:
    """``hf-hub:org/repo@rev`` -> (``org/repo``, ``rev``). The repo id and the revision (a branch, tag or commit)
    are validated, so neither can name a path outside huggingface_hub's cache (``..``, absolute paths)."""
    body = spec[len("hf-hub:"):]
    repo, at, rev = body.partition("@")
    parts = repo.split("/")
    if (len(parts) != 2 or not all(_HF_PART.fullmatch(p) for p in parts)
            or any(".." in p or "--" in p or p.endswith((".", "-")) for p in parts)):
        raise SpecError(f"bad Hugging Face spec {spec!r}; expected hf-hub:org/repo or hf-hub:org/repo@revision")
    if at and (not _HF_REVISION.fullmatch(rev) or any(seg in ("", ".", "..") for seg in rev.split("/"))
               or rev.endswith(".lock")):
        raise SpecError(f"bad revision {rev!r} in {spec!r}: a revision is a branch, tag or commit hash "
                         "(letters, digits, '.', '_', '-', '/'; no '..' or empty path segments)")
    return repo, (rev or None)


def hf_source_key(spec: str) -> str:
    """The lock-file key of an ``hf-hub:`` spec: ``hf-hub:org/repo@rev`` (``@rev`` only when given)."""
    repo, rev = parse_hf_spec(spec)
    return f"hf-hub:{repo}@{rev}" if rev else f"hf-hub:{repo}"


def hf_file(spec: str, filename: str = cache.WEIGHTS_FILE) -> str:
    """A local path to ``filename`` of a Hugging Face repo, through huggingface_hub's own cache.

    Offline mode (``SSZOO_OFFLINE``/``HF_HUB_OFFLINE``) reads that cache only. A lock-file pin for the spec
    is enforced (full sha256 and size); ``SSZOO_REQUIRE_HASHES`` refuses a spec without one.
    """
    repo, rev = parse_hf_spec(spec)
    key = hf_source_key(spec)
    pin = lockfile.pin_for(key)
    if pin is None and lockfile.require_hashes():
        raise _strict_error(key, "huggingface_hub's own check of what the Hub serves")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    offline = cache.is_offline()
    try:
        path = hf_hub_download(repo, filename, revision=rev, local_files_only=offline)
    except LocalEntryNotFoundError as e:
        from huggingface_hub import constants
        raise OfflineError(
            f"{filename} of {repo}{'@' + rev if rev else ''} is not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}) and offline mode is {'on' if offline else 'off (the Hub was unreachable)'}.\n"
            f"  to fix it: run `huggingface-cli download {repo}{' --revision ' + rev if rev else ''}` on a connected "
            "machine and copy its cache folder here (or point HF_HUB_CACHE at it).") from e
    except (OSError, ValueError) as e:  # huggingface_hub's HTTP and validation errors derive from these
        raise NetworkError(f"could not get {filename} of {repo}{'@' + rev if rev else ''} from the Hugging Face Hub: "
                           f"{e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    if pin is not None:
        digest = file_sha256(path)
        if digest != pin.sha256 or (pin.size is not None and os.path.getsize(path) != pin.size):
            raise HashMismatchError(f"{key}: {path} has sha256 {digest}, the lock file pins {pin.sha256}. The repo "
                                    "or revision now serves another file; pin a commit, or re-lock after checking it.")
    return path


def _load_local(path: str, fmt: Optional[str]) -> Converted:
    if os.path.isdir(path):
        inner = os.path.join(path, cache.WEIGHTS_FILE)
        if not os.path.isfile(inner):
            raise FileNotFoundError(f"{path} is a folder without {cache.WEIGHTS_FILE}; pass the checkpoint file itself")
        path = inner
    return to_sszoo(read_checkpoint(path), fmt)


Pretrained = Union[bool, str, os.PathLike]


def model_validator(arch, source: str) -> Callable[[dict[str, torch.Tensor]], None]:
    """A check of converted weights against the network of ``arch`` (names, shapes, dtypes, NaN/inf), run
    before they are cached; the classifiers' class count and the auxiliary head may differ (see
    :func:`sszoo.hub.checkpoint.check_fits`), the final strict load checks those."""
    def validate(state: dict[str, torch.Tensor]) -> None:
        # against the network of the checkpoint's own class count: every class-sized layer (EncNet's SE
        # layer, PointRend's point MLP, ...) then fits, and create_model replaces them for another count
        k = checkpoint_num_classes(state)
        target = arch.with_num_classes(k) if k and k != arch.num_classes else arch
        check_fits(state, expected_state(target), source=source, strict=False)
        check_finite(state, source=source)
    return validate


def load_pretrained(entry, pretrained: Pretrained, *, progress: Optional[bool] = None,
                    arch=None) -> dict[str, torch.Tensor]:
    """The state dict for zoo ``entry`` in sszoo's (= MMSegmentation's) key layout.

    Args:
        entry: a :class:`sszoo.registry.ZooEntry`.
        pretrained: ``True`` (the entry's published URL, or ``SSZOO_MIRROR``), a local file or folder with
            ``model.safetensors``, an http(s) URL, or ``hf-hub:org/repo[@revision]``.
        progress: force the download progress bar on or off.
        arch: the :class:`sszoo.models.ArchConfig` the weights are for (default ``entry.arch``); weights that
            do not fit it are refused before they are cached.

    Raises:
        CheckpointError: the weights cannot be read, are not plain weights, or do not fit ``arch``.
        DownloadError, OfflineError, CacheNotWritableError, LockTimeoutError: see :func:`fetch`.
    """
    arch = arch if arch is not None else entry.arch
    if pretrained is True:
        url = entry.weights.url
        if not url:
            raise CheckpointError(f"{entry.name} has no published checkpoint; train it (python -m sszoo.train) or "
                                  "pass pretrained=<path to a checkpoint>")
        fmt = entry.weights.format
        state, _ = fetch(entry.name, url, lambda obj: to_sszoo(obj, fmt), sha256_prefix=entry.weights.sha256_prefix,
                         entry=entry.name, progress=progress, validate=model_validator(arch, f"checkpoint {url}"))
        return state
    if isinstance(pretrained, bool) or not isinstance(pretrained, (str, os.PathLike)):
        raise TypeError(f"pretrained must be True, a path, a URL or 'hf-hub:org/repo[@rev]', got {pretrained!r}")
    spec = os.fspath(pretrained)
    validate = model_validator(arch, f"checkpoint {spec}")
    if spec.startswith("hf-hub:"):
        state = to_sszoo(read_checkpoint(hf_file(spec)), "sszoo").state_dict
        validate(state)
        return state
    if spec.startswith(("http://", "https://")):
        state, _ = fetch(_url_key(spec), spec, lambda obj: to_sszoo(obj), entry=entry.name, progress=progress,
                         validate=validate, user_url=True)
        return state
    path = os.path.expanduser(spec)
    if not os.path.exists(path):
        raise FileNotFoundError(f"pretrained={spec!r}: no such file or folder. Pass True for the published weights, "
                                "a checkpoint path, an http(s) URL or 'hf-hub:org/repo[@revision]'.")
    state = _load_local(path, entry.weights.format).state_dict
    validate(state)
    return state


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
        state, _ = fetch(backbone_key(url), url, _backbone_converter(spec), progress=progress)
        return state
    if "://" in spec and not spec.startswith(("http://", "https://")):
        raise KeyError(f"unknown backbone weights {spec!r}; known: {', '.join(sorted(BACKBONES))}, "
                       "a local path or an http(s) URL")
    if spec.startswith(("http://", "https://")):
        state, _ = fetch(backbone_key(spec), spec, _backbone_converter(spec), progress=progress, user_url=True)
        return state
    path = os.path.expanduser(spec)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"backbone weights {spec!r}: no such file")
    return _backbone_converter(spec)(read_checkpoint(path)).state_dict
