"""sszoo: a PyTorch model zoo for semantic segmentation with exact, verified pretrained weights."""
__version__ = "0.1.0"

from .factory import create_model
from .registry import get_entry, list_models

__all__ = ["__version__", "create_model", "get_entry", "list_models"]
