"""The zoo's registry: every published checkpoint as a typed :class:`ZooEntry`.

Names are ``{method}_{backbone}_{dataset}.{tag}`` (timm's ``arch.tag`` style), for example
``pspnet_r101_d8_cityscapes.512x1024_80k``. A bare name (``pspnet_r101_d8_cityscapes``) resolves to
its default tag: the best single-scale mIoU among the checkpoints with a published hash. The original
MMSegmentation config names (1.x, and 0.x where they exist) are accepted as aliases.

Detection entries (MMDetection checkpoints, :class:`DetectionEntry`, ``entry.task == "detection"``) live in a
table of their own (``detection.json``); ``get_entry`` and ``resolve_name`` find them too, ``list_models`` and
``list_entries`` list them with ``task="detection"`` (or ``task=None`` for every entry).
"""
from __future__ import annotations

import difflib
import fnmatch
import functools
import json
import os
from typing import Iterable

from ..models import ArchConfig
from .detection import DetectionEntry, det_zoo
from .entry import (DatasetInfo, Reported, SourceInfo, TestProtocol, TrainRecipe, WeightsInfo, ZooEntry)

__all__ = ["DetectionEntry", "DatasetInfo", "Reported", "SourceInfo", "TestProtocol", "TrainRecipe", "WeightsInfo", "ZooEntry",
           "UnknownModelError", "get_entry", "list_models", "list_entries", "get_dataset", "resolve_name"]

_TABLE = os.path.join(os.path.dirname(__file__), "zoo.json")


class UnknownModelError(KeyError):
    """Raised for a name that is neither a zoo entry, a bare name nor an alias."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def _tuples(v):
    if isinstance(v, list):
        return tuple(_tuples(x) for x in v)
    return v


def _record(cls, d: dict):
    return cls(**{k: _tuples(v) for k, v in d.items()})


class _Zoo:
    def __init__(self, table: dict) -> None:
        self.datasets = {k: _record(DatasetInfo, v) for k, v in table["datasets"].items()}
        self.entries: dict[str, ZooEntry] = {}
        for e in table["entries"]:
            entry = ZooEntry(
                name=e["name"], method=e["method"], backbone=e["backbone"], arch=ArchConfig.from_dict(e["arch"]),
                dataset=self.datasets[e["dataset"]], test=_record(TestProtocol, e["test"]),
                recipe=_record(TrainRecipe, e["recipe"]), reported=_record(Reported, e["reported"]),
                weights=_record(WeightsInfo, e["weights"]), source=_record(SourceInfo, e["source"]),
                citations=tuple(e["citations"]), aliases=tuple(e["aliases"]))
            self.entries[entry.name] = entry
        self.defaults: dict[str, str] = dict(table["defaults"])
        self.aliases: dict[str, str] = {}
        for entry in self.entries.values():
            for a in entry.aliases:
                self.aliases.setdefault(a, entry.name)


@functools.lru_cache(maxsize=1)
def _zoo() -> _Zoo:
    with open(_TABLE) as f:
        return _Zoo(json.load(f))


def resolve_name(name: str) -> str:
    """Map a full name, bare name or MMSegmentation config name to the full ``arch.tag`` name."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"a model name must be a non-empty string, got {name!r}")
    zoo = _zoo()
    key = name.strip()
    key = os.path.basename(key).removesuffix(".py") if key.endswith(".py") else key
    if key in zoo.entries:
        return key
    if key in zoo.defaults:
        return zoo.defaults[key]
    if key in zoo.aliases:
        return zoo.aliases[key]
    det = det_zoo().resolve(key)
    if det is not None:
        return det
    candidates = (list(zoo.entries) + list(zoo.defaults) + list(zoo.aliases) + list(det_zoo().entries)
                  + list(det_zoo().aliases))
    close = difflib.get_close_matches(key, candidates, n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownModelError(f"unknown model {name!r}.{hint} sszoo.list_models() lists all "
                            f"{len(zoo.defaults)} architectures; list_models(pretrained=True) all "
                            f"{len(zoo.entries)} checkpoints.")


def get_entry(name: str) -> ZooEntry | DetectionEntry:
    """The :class:`ZooEntry` for a full name, bare name or MMSegmentation config name, or the
    :class:`DetectionEntry` for a detection name or MMDetection config name."""
    full = resolve_name(name)
    zoo = _zoo()
    return zoo.entries[full] if full in zoo.entries else det_zoo().entries[full]


def _check_task(task: str | None) -> None:
    if task not in ("segmentation", "detection", None):
        raise ValueError(f"task must be 'segmentation', 'detection' or None (all), got {task!r}")


def list_models(pattern: str | Iterable[str] = "*", pretrained: bool = False,
                task: str | None = "segmentation") -> list[str]:
    """Zoo names matching a shell-style wildcard ``pattern`` (or any of several patterns).

    With ``pretrained=False`` the bare architecture names (``pspnet_r101_d8_cityscapes``); with
    ``pretrained=True`` every published checkpoint as ``arch.tag``. A pattern matches either form.
    ``task``: ``"segmentation"`` (the default), ``"detection"`` (detection names have no tag: the two
    lists are the same), or None for both.
    """
    _check_task(task)
    zoo = _zoo()
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    names = []
    if task in ("segmentation", None):
        names += sorted(zoo.entries) if pretrained else sorted(zoo.defaults)
    if task in ("detection", None):
        names += sorted(det_zoo().entries)
    out = []
    for n in names:
        bare = n.split(".", 1)[0]
        if any(fnmatch.fnmatchcase(n, p) or fnmatch.fnmatchcase(bare, p) for p in patterns):
            out.append(n)
    return out


def list_entries(pattern: str = "*", task: str | None = "segmentation") -> list:
    """Every :class:`ZooEntry` (``task="detection"``: :class:`DetectionEntry`; None: both) whose full name
    matches ``pattern``, in table order."""
    _check_task(task)
    table = {}
    if task in ("segmentation", None):
        table.update(_zoo().entries)
    if task in ("detection", None):
        table.update(det_zoo().entries)
    return [e for n, e in table.items() if fnmatch.fnmatchcase(n, pattern)
            or fnmatch.fnmatchcase(e.arch_name, pattern)]


def get_dataset(key: str) -> DatasetInfo:
    """Class names, palette and label conventions of a dataset (``"cityscapes"``, ``"ade20k"``, ...)."""
    zoo = _zoo()
    if key not in zoo.datasets:
        raise KeyError(f"unknown dataset {key!r}; known: {', '.join(sorted(zoo.datasets))}")
    return zoo.datasets[key]


def default_name(bare: str) -> str:
    return _zoo().defaults[bare]
