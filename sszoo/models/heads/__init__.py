"""Decode and auxiliary heads: one file per architecture, each a typed config plus an ``nn.Module``.

Every head maps the backbone (or neck) features to logits at feature resolution; the segmentor resizes
them. A head after the first in a cascade also receives the previous head's logits.
"""
from .aspp import ASPPHead, ASPPHeadConfig
from .fcn import FCNHead, FCNHeadConfig
from .psp import PSPHead, PSPHeadConfig
from .sep_aspp import SepASPPHead, SepASPPHeadConfig
from .enc import EncHead, EncHeadConfig
from .apc import APCHead, APCHeadConfig
from .dm import DMHead, DMHeadConfig
from .psa import PSAHead, PSAHeadConfig

__all__ = ["ASPPHead", "ASPPHeadConfig", "FCNHead", "FCNHeadConfig", "PSPHead", "PSPHeadConfig", "SepASPPHead",
           "SepASPPHeadConfig", "EncHead", "EncHeadConfig", "APCHead", "APCHeadConfig", "DMHead",
           "DMHeadConfig", "PSAHead", "PSAHeadConfig"]
