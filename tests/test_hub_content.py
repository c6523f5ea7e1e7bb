"""What a checkpoint holds is checked before it is copied, cached or loaded (item 8), hf-hub revisions are
validated (item 9), and every failure is one of the hub's errors with one clear message (item 10)."""
import _codecs
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import sszoo
from hub_helpers import hub_env, r18_source, register, serve_oracle_checkpoint  # noqa: F401
from sszoo.hub import (CacheCorruptError, CheckpointError, NonFiniteWeightsWarning, SpecError, load_pretrained,
                       read_checkpoint)
from sszoo.hub.sources import parse_hf_spec

NAME = "pspnet_r18-d8_4xb2-80k_cityscapes-512x1024"  # the architecture of the R-18 test checkpoint


def save(tmp_path, name, state, **extra):
    path = tmp_path / name
    torch.save({"state_dict": state, **extra}, path)
    return path


def serve_state(server, r18_source, tmp_path, state, name):
    """Serve ``state`` under a published-style name (correct hash prefix) for the R-18 test entry."""
    path = save(tmp_path, name + ".pth", state)
    data = path.read_bytes()
    src = dataclasses.replace(r18_source, local=str(path), data=data, state_dict=state)
    return serve_oracle_checkpoint(server, src, name=f"pspnet_r18_d8_cityscapes.{name}",
                                   hash_prefix=hashlib.sha256(data).hexdigest()[:8])


def assert_nothing_kept(home, entry_name):
    assert not (home / "weights" / entry_name).exists()
    assert os.listdir(home / "downloads") == []


# ---- item 8 -------------------------------------------------------------------------------------

def test_a_few_kb_expanded_tensor_is_refused_before_any_copy(hub_env, r18_source, tmp_path):
    server, home = hub_env
    huge = torch.zeros(1).expand(4 * 1024 ** 3)  # claims 16 GB, stores 4 bytes
    s = serve_state(server, r18_source, tmp_path, {"decode_head.conv_seg.weight": huge}, "expanded")
    assert len(s.data) < 4096
    t = time.monotonic()
    with pytest.raises(CheckpointError, match="expanded or overlapping view"):
        load_pretrained(s.entry, True)
    assert time.monotonic() - t < 5  # nothing allocated 16 GB on the way
    assert_nothing_kept(home, s.entry.name)


def test_an_expanded_tensor_with_the_right_name_and_shape_is_refused(r18_source, tmp_path):
    state = dict(r18_source.state_dict)
    state["backbone.stem.0.weight"] = torch.zeros(1).expand(*state["backbone.stem.0.weight"].shape)
    with pytest.raises(CheckpointError, match="backbone.stem.0.weight"):
        sszoo.create_model(NAME, pretrained=str(save(tmp_path, "e.pth", state)))


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64])
def test_non_floating_weights_are_refused_not_cast(r18_source, tmp_path, dtype):
    state = dict(r18_source.state_dict)
    w = state["decode_head.conv_seg.weight"]
    state["decode_head.conv_seg.weight"] = (w * 100).to(dtype) if dtype != torch.bool else w > 0
    with pytest.raises(CheckpointError, match="decode_head.conv_seg.weight.*(int64|bool|complex)"):
        sszoo.create_model(NAME, pretrained=str(save(tmp_path, "d.pth", state)))


def test_served_integer_weights_are_not_cached(hub_env, r18_source, tmp_path):
    server, home = hub_env
    state = dict(r18_source.state_dict)
    state["decode_head.conv_seg.bias"] = state["decode_head.conv_seg.bias"].long()
    s = serve_state(server, r18_source, tmp_path, state, "int64")
    with pytest.raises(CheckpointError, match="non-floating-point"):
        load_pretrained(s.entry, True)
    assert_nothing_kept(home, s.entry.name)


def test_nan_weights_are_refused_or_with_the_flag_warned(hub_env, r18_source, tmp_path, monkeypatch):
    server, home = hub_env
    state = dict(r18_source.state_dict)
    bias = state["decode_head.conv_seg.bias"].clone()
    bias[3] = float("nan")
    state["decode_head.conv_seg.bias"] = bias
    s = serve_state(server, r18_source, tmp_path, state, "nan")
    register(monkeypatch, s.entry)
    with pytest.raises(CheckpointError, match=r"NaN or inf .*decode_head.conv_seg.bias.*SSZOO_ALLOW_NONFINITE"):
        load_pretrained(s.entry, True)
    assert_nothing_kept(home, s.entry.name)
    monkeypatch.setenv("SSZOO_ALLOW_NONFINITE", "1")
    with pytest.warns(NonFiniteWeightsWarning, match="decode_head.conv_seg.bias"):
        model = sszoo.create_model(s.entry.name, pretrained=True)
    assert torch.isnan(model.decode_head.conv_seg.bias[3])


def test_a_checkpoint_that_does_not_fit_is_not_cached(hub_env, r18_source, tmp_path):
    server, home = hub_env
    state = dict(r18_source.state_dict)
    del state["decode_head.bottleneck.conv.weight"]
    state["decode_head.extra.weight"] = torch.zeros(3)
    s = serve_state(server, r18_source, tmp_path, state, "misfit")
    with pytest.raises(CheckpointError, match="(?s)does not fit.*decode_head.bottleneck.conv.weight"):
        load_pretrained(s.entry, True)
    assert_nothing_kept(home, s.entry.name)


def test_a_fine_tuned_class_count_still_loads_through_the_cache(hub_env, r18_source, tmp_path, monkeypatch):
    server, home = hub_env
    state = dict(r18_source.state_dict)
    for k in [k for k in state if k.endswith(("conv_seg.weight", "conv_seg.bias"))]:
        state[k] = state[k][:3].clone()
    s = serve_state(server, r18_source, tmp_path, state, "three")
    model = sszoo.create_model(NAME, pretrained=server.url + s.path, num_classes=3)
    assert model.num_classes == 3 and torch.equal(model.decode_head.conv_seg.bias, state["decode_head.conv_seg.bias"])


def test_meta_tensors_are_a_checkpoint_error(tmp_path):
    state = {k: torch.empty(v.shape, dtype=v.dtype, device="meta")
             for k, v in sszoo.create_model(NAME).state_dict().items()}
    with pytest.raises(CheckpointError, match="meta tensor"):
        sszoo.create_model(NAME, pretrained=str(save(tmp_path, "meta.pth", state)))


# ---- item 9 -------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["hf-hub:org/repo@../../..", "hf-hub:org/repo@/etc", "hf-hub:org/repo@a/../../b",
                                  "hf-hub:org/repo@", "hf-hub:org/repo@main/", "hf-hub:../..", "hf-hub:org/..",
                                  "hf-hub:org/re--po", "hf-hub:org/repo@x y"])
def test_bad_hf_specs_are_refused_before_huggingface_hub_is_asked(spec, monkeypatch, tmp_path):
    import huggingface_hub

    def never(*a, **k):
        raise AssertionError("huggingface_hub was called")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", never)
    with pytest.raises(SpecError):
        load_pretrained(sszoo.get_entry(NAME), spec)


def test_good_hf_revisions_parse():
    commit = "0123456789abcdef0123456789abcdef01234567"
    for rev in ("main", "v1.0", "refs/pr/1", commit):
        assert parse_hf_spec(f"hf-hub:my-org/pspnet.r18@{rev}") == ("my-org/pspnet.r18", rev)
    assert parse_hf_spec("hf-hub:my-org/pspnet") == ("my-org/pspnet", None)


# ---- item 10 ------------------------------------------------------------------------------------

class _Reduce:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize("payload, raw", [((_codecs.encode, ("x", "no-such-codec")), "LookupError"),
                                          ((_codecs.encode, (1, 2)), "TypeError")])
def test_allowed_globals_called_with_bad_arguments_are_checkpoint_errors(tmp_path, payload, raw):
    path = save(tmp_path, "odd.pth", {"w": torch.zeros(1)}, meta=_Reduce(*payload))
    with pytest.raises(CheckpointError, match=raw):
        read_checkpoint(path)


def test_an_unreadable_cached_safetensors_is_a_cache_error(hub_env, r18_source, tmp_path):
    server, home = hub_env
    s = serve_oracle_checkpoint(server, r18_source)
    load_pretrained(s.entry, True)
    folder = home / "weights" / s.entry.name
    junk = b"\xff" * 64  # a copied-in folder whose provenance matches a broken file
    (folder / "model.safetensors").write_bytes(junk)
    prov = json.loads((folder / "provenance.json").read_text())
    prov.update(sha256=hashlib.sha256(junk).hexdigest(), size=len(junk))
    (folder / "provenance.json").write_text(json.dumps(prov))
    with pytest.raises(CacheCorruptError, match="not a readable safetensors file.*sszoo.hub rm"):
        load_pretrained(s.entry, True)


def _convert(*args, env=None):
    return subprocess.run([sys.executable, "-m", "sszoo.hub", "convert", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_convert_prints_one_line_and_no_traceback(tmp_path, r18_source, capsys):
    odd = save(tmp_path, "odd.pth", {"w": torch.zeros(1)}, meta=_Reduce(_codecs.encode, ("x", "no-such-codec")))
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    # real processes: nothing above main() prints a traceback either
    for src, out, expect in [(odd, tmp_path / "o1", "LookupError"), (r18_source.local, a_file, "a-file")]:
        r = _convert(str(src), "--name", NAME, "--out", str(out))
        assert r.returncode == 1, r.stderr
        assert "Traceback" not in r.stderr and r.stderr.startswith("error: ") and expect in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    from sszoo.hub.cli import main
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 100)
    misfit = dict(r18_source.state_dict)
    misfit.pop("decode_head.conv_seg.bias")
    for src, expect in [(garbage, "safetensors"), (save(tmp_path, "misfit.pth", misfit), "does not fit")]:
        assert main(["convert", str(src), "--name", NAME, "--out", str(tmp_path / "o2")]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and expect in err, err
    assert not (tmp_path / "o2").exists()


_STORE_FULL_CHILD = textwrap.dedent("""
    import dataclasses, resource, signal, sys
    import sszoo
    from sszoo.hub import CacheWriteError, load_pretrained
    from sszoo.registry import WeightsInfo
    url, prefix, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the limit, write() fails with EFBIG instead of a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    base = sszoo.get_entry("pspnet_r18_d8_cityscapes")
    entry = dataclasses.replace(base, name="pspnet_r18_d8_cityscapes.full",
                                weights=WeightsInfo(url=url, sha256_prefix=prefix))
    try:
        load_pretrained(entry, True, progress=False)
    except CacheWriteError as e:
        print("ERROR", e)
""")


def test_a_full_disk_while_caching_is_a_cache_error_and_leaves_no_half_entry(hub_env, r18_source, tmp_path):
    server, home = hub_env
    # three same-shaped layer4 convs stored as one tensor in the .pth: the safetensors copy is larger than the
    # download, so a file-size limit between the two makes only the cache write fail (like a disk filling up)
    state = dict(r18_source.state_dict)
    shared = state["backbone.layer4.0.conv2.weight"]
    for k in ("backbone.layer4.1.conv1.weight", "backbone.layer4.1.conv2.weight"):
        state[k] = shared
    s = serve_state(server, r18_source, tmp_path, state, "full")
    limit = len(s.data) + 4 * 1024 ** 2
    child = subprocess.run([sys.executable, "-c", _STORE_FULL_CHILD, s.entry.weights.url, s.entry.weights.sha256_prefix,
                            str(limit)], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    assert "ERROR the disk is full while writing" in child.stdout and "nothing was cached" in child.stdout
    assert "The verified original is kept at" in child.stdout
    assert not (home / "weights" / "pspnet_r18_d8_cityscapes.full").exists()
    assert len(os.listdir(home / "downloads")) == 1  # the verified original stays, for the next try
    state2 = load_pretrained(dataclasses.replace(s.entry, name="pspnet_r18_d8_cityscapes.full"), True)
    assert server.gets(s.path) == 1 and torch.equal(state2["backbone.layer4.1.conv1.weight"], shared)
