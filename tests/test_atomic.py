"""sszoo.atomic: the old file survives a failed write, no temporary file is left, permissions are normal."""
import os
import stat

import pytest

from sszoo.atomic import atomic_path, write_text


def test_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "sub" / "result.json"
    write_text("old", target)
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as tmp:
            with open(tmp, "w") as f:
                f.write("half of the new")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(os.listdir(target.parent)) == ["result.json"]


def test_success_replaces_with_normal_permissions(tmp_path):
    target = tmp_path / "weights.safetensors"
    with atomic_path(target, fsync=True) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(".safetensors")  # same folder, same extension
        with open(tmp, "wb") as f:
            f.write(b"new")
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["weights.safetensors"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # not mkstemp's private 0600


def test_private_files_of_a_writer_get_normal_permissions(tmp_path):
    """safetensors' save_file creates 0600 files; through atomic_path they get 0666 minus the umask."""
    import torch
    from safetensors.torch import save_file

    from sszoo.train.checkpoint import export_safetensors

    umask = os.umask(0o027)   # a stricter umask is respected too
    try:
        target = tmp_path / "model.safetensors"
        with atomic_path(target) as tmp:
            save_file({"w": torch.zeros(2)}, tmp)
            assert stat.S_IMODE(os.stat(tmp).st_mode) == 0o600   # what the writer itself does
        assert stat.S_IMODE(target.stat().st_mode) == 0o640
        exported = tmp_path / "model_final.safetensors"          # the trainer's export of the final model
        export_safetensors({"w": torch.zeros(2)}, str(exported), {"model": "x"})
        assert stat.S_IMODE(exported.stat().st_mode) == 0o640
    finally:
        os.umask(umask)
