"""Cache keys by the full source, one lock per file (real processes), refused files that do not stick,
read-only caches, a lock holder that hangs, and processes killed while writing the cache."""
import contextlib
import dataclasses
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import pytest
import torch

from hub_helpers import Source, hub_env, r18_source, serve_oracle_checkpoint  # noqa: F401
from sszoo.hub import (CacheNotWritableError, CheckpointError, DownloadError, LockTimeoutError,
                       UnverifiedWeightsWarning, load_pretrained)
from sszoo.hub import cache
from sszoo.hub.lockfile import normalise_url
from sszoo.hub.sources import source_id
from sszoo.models import ResNet


def state_digest(state: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].numpy().tobytes())
    return h.hexdigest()


def other_weights(real: Source, tmp_path, name="other.pth") -> Source:
    state = {k: v.clone() for k, v in real.state_dict.items()}
    state["decode_head.conv_seg.bias"] -= 2.0
    path = tmp_path / name
    torch.save({"state_dict": state}, path)
    return Source(str(path), path.read_bytes(), real.x, real.ref, real.info, state)


# ---- item 5: cache keys by the full source, one lock per downloaded file ------------------------

def test_two_urls_with_the_same_file_name_get_their_own_entries(hub_env, r18_source, tmp_path):
    server, home = hub_env
    s = serve_oracle_checkpoint(server, r18_source)
    other = other_weights(r18_source, tmp_path)
    url_a = server.add("/team-a/ckpt.pth", r18_source.data)
    url_b = server.add("/team-b/ckpt.pth", other.data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedWeightsWarning)
        a = load_pretrained(s.entry, url_a)
        b = load_pretrained(s.entry, url_b)
    assert state_digest(a) == state_digest(r18_source.state_dict)
    assert state_digest(b) == state_digest(other.state_dict)  # not team A's weights from the cache
    assert server.gets("/team-a/ckpt.pth") == 1 and server.gets("/team-b/ckpt.pth") == 1


_BACKBONE_CHILD = textwrap.dedent("""
    import hashlib, sys
    from sszoo.hub import load_backbone_weights, sources
    url, spec = sys.argv[1], sys.argv[2]
    for name in ("open-mmlab://resnet18_v1c", "sssegmentation://resnet18"):
        sources.BACKBONES[name] = url  # both specs name one published file, as in the registry
    state = load_backbone_weights(spec, progress=False)
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode()); h.update(state[k].numpy().tobytes())
    print("DIGEST", h.hexdigest())
""")


def test_two_specs_of_one_file_share_one_lock_across_processes(hub_env, tmp_path):
    server, home = hub_env
    torch.manual_seed(3)
    own = ResNet(18, deep_stem=True).state_dict()
    path = tmp_path / "r18v1c.pth"
    torch.save({"state_dict": {**own, "fc.weight": torch.randn(1000, 512), "fc.bias": torch.randn(1000)}}, path)
    data = path.read_bytes()
    url_path = f"/pretrain/third_party/resnet18_v1c-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    server.add(url_path, data)
    server.delay = 0.5  # keep the first download in flight while the others arrive
    specs = ["open-mmlab://resnet18_v1c", "sssegmentation://resnet18"]
    procs = [subprocess.Popen([sys.executable, "-c", _BACKBONE_CHILD, "https://download.openmmlab.com" + url_path,
                               spec], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for spec in specs]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    digests = {line.split()[1] for out, _ in outs for line in out.splitlines() if line.startswith("DIGEST")}
    assert digests == {state_digest(own)}
    assert server.gets(url_path) == 1  # one download, one entry for both specs
    assert os.listdir(home / "downloads") == []


# ---- item 6: refused downloads do not stick -----------------------------------------------------

def test_an_html_error_page_is_not_kept_and_the_next_load_asks_again(hub_env, r18_source):
    server, home = hub_env
    s = serve_oracle_checkpoint(server, r18_source)
    url = server.add("/files/model.pth", r18_source.data, faults=["html"])  # no hash in the name
    with pytest.raises(DownloadError, match="HTML page"):
        load_pretrained(s.entry, url)
    assert os.listdir(home / "downloads") == []
    with pytest.warns(UnverifiedWeightsWarning):
        state = load_pretrained(s.entry, url)  # the server is fine again: asked, not a stale error page
    assert state_digest(state) == state_digest(r18_source.state_dict)
    assert server.gets("/files/model.pth") == 2


def test_a_refused_checkpoint_is_deleted_and_the_next_load_asks_again(hub_env, r18_source, tmp_path):
    server, home = hub_env
    s = serve_oracle_checkpoint(server, r18_source)
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": r18_source.state_dict, "meta": {"hook": print}}, evil)  # a global: refused
    url = server.add("/files/evil.pth", evil.read_bytes())
    with pytest.warns(UnverifiedWeightsWarning), pytest.raises(CheckpointError, match="refused.*was deleted"):
        load_pretrained(s.entry, url)
    assert os.listdir(home / "downloads") == []
    server.replace("/files/evil.pth", r18_source.data)  # the publisher fixed the file
    with pytest.warns(UnverifiedWeightsWarning):
        assert state_digest(load_pretrained(s.entry, url)) == state_digest(r18_source.state_dict)
    assert server.gets("/files/evil.pth") == 2


# ---- item 7: read-only caches -----------------------------------------------------------------

@contextlib.contextmanager
def read_only(path):
    """``path`` read-only for this process: a read-only bind mount as root (root ignores modes), else chmod."""
    path = str(path)
    if os.geteuid() == 0:
        if shutil.which("mount") is None or subprocess.run(["mount", "--bind", path, path],
                                                           capture_output=True).returncode != 0:
            pytest.skip("cannot make a read-only bind mount here")
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", path], check=True, capture_output=True)
            yield
        finally:
            # lazily: the cache files may still be memory-mapped by the loaded state dict
            subprocess.run(["umount", "-l", path], capture_output=True)
    else:
        modes = {}
        for root, dirs, files in os.walk(path):
            for p in [root] + [os.path.join(root, f) for f in files]:
                modes[p] = os.stat(p).st_mode
                os.chmod(p, modes[p] & ~0o222)
        try:
            yield
        finally:
            for p, m in modes.items():
                os.chmod(p, m)


def test_a_read_only_cache_serves_verified_entries_and_explains_writes(hub_env, r18_source, tmp_path):
    server, home = hub_env
    s = serve_oracle_checkpoint(server, r18_source)
    load_pretrained(s.entry, True)
    shutil.rmtree(home / "locks")  # a cache copied from elsewhere: no lock files either
    other = dataclasses.replace(s.entry, name=s.entry.name + "-other")
    with read_only(home):
        with pytest.raises(OSError):
            (home / "probe").write_text("x")  # really read-only
        state = load_pretrained(s.entry, True)
        assert state_digest(state) == state_digest(r18_source.state_dict)
        with pytest.raises(CacheNotWritableError, match="not writable.*SSZOO_HOME"):
            load_pretrained(other, True)
    assert server.gets(s.path) == 1
    assert not (home / "locks").exists()


# ---- item 4: a lock holder that hangs ----------------------------------------------------------

_HOLDER = textwrap.dedent("""
    import sys, time
    from filelock import FileLock
    lock = FileLock(sys.argv[1]); lock.acquire()
    print("HELD", flush=True)
    time.sleep(60)
""")


def test_a_hung_lock_holder_gives_a_clear_timeout(hub_env, r18_source, monkeypatch):
    server, home = hub_env
    s = serve_oracle_checkpoint(server, r18_source)
    name = s.path.rsplit("/", 1)[1]
    path = cache.lock_path(f"{source_id(normalise_url(s.entry.weights.url))}-{name}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, path], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "HELD"
        monkeypatch.setenv("SSZOO_LOCK_TIMEOUT", "1")
        t = time.monotonic()
        with pytest.raises(LockTimeoutError, match=r"waited 1 s for the lock .*SSZOO_LOCK_TIMEOUT"):
            load_pretrained(s.entry, True)
        assert time.monotonic() - t < 5
    finally:
        holder.kill()
        holder.wait()
    assert server.requests == []


# ---- item 10: a process killed while writing the cache ------------------------------------------

_KILLED_CHILD = textwrap.dedent("""
    import dataclasses, os, signal, sys
    import sszoo
    from sszoo.hub import cache, load_pretrained
    from sszoo.registry import WeightsInfo
    url, prefix, when = sys.argv[1], sys.argv[2], sys.argv[3]
    if when == "after-store":  # the entry is complete; the original is not deleted yet
        real_store = cache.store
        def store(*a, **k):
            real_store(*a, **k)
            os.kill(os.getpid(), signal.SIGKILL)
        cache.store = store
    else:  # the safetensors is written under its temporary name, not renamed into place
        import safetensors.torch
        real_save = safetensors.torch.save_file
        def save_file(tensors, path, metadata=None):
            real_save(tensors, path, metadata=metadata)
            os.kill(os.getpid(), signal.SIGKILL)
        safetensors.torch.save_file = save_file
    base = sszoo.get_entry("pspnet_r18_d8_cityscapes")
    entry = dataclasses.replace(base, name="pspnet_r18_d8_cityscapes.killed",
                                weights=WeightsInfo(url=url, sha256_prefix=prefix))
    load_pretrained(entry, True, progress=False)
""")


@pytest.mark.parametrize("when", ["after-store", "during-store"])
def test_an_original_left_by_a_killed_process_is_reused_or_cleaned(hub_env, r18_source, when):
    server, home = hub_env
    s = serve_oracle_checkpoint(server, r18_source, name="pspnet_r18_d8_cityscapes.killed")
    child = subprocess.run([sys.executable, "-c", _KILLED_CHILD, s.entry.weights.url, s.entry.weights.sha256_prefix,
                            when], capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert len(os.listdir(home / "downloads")) == 1  # the verified original, left behind
    state = load_pretrained(s.entry, True)
    assert state_digest(state) == state_digest(r18_source.state_dict)
    assert server.gets(s.path) == 1  # reused (or the entry was complete): no second download
    assert os.listdir(home / "downloads") == []
    assert sorted(os.listdir(home / "weights" / s.entry.name)) == ["model.safetensors", "provenance.json"]
