"""Necks between the backbone and the heads: one file per architecture, each a typed config plus an ``nn.Module``
that maps the backbone's list of feature maps to another list."""
from .fpn import FPN, FPNConfig

__all__ = ["FPN", "FPNConfig"]
