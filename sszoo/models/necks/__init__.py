"""Necks: one file per architecture, each a typed config plus an ``nn.Module`` mapping the backbone's
feature maps to the list of maps the heads read."""
from .jpu import JPU, JPUConfig

__all__ = ["JPU", "JPUConfig"]
