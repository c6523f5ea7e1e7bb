"""Regenerate the model-parity golden files in tests/golden/parity/ with the MMSegmentation oracle.

    ORACLE=/path/to/oracle/bin/python python tools/make_golden.py [CASE ...]   (see tools/oracle_models.py)

For each case it runs tools/oracle_dump64.py (MMSegmentation 1.2.2, the shared oracle's seeded random
weights, BatchNorm calibrated and the forward run in float64 so that the golden holds on any CPU), and
keeps the input, the reference logits and what regenerates the weights (config, seed, calibration
shape), never the weights themselves. tests/test_parity.py rebuilds the same weights in sszoo with the
same seeded procedure and compares.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from oracle_models import ORACLE_PYTHON  # noqa: E402
DUMP64 = os.path.join(HERE, "oracle_dump64.py")
OUT = os.path.join(ROOT, "tests", "golden", "parity")

# name: (mmseg config, extra dump arguments). Together they cover ResNetV1b/V1c x depth 18/50/101 x
# output stride 8/16/32 and multi-grid x the four heads, align_corners on and off, several class counts,
# odd input sizes, batch 2, and sliding-window inference.
CASES = {
    "fcn_r50_d8": ("fcn_r50-d8_4xb2-40k_cityscapes-512x1024", ["--height", "97", "--width", "131"]),
    "fcn_r18b_d8": ("fcn_r18b-d8_4xb2-80k_cityscapes-512x1024", ["--height", "65", "--width", "81", "--batch", "2"]),
    "fcn_d6_r101b_d16_ac": ("fcn-d6_r101b-d16_4xb2-80k_cityscapes-769x769", ["--height", "73", "--width", "89", "--num-classes", "7"]),
    "fcn_r101_d8_ade": ("fcn_r101-d8_4xb4-80k_ade20k-512x512", ["--height", "41", "--width", "57"]),
    "pspnet_r101_d8_ac": ("pspnet_r101-d8_4xb2-40k_cityscapes-769x769", ["--height", "97", "--width", "131", "--num-classes", "5"]),
    "pspnet_r18_d8": ("pspnet_r18-d8_4xb2-80k_cityscapes-512x1024", ["--height", "64", "--width", "96"]),
    "pspnet_r50b_d32": ("pspnet_r50b-d32_4xb2-80k_cityscapes-512x1024", ["--height", "99", "--width", "67", "--num-classes", "6"]),
    "pspnet_r50_d32": ("pspnet_r50-d32_4xb2-80k_cityscapes-512x1024", ["--height", "66", "--width", "98", "--num-classes", "6"]),
    "pspnet_r50b_d8_rsb": ("pspnet_r50-d8-rsb_4xb2-adamw-80k_cityscapes-512x1024", ["--height", "57", "--width", "71", "--num-classes", "4"]),
    "pspnet_r50_d8_voc": ("pspnet_r50-d8_4xb4-20k_voc12aug-512x512", ["--height", "61", "--width", "77"]),
    "deeplabv3_r101_d16_mg124": ("deeplabv3_r101-d16-mg124_4xb2-40k_cityscapes-512x1024", ["--height", "97", "--width", "131", "--num-classes", "8"]),
    "deeplabv3_r50b_d8_ac": ("deeplabv3_r50b-d8_4xb2-80k_cityscapes-769x769", ["--height", "69", "--width", "85", "--num-classes", "5"]),
    "deeplabv3_r18_d8": ("deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024", ["--height", "63", "--width", "95"]),
    "deeplabv3_r101_d8_context59": ("deeplabv3_r101-d8_4xb4-40k_pascal-context-59-480x480", ["--height", "47", "--width", "53"]),
    "deeplabv3plus_r18b_d8": ("deeplabv3plus_r18b-d8_4xb2-80k_cityscapes-512x1024", ["--height", "65", "--width", "97"]),
    "deeplabv3plus_r101_d16_mg124": ("deeplabv3plus_r101-d16-mg124_4xb2-40k_cityscapes-512x1024", ["--height", "81", "--width", "113", "--num-classes", "6"]),
    "deeplabv3plus_r101_d8_ac": ("deeplabv3plus_r101-d8_4xb2-40k_cityscapes-769x769", ["--height", "71", "--width", "93", "--num-classes", "5"]),
    "deeplabv3plus_r50_d8_voc": ("deeplabv3plus_r50-d8_4xb4-20k_voc12aug-512x512", ["--height", "59", "--width", "75", "--batch", "2"]),
    # sliding window (stride smaller than the window: overlapping windows, border windows shifted inside)
    "slide_pspnet_r18_d8_ac": ("pspnet_r18-d8_4xb2-80k_cityscapes-769x769", ["--mode", "slide", "--height", "100", "--width", "150", "--crop", "65", "--stride", "43", "--num-classes", "5"]),
    "slide_deeplabv3plus_r18_d8": ("deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024", ["--mode", "slide", "--height", "90", "--width", "121", "--crop", "64", "--stride", "40", "--num-classes", "4"]),
    "nonlocal_r50_d8": ("nonlocal_r50-d8_4xb2-40k_cityscapes-512x1024", ["--height", "65", "--width", "97"]),
    "nonlocal_r101_d8_ac": ("nonlocal_r101-d8_4xb2-40k_cityscapes-769x769", ["--height", "57", "--width", "71", "--num-classes", "7"]),
    "dnlnet_r50_d8_ac": ("dnl_r50-d8_4xb2-40k_cityscapes-769x769", ["--height", "73", "--width", "89", "--num-classes", "5"]),
    "dnlnet_r50_d8_ade": ("dnl_r50-d8_4xb4-80k_ade20k-512x512", ["--height", "41", "--width", "57", "--batch", "2"]),
    "gcnet_r50_d8": ("gcnet_r50-d8_4xb2-40k_cityscapes-512x1024", ["--height", "63", "--width", "95", "--num-classes", "7"]),
    "gcnet_r50_d8_ac": ("gcnet_r50-d8_4xb2-40k_cityscapes-769x769", ["--height", "49", "--width", "67", "--batch", "2"]),
    "emanet_r50_d8": ("emanet_r50-d8_4xb2-80k_cityscapes-512x1024", ["--height", "65", "--width", "97", "--batch", "2"]),
    "emanet_r50_d8_ac": ("emanet_r50-d8_4xb2-80k_cityscapes-769x769", ["--height", "69", "--width", "85", "--num-classes", "6"]),
    "ccnet_r50_d8": ("ccnet_r50-d8_4xb2-40k_cityscapes-512x1024", ["--height", "65", "--width", "97"]),
    "ccnet_r101_d8_ac": ("ccnet_r101-d8_4xb2-40k_cityscapes-769x769", ["--height", "73", "--width", "89", "--num-classes", "7"]),
    "danet_r50_d8_ac": ("danet_r50-d8_4xb2-40k_cityscapes-769x769", ["--height", "67", "--width", "83", "--num-classes", "7"]),
    "danet_r101_d8_voc": ("danet_r101-d8_4xb4-20k_voc12aug-512x512", ["--height", "49", "--width", "61", "--batch", "2"]),
    "ann_r50_d8_ac": ("ann_r50-d8_4xb2-40k_cityscapes-769x769", ["--height", "71", "--width", "93", "--num-classes", "7"]),
    "ann_r101_d8_ade": ("ann_r101-d8_4xb4-80k_ade20k-512x512", ["--height", "57", "--width", "73"]),
    "isanet_r50_d8": ("isanet_r50-d8_4xb2-40k_cityscapes-512x1024", ["--height", "65", "--width", "97", "--num-classes", "7"]),
    "isanet_r101_d8_voc": ("isanet_r101-d8_4xb4-20k_voc12aug-512x512", ["--height", "81", "--width", "113"]),
    "upernet_r50_ac": ("upernet_r50_4xb2-40k_cityscapes-769x769", ["--height", "65", "--width", "97", "--num-classes", "7"]),
    "upernet_r101_ade": ("upernet_r101_4xb4-80k_ade20k-512x512", ["--height", "41", "--width", "57"]),
    "fpn_r50": ("fpn_r50_4xb2-80k_cityscapes-512x1024", ["--height", "65", "--width", "97"]),
    "fpn_r101_ade": ("fpn_r101_4xb4-160k_ade20k-512x512", ["--height", "47", "--width", "61", "--num-classes", "7"]),
    # 77 x 97: the second subdivision step refines all 80 x 100 <= 8196 pixels. With more pixels than points the
    # selection's cutoff falls between uncertainties ~1e-4 apart, which float32 rounding reorders (O(1) logit
    # changes at those pixels); tests/test_point_head.py checks the selection in float64 instead.
    "pointrend_r50": ("pointrend_r50_4xb2-80k_cityscapes-512x1024", ["--height", "77", "--width", "97"]),
    "pointrend_r101_ade": ("pointrend_r101_4xb4-160k_ade20k-512x512", ["--height", "57", "--width", "71", "--batch", "2"]),
    "encnet_r50_d8": ("encnet_r50-d8_4xb2-40k_cityscapes-512x1024", ["--height", "65", "--width", "97"]),
    "encnet_r101_d8_ac": ("encnet_r101-d8_4xb2-40k_cityscapes-769x769", ["--height", "57", "--width", "73", "--num-classes", "7", "--batch", "2"]),
    "apcnet_r50_d8_ac": ("apcnet_r50-d8_4xb2-40k_cityscapes-769x769", ["--height", "65", "--width", "97", "--num-classes", "7", "--batch", "2"]),
    "apcnet_r50_d8_ade": ("apcnet_r50-d8_4xb4-80k_ade20k-512x512", ["--height", "41", "--width", "57"]),
    "dmnet_r50_d8": ("dmnet_r50-d8_4xb2-40k_cityscapes-512x1024", ["--height", "65", "--width", "97", "--batch", "2"]),
    "dmnet_r50_d8_ac": ("dmnet_r50-d8_4xb2-40k_cityscapes-769x769", ["--height", "61", "--width", "83", "--num-classes", "7"]),
    "psanet_r50_d8": ("psanet_r50-d8_4xb2-40k_cityscapes-512x1024", ["--height", "65", "--width", "97"]),
    "psanet_r50_d8_ade": ("psanet_r50-d8_4xb4-80k_ade20k-512x512", ["--height", "41", "--width", "65"]),
    "psanet_r50_d8_ac": ("psanet_r50-d8_4xb2-40k_cityscapes-769x769", ["--height", "57", "--width", "81", "--num-classes", "7"]),
    # ResNeSt-101 (the only depth with configs; no 769x769 configs) under its PSP/ASPP/separable-ASPP heads, and
    # FastFCN (R-50 only, no 769x769 configs) with its JPU neck. No ResNeSt+FCN case: random ResNeSt amplifies
    # rounding so much that on those inputs MMSegmentation's own float32 forward misses its float64 logits by
    # ~0.2 of their scale (sszoo's float32 by the same amount), beyond the float32 bound; float64 parity holds.
    "resnest_s101_d8_pspnet_ade": ("resnest_s101-d8_pspnet_4xb4-160k_ade20k-512x512", ["--height", "57", "--width", "71", "--num-classes", "7"]),
    "resnest_s101_d8_deeplabv3": ("resnest_s101-d8_deeplabv3_4xb2-80k_cityscapes-512x1024", ["--height", "49", "--width", "67"]),
    "resnest_s101_d8_deeplabv3plus_ade": ("resnest_s101-d8_deeplabv3plus_4xb4-160k_ade20k-512x512", ["--height", "53", "--width", "61", "--batch", "2", "--num-classes", "21"]),
    "fastfcn_r50_d32_jpu_psp": ("fastfcn_r50-d32_jpu_psp_4xb2-80k_cityscapes-512x1024", ["--height", "65", "--width", "97"]),
    "fastfcn_r50_d32_jpu_aspp_ade": ("fastfcn_r50-d32_jpu_aspp_4xb4-80k_ade20k-512x512", ["--height", "71", "--width", "93", "--num-classes", "7"]),
    # DDRNet and PIDNet add branch features of ceil(side / 8) and side // 8 pixels: the reference (and sszoo)
    # accept only sides that are multiples of 8, so these sizes are multiples of 8 but not of 32 (one input per case keeps each file under 300 KB)
    # (the context branch's 1/16 - 1/64 maps are then rounded up, and every resize between branches is uneven).
    "ddrnet_23_slim": ("ddrnet_23-slim_in1k-pre_2xb6-120k_cityscapes-1024x1024", ["--height", "56", "--width", "72", "--num-classes", "5"]),
    "ddrnet_23": ("ddrnet_23_in1k-pre_2xb6-120k_cityscapes-1024x1024", ["--height", "40", "--width", "88", "--num-classes", "4"]),
    "pidnet_s": ("pidnet-s_2xb6-120k_1024x1024-cityscapes", ["--height", "48", "--width", "72", "--num-classes", "6"]),
    "pidnet_m": ("pidnet-m_2xb6-120k_1024x1024-cityscapes", ["--height", "72", "--width", "40", "--num-classes", "4"]),
    "pidnet_l": ("pidnet-l_2xb6-120k_1024x1024-cityscapes", ["--height", "56", "--width", "72", "--num-classes", "4"]),
    # BiSeNetV1 over R-18/50/101 context paths (ResNet with the 7x7 stem, output stride 32) and BiSeNetV2:
    # every fusion step takes odd sizes (each stride-2 layer rounds up alike in both paths); batch 2 in one
    "bisenetv1_r18_d32": ("bisenetv1_r18-d32_4xb4-160k_cityscapes-1024x1024", ["--height", "41", "--width", "49", "--num-classes", "4", "--batch", "2"]),
    "bisenetv1_r50_d32_coco": ("bisenetv1_r50-d32_4xb4-160k_coco-stuff164k-512x512", ["--height", "49", "--width", "67", "--num-classes", "6"]),
    # (no R-101 case: its context path differs from R-50's only in depth, and it would add the most test time of the
    # four, 4 s CPU on one thread; made once at 45 x 61, 5 classes: float64 max|diff| 0, float32 2.4e-4 of the scale)
    "bisenetv2_fcn": ("bisenetv2_fcn_4xb4-160k_cityscapes-1024x1024", ["--height", "53", "--width", "67", "--num-classes", "6"]),
    # STDC (STDCNet1/2, "cat" modules, nearest-upsampled context path) and ICNet (R-18/50/101; the input halved
    # twice with scale_factor 0.5, whose sampling differs from a resize to the halved size at odd sizes)
    "stdc1": ("stdc1_4xb12-80k_cityscapes-512x1024", ["--height", "49", "--width", "67", "--num-classes", "5"]),
    "stdc2": ("stdc2_4xb12-80k_cityscapes-512x1024", ["--height", "53", "--width", "71", "--num-classes", "4"]),
    "icnet_r18_d8": ("icnet_r18-d8_4xb2-80k_cityscapes-832x832", ["--height", "51", "--width", "75", "--num-classes", "5"]),
    "icnet_r50_d8": ("icnet_r50-d8_4xb2-80k_cityscapes-832x832", ["--height", "47", "--width", "69", "--num-classes", "6"]),
    "icnet_r101_d8": ("icnet_r101-d8_4xb2-80k_cityscapes-832x832", ["--height", "33", "--width", "45", "--num-classes", "4", "--batch", "2"]),
    # real-time backbones at odd sizes (all three accept any size: Fast-SCNN's 6-bin pooling of a 4 x 5 map
    # overlaps, CGNet's injected image is pooled with the stride-2 convs' ceil(n/2), ERFNet resizes its max pool
    # to the stride-2 conv's map and its transposed convs exactly double)
    "fastscnn": ("fast_scnn_8xb4-160k_cityscapes-512x1024", ["--height", "57", "--width", "71", "--num-classes", "4"]),
    "fastscnn_b2": ("fast_scnn_8xb4-160k_cityscapes-512x1024", ["--height", "41", "--width", "57", "--batch", "2", "--num-classes", "4"]),
    "cgnet_680": ("cgnet_fcn_4xb4-60k_cityscapes-680x680", ["--height", "57", "--width", "71", "--num-classes", "5"]),
    "cgnet_b2": ("cgnet_fcn_4xb8-60k_cityscapes-512x1024", ["--height", "41", "--width", "53", "--batch", "2", "--num-classes", "4"]),
    "erfnet": ("erfnet_fcn_4xb4-160k_cityscapes-512x1024", ["--height", "57", "--width", "71", "--num-classes", "5"]),
    "erfnet_b2": ("erfnet_fcn_4xb4-160k_cityscapes-512x1024", ["--height", "41", "--width", "53", "--batch", "2", "--num-classes", "4"]),
    # MobileNetV2-D8 under its four heads (+ the FCN auxiliary head, not in the logits), and MobileNetV3 large/small
    # with LRASPP at the smallest input the reference accepts: its AvgPool2d(49) needs a 49 x 49 stride-8 map,
    # ceil(385 / 8) = 49. The sizes give the "same"-padded stride-2 convs even inputs (padded unevenly there):
    # 389 x 394 reaches the large one's 5x5 layer4 as 98 rows and its stem as 394 columns; 390 the small one's stem.
    "mobilenet_v2_d8_fcn": ("mobilenet-v2-d8_fcn_4xb2-80k_cityscapes-512x1024", ["--height", "57", "--width", "81", "--num-classes", "4"]),
    "mobilenet_v2_d8_pspnet_ade": ("mobilenet-v2-d8_pspnet_4xb4-160k_ade20k-512x512", ["--height", "41", "--width", "57", "--num-classes", "4", "--batch", "2"]),
    "mobilenet_v2_d8_deeplabv3": ("mobilenet-v2-d8_deeplabv3_4xb2-80k_cityscapes-512x1024", ["--height", "53", "--width", "75", "--num-classes", "6"]),
    "mobilenet_v2_d8_deeplabv3plus_ade": ("mobilenet-v2-d8_deeplabv3plus_4xb4-160k_ade20k-512x512", ["--height", "49", "--width", "67", "--num-classes", "7"]),
    "mobilenet_v3_d8_lraspp": ("mobilenet-v3-d8_lraspp_4xb4-320k_cityscapes-512x1024", ["--height", "389", "--width", "394", "--num-classes", "4"]),
    "mobilenet_v3_d8_s_lraspp": ("mobilenet-v3-d8-s_lraspp_4xb4-320k_cityscapes-512x1024", ["--height", "390", "--width", "385", "--num-classes", "4"]),
    # HRNetV2 W18-Small / W18 / W48 (FCN head over the four branches resized to the first and concatenated) and
    # OCRNet (FCN head -> OCR head cascade) on HRNet and on ResNetV1c-101-D8. Odd sizes: the stride-2 convs round
    # up, so the fuse layers' upsampled maps miss the higher-resolution branch's size and are resized again.
    "hrnet_w18s": ("fcn_hr18s_4xb2-40k_cityscapes-512x1024", ["--height", "49", "--width", "67", "--num-classes", "5"]),
    "hrnet_w18_ade": ("fcn_hr18_4xb4-80k_ade20k-512x512", ["--height", "37", "--width", "45", "--batch", "2", "--num-classes", "4"]),
    "hrnet_w48": ("fcn_hr48_4xb2-40k_cityscapes-512x1024", ["--height", "41", "--width", "53", "--num-classes", "6"]),
    "slide_hrnet_w48_context59": ("fcn_hr48_4xb4-40k_pascal-context-59-480x480", ["--mode", "slide", "--height", "50", "--width", "71", "--crop", "41", "--stride", "27", "--num-classes", "4"]),
    "ocrnet_hr18": ("ocrnet_hr18_4xb2-40k_cityscapes-512x1024", ["--height", "45", "--width", "61", "--num-classes", "5"]),
    "ocrnet_r101_d8": ("ocrnet_r101-d8_4xb2-40k_cityscapes-512x1024", ["--height", "57", "--width", "71", "--num-classes", "4"]),
    # Twins (PCPVT-S under FPN + FPNHead, SVT-S under UPerNet + FCN auxiliary head). Odd sizes: every patch embedding
    # pads its input at the bottom/right. 53 x 45 reaches SVT's 7 x 7 windows as 14 x 12 and 7 x 6 maps (padded at
    # the right only, where the reference applies no mask) and as 4 x 3 and 2 x 2 maps (padded on both sides: masked).
    "twins_pcpvt_s_fpn": ("twins_pcpvt-s_fpn_fpnhead_8xb4-80k_ade20k-512x512", ["--height", "45", "--width", "59", "--num-classes", "5"]),
    "twins_svt_s_uperhead": ("twins_svt-s_uperhead_8xb2-160k_ade20k-512x512", ["--height", "53", "--width", "45", "--batch", "2", "--num-classes", "4"]),
    # Swin Transformer (UPerNet + FCN auxiliary head; the ADE20K configs test in whole mode). 49 x 69: the patch
    # embedding pads to 52 x 72; the stages are 13 x 18, 7 x 9, 4 x 5, 2 x 3, so PatchMerging pads every odd side
    # and every stage pads to whole 7 x 7 windows (stage 1 to 2 x 3 windows; stages 3 and 4 to one, still shifted
    # and masked). Batch 2 at 33 x 45: 9 x 12, 5 x 6, 3 x 3, 2 x 2.
    "swin_t_upernet_ade": ("swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512", ["--height", "49", "--width", "69", "--num-classes", "5"]),
    "swin_t_upernet_ade_b2": ("swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512", ["--height", "33", "--width", "45", "--batch", "2", "--num-classes", "4", "--seed", "1"]),
    # plain ViT (DeiT-S, the smallest width; ViT-B and DeiT-B differ in width only): sizes that are not multiples of
    # the 16-pixel patch (corner padding to 48 x 64 and 48 x 48) and token grids other than the trained 32 x 32
    # (the position embedding resized bicubically to 3 x 4 and 3 x 3); the MultiLevelNeck's 0.5 rescale of 3 rows
    # (scale-factor sampling) and the final LayerNorm in the first, no neck and batch 2 in the second
    "vit_deit_s16_ln_mln": ("vit_deit-s16-ln_mln_upernet_8xb2-160k_ade20k-512x512", ["--height", "45", "--width", "59", "--num-classes", "5"]),
    "vit_deit_s16_b2": ("vit_deit-s16_upernet_8xb2-80k_ade20k-512x512", ["--height", "33", "--width", "47", "--batch", "2", "--num-classes", "4"]),
    # sliding window over the ViT (SETR's configs test in slide mode, but a ViT-L model is too large for a golden):
    # 40 x 40 windows, corner-padded to 48 x 48, so every window resizes the position embedding to 3 x 3
    "slide_vit_deit_s16_mln": ("vit_deit-s16_mln_upernet_8xb2-160k_ade20k-512x512", ["--mode", "slide", "--height", "50", "--width", "71", "--crop", "40", "--stride", "27", "--num-classes", "4"]),
    # MMPretrain backbones. ConvNeXt-T under UPerNet (+ FCN auxiliary head): its unpadded 4x4 stem and 2x2
    # downsamplings floor odd sides (49 x 67 -> 12 x 16 ... 1 x 2, the PPM's 6-bin pooling of a 1 x 2 map
    # upsamples), and the configs test in slide mode (41-px windows, 27-px stride: 2 x 3 windows, overlapping).
    # PoolFormer-S12 under Semantic FPN, batch 2: the padded patch embeddings give 9 x 13 ... 2 x 2 maps at
    # 37 x 53, so the FPN's nearest and FPNHead's 2x bilinear upsamplings miss the finer sizes and resize again.
    "convnext_t_upernet": ("convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512", ["--height", "49", "--width", "67", "--num-classes", "5"]),
    "slide_convnext_t_upernet": ("convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512", ["--mode", "slide", "--height", "53", "--width", "85", "--crop", "41", "--stride", "27", "--num-classes", "4"]),
    "poolformer_s12_fpn": ("fpn_poolformer_s12_8xb4-40k_ade20k-512x512", ["--height", "37", "--width", "53", "--batch", "2", "--num-classes", "4"]),
    # SegFormer (MiT + SegformerHead). The overlapping patch embeddings (7/4/3, then 3/2/1) give ceil(n / 4) and
    # then ceil(n / 2) tokens a side: 57 x 71 -> 15 x 18, 8 x 9, 4 x 5, 2 x 3, so the spatial reductions (8, 4, 2)
    # floor odd maps to 1 x 2, 2 x 2 and 2 x 2 keys. MiT-B1 batch 2 at 41 x 53: 11 x 14 ... 2 x 2 (one key in
    # stages 1 and 2). The Cityscapes configs test in slide mode: B0 with 41-px windows, 27-px stride over
    # 57 x 83 (2 x 3 overlapping windows, each 11 x 11 ... 2 x 2 tokens). Sizes keep each golden under 300 KB.
    "segformer_mit_b0_ade": ("segformer_mit-b0_8xb2-160k_ade20k-512x512", ["--height", "57", "--width", "71", "--num-classes", "5"]),
    "segformer_mit_b1_ade_b2": ("segformer_mit-b1_8xb2-160k_ade20k-512x512", ["--height", "41", "--width", "53", "--batch", "2", "--num-classes", "4"]),
    "slide_segformer_mit_b0_cityscapes": ("segformer_mit-b0_8xb1-160k_cityscapes-1024x1024", ["--mode", "slide", "--height", "57", "--width", "83", "--crop", "41", "--stride", "27", "--num-classes", "4"]),
    # BEiT-B and MAE-B (+ Feature2Pyramid, UPerNet, FCN auxiliary head) run only at their config's img_size (640 / 512:
    # relative position tables for one token grid), where one forward of the 768-wide UPerNet head alone is ~1.5
    # TFLOP (a minute of one CPU thread in float64). The goldens build the same full-width network for a smaller
    # grid (tools/oracle_dump64.py --img-size, recorded as CONFIG@HxW, no zoo entry) and run it at that accepted
    # size: BEiT on a 3 x 5 grid (non-square: the index's row and column roles) with batch 2, MAE (its position
    # embedding) in its configs' sliding-window mode, 64 x 64 windows over an odd image. Each case still costs
    # ~8 s of one thread, almost all of it drawing, saving and loading the 163M parameters, not the forward.
    "beit_b_upernet": ("beit-base_upernet_8xb2-160k_ade20k-640x640", ["--img-size", "48", "80", "--height", "48", "--width", "80", "--batch", "2", "--num-classes", "4"]),
    "slide_mae_b_upernet": ("mae-base_upernet_8xb2-amp-160k_ade20k-512x512", ["--img-size", "64", "64", "--mode", "slide", "--height", "77", "--width", "100", "--crop", "64", "--stride", "37", "--num-classes", "4"]),
    # Segmenter (ViT-T + the mask transformer: class embeddings decoded with the patches; 37 x 51 is corner-padded
    # to a 3 x 4 grid, so the position embedding is resized; batch 2) and its configs' sliding window; DPT (ViT-B
    # with class-token readout "project"): 45 x 59 -> a 3 x 4 grid, reassembled to 12 x 16 ... 2 x 2, so every
    # fusion step resizes its skip map (4 x 4 vs 3 x 4, 8 x 8 vs 6 x 8, 16 x 16 vs 12 x 16)
    "segmenter_vit_t_mask": ("segmenter_vit-t_mask_8xb1-160k_ade20k-512x512", ["--height", "37", "--width", "51", "--batch", "2", "--num-classes", "5"]),
    "slide_segmenter_vit_t_mask": ("segmenter_vit-t_mask_8xb1-160k_ade20k-512x512", ["--mode", "slide", "--height", "50", "--width", "71", "--crop", "40", "--stride", "27", "--num-classes", "4"]),
    "dpt_vit_b16": ("dpt_vit-b16_8xb2-160k_ade20k-512x512", ["--height", "45", "--width", "59", "--num-classes", "4"]),
    # SegNeXt (MSCAN + LightHamHead; the ADE20K configs test in whole mode). MSCAN-T at 49 x 69: the stem's two
    # stride-2 convs give 13 x 18, then 7 x 9, 4 x 5, 2 x 3, so the head resizes 4 x 5 and 2 x 3 to 7 x 9 and its NMF
    # factorises 63 pixels. Its random bases come from the global generator, seeded as tools/oracle_dump64.py does
    # (forward_seed, calib_seed in the info). Batch 2 with MSCAN-S (other widths and depths) at 33 x 45.
    "segnext_mscan_t": ("segnext_mscan-t_1xb16-adamw-160k_ade20k-512x512", ["--height", "49", "--width", "69", "--num-classes", "5"]),
    "segnext_mscan_s_b2": ("segnext_mscan-s_1xb16-adamw-160k_ade20k-512x512", ["--height", "33", "--width", "45", "--batch", "2", "--num-classes", "4", "--seed", "1"]),
    # K-Net (IterativeDecodeHead: 3 kernel update stages over an FCN kernel generator, ResNetV1c-50-D8 + FCN
    # auxiliary head). 41 x 57 gives 6 x 8 features; 5 classes are 5 kernels attending to each other. Batch 2 (one
    # kernel set and one conv per sample) with the UPerNet generator at 33 x 45.
    "knet_s3_r50_d8_fcn": ("knet-s3_r50-d8_fcn_8xb2-adamw-80k_ade20k-512x512", ["--height", "41", "--width", "57", "--num-classes", "5"]),
    "knet_s3_r50_d8_upernet_b2": ("knet-s3_r50-d8_upernet_8xb2-adamw-80k_ade20k-512x512", ["--height", "33", "--width", "45", "--batch", "2", "--num-classes", "4", "--seed", "1"]),
    # SAN ViT-B/16 (CLIP image and text encoders, side adapter, mask recognition; whole-image inference as its
    # configs test). The class count keeps the first 5 / 4 COCO-Stuff names (the text prompts are the classes).
    # 129 x 161: CLIP sees 64 x 80 (scale factor 0.5) -> a 4 x 5 token grid, the side adapter 8 x 10 (both
    # position embeddings resized); strided (STRIDED) to stay small. One case: each costs ~40 s of CI (158M
    # parameters drawn, saved and loaded); a batch-2 case at 97 x 113 (CLIP 3 x 3 tokens, side adapter 6 x 7) was
    # made and passed (float64 1.9e-14, float32 1.1e-5 of the scale) and is not kept.
    "san_vit_b16": ("san-vit-b16_coco-stuff164k-640x640", ["--height", "129", "--width", "161", "--num-classes", "5"]),
    # Mask2Former (R-50; the configs test in whole mode). 49 x 69: ResNet maps 13 x 18, 7 x 9, 4 x 5, 2 x 3, so the
    # deformable attention samples three odd-sized levels (many points fall outside and read zeros), the FPN step
    # upsamples 7 x 9 to 13 x 18, the masked cross-attention cycles over 2 x 3, 4 x 5, 7 x 9 keys, and predict
    # resizes the 13 x 18 masks to 49 x 69 before the sigmoid. Batch 2 at 33 x 45 (9 x 12 ... 2 x 2), Cityscapes.
    "mask2former_r50_ade": ("mask2former_r50_8xb2-160k_ade20k-512x512", ["--height", "49", "--width", "69", "--num-classes", "5"]),
    "mask2former_r50_cs_b2": ("mask2former_r50_8xb2-90k_cityscapes-512x1024", ["--height", "33", "--width", "45", "--batch", "2", "--num-classes", "4", "--seed", "1"]),
    # MaskFormer (R-50; whole mode): the FPN's nearest upsamplings 2 x 3 -> 4 x 5 -> 7 x 9 -> 13 x 18 miss the
    # finer odd sizes; the DETR decoder attends the 2 x 3 stride-32 map; batch 2 at 33 x 45 (2 x 2 memory)
    "maskformer_r50_ade": ("maskformer_r50-d32_8xb2-160k_ade20k-512x512", ["--height", "49", "--width", "69", "--num-classes", "5"]),
    "maskformer_r50_ade_b2": ("maskformer_r50-d32_8xb2-160k_ade20k-512x512", ["--height", "33", "--width", "45", "--batch", "2", "--num-classes", "4", "--seed", "1"]),
}

# Cases whose full golden would be megabytes (LRASPP's 385 px minimum: ~6 MB at float64): they keep the logits at
# every n-th row and column only (n = 5, prime to the models' 2x and 8x upsampling, so every phase of those grids
# is sampled) and no input, which tests/oracle_weights.py regenerates from the seed as tools/oracle_dump64.py
# drew it. tests/test_parity.py compares the same rows and columns of sszoo's full-size logits.
STRIDED = {"mobilenet_v3_d8_lraspp": 5, "mobilenet_v3_d8_s_lraspp": 5}
STRIDED.update({"beit_b_upernet": 5, "slide_mae_b_upernet": 5})  # BEiT / MAE: full-width 768-channel heads
STRIDED.update({"san_vit_b16": 3})  # 3: prime to the 16-px patches and the 0.5 resize


def seeded_input(batch: int, height: int, width: int, seed: int) -> torch.Tensor:
    """tools/oracle_dump64.py's input: float32 standard normals from generator seed ``seed + 1``, as float64."""
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed + 1)).double()


def make(case: str, python: str) -> None:
    config, args = CASES[case]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([python, DUMP64, config, tmp, *args], check=True, stdout=subprocess.DEVNULL)
        info = json.load(open(os.path.join(tmp, "info.json")))
        x = torch.load(os.path.join(tmp, "input.pt"))
        logits = torch.load(os.path.join(tmp, "logits.pt"))
        os.makedirs(OUT, exist_ok=True)
        tmp_out = os.path.join(OUT, case + ".pt.tmp")
        golden = {"input": x, "logits": logits, "info": json.dumps(info)}
        if case in STRIDED:
            n = STRIDED[case]
            if not torch.equal(x, seeded_input(info["batch"], info["height"], info["width"], info["seed"])):
                raise SystemExit(f"{case}: the dump's input is not the seeded one; cannot leave it out")
            info["logits_stride"] = n
            golden = {"logits": logits[..., ::n, ::n].clone(), "info": json.dumps(info)}
        buffers = os.path.join(tmp, "buffers.pt")
        if os.path.exists(buffers):  # state not regenerated from the seed (tests/oracle_weights.py loads it)
            golden["buffers"] = torch.load(buffers)
        torch.save(golden, tmp_out)
        os.replace(tmp_out, os.path.join(OUT, case + ".pt"))
        print(case, tuple(logits.shape), f"max|logit|={logits.abs().max():.3f}")


def main() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(int(os.environ.get("JOBS", "2"))) as pool:  # each dump is one process
        list(pool.map(lambda c: make(c, ORACLE_PYTHON), sys.argv[1:] or CASES))


if __name__ == "__main__":
    main()
