"""Shared by the golden-file scripts: the MMSegmentation 1.2.2 oracle and its models.

The oracle is the CPU environment that ../shared/tools/mmseg-oracle-setup.sh builds. Point the scripts at
it with ORACLE=/path/to/oracle/bin/python (default: ../oracle/bin/python beside this checkout) and at the
dump script with ORACLE_DUMP (default: ../shared/tools/mmseg_oracle_dump.py beside this checkout).
"""
from __future__ import annotations

import importlib.util
import os
from typing import Any, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORACLE_PYTHON = os.environ.get("ORACLE", os.path.join(ROOT, os.pardir, "oracle", "bin", "python"))
DUMP = os.environ.get("ORACLE_DUMP", os.path.join(ROOT, os.pardir, "shared", "tools", "mmseg_oracle_dump.py"))


def dump_module():
    """mmseg_oracle_dump.py as a module (its find_config and seeded randomise_)."""
    spec = importlib.util.spec_from_file_location("mmseg_oracle_dump", DUMP)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _plain_bn(d: Any) -> None:
    # SyncBN cannot run in one CPU process; BN computes the same thing there
    if isinstance(d, dict):
        for k, v in d.items():
            if k == "norm_cfg" and isinstance(v, dict) and v.get("type") == "SyncBN":
                v["type"] = "BN"
            else:
                _plain_bn(v)
    elif isinstance(d, list):
        for v in d:
            _plain_bn(v)


def build_reference_model(config: str, num_classes: Optional[int] = None, test_cfg: Optional[dict] = None):
    """(dump module, MMSegmentation model, resolved config) for a 1.x config name, without pretrained init."""
    from mmengine import Config
    from mmseg.registry import MODELS

    dump = dump_module()
    cfg = Config.fromfile(dump.find_config(config))
    m = cfg.model
    m.pop("pretrained", None)
    if m.backbone.get("init_cfg"):
        m.backbone.init_cfg = None
    _plain_bn(m)
    if num_classes is not None:
        for head in ("decode_head", "auxiliary_head"):
            for h in (m.get(head) if isinstance(m.get(head), list) else [m.get(head)]):  # cascades are lists
                if isinstance(h, dict):
                    h.num_classes = num_classes
    if test_cfg is not None:
        m.test_cfg = test_cfg
    return dump, MODELS.build(m), cfg
