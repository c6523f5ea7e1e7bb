"""Small building blocks shared by the heads.

Submodule names (``conv``, ``bn``, ``depthwise_conv``, ``pointwise_conv``) follow the key layout of
MMSegmentation's published checkpoints, so those state dicts load without renaming.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class ConvBNReLU(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, *, stride: int = 1,
                 padding: int = 0, dilation: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                              dilation=dilation, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class ConvBN(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d, without activation (MMCV's ConvModule with ``act_cfg=None``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, *, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class Conv(nn.Module):
    """A ConvModule with neither norm nor activation: one biased Conv2d under the key ``conv``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, *, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ConvGN(nn.Module):
    """MMCV's ConvModule with a GroupNorm (``conv``, ``gn``) and an optional ReLU ("same" zero padding;
    the mask-classification pixel decoders and SegNeXt's Hamburger)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, num_groups: int, *, bias: bool,
                 relu: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
        self.gn = nn.GroupNorm(num_groups, out_channels)
        self.activate = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.gn(self.conv(x)))


class SeparableConvBNReLU(nn.Module):
    """Depthwise k x k ConvBNReLU followed by a pointwise 1 x 1 ConvBNReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, padding: int = 1,
                 dilation: int = 1) -> None:
        super().__init__()
        self.depthwise_conv = ConvBNReLU(in_channels, in_channels, kernel_size, padding=padding,
                                         dilation=dilation, groups=in_channels)
        self.pointwise_conv = ConvBNReLU(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class InProjections(nn.Module):
    """The parameters of ``torch.nn.MultiheadAttention`` in its registration order (packed q/k/v
    ``in_proj_weight``, ``in_proj_bias``, then ``out_proj``), which MMCV's ``MultiheadAttention`` wrapper keeps
    under ``attn.attn.*`` in the reference's checkpoints; the modules that own them compute the attention."""

    def __init__(self, embed_dims: int, bias: bool = True) -> None:
        super().__init__()
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dims, embed_dims))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dims)) if bias else None
        self.out_proj = nn.Linear(embed_dims, embed_dims, bias=bias)
        nn.init.xavier_uniform_(self.in_proj_weight)


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth per sample (MMCV's ``DropPath``): in training, zero a sample's residual branch with
    probability ``p`` and scale the kept ones by ``1 / (1 - p)``, from one ``torch.rand`` per sample in ``x``'s
    dtype (the reference's draw, so seeded runs drop the same samples); no draw at ``p == 0`` or in eval mode."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = (keep + torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)).floor_()
    return x.div(keep) * mask


class DropPath(nn.Module):
    """:func:`drop_path` as a module (the transformer backbones' residual branches)."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training)


def pool_matrix(n, s: int, like: torch.Tensor) -> torch.Tensor:
    """The s x n matrix of adaptive average pooling along one axis of n pixels to s bins.

    Bin ``i`` covers pixels ``floor(i*n/s)`` to ``ceil((i+1)*n/s) - 1`` (PyTorch's definition, overlapping
    when ``n`` is not a multiple of ``s``); row ``i`` holds ``1/len`` on those pixels. Integer tensor ops
    only, so an exported graph follows a dynamic input size.
    """
    i = torch.arange(s, device=like.device)
    start = torch.div(i * n, s, rounding_mode="floor")
    end = torch.div((i + 1) * n + (s - 1), s, rounding_mode="floor")  # ceil((i+1) n / s)
    j = torch.arange(n, device=like.device)
    inside = (j.unsqueeze(0) >= start.unsqueeze(1)) & (j.unsqueeze(0) < end.unsqueeze(1))
    return inside.to(like.dtype) / (end - start).unsqueeze(1).to(like.dtype)


def adaptive_avg_pool2d(x: torch.Tensor, output_size: int | tuple[int, int]) -> torch.Tensor:
    """``F.adaptive_avg_pool2d``; while exporting to ONNX, which cannot express bins that do not divide the
    input, the same pooling as ``A_h @ x @ A_w^T`` (:func:`pool_matrix`)."""
    if not torch.onnx.is_in_onnx_export():
        return F.adaptive_avg_pool2d(x, output_size)
    sh, sw = (output_size, output_size) if isinstance(output_size, int) else output_size
    return torch.matmul(torch.matmul(pool_matrix(x.shape[-2], sh, x), x), pool_matrix(x.shape[-1], sw, x).transpose(0, 1))


def resize(x: torch.Tensor, size: tuple[int, int] | torch.Size, align_corners: bool) -> torch.Tensor:
    """Bilinear resize to ``size`` (H, W), the interpolation every head and the segmentor use."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=align_corners)


class ClassifierHead(nn.Module):
    """Base of the decode heads: ``forward`` computes features, ``cls_seg`` turns them into logits.

    Subclasses set ``self.conv_seg`` through :meth:`_init_classifier`; keeping the classifier in one
    place is what lets ``create_model(num_classes=...)`` replace it and nothing else.
    """

    conv_seg: nn.Conv2d
    align_corners: bool

    def _init_classifier(self, channels: int, num_classes: int, dropout: float) -> None:
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)

    def cls_seg(self, feat: torch.Tensor) -> torch.Tensor:
        return self.conv_seg(self.dropout(feat))

    def predict(self, features: list[torch.Tensor], *prev: torch.Tensor) -> torch.Tensor:
        """Logits for inference. The same as ``forward`` unless a head infers differently from how it trains
        (e.g. PointRend's subdivision); ``prev`` is the previous cascade stage's logits."""
        return self(features, *prev)

    # The config's loss terms and pixel sampler (sszoo.models.losses), attached by the builder; a head without
    # them trains with plain cross-entropy.
    loss_specs: tuple = ()
    sampler = None

    def loss(self, output, label: torch.Tensor, *, ignore_index: int = 255) -> dict[str, torch.Tensor]:
        """Loss terms of this head's training ``output`` against ``label`` (N x H x W): the plain cross-entropy,
        unweighted, or, when the config lists ``losses``, those terms each times its own weight."""
        from .losses import seg_cross_entropy, spec_losses

        if self.loss_specs:
            return spec_losses(self.loss_specs, output, label, align_corners=self.align_corners,
                               ignore_index=ignore_index, sampler=self.sampler)
        return {"ce": seg_cross_entropy(output, label, align_corners=self.align_corners, ignore_index=ignore_index)}

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final 1x1 classifier with a freshly initialised one of ``num_classes`` outputs."""
        old = self.conv_seg
        self.conv_seg = nn.Conv2d(old.in_channels, num_classes, kernel_size=1).to(old.weight.device, old.weight.dtype)
        nn.init.normal_(self.conv_seg.weight, std=0.01)
        nn.init.zeros_(self.conv_seg.bias)
