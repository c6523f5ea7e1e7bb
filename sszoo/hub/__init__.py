"""Pretrained weights: reading, converting and (with the download layer) fetching checkpoints."""
from .checkpoint import CheckpointError, extract_state_dict, load_state_dict_strict, read_checkpoint

__all__ = ["CheckpointError", "extract_state_dict", "load_state_dict_strict", "read_checkpoint", "load_pretrained"]


def load_pretrained(entry, pretrained) -> dict:
    """The state dict for ``entry`` from ``pretrained`` (a local file path for now).

    Returns a state dict in sszoo's (= MMSegmentation's) key layout.
    """
    import os
    if pretrained is True:
        raise NotImplementedError("downloading published weights arrives with the weights hub")
    path = os.fspath(pretrained)
    return extract_state_dict(read_checkpoint(path))
