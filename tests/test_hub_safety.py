"""Safe loading (a pickle that would run code is refused and its code never runs) and concurrent downloads."""
import hashlib
import os
import pickle
import subprocess
import sys
import textwrap
import types

import pytest
import torch

from hub_helpers import hub_env, serve_oracle_checkpoint, r18_source  # noqa: F401
from sszoo.hub import CheckpointError, load_pretrained, read_checkpoint


class _CreatesFile:
    """Unpickling this object calls open(path, "w"): it creates a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_payload_is_real_when_unpickled_unsafely(tmp_path):
    # control: the payload does create its file under a plain unpickler, so the tests below can fail
    marker = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(_CreatesFile(str(marker))))
    assert marker.exists()


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"backbone.stem.0.weight": torch.zeros(1)}, "meta": _CreatesFile(str(marker))}, path)
    with pytest.raises(CheckpointError, match="refused to load") as e:
        read_checkpoint(path)
    assert "open" in str(e.value)  # names the forbidden global
    assert not marker.exists()


def test_served_malicious_checkpoint_is_not_cached(hub_env, r18_source, tmp_path):
    server, home = hub_env
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": r18_source.state_dict, "meta": _CreatesFile(str(marker))}, path)
    data = path.read_bytes()
    prefix = hashlib.sha256(data).hexdigest()[:8]
    import dataclasses
    from sszoo.registry import WeightsInfo
    s = serve_oracle_checkpoint(server, r18_source)
    url_path = f"/mmsegmentation/v0.5/evil/evil-{prefix}.pth"
    server.add(url_path, data)
    entry = dataclasses.replace(s.entry, weights=WeightsInfo(url="https://download.openmmlab.com" + url_path,
                                                             sha256_prefix=prefix))
    with pytest.raises(CheckpointError, match="refused"):
        load_pretrained(entry, True)
    assert not marker.exists()
    assert not (home / "weights" / entry.name / "model.safetensors").exists()


def _fake_module(name: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    sys.modules[name] = mod
    return mod


def test_framework_metadata_loads_as_inert_data(tmp_path, monkeypatch):
    # An MMEngine-era checkpoint keeps numpy scalars/arrays and a HistoryBuffer in its metadata.
    import numpy as np
    for name in ("mmengine", "mmengine.logging"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    mod = types.ModuleType("mmengine.logging.history_buffer")
    monkeypatch.setitem(sys.modules, mod.__name__, mod)

    class HistoryBuffer:
        def __init__(self):
            self._log_history = np.array([0.5, 0.25])
            self.max_length = 2

    HistoryBuffer.__module__ = mod.__name__
    HistoryBuffer.__qualname__ = "HistoryBuffer"
    mod.HistoryBuffer = HistoryBuffer
    path = tmp_path / "mmengine.pth"
    torch.save({"state_dict": {"decode_head.conv_seg.bias": torch.arange(3.0)},
                "meta": {"iter": np.int64(80000), "lr": np.float64(0.01), "seed": np.array([1, 2]),
                         "dataset_meta": {"classes": ("a", "b")}},
                "message_hub": {"log_scalars": {"train/loss": HistoryBuffer()}}}, path)
    monkeypatch.delitem(sys.modules, mod.__name__)  # loading must not need (or import) the real class
    obj = read_checkpoint(path)
    assert torch.equal(obj["state_dict"]["decode_head.conv_seg.bias"], torch.arange(3.0))
    assert int(obj["meta"]["iter"]) == 80000
    buf = obj["message_hub"]["log_scalars"]["train/loss"]
    from sszoo.hub.checkpoint import _MetadataStandIn
    assert isinstance(buf, _MetadataStandIn) and buf.pickled_state["max_length"] == 2
    from sszoo.hub import to_sszoo
    assert to_sszoo(obj).classes == ["a", "b"]


def test_truncated_checkpoint_file_is_a_clear_error(tmp_path):
    path = tmp_path / "half.pth"
    torch.save({"state_dict": {"w": torch.randn(1000)}}, path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="is the file complete"):
        read_checkpoint(path)


_CHILD = textwrap.dedent("""
    import dataclasses, hashlib, sys
    import sszoo
    from sszoo.registry import WeightsInfo
    from sszoo.hub import load_pretrained
    url, prefix = sys.argv[1], sys.argv[2]
    base = sszoo.get_entry("pspnet_r18_d8_cityscapes")
    entry = dataclasses.replace(base, name="pspnet_r18_d8_cityscapes.concurrent",
                                weights=WeightsInfo(url=url, sha256_prefix=prefix))
    state = load_pretrained(entry, True, progress=False)
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode()); h.update(state[k].numpy().tobytes())
    print("DIGEST", h.hexdigest())
""")


def test_four_processes_download_once_and_load_the_same_weights(hub_env, r18_source, tmp_path):
    server, home = hub_env
    s = serve_oracle_checkpoint(server, r18_source, name="pspnet_r18_d8_cityscapes.concurrent")
    server.delay = 1.0  # keep the first download in flight while the other processes arrive
    env = dict(os.environ)
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, s.entry.weights.url, s.entry.weights.sha256_prefix],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    digests = {line.split()[1] for out, _ in outs for line in out.splitlines() if line.startswith("DIGEST")}
    h = hashlib.sha256()
    for k in sorted(r18_source.state_dict):
        h.update(k.encode())
        h.update(r18_source.state_dict[k].numpy().tobytes())
    assert digests == {h.hexdigest()}  # four identical loads, equal to the published weights
    assert server.gets(s.path) == 1     # one download


def test_numpy_metadata_written_by_numpy_1_loads(tmp_path):
    # 2020-era checkpoints name numpy's scalar and array rebuilders under numpy.core (numpy 2 moved
    # them to numpy._core): rewrite a legacy-format pickle (protocol 2 names globals as plain text).
    import numpy as np
    path = tmp_path / "old.pth"
    torch.save({"state_dict": {"w": torch.arange(4.0)},
                "meta": {"iter": np.int64(40000), "seed": np.array([3, 4])}},
               path, _use_new_zipfile_serialization=False)
    raw = path.read_bytes().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray\nscalar" in raw and b"numpy.core.multiarray\n_reconstruct" in raw
    path.write_bytes(raw)
    obj = read_checkpoint(path)
    assert int(obj["meta"]["iter"]) == 40000 and obj["meta"]["seed"].tolist() == [3, 4]
    assert torch.equal(obj["state_dict"]["w"], torch.arange(4.0))
