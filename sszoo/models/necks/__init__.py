"""Necks between the backbone and the heads: one file per architecture, each a typed config plus an ``nn.Module``
that maps the backbone's list of feature maps to the list of maps the heads read."""
from .fpn import FPN, FPNConfig
from .jpu import JPU, JPUConfig
from .icneck import ICNeck, ICNeckConfig
from .mln import MultiLevelNeck, MultiLevelNeckConfig
from .mla import MLANeck, MLANeckConfig

__all__ = ["FPN", "FPNConfig", "JPU", "JPUConfig", "ICNeck", "ICNeckConfig"]
__all__ += ["MultiLevelNeck", "MultiLevelNeckConfig"]
__all__ += ["MLANeck", "MLANeckConfig"]
from .feature2pyramid import Feature2Pyramid, Feature2PyramidConfig  # noqa: E402
__all__ += ["Feature2Pyramid", "Feature2PyramidConfig"]
