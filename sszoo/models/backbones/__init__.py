"""Backbones: one file per architecture, each a typed config plus an ``nn.Module`` that returns a list of
feature maps (one per stage) and lists their channels in ``out_channels``."""
from .resnet import ResNet, ResNetConfig
from .resnest import ResNeSt, ResNeStConfig
from .hrnet import HRNet, HRNetConfig

__all__ = ["ResNet", "ResNetConfig", "ResNeSt", "ResNeStConfig", "HRNet", "HRNetConfig"]
