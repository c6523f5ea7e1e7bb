"""Backbones: one file per architecture, each a typed config plus an ``nn.Module`` that returns a list of
feature maps (one per stage) and lists their channels in ``out_channels``."""
from .resnet import ResNet, ResNetConfig
from .resnest import ResNeSt, ResNeStConfig
from .ddrnet import DDRNet, DDRNetConfig
from .pidnet import PIDNet, PIDNetConfig
from .fast_scnn import FastSCNN, FastSCNNConfig
from .cgnet import CGNet, CGNetConfig
from .erfnet import ERFNet, ERFNetConfig

__all__ = ["ResNet", "ResNetConfig", "ResNeSt", "ResNeStConfig",
           "DDRNet", "DDRNetConfig", "PIDNet", "PIDNetConfig"]
__all__ += ["FastSCNN", "FastSCNNConfig", "CGNet", "CGNetConfig", "ERFNet", "ERFNetConfig"]
