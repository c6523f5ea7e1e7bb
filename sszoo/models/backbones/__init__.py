"""Backbones: one file per architecture, each a typed config plus an ``nn.Module`` that returns a list of
feature maps (one per stage) and lists their channels in ``out_channels``."""
from .resnet import ResNet, ResNetConfig
from .resnest import ResNeSt, ResNeStConfig
from .mobilenet_v2 import MobileNetV2, MobileNetV2Config
from .mobilenet_v3 import MobileNetV3, MobileNetV3Config

__all__ = ["ResNet", "ResNetConfig", "ResNeSt", "ResNeStConfig", "MobileNetV2", "MobileNetV2Config", "MobileNetV3",
           "MobileNetV3Config"]
