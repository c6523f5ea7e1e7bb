"""torch.hub through hubconf.py: list, help and load, offline."""
import os
import shutil

import torch

import sszoo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_hub_load_local():
    model = torch.hub.load(ROOT, "fcn_r18_d8_cityscapes", source="local", trust_repo=True, verbose=False)
    assert model.num_classes == 19
    model = torch.hub.load(ROOT, "create_model", "pspnet_r18_d8_cityscapes", source="local", num_classes=5,
                           trust_repo=True, verbose=False)
    assert model.num_classes == 5
    model = torch.hub.load(ROOT, "pspnet_r101_d8_cityscapes", source="local", tag="769x769_40k",
                           trust_repo=True, verbose=False)
    assert model.entry.name == "pspnet_r101_d8_cityscapes.769x769_40k" and model.align_corners


def test_hub_list_and_help_from_cached_repo(tmp_path, monkeypatch):
    # torch.hub.list/help take a GitHub repo; an already-fetched copy in the hub cache is used offline.
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    try:
        repo = tmp_path / "someone_sszoo_main"
        shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(".git", "tests", "model_cards", "benchmarks",
                                                                  "__pycache__", "*.egg-info"))
        names = torch.hub.list("someone/sszoo:main", trust_repo=True, skip_validation=True, verbose=False)
        assert "create_model" in names
        assert set(sszoo.list_models()) <= set(names)
        doc = torch.hub.help("someone/sszoo:main", "pspnet_r101_d8_cityscapes", trust_repo=True,
                             skip_validation=True)
        entry = sszoo.get_entry("pspnet_r101_d8_cityscapes")
        assert "Cityscapes" in doc and f"reported mIoU {entry.reported.miou}" in doc
        assert "769x769_40k" in doc  # every tag is listed
    finally:
        torch.hub.set_dir(old)


def test_docstring_calls_only_what_the_installed_torch_accepts():
    """Every torch.hub call in hubconf's docstring passes only keywords its signature has (torch.hub.list
    and help take no source=)."""
    import ast
    import inspect
    import re

    doc = ast.parse(open(os.path.join(ROOT, "hubconf.py")).read()).body[0].value.value   # as written
    code_lines = [line for line in doc.splitlines() if line.startswith("    ") and "torch.hub." in line]
    calls = [line.split("#")[0] for line in code_lines]
    for line in code_lines:   # nor does a comment suggest list/help(..., source="local")
        if re.search(r"torch\.hub\.(list|help)\(", line):
            assert not re.search(r'(?<!no )source="local"', line), line
    assert calls, "the docstring shows torch.hub calls"
    for code in calls:
        code = re.sub(r"^\s*\w+\s*=\s*", "", code.strip())           # "model = torch.hub.load(...)"
        call = ast.parse(code, mode="eval").body
        func = getattr(torch.hub, call.func.attr)
        params = inspect.signature(func).parameters
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
        for kw in call.keywords:
            assert kw.arg in params or (takes_kwargs and kw.arg not in ("source",)), (code, kw.arg)
    assert "source" not in inspect.signature(torch.hub.list).parameters   # why the docstring says so
