"""``python -m sszoo.hub``: download, list, verify, remove, convert and push pretrained weights.

    python -m sszoo.hub download pspnet_r101_d8_cityscapes open-mmlab://resnet50_v1c
    python -m sszoo.hub lock pspnet_r101_d8_cityscapes open-mmlab://resnet50_v1c   # writes ./sszoo.lock
    python -m sszoo.hub ls
    python -m sszoo.hub verify
    python -m sszoo.hub rm pspnet_r101_d8_cityscapes
    python -m sszoo.hub convert ckpt.pth --name pspnet_r101_d8_cityscapes --out ./pspnet-hf
    python -m sszoo.hub push pspnet_r101_d8_cityscapes --repo my-org/pspnet-r101-cityscapes
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Optional, Sequence

import requests

from ..atomic import atomic_path, write_text
from . import cache, lockfile
from .errors import HubError
from .sources import (BACKBONES, _url_key, backbone_key, fetch, hf_file, hf_source_key, load_backbone_weights,
                      load_pretrained, to_sszoo)

_LEVEL_TEXT = {lockfile.FULL: "full sha256 (lock file)", "prefix-32bit": "prefix-32bit", lockfile.NONE: "UNVERIFIED"}
PREFIX_NOTE = ("prefix-32bit: the original matched the 8 hex digits of sha256 published in its file name; a forger "
               "needs about 2^32 hash evaluations to match them. Pin full hashes with `python -m sszoo.hub lock`.")


def _level(prov: cache.Provenance) -> str:
    """The verification level of an entry, ``full-sha256`` when the lock file pins the file it was made from."""
    pin = lockfile.pin_for(prov.source_key) if prov.source_key else None
    if pin is not None and pin.sha256 == prov.source_sha256:
        return lockfile.FULL
    return prov.verification


def _key_for(name: str) -> str:
    """The cache key of a zoo name, backbone spec or raw key."""
    if name in BACKBONES:
        return backbone_key(BACKBONES[name])
    if os.path.isdir(cache.entry_dir(name)):
        return name
    from ..registry import resolve_name
    return resolve_name(name)


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def cmd_download(args: argparse.Namespace) -> int:
    from ..registry import get_entry
    progress = False if args.quiet else None
    for name in args.names:
        if name in BACKBONES:
            load_backbone_weights(name, progress=progress)
        else:
            load_pretrained(get_entry(name), True, progress=progress)
        key = _key_for(name)
        prov = cache.lookup(key, verify=False)
        level = _level(prov) if prov else lockfile.NONE
        state = _LEVEL_TEXT.get(level, level) + (" (no published hash)" if level == lockfile.NONE else "")
        print(f"{key}: {os.path.join(cache.entry_dir(key), cache.WEIGHTS_FILE)} [{state}]")
    return 0


def _lock_one(name: str, progress) -> tuple[str, lockfile.Pin, str]:
    """(lock-file key, pin, verification level of the download it was taken from) for one name."""
    from ..registry import get_entry
    if name.startswith("hf-hub:"):
        path = hf_file(name)
        return hf_source_key(name), lockfile.Pin(cache.file_sha256(path), os.path.getsize(path)), "hub"
    if name.startswith(("http://", "https://")):
        _, prov = fetch(_url_key(name), name, lambda obj: to_sszoo(obj), progress=progress, user_url=True)
    else:
        if name in BACKBONES:
            load_backbone_weights(name, progress=progress)
        else:
            load_pretrained(get_entry(name), True, progress=progress)
        prov = cache.lookup(_key_for(name))
    if prov is None or not prov.source_sha256 or not prov.source_key:
        raise HubError(f"{name}: the cache entry does not record its original's sha256 (made by an older sszoo); "
                       f"`python -m sszoo.hub rm {name}` and lock again")
    return prov.source_key, lockfile.Pin(prov.source_sha256, prov.source_size), prov.verification


def cmd_lock(args: argparse.Namespace) -> int:
    path = os.path.abspath(args.lockfile) if args.lockfile else lockfile.lockfile_path(for_writing=True)
    progress = False if args.quiet else None
    if not os.path.isfile(path):
        lockfile.write_pins(path, {})
    pins = {}
    with lockfile.strict_suspended():  # this command writes the pins strict mode asks for
        for name in args.names:
            key, pin, level = _lock_one(name, progress)
            pins[key] = pin
            note = {lockfile.NONE: "  (no published hash: pinned as first downloaded; check it is the right file)",
                    "hub": "  (as served by the Hugging Face Hub; pin a commit with @rev)"}.get(level, "")
            print(f"pinned {name}: sha256 {pin.sha256}" + (f", {pin.size} bytes" if pin.size is not None else "")
                  + note)
    lockfile.write_pins(path, pins)
    print(f"wrote {path} ({len(pins)} pinned). Commit it, and set SSZOO_LOCKFILE={path} where it is not ./"
          f"{lockfile.LOCKFILE_NAME}; SSZOO_REQUIRE_HASHES=1 then refuses anything it does not pin.")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    keys = cache.list_keys()
    levels: set[str] = set()
    print(f"cache: {cache.hub_dir()}")
    pins = lockfile.lockfile_path()
    print(f"lock file: {pins or 'none'}" + (" (SSZOO_REQUIRE_HASHES: unpinned sources are refused)"
                                             if lockfile.require_hashes() else ""))
    if not keys:
        print("(empty)")
    total = 0
    for key in keys:
        try:
            prov = cache.lookup(key, verify=False)
        except cache.CacheCorruptError as e:
            print(f"  {key:60s} DAMAGED ({e})")
            continue
        if prov is None:
            print(f"  {key:60s} incomplete (no weights or provenance)")
            continue
        total += prov.size
        source = _level(prov)
        levels.add(source)
        print(f"  {key:60s} {_human(prov.size):>10s}  {source:12s}  {prov.source_format:11s} {prov.source_url or ''}")
    folder = cache.downloads_dir()
    parts = sorted(f for f in os.listdir(folder) if not f.endswith(".part.json") and not f.startswith(".tmp-")) \
        if os.path.isdir(folder) else []
    for f in parts:
        full = os.path.join(folder, f)
        print(f"  downloads/{f}  {_human(os.lstat(full).st_size)}"
              + ("  (partial, resumes on next download)" if f.endswith(".part") and os.path.isfile(full + ".json")
                 else "  (partial, restarts: no validator)" if f.endswith(".part") else ""))
    print(f"{len(keys)} entries, {_human(total)}")
    if any(level.startswith("prefix-") for level in levels):
        print(PREFIX_NOTE)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    keys = [_key_for(n) for n in args.names] if args.names else cache.list_keys()
    bad = 0
    for key in keys:
        try:
            prov = cache.lookup(key, verify=True)
        except cache.CacheCorruptError as e:
            bad += 1
            print(f"CORRUPT  {key}: {e}")
            if args.delete:
                cache.remove(key)
                print("         deleted; the next load downloads it again")
            continue
        if prov is None:
            bad += 1
            print(f"MISSING  {key}: not cached (or incomplete)")
        else:
            level = _level(prov)
            note = {lockfile.NONE: " (source published no hash)"}.get(level, "")
            print(f"OK       {key}: sha256 {prov.sha256[:16]}... source check: {level}{note}")
    if bad and not args.delete:
        print(f"{bad} problem(s); rerun with --delete to remove damaged entries, or `rm` them", file=sys.stderr)
    return 1 if bad else 0


def cmd_rm(args: argparse.Namespace) -> int:
    keys = cache.list_keys() if args.all else [_key_for(n) for n in args.names]
    if not keys and not args.all:
        print("nothing to remove: give names or --all", file=sys.stderr)
        return 2
    missing = 0
    for key in keys:
        if cache.remove(key):
            print(f"removed {key}")
        else:
            missing += 1
            print(f"not cached: {key}", file=sys.stderr)
    return 1 if missing else 0


def write_model_folder(name: str, source, out: str) -> str:
    """Load ``source`` for zoo entry ``name`` strictly and write a Hugging Face-ready folder to ``out``.

    The folder holds ``model.safetensors`` (sszoo's layout), ``config.json`` (entry, architecture, classes,
    test protocol) and ``README.md`` (a model card). Returns ``out``.
    """
    from dataclasses import asdict

    from safetensors.torch import save_file

    from .. import __version__
    from ..factory import create_model
    from ..registry import get_entry
    entry = get_entry(name)
    model = create_model(entry.name, pretrained=source)  # strict load: the file must fit the architecture
    tensors = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(os.path.join(out, cache.WEIGHTS_FILE)) as tmp:
        save_file(tensors, tmp, metadata={"format": "pt", "sszoo_entry": entry.name})
    config = {
        "sszoo_version": __version__, "entry": entry.name, "arch": model.config.to_dict(),
        "num_classes": model.num_classes, "dataset": entry.dataset.key,
        "class_names": list(entry.dataset.class_names), "palette": [list(c) for c in entry.dataset.palette],
        "test": asdict(entry.test), "source_url": entry.weights.url,
        "source": str(source) if source is not True else entry.weights.url,
    }
    write_text(json.dumps(config, indent=2), os.path.join(out, "config.json"))
    write_text(_model_card(entry, model.num_classes), os.path.join(out, "README.md"))
    return out


def _model_card(entry, num_classes: int) -> str:
    r = entry.reported
    return f"""---
license: {entry.weights.license.lower()}
library_name: sszoo
tags:
- semantic-segmentation
- {entry.method}
- sszoo
---

# {entry.name}

{entry.method} with a {entry.backbone} backbone trained on {entry.dataset.title} ({num_classes} classes), converted
from the {entry.source.framework} checkpoint `{entry.weights.url}` by sszoo. The weights are unchanged; only
the key names follow sszoo's (= MMSegmentation's) layout.

| reported mIoU | multi-scale + flip | test protocol |
| --- | --- | --- |
| {r.miou} | {r.miou_msflip if r.miou_msflip is not None else '-'} | {entry.test.mode}, scale {list(entry.test.scale)} |

```python
import sszoo
model = sszoo.create_model("{entry.name}", pretrained="hf-hub:<org>/<repo>")
```

Citations: {', '.join(entry.citations)} (see `sszoo.registry.citations`).
"""


def cmd_convert(args: argparse.Namespace) -> int:
    out = write_model_folder(args.name, args.src, args.out)
    print(f"wrote {out}: {cache.WEIGHTS_FILE}, config.json, README.md")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from huggingface_hub import HfApi, get_token
    token = args.token or get_token()
    if not token:
        print("push needs a Hugging Face token: run `huggingface-cli login` or set HF_TOKEN (or pass --token)",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        write_model_folder(args.name, args.src or True, tmp)
        api = HfApi(token=token)
        api.create_repo(args.repo, private=args.private, exist_ok=True)
        info = api.upload_folder(repo_id=args.repo, folder_path=tmp, commit_message=f"sszoo: {args.name}")
    print(f"pushed {args.name} to https://huggingface.co/{args.repo} ({info})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sszoo.hub", description="sszoo's pretrained-weight cache. Cache root: "
                                "$SSZOO_HOME (default ~/.cache/sszoo); SSZOO_MIRROR, SSZOO_OFFLINE honoured.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("download", help="download, verify and convert weights into the cache")
    d.add_argument("names", nargs="+", help="zoo names (pspnet_r101_d8_cityscapes[.tag]) or backbone specs "
                   "(open-mmlab://resnet50_v1c, torchvision://resnet50)")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_download)
    lk = sub.add_parser("lock", help="pin the full sha256 of each source in a lock file (default ./sszoo.lock)")
    lk.add_argument("names", nargs="+", help="zoo names, backbone specs, http(s) URLs or hf-hub:org/repo[@rev]")
    lk.add_argument("--lockfile", default=None, help="the lock file to write (default $SSZOO_LOCKFILE, else "
                    "./sszoo.lock); existing pins are kept")
    lk.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    lk.set_defaults(func=cmd_lock)
    ls = sub.add_parser("ls", help="list cached weights with sizes and how their source was verified")
    ls.set_defaults(func=cmd_ls)
    v = sub.add_parser("verify", help="re-hash cached files against their recorded sha256")
    v.add_argument("names", nargs="*", help="entries to check (default: all)")
    v.add_argument("--delete", action="store_true", help="delete damaged entries (they are downloaded again on use)")
    v.set_defaults(func=cmd_verify)
    r = sub.add_parser("rm", help="remove cached weights")
    r.add_argument("names", nargs="*")
    r.add_argument("--all", action="store_true", help="remove every cached entry")
    r.set_defaults(func=cmd_rm)
    c = sub.add_parser("convert", help="write model.safetensors + config.json + README.md for a checkpoint")
    c.add_argument("src", help="checkpoint: local .pth/.safetensors, http(s) URL or hf-hub:org/repo[@rev]")
    c.add_argument("--name", required=True, help="the zoo entry the checkpoint belongs to")
    c.add_argument("--out", required=True, help="output folder (created)")
    c.set_defaults(func=cmd_convert)
    u = sub.add_parser("push", help="upload an entry's converted weights to a Hugging Face repo (needs a token)")
    u.add_argument("name")
    u.add_argument("--repo", required=True, help="org/name on the Hugging Face Hub")
    u.add_argument("--src", default=None, help="checkpoint to push (default: the entry's published weights)")
    u.add_argument("--private", action="store_true")
    u.add_argument("--token", default=None, help="Hugging Face token (default: the logged-in one or HF_TOKEN)")
    u.set_defaults(func=cmd_push)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the hub CLI; returns the exit status (0 ok, 1 a problem was found, 2 bad usage)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (HubError, LookupError, OSError, ValueError, RuntimeError, requests.RequestException) as e:
        # one message, no traceback: every error the hub raises says what to do
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 1
