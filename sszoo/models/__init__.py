"""Model code, free of any download or registry logic.

    backbones/   feature extractors (one file per architecture: a config dataclass + an nn.Module)
    necks/       feature-pyramid modules between backbone and heads
    heads/       decode and auxiliary heads
    builder.py   the one dispatch from config type to module class
    segmentor.py ArchConfig and Segmentor: backbone (+ neck) + decode head(s) (+ auxiliary heads)
    layers.py, losses.py   shared building blocks and the heads' training losses
"""
from .backbones import ResNet, ResNetConfig
from .heads import (ASPPHead, ASPPHeadConfig, FCNHead, FCNHeadConfig, PSPHead, PSPHeadConfig, SepASPPHead,
                    SepASPPHeadConfig)
from .segmentor import ArchConfig, HeadOutputs, Segmentor, build_model

__all__ = ["ArchConfig", "ASPPHead", "ASPPHeadConfig", "FCNHead", "FCNHeadConfig", "HeadOutputs", "PSPHead",
           "PSPHeadConfig", "ResNet", "ResNetConfig", "SepASPPHead", "SepASPPHeadConfig", "Segmentor",
           "build_model"]
