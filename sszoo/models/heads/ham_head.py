"""SegNeXt's decode head, ``LightHamHead`` (Guo et al., "SegNeXt: Rethinking Convolutional Attention Design
for Semantic Segmentation", NeurIPS 2022; the Hamburger of Geng et al., "Is Attention Better Than Matrix
Decomposition?", ICLR 2021), as MMSegmentation 1.2.2's ``LightHamHead``.

The selected backbone maps (MSCAN's strides 8, 16, 32) are resized bilinearly to the first one's size,
concatenated and squeezed by a 1x1 conv -> GroupNorm -> ReLU (``squeeze``) to ``ham_channels``. The Hamburger
(``hamburger``) computes ``ReLU(x + GN(conv(NMF(ReLU(conv_b(x))))))``: a biased 1x1 conv (``ham_in``), a
non-negative matrix factorisation of the map, a 1x1 conv -> GroupNorm (``ham_out``); then ``align`` (1x1 conv
-> GroupNorm -> ReLU to ``channels``), dropout and the classifier.

NMF (``NMF2D``): the C x HW map of each sample (in ``MD_S`` groups of C / MD_S channels) is factorised as
bases (D x R) times coefficients (HW x R)^T. The bases start **random in every forward**; the coefficients
start as ``softmax(x^T bases)`` over R (the reference's NMF2D sets the temperature ``inv_t`` to 1, whatever
the config says); then ``train_steps`` (in training) or ``eval_steps`` (in eval mode) multiplicative updates
of coefficients then bases, one more update of the coefficients, and the map is rebuilt as
``bases @ coef^T``. As the reference, gradients flow through every step (no ``no_grad``, no one-step
gradient) and the update is ``a * num / (den + 1e-6)`` in that order.

Random numbers, replayed exactly: the reference draws the initial bases with ``torch.rand((B * MD_S, D, R))``
from PyTorch's **global** generator, on the CPU, in the default dtype (float32), moves them to the map's
device and normalises each base (dim 1, ``F.normalize``) there. sszoo makes the same one call per forward at
the same point (after the backbone's drop-path draws, before the classifier's dropout), so under the same
``torch.manual_seed`` its logits equal the reference's; a sliding-window inference draws once per window, in
the windows' order. In another dtype (float64 parity checks) the float32 bases are cast to the map's dtype
after normalising (the reference itself fails on float64 maps; tools/oracle_dump64.py casts them at the same
point). Without a seed, two forwards give slightly different logits, as the reference's do.

Export: ONNX's RandomUniform would draw onnxruntime's numbers, not PyTorch's, so no exported graph could be
checked against PyTorch. :meth:`NMF2D.make_deterministic` (which sszoo.export calls on the copy it exports)
fixes one draw of D x R bases per group, shared by every sample and every forward, as the reference's own
``rand_init=False`` mode does: the exported network is deterministic and equals that copy's PyTorch forward,
but is one of the random models the reference averages over, not the reference's per-forward redraw.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..layers import ClassifierHead, Conv, ConvGN, resize


@dataclass(frozen=True)
class LightHamHeadConfig:
    in_channels: tuple[int, ...] = (64, 160, 256)
    channels: int = 256
    in_index: tuple[int, ...] = (1, 2, 3)
    ham_channels: int = 256
    md_s: int = 1  # the number of channel groups factorised separately
    md_r: int = 64  # the factorisation's rank R
    train_steps: int = 6
    eval_steps: int = 7
    num_groups: int = 32  # the GroupNorms' groups
    dropout: float = 0.1
    loss_weight: float = 1.0  # weight of this head's loss in the training total
    kind: str = "light_ham"


class NMF2D(nn.Module):
    """Non-negative matrix factorisation by multiplicative updates from random bases (no parameters)."""

    def __init__(self, channels: int, md_s: int = 1, md_r: int = 64, train_steps: int = 6, eval_steps: int = 7) -> None:
        super().__init__()
        if channels % md_s:
            raise ValueError(f"{channels} channels do not split into md_s = {md_s} equal groups")
        self.channels, self.S, self.R = int(channels), int(md_s), int(md_r)
        self.train_steps, self.eval_steps = int(train_steps), int(eval_steps)
        # one fixed draw (MD_S x D x R) instead of a new one per forward: None unless make_deterministic() is
        # called; not in the state dict, so checkpoints are unchanged
        self.register_buffer("fixed_bases", None, persistent=False)

    def make_deterministic(self) -> None:
        """Draw the bases once (from the global generator, as a forward would for one sample) and use them for
        every sample and forward from now on, as the reference's ``rand_init=False``; for export."""
        self.fixed_bases = self.initial_bases(1, self.channels // self.S, torch.device("cpu"))

    def initial_bases(self, batch: int, d: int, device: torch.device) -> torch.Tensor:
        """The reference's draw: float32 uniforms from the global CPU generator, moved, then normalised."""
        bases = torch.rand((batch * self.S, d, self.R)).to(device)
        return F.normalize(bases, dim=1)

    @staticmethod
    def _update_coef(x: torch.Tensor, bases: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
        numerator = torch.bmm(x.transpose(1, 2), bases)  # (BS, N, R)
        denominator = coef.bmm(bases.transpose(1, 2).bmm(bases))
        return coef * numerator / (denominator + 1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        d = c // self.S
        x = x.view(b * self.S, d, h * w)
        if self.fixed_bases is not None:
            bases = self.fixed_bases.to(x.device, x.dtype).repeat(b, 1, 1)
        else:
            bases = self.initial_bases(b, d, x.device).to(x.dtype)  # the .to is a no-op in float32
        coef = F.softmax(torch.bmm(x.transpose(1, 2), bases), dim=-1)  # inv_t is 1 in the reference's NMF2D
        for _ in range(self.train_steps if self.training else self.eval_steps):
            coef = self._update_coef(x, bases, coef)
            numerator = torch.bmm(x, coef)  # (BS, D, R)
            denominator = bases.bmm(coef.transpose(1, 2).bmm(coef))
            bases = bases * numerator / (denominator + 1e-6)
        coef = self._update_coef(x, bases, coef)
        return torch.bmm(bases, coef.transpose(1, 2)).view(b, c, h, w)


class Hamburger(nn.Module):
    """``ReLU(x + ham_out(NMF(ReLU(ham_in(x)))))``; ``ham_in`` is a biased 1x1 conv (key ``ham_in.conv``)."""

    def __init__(self, channels: int, nmf: NMF2D, num_groups: int) -> None:
        super().__init__()
        self.ham_in = Conv(channels, channels, 1)
        self.ham = nmf
        self.ham_out = ConvGN(channels, channels, 1, num_groups, bias=False, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enjoy = F.relu(self.ham_in(x))
        enjoy = self.ham_out(self.ham(enjoy))
        return F.relu(x + enjoy)


class LightHamHead(ClassifierHead):
    """``squeeze`` (over the concatenated resized levels), ``hamburger``, ``align``, classifier."""

    def __init__(self, in_channels: tuple[int, ...], channels: int, num_classes: int, *,
                 in_index: tuple[int, ...] = (1, 2, 3), ham_channels: int = 256, md_s: int = 1, md_r: int = 64,
                 train_steps: int = 6, eval_steps: int = 7, num_groups: int = 32, dropout: float = 0.1,
                 align_corners: bool = False) -> None:
        super().__init__()
        if len(in_channels) != len(in_index):
            raise ValueError("in_channels and in_index must have the same length")
        # The classifier is registered first, as in the reference, so parameters enumerate in the same order.
        self._init_classifier(channels, num_classes, dropout)
        self.in_index = tuple(in_index)
        self.align_corners = align_corners
        self.squeeze = ConvGN(sum(in_channels), ham_channels, 1, num_groups, bias=False, relu=True)
        self.hamburger = Hamburger(ham_channels, NMF2D(ham_channels, md_s, md_r, train_steps, eval_steps), num_groups)
        self.align = ConvGN(ham_channels, channels, 1, num_groups, bias=False, relu=True)

    @classmethod
    def from_config(cls, cfg: LightHamHeadConfig, num_classes: int, align_corners: bool) -> "LightHamHead":
        return cls(cfg.in_channels, cfg.channels, num_classes, in_index=cfg.in_index, ham_channels=cfg.ham_channels,
                   md_s=cfg.md_s, md_r=cfg.md_r, train_steps=cfg.train_steps, eval_steps=cfg.eval_steps,
                   num_groups=cfg.num_groups, dropout=cfg.dropout, align_corners=align_corners)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        inputs = [features[i] for i in self.in_index]
        size = inputs[0].shape[2:]
        # the first level too goes through the resize (to its own size), as the reference
        x = torch.cat([resize(level, size, self.align_corners) for level in inputs], dim=1)
        return self.cls_seg(self.align(self.hamburger(self.squeeze(x))))
