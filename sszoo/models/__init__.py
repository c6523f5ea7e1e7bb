"""Model code: backbones, heads and the segmentor. Free of any download or registry logic."""
from .deeplabv3 import ASPPHead, ASPPHeadConfig
from .deeplabv3plus import SepASPPHead, SepASPPHeadConfig
from .fcn import FCNHead, FCNHeadConfig
from .pspnet import PSPHead, PSPHeadConfig
from .resnet import ResNet, ResNetConfig
from .segmentor import ArchConfig, Segmentor, build_model

__all__ = ["ArchConfig", "ASPPHead", "ASPPHeadConfig", "FCNHead", "FCNHeadConfig", "PSPHead", "PSPHeadConfig",
           "ResNet", "ResNetConfig", "SepASPPHead", "SepASPPHeadConfig", "Segmentor", "build_model"]
