"""Every console script in pyproject.toml points at a function that returns an exit status."""
import importlib
import inspect
import os

import pytest

tomllib = pytest.importorskip("tomllib")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def scripts():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]["scripts"]


@pytest.mark.parametrize("name", sorted(scripts()))
def test_console_script_target(name):
    module, func = scripts()[name].split(":")
    target = getattr(importlib.import_module(module), func)
    assert callable(target)
    assert inspect.signature(target).return_annotation in (int, "int"), f"{name} must return an exit status"
