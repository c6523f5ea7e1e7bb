"""Backbones: one file per architecture, each a typed config plus an ``nn.Module`` that returns a list of
feature maps (one per stage) and lists their channels in ``out_channels``."""
from .resnet import ResNet, ResNetConfig
from .resnest import ResNeSt, ResNeStConfig
from .hrnet import HRNet, HRNetConfig
from .mobilenet_v2 import MobileNetV2, MobileNetV2Config
from .mobilenet_v3 import MobileNetV3, MobileNetV3Config
# the real-time networks
from .fast_scnn import FastSCNN, FastSCNNConfig
from .cgnet import CGNet, CGNetConfig
from .erfnet import ERFNet, ERFNetConfig
from .bisenetv1 import BiSeNetV1, BiSeNetV1Config
from .bisenetv2 import BiSeNetV2, BiSeNetV2Config
from .stdc import STDCConfig, STDCContextPathNet
from .icnet import ICNet, ICNetConfig
from .ddrnet import DDRNet, DDRNetConfig
from .pidnet import PIDNet, PIDNetConfig
# transformers
from .twins import PCPVT, PCPVTConfig, SVT, SVTConfig
from .swin import SwinConfig, SwinTransformer
from .vit import VisionTransformer, ViTConfig
# MMPretrain backbones (ConvNeXt under UPerNet, PoolFormer under Semantic FPN)
from .convnext import ConvNeXt, ConvNeXtConfig
from .poolformer import PoolFormer, PoolFormerConfig
# SegFormer's Mix Transformer
from .mit import MiTConfig, MixVisionTransformer

__all__ = ["ResNet", "ResNetConfig", "ResNeSt", "ResNeStConfig", "HRNet", "HRNetConfig", "MobileNetV2",
           "MobileNetV2Config", "MobileNetV3", "MobileNetV3Config", "FastSCNN", "FastSCNNConfig", "CGNet", "CGNetConfig",
           "ERFNet", "ERFNetConfig", "BiSeNetV1", "BiSeNetV1Config", "BiSeNetV2", "BiSeNetV2Config", "STDCConfig",
           "STDCContextPathNet", "ICNet", "ICNetConfig", "DDRNet", "DDRNetConfig", "PIDNet", "PIDNetConfig"]
__all__ += ["PCPVT", "PCPVTConfig", "SVT", "SVTConfig"]
__all__ += ["SwinConfig", "SwinTransformer"]
__all__ += ["VisionTransformer", "ViTConfig"]
__all__ += ["ConvNeXt", "ConvNeXtConfig", "PoolFormer", "PoolFormerConfig"]
__all__ += ["MiTConfig", "MixVisionTransformer"]
# BEiT and MAE (relative position bias, layer scales; fixed input size)
from .beit import BEiT, BEiTConfig, MAE, MAEConfig  # noqa: E402
__all__ += ["BEiT", "BEiTConfig", "MAE", "MAEConfig"]
# SegNeXt
from .mscan import MSCAN, MSCANConfig

__all__ += ["MSCAN", "MSCANConfig"]
