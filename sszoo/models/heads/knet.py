"""K-Net's decode head (Zhang et al., "K-Net: Towards Unified Image Segmentation", NeurIPS 2021), as
MMSegmentation 1.2.2's ``IterativeDecodeHead`` with ``KernelUpdateHead`` stages and ``KernelUpdator``.

A *kernel generator* (an FCN, PSP, ASPP or UPerNet head, ``kernel_generate_head``) gives the features F
(before its classifier) and the first logits; its classifier's weights are the first class kernels (one per
class). Each of ``num_stages`` kernel update heads (``kernel_update_head.{i}``) then

1. transforms F by a biased 1x1 conv (``feat_transform``),
2. assembles one feature per class: the softmax over classes of the previous logits, times F, summed over
   pixels (``einsum('bnhw,bchw->bnc')``),
3. updates the kernels with them (``kernel_update_conv``, the KernelUpdator's gated sum of the two, each
   through linear layers and LayerNorms),
4. lets the class kernels attend to each other (``attention``: PyTorch's ``nn.MultiheadAttention`` over the
   classes, plus the input, then ``attention_norm``), an FFN with its residual (``ffn``, ``ffn_norm``),
   ``num_mask_fcs`` x (Linear without bias -> LayerNorm -> ReLU) (``mask_fcs``) and ``fc_mask``,
5. convolves F with the new kernels (one conv per sample) for the stage's logits.

In eval mode the last stage's logits are the prediction; in training every stage's (the generator's first
included) enter the loss, each as the generator's loss (MMSegmentation's ``loss_ce.s{i}``).

As the reference, the KernelUpdator's ``in_channels`` may be smaller than the kernels' channels (the configs:
256 under 512): its input is then re-read as rows of ``in_channels`` (two per class), reshapes exactly as the
reference's. Attention: ``nn.MultiheadAttention`` itself (sequence-first, as MMCV's wrapper calls it), so
the numerics are the reference's. Key names and registration order are the reference's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import ClassifierHead, Conv


@dataclass(frozen=True)
class KNetHeadConfig:
    """The IterativeDecodeHead: the kernel generator's config (a head config, built by sszoo's builder) and one
    set of kernel-update-head arguments shared by all ``num_stages`` stages (as in every config)."""

    kernel_generate_head: Any = None  # FCNHeadConfig, PSPHeadConfig, ASPPHeadConfig or UPerHeadConfig (or its dict)
    num_stages: int = 3
    in_channels: int = 512  # the kernels' (= the generator's features') channels
    out_channels: int = 512
    num_heads: int = 8
    feedforward_channels: int = 2048
    num_ffn_fcs: int = 2
    num_mask_fcs: int = 1
    conv_kernel_size: int = 1
    feat_transform: bool = True  # a biased 1x1 conv on the features before each stage
    with_ffn: bool = True
    dropout: float = 0.0  # in the attention and the FFN; training only
    updator_in_channels: int = 256
    updator_feat_channels: int = 256
    updator_out_channels: int = 256
    gate_sigmoid: bool = True
    gate_norm_act: bool = False
    activate_out: bool = False
    loss_weight: float = 1.0  # the generator's loss weight, applied to every stage
    kind: str = "knet"

    def __post_init__(self) -> None:
        if isinstance(self.kernel_generate_head, dict):  # read from JSON: the generator's record, by its kind
            from ..builder import HEADS, config_from_dict

            object.__setattr__(self, "kernel_generate_head", config_from_dict(self.kernel_generate_head, HEADS, "head"))


class KernelUpdator(nn.Module):
    """The gated kernel update: ``fc(update_gate * norm(psi(assembled)) + input_gate * norm(phi(kernels)))``."""

    def __init__(self, in_channels: int = 256, feat_channels: int = 64, out_channels: int | None = None, *,
                 gate_sigmoid: bool = True, gate_norm_act: bool = False, activate_out: bool = False) -> None:
        super().__init__()
        self.in_channels, self.feat_channels = in_channels, feat_channels
        self.out_channels = out_channels if out_channels else in_channels
        self.gate_sigmoid, self.gate_norm_act, self.activate_out = gate_sigmoid, gate_norm_act, activate_out
        self.dynamic_layer = nn.Linear(in_channels, 2 * feat_channels)
        self.input_layer = nn.Linear(in_channels, 2 * feat_channels)
        self.input_gate = nn.Linear(in_channels, feat_channels)
        self.update_gate = nn.Linear(in_channels, feat_channels)
        if gate_norm_act:
            self.gate_norm = nn.LayerNorm(feat_channels)
        self.norm_in = nn.LayerNorm(feat_channels)
        self.norm_out = nn.LayerNorm(feat_channels)
        self.input_norm_in = nn.LayerNorm(feat_channels)
        self.input_norm_out = nn.LayerNorm(feat_channels)
        self.activation = nn.ReLU(inplace=True)
        self.fc_layer = nn.Linear(feat_channels, self.out_channels)
        self.fc_norm = nn.LayerNorm(self.out_channels)

    def forward(self, update_feature: torch.Tensor, input_feature: torch.Tensor) -> torch.Tensor:
        update_feature = update_feature.reshape(-1, self.in_channels)
        n = update_feature.size(0)
        parameters = self.dynamic_layer(update_feature)
        param_in = parameters[:, :self.feat_channels].view(-1, self.feat_channels)
        param_out = parameters[:, -self.feat_channels:].view(-1, self.feat_channels)
        input_feats = self.input_layer(input_feature.reshape(n, -1, self.feat_channels))
        input_in = input_feats[..., :self.feat_channels]
        input_out = input_feats[..., -self.feat_channels:]
        gate_feats = input_in * param_in.unsqueeze(-2)
        if self.gate_norm_act:
            gate_feats = self.activation(self.gate_norm(gate_feats))
        input_gate = self.input_norm_in(self.input_gate(gate_feats))
        update_gate = self.norm_in(self.update_gate(gate_feats))
        if self.gate_sigmoid:
            input_gate, update_gate = input_gate.sigmoid(), update_gate.sigmoid()
        param_out = self.norm_out(param_out)
        input_out = self.input_norm_out(input_out)
        if self.activate_out:
            param_out, input_out = self.activation(param_out), self.activation(input_out)
        features = update_gate * param_out.unsqueeze(-2) + input_gate * input_out
        return self.activation(self.fc_norm(self.fc_layer(features)))


class _Attention(nn.Module):
    """MMCV's MultiheadAttention wrapper: ``x + dropout(nn.MultiheadAttention(x, x, x))`` (key ``attn``)."""

    def __init__(self, embed_dims: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(embed_dims, num_heads, dropout)
        self.proj_drop = nn.Dropout(0.0)
        self.dropout_layer = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dropout_layer(self.proj_drop(self.attn(query=x, key=x, value=x)[0]))


class _FFN(nn.Module):
    """MMCV's FFN: ``x + layers(x)``, layers = (Linear -> ReLU -> Dropout) x (num_fcs - 1), Linear, Dropout."""

    def __init__(self, embed_dims: int, feedforward_channels: int, num_fcs: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        if num_fcs < 2:
            raise ValueError(f"an FFN has at least 2 fully connected layers, got {num_fcs}")
        layers: list[nn.Module] = []
        c = embed_dims
        for _ in range(num_fcs - 1):
            layers.append(nn.Sequential(nn.Linear(c, feedforward_channels), nn.ReLU(inplace=True), nn.Dropout(dropout)))
            c = feedforward_channels
        layers += [nn.Linear(feedforward_channels, embed_dims), nn.Dropout(dropout)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class KernelUpdateHead(nn.Module):
    """One K-Net stage: new class kernels from the previous logits' class-wise feature assembly, and their logits."""

    def __init__(self, in_channels: int = 256, out_channels: int = 256, *, num_heads: int = 8,
                 feedforward_channels: int = 2048, num_ffn_fcs: int = 2, num_mask_fcs: int = 3,
                 conv_kernel_size: int = 1, feat_transform: bool = True, with_ffn: bool = True, dropout: float = 0.0,
                 updator: dict | None = None) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.conv_kernel_size = in_channels, out_channels, conv_kernel_size
        embed = in_channels * conv_kernel_size ** 2
        self.attention = _Attention(embed, num_heads, dropout)
        self.attention_norm = nn.LayerNorm(embed)
        self.kernel_update_conv = KernelUpdator(**(updator or {}))
        self.feat_transform = Conv(in_channels, in_channels, 1) if feat_transform else None
        self.with_ffn = with_ffn
        if with_ffn:
            self.ffn = _FFN(in_channels, feedforward_channels, num_ffn_fcs, dropout)
            self.ffn_norm = nn.LayerNorm(in_channels)
        self.mask_fcs = nn.ModuleList()
        for _ in range(num_mask_fcs):
            self.mask_fcs.extend([nn.Linear(in_channels, in_channels, bias=False), nn.LayerNorm(in_channels),
                                  nn.ReLU(inplace=True)])
        self.fc_mask = nn.Linear(in_channels, out_channels)

    def forward(self, x: torch.Tensor, kernels: torch.Tensor, mask_preds: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` B x C x H x W features, ``kernels`` B x N x C x K x K, ``mask_preds`` B x N x h x w logits ->
        the new logits B x N x H x W and kernels."""
        b, n = kernels.shape[:2]
        if self.feat_transform is not None:
            x = self.feat_transform(x)
        c, h, w = x.shape[-3:]
        if mask_preds.shape[-2:] != (h, w):
            mask_preds = F.interpolate(mask_preds, (h, w), align_corners=False, mode="bilinear")
        masks = mask_preds.softmax(dim=1)
        x_feat = torch.einsum("bnhw,bchw->bnc", masks, x)  # one assembled feature per class
        kernels = kernels.reshape(b, n, self.in_channels, -1).permute(0, 1, 3, 2)  # B, N, K*K, C
        obj_feat = self.kernel_update_conv(x_feat, kernels)
        obj_feat = obj_feat.reshape(b, n, -1).permute(1, 0, 2)  # classes first, as nn.MultiheadAttention
        obj_feat = self.attention_norm(self.attention(obj_feat)).permute(1, 0, 2)
        obj_feat = obj_feat.reshape(b, n, -1, self.in_channels)
        if self.with_ffn:
            obj_feat = self.ffn_norm(self.ffn(obj_feat))
        mask_feat = obj_feat
        for layer in self.mask_fcs:
            mask_feat = layer(mask_feat)
        k = self.conv_kernel_size
        mask_feat = self.fc_mask(mask_feat).permute(0, 1, 3, 2).reshape(b, n, c, k, k)
        # one conv per sample with its own kernels, as the reference
        preds = torch.cat([F.conv2d(x[i:i + 1], mask_feat[i], padding=k // 2) for i in range(b)], dim=0)
        new_kernels = obj_feat.permute(0, 1, 3, 2).reshape(b, n, self.in_channels, k, k)
        return preds.reshape(b, n, h, w), new_kernels


class KNetHead(ClassifierHead):
    """``kernel_generate_head`` (with the classifier ``conv_seg`` whose weights start the kernels) and
    ``kernel_update_head`` (the stages)."""

    def __init__(self, generator: ClassifierHead, num_stages: int, **stage: Any) -> None:
        super().__init__()
        if not hasattr(generator, "forward_feature"):
            raise ValueError(f"{type(generator).__name__} cannot generate K-Net's kernels (no forward_feature)")
        self.kernel_generate_head = generator
        self.kernel_update_head = nn.ModuleList(KernelUpdateHead(**stage) for _ in range(num_stages))
        self.align_corners = generator.align_corners

    @classmethod
    def from_config(cls, cfg: KNetHeadConfig, num_classes: int, align_corners: bool) -> "KNetHead":
        from ..builder import build_head

        updator = dict(in_channels=cfg.updator_in_channels, feat_channels=cfg.updator_feat_channels,
                       out_channels=cfg.updator_out_channels, gate_sigmoid=cfg.gate_sigmoid,
                       gate_norm_act=cfg.gate_norm_act, activate_out=cfg.activate_out)
        return cls(build_head(cfg.kernel_generate_head, num_classes, align_corners), cfg.num_stages,
                   in_channels=cfg.in_channels, out_channels=cfg.out_channels, num_heads=cfg.num_heads,
                   feedforward_channels=cfg.feedforward_channels, num_ffn_fcs=cfg.num_ffn_fcs,
                   num_mask_fcs=cfg.num_mask_fcs, conv_kernel_size=cfg.conv_kernel_size,
                   feat_transform=cfg.feat_transform, with_ffn=cfg.with_ffn, dropout=cfg.dropout, updator=updator)

    @property
    def conv_seg(self) -> nn.Conv2d:
        """The classifier: the generator's (no second copy in the state dict), for code that (re)initialises it."""
        return self.kernel_generate_head.conv_seg

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        """The last stage's logits in eval mode; every stage's (the generator's first) in training."""
        gen = self.kernel_generate_head
        feats = gen.forward_feature(features)
        logits = gen.cls_seg(feats)
        kernels = gen.conv_seg.weight.clone()
        kernels = kernels[None].expand(feats.size(0), *kernels.size())
        stages = [logits]
        for head in self.kernel_update_head:
            logits, kernels = head(feats, kernels, logits)
            stages.append(logits)
        return stages if self.training else stages[-1]

    def loss(self, output, label: torch.Tensor, *, ignore_index: int = 255) -> dict[str, torch.Tensor]:
        """The generator's loss terms on every stage's logits, suffixed ``.s{i}`` as the reference's."""
        return {f"{k}.s{i}": v for i, logits in enumerate(output)
                for k, v in self.kernel_generate_head.loss(logits, label, ignore_index=ignore_index).items()}

    def reset_classifier(self, num_classes: int) -> None:
        """A new generator classifier (the stages do not depend on the class count)."""
        self.kernel_generate_head.reset_classifier(num_classes)
