"""torch.hub entry points: one per zoo architecture, plus ``create_model``.

    torch.hub.list("<owner>/sszoo")       # GitHub repos only: torch.hub.list/help take no source="local"
    model = torch.hub.load("<owner>/sszoo", "pspnet_r101_d8_cityscapes", pretrained=True)
    model = torch.hub.load(".", "pspnet_r101_d8_cityscapes", source="local", tag="769x769_80k")

For a local checkout, ``sszoo.list_models()`` lists what ``torch.hub.list`` would.
"""
dependencies = ["torch", "torchvision", "safetensors", "huggingface_hub", "requests", "numpy", "PIL"]

from sszoo import create_model  # noqa: E402  (torch.hub needs `dependencies` defined first)
from sszoo.registry import get_entry, list_entries, list_models  # noqa: E402


def _entry_point(bare: str):
    def build(pretrained=False, tag: str | None = None, **kwargs):
        return create_model(f"{bare}.{tag}" if tag else bare, pretrained=pretrained, **kwargs)

    default = get_entry(bare)
    tags = "\n".join(f"        {e.tag}: mIoU {e.reported.miou}"
                     + (f" (ms+flip {e.reported.miou_msflip})" if e.reported.miou_msflip else "")
                     + f", {e.source.framework}" for e in list_entries(bare))
    build.__name__ = build.__qualname__ = bare
    build.__doc__ = (
        f"{default.method} with a {default.backbone} backbone on {default.dataset.title} "
        f"({default.dataset.num_classes} classes).\n\n"
        f"    Default tag {default.tag}: reported mIoU {default.reported.miou} on {default.dataset.title}.\n\n"
        f"    Args:\n        pretrained: True for the published weights, or a checkpoint path/URL/hf-hub: spec.\n"
        f"        tag: one of\n{tags}\n"
        f"        **kwargs: passed to sszoo.create_model (num_classes, aux, ...).\n")
    return build


def _detection_entry_point(name: str):
    def build(pretrained=False, **kwargs):
        return create_model(name, pretrained=pretrained, **kwargs)

    e = get_entry(name)
    mask = f", mask AP {e.reported.mask_ap}" if e.reported.mask_ap is not None else ""
    build.__name__ = build.__qualname__ = name
    build.__doc__ = (
        f"{e.method} with a {e.backbone} backbone on {e.dataset.title} ({e.dataset.num_classes} classes), "
        f"{e.reported.precision} training.\n\n    Reported box AP {e.reported.box_ap}{mask} (MMDetection "
        f"{e.source.config_0x}).\n\n    Args:\n        pretrained: True for the published weights, or a "
        f"checkpoint path/URL/hf-hub: spec.\n        **kwargs: passed to sszoo.create_model.\n")
    return build


for _bare in list_models():
    globals()[_bare] = _entry_point(_bare)
for _bare in list_models(task="detection"):  # detection entries: MMDetection checkpoints (docs/detection.md)
    globals()[_bare] = _detection_entry_point(_bare)
del _bare
