"""Every MMSegmentation 1.2.2 config that sszoo can build has the reference's exact state-dict layout.

tools/reference/mmseg_configs.json (tools/extract_mmseg_facts.py, run on MMSegmentation 1.2.2 itself)
records, per config, its resolved ``cfg.model`` and its segmentor's key count, parameter count and a
digest of every ``key:shape``. Here each config that tools/mmseg_arch.py converts is built by sszoo on
the meta device (shapes only, nothing allocated; once per distinct network) and the three must be equal: the same keys, the same
shapes, so a published checkpoint loads strictly.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import sys

import pytest
import torch

from sszoo.models import ArchConfig, build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from mmseg_arch import arch_from_mmseg  # noqa: E402

FACTS = os.path.join(ROOT, "tools", "reference", "mmseg_configs.json")


@functools.lru_cache(maxsize=1)
def _configs() -> dict:
    with open(FACTS) as f:
        return json.load(f)["configs"]


def _supported() -> dict[str, dict]:
    out = {}
    for path, c in _configs().items():
        if "model" not in c or "keys_digest" not in c:
            continue
        try:
            out[path] = arch_from_mmseg(c["model"])
        except KeyError:
            continue  # a type sszoo does not build yet
    return out


SUPPORTED = _supported()


def _distinct() -> dict[str, list[str]]:
    """The supported configs grouped by what the check depends on (sszoo's architecture record and the
    reference's three facts): configs that differ only in data, schedule or crop build the same network, so
    checking the first of each group checks them all (277 networks for the 500 configs of 1.2.2 it builds)."""
    groups: dict[tuple, list[str]] = {}
    for path in sorted(SUPPORTED):
        f = _configs()[path]
        key = (json.dumps(SUPPORTED[path], sort_keys=True), f["n_keys"], f["n_params"], f["keys_digest"])
        groups.setdefault(key, []).append(path)
    return {paths[0]: paths for paths in groups.values()}


DISTINCT = _distinct()


def keys_digest(state: dict[str, torch.Tensor]) -> str:
    """sha1 of the sorted ``key:shape`` lines, as tools/extract_mmseg_facts.py computes it."""
    text = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in sorted(state.items()))
    return hashlib.sha1(text.encode()).hexdigest()


def test_every_served_method_is_covered():
    methods = {_configs()[p]["method"] for p in SUPPORTED}
    assert {"fcn", "pspnet", "deeplabv3", "deeplabv3plus"} <= methods
    assert len(SUPPORTED) >= 179


@pytest.mark.parametrize("config", sorted(DISTINCT))
def test_state_dict_layout_matches_reference(config):
    """``config`` and every config in its group (DISTINCT) build this network."""
    facts = _configs()[config]
    with torch.device("meta"):
        model = build_model(ArchConfig.from_dict(SUPPORTED[config]))
    state = model.state_dict()
    assert len(state) == facts["n_keys"]
    assert sum(p.numel() for p in model.parameters()) == facts["n_params"]
    assert keys_digest(state) == facts["keys_digest"]
