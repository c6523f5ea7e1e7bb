"""The models compared: sszoo's, torchvision's closest architecture, MMSegmentation's same config and
ONNX Runtime running sszoo's exported model.

Each is wrapped as a :class:`Candidate` with two calls the benchmark times:

* ``logits(x)``: normalised N x 3 x H x W -> logits N x K x H x W at the input size (the benchmark adds
  the argmax of the reference fps protocol);
* ``loss(x, y)``: the training loss of one batch (decode head + 0.4 x auxiliary head, cross-entropy,
  ignore index 255), whose backward and optimiser step the benchmark adds.

MMSegmentation gets exactly sszoo's weights (the state-dict keys are the same), so its logits are
checked against sszoo's in the same run. torchvision's models differ in head widths and depth, so
they get their own seeded weights and their FLOP count is reported beside them.
"""
from __future__ import annotations

import copy
import glob
import os
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

import sszoo
from sszoo.optimize import prepare_for_inference

from .measure import sane_init_

AUX_WEIGHT = 0.4  # the auxiliary loss weight of every recipe in the zoo

# (method, ResNet depth) -> torchvision builder: the closest architectures torchvision has
# (dilated ResNet-V1b backbones at output stride 8; single-conv FCN head, 256-channel ASPP).
TORCHVISION_PEERS = {("fcn", 50): "fcn_resnet50", ("fcn", 101): "fcn_resnet101",
                     ("deeplabv3", 50): "deeplabv3_resnet50", ("deeplabv3", 101): "deeplabv3_resnet101"}


@dataclass
class Candidate:
    impl: str                       # "sszoo", "torchvision", "mmseg", "onnxruntime"
    variant: str                    # "eager", "opt", "compile", "graphs"
    model: nn.Module
    logits: Callable[[torch.Tensor], torch.Tensor]
    channels_last: bool = False
    arch: str = ""                  # what was built, for the report
    forward_flops_fn: Optional[Callable[[nn.Module, torch.Tensor], torch.Tensor]] = None

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x.contiguous()


def seg_loss(decode: torch.Tensor, aux: Optional[torch.Tensor], label: torch.Tensor, align_corners: bool) -> torch.Tensor:
    """Cross-entropy of the decode (and auxiliary) logits resized to the label, as the zoo's recipes train."""
    def ce(logits):
        if logits.shape[2:] != label.shape[1:]:
            logits = F.interpolate(logits, size=label.shape[1:], mode="bilinear", align_corners=align_corners)
        return F.cross_entropy(logits.float(), label, ignore_index=255)

    loss = ce(decode)
    return loss + AUX_WEIGHT * ce(aux) if aux is not None else loss


# ----------------------------------------------------------------------------------------- sszoo
def build_sszoo(name: str, calib: torch.Tensor, *, seed: int = 0) -> nn.Module:
    """The zoo model with its auxiliary head, seeded weights and calibrated BN statistics."""
    model = sszoo.create_model(name, aux=True)
    return sane_init_(model, lambda m: m.forward_heads(calib), seed=seed)


def sszoo_inference(model: nn.Module, variant: str, device: torch.device) -> Candidate:
    """Inference candidates: ``eager`` (as built), ``fold`` (BN folded), ``opt`` (BN folded + channels_last), ``compile``
    (``opt`` + torch.compile) and ``graphs`` (``opt`` replayed from a CUDA graph, set up by the runner)."""
    base = copy.deepcopy(model).drop_auxiliary_head().to(device).eval()
    if variant == "eager":
        return Candidate("sszoo", variant, base, base, arch=type(base.decode_head).__name__)
    if variant == "fold":  # BN folding alone, NCHW: separates the gain of folding from that of the layout
        fast = prepare_for_inference(base, channels_last=False, fold_bn=True, inplace=True)
        return Candidate("sszoo", variant, fast, fast, arch=type(base.decode_head).__name__)
    if variant not in ("opt", "compile", "graphs"):
        raise ValueError(f"unknown sszoo variant {variant!r}; use eager, fold, opt, compile or graphs")
    fast = prepare_for_inference(base, channels_last=True, fold_bn=True, compile=(variant == "compile"),
                                 inplace=True)
    return Candidate("sszoo", variant, fast, fast, channels_last=True, arch=type(base.decode_head).__name__)


def sszoo_train_loss(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def loss(x, y):
        out = model.forward_heads(x)
        return seg_loss(out.decode[-1], out.aux[0] if out.aux else None, y, model.align_corners)
    return loss


# ----------------------------------------------------------------------------------- torchvision
def torchvision_peer_name(entry) -> Optional[str]:
    bb = entry.arch.backbone
    if bb.output_stride != 8:
        return None
    return TORCHVISION_PEERS.get((entry.method, bb.depth))


def build_torchvision(builder: str, num_classes: int, calib: torch.Tensor, *, seed: int = 0) -> nn.Module:
    """torchvision's model with random weights (no download), seeded like sszoo's, with its aux head."""
    from torchvision.models import segmentation

    model = getattr(segmentation, builder)(weights=None, weights_backbone=None, num_classes=num_classes,
                                           aux_loss=True)
    return sane_init_(model, lambda m: m(calib), seed=seed)


def torchvision_inference(model: nn.Module, device: torch.device) -> Candidate:
    base = copy.deepcopy(model).to(device).eval()
    base.aux_classifier = None  # torchvision runs its aux head in eval mode too; inference does not need it
    return Candidate("torchvision", "eager", base, lambda x: base(x)["out"], arch=type(base).__name__)


def torchvision_train_loss(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def loss(x, y):
        out = model(x)  # torchvision already resizes both outputs to the input (align_corners=False)
        return seg_loss(out["out"], out.get("aux"), y, False)
    return loss


# ---------------------------------------------------------------------------------- MMSegmentation
def mmseg_available() -> tuple[bool, str]:
    try:
        import mmseg  # noqa: F401
        from mmseg.registry import MODELS  # noqa: F401
    except Exception as e:  # ImportError, or mmcv complaining about its compiled ops
        return False, (f"MMSegmentation is not importable here ({type(e).__name__}: {e}); "
                       "see docs/benchmarks.md for the benchmark environment that has it")
    return True, ""


def _mmseg_config_path(config: str) -> str:
    import mmseg

    root = os.path.join(os.path.dirname(mmseg.__file__), ".mim", "configs")
    base = os.path.basename(config).removesuffix(".py")
    hits = glob.glob(os.path.join(root, "*", base + ".py"))
    if not hits:
        raise FileNotFoundError(f"MMSegmentation {mmseg.__version__} has no config named {base!r}")
    return hits[0]


def _plain_bn(cfg) -> None:
    """SyncBN needs a process group; in one process plain BN computes the same thing."""
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            if k == "norm_cfg" and isinstance(v, dict) and v.get("type") == "SyncBN":
                v["type"] = "BN"
            else:
                _plain_bn(v)
    elif isinstance(cfg, list):
        for v in cfg:
            _plain_bn(v)


def build_mmseg(entry, state_dict: dict) -> nn.Module:
    """MMSegmentation's model of the entry's config, holding exactly ``state_dict`` (sszoo's weights)."""
    from mmengine import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules()
    cfg = Config.fromfile(_mmseg_config_path(entry.source.config or entry.aliases[0]))
    mcfg = cfg.model
    mcfg.pop("pretrained", None)
    mcfg.backbone.init_cfg = None
    _plain_bn(mcfg)
    mcfg.test_cfg = dict(mode="whole")
    model = MODELS.build(mcfg)
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    missing = [k for k in missing if not k.startswith("data_preprocessor")]
    if missing or unexpected:
        raise RuntimeError(f"MMSegmentation's {entry.name} does not take sszoo's weights: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")
    return model.eval()


def _metas(x: torch.Tensor) -> list[dict]:
    h, w = x.shape[2:]
    return [dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), padding_size=[0, 0, 0, 0])] * x.shape[0]


def mmseg_inference(model: nn.Module, device: torch.device) -> Candidate:
    base = copy.deepcopy(model).to(device).eval()
    # encode_decode = backbone + decode head + resize of the logits to the image: the same work as sszoo's forward
    return Candidate("mmseg", "eager", base, lambda x: base.encode_decode(x, _metas(x)), arch=type(base).__name__)


def mmseg_train_loss(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """MMSegmentation's own training loss (its heads' loss functions, accuracy included)."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    def loss(x, y):
        samples = []
        for meta, lab in zip(_metas(x), y):
            s = SegDataSample(metainfo=meta)
            s.gt_sem_seg = PixelData(data=lab[None])
            samples.append(s)
        losses = model.loss(x, samples)
        return sum(v for k, v in losses.items() if "loss" in k)
    return loss


# ------------------------------------------------------------------------------------ ONNX Runtime
def onnxruntime_available() -> tuple[bool, str]:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        return False, f"ONNX Runtime is not importable here ({e}); pip install onnx onnxruntime"
    return True, ""


def onnxruntime_inference(model: nn.Module, size: tuple[int, int], folder: str) -> Candidate:
    """sszoo's model exported to ONNX at ``size`` (sszoo.export, which checks onnxruntime's logits against
    PyTorch's) and run by ONNX Runtime's CPU provider with its default graph optimisations and threads."""
    import onnxruntime as ort

    from sszoo.export import export_onnx

    base = copy.deepcopy(model).drop_auxiliary_head().eval()
    path = os.path.join(folder, "model.onnx")
    export_onnx(base, path, height=size[0], width=size[1], check=False)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

    def logits(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {"input": x.detach().cpu().numpy()})[0])

    return Candidate("onnxruntime", "cpu", base, logits, arch="onnxruntime " + ort.__version__)
