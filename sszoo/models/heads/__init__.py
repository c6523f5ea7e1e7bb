"""Decode and auxiliary heads: one file per architecture, each a typed config plus an ``nn.Module``.

Every head maps the backbone (or neck) features to logits at feature resolution; the segmentor resizes
them. A head after the first in a cascade also receives the previous head's logits.
"""
from .aspp import ASPPHead, ASPPHeadConfig
from .fcn import FCNHead, FCNHeadConfig
from .psp import PSPHead, PSPHeadConfig
from .sep_aspp import SepASPPHead, SepASPPHeadConfig
from .non_local import NLHead, NLHeadConfig
from .dnl import DNLHead, DNLHeadConfig
from .gc import GCHead, GCHeadConfig
from .ema import EMAHead, EMAHeadConfig

from .ccnet import CCHead, CCHeadConfig
from .danet import DAHead, DAHeadConfig
from .ann import ANNHead, ANNHeadConfig
from .isanet import ISAHead, ISAHeadConfig

from .uper import UPerHead, UPerHeadConfig
from .fpn_head import FPNHead, FPNHeadConfig
from .point_head import PointHead, PointHeadConfig

from .enc import EncHead, EncHeadConfig
from .apc import APCHead, APCHeadConfig
from .dm import DMHead, DMHeadConfig
from .psa import PSAHead, PSAHeadConfig

from .ocr import OCRHead, OCRHeadConfig
from .lraspp import LRASPPHead, LRASPPHeadConfig
from .dsfcn import DSFCNHead, DSFCNHeadConfig
from .stdc_head import STDCHead, STDCHeadConfig
from .ddr_head import DDRHead, DDRHeadConfig
from .pid_head import PIDHead, PIDHeadConfig
from .setr import SETRMLAHead, SETRMLAHeadConfig, SETRUPHead, SETRUPHeadConfig

__all__ = ["ANNHead", "ANNHeadConfig", "APCHead", "APCHeadConfig", "ASPPHead", "ASPPHeadConfig", "CCHead",
           "CCHeadConfig", "DAHead", "DAHeadConfig", "DMHead", "DMHeadConfig", "DNLHead", "DNLHeadConfig", "EMAHead",
           "EMAHeadConfig", "EncHead", "EncHeadConfig", "FCNHead", "FCNHeadConfig", "FPNHead", "FPNHeadConfig",
           "GCHead", "GCHeadConfig", "ISAHead", "ISAHeadConfig", "NLHead", "NLHeadConfig", "PSAHead",
           "PSAHeadConfig", "PSPHead", "PSPHeadConfig", "PointHead", "PointHeadConfig", "SepASPPHead",
           "SepASPPHeadConfig", "UPerHead", "UPerHeadConfig"]
__all__ += ["OCRHead", "OCRHeadConfig", "LRASPPHead", "LRASPPHeadConfig", "DSFCNHead", "DSFCNHeadConfig", "STDCHead",
            "STDCHeadConfig", "DDRHead", "DDRHeadConfig", "PIDHead", "PIDHeadConfig"]
__all__ += ["SETRUPHead", "SETRUPHeadConfig", "SETRMLAHead", "SETRMLAHeadConfig"]
from .mask2former import Mask2FormerHead, Mask2FormerHeadConfig
__all__ += ["Mask2FormerHead", "Mask2FormerHeadConfig"]
