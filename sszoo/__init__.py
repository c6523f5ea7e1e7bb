"""sszoo: a PyTorch model zoo for semantic segmentation with exact, verified pretrained weights.

The small public API::

    sszoo.list_models("pspnet*")                       # names, with wildcards
    sszoo.get_entry("pspnet_r101_d8_cityscapes")       # the typed record behind a name
    model = sszoo.create_model("pspnet_r101_d8_cityscapes", pretrained=True)
    labels = sszoo.predict(model, image)               # H x W label map, the entry's test protocol

Submodules: ``sszoo.inference`` (``infer``), ``sszoo.eval``, ``sszoo.train``, ``sszoo.hub``,
``sszoo.data``, ``sszoo.export``, ``sszoo.optimize``.
"""
import importlib
from typing import Any

__version__ = "0.1.0"

from .factory import create_model  # noqa: E402
from .registry import get_entry, list_models  # noqa: E402

__all__ = ["__version__", "create_model", "get_entry", "list_models", "predict"]


def __getattr__(name: str) -> Any:
    # sszoo.predict is imported on first use (a callable module: sszoo.predict(model, image)), so that
    # `python -m sszoo.predict` does not find it half-imported by the package
    if name == "predict":
        return importlib.import_module(".predict", __name__)
    raise AttributeError(f"module 'sszoo' has no attribute {name!r}")
