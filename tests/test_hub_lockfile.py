"""Item 1: what an 8-digit prefix proves, and full-sha256 pins (sszoo.lock) enforced on load; strict mode."""
import dataclasses
import hashlib
import json
import os
import warnings

import pytest
import torch

from hub_helpers import Source, hub_env, r18_source, register, serve_oracle_checkpoint  # noqa: F401
from sszoo.hub import (HashMismatchError, HashRequiredError, HubError, Pin, UnverifiedWeightsWarning,
                       WeakHashWarning, load_pretrained, write_pins)
from sszoo.hub import cache
from sszoo.hub.cli import main
from sszoo.hub.lockfile import normalise_url, read_pins
from sszoo.registry import WeightsInfo


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def forged_source(real: Source, tmp_path) -> Source:
    """Other weights of the same architecture: what a hostile mirror would serve."""
    state = {k: v.clone() for k, v in real.state_dict.items()}
    state["decode_head.conv_seg.bias"] += 1.0
    path = tmp_path / "forged.pth"
    torch.save({"state_dict": state, "meta": {}}, path)
    return Source(str(path), path.read_bytes(), real.x, real.ref, real.info, state)


def test_a_forged_prefix_loads_with_a_warning_and_the_lock_file_refuses_it(hub_env, r18_source, tmp_path, monkeypatch):
    server, home = hub_env
    forged = forged_source(r18_source, tmp_path)
    # The published name carries the forged file's 8 hex digits: what a forger reaches with about 2^32 hashes
    # (382 s on 2 cores). Here the prefix is taken from the forged file instead of searched for.
    s = serve_oracle_checkpoint(server, forged, hash_prefix=sha(forged.data)[:8])
    with pytest.warns(WeakHashWarning, match=r"prefix-32bit.*2\^32"):
        state = load_pretrained(s.entry, True)
    assert torch.equal(state["decode_head.conv_seg.bias"], forged.state_dict["decode_head.conv_seg.bias"])
    prov = json.loads((home / "weights" / s.entry.name / "provenance.json").read_text())
    assert prov["verification"] == "prefix-32bit"  # not a bare "verified"

    # the team's lock file pins the real file's full sha256 for that URL
    lock = tmp_path / "team.lock"
    write_pins(str(lock), {normalise_url(s.entry.weights.url): Pin(sha(r18_source.data), len(r18_source.data))})
    monkeypatch.setenv("SSZOO_LOCKFILE", str(lock))
    with pytest.warns(RuntimeWarning, match="the lock file pins"):  # the cached forgery is dropped
        with pytest.raises(HashMismatchError, match="lock file pins"):
            load_pretrained(s.entry, True)
    assert not (home / "weights" / s.entry.name).exists()
    assert os.listdir(home / "downloads") == []


def test_lock_command_pins_full_hashes_that_loading_enforces(hub_env, r18_source, tmp_path, monkeypatch, capsys):
    server, home = hub_env
    s = serve_oracle_checkpoint(server, r18_source)
    register(monkeypatch, s.entry)
    assert main(["lock", "-q", s.entry.name]) == 0
    out = capsys.readouterr().out
    assert f"sha256 {sha(r18_source.data)}" in out and "sszoo.lock" in out
    pins = read_pins(os.path.abspath("sszoo.lock"))  # ./sszoo.lock: found without SSZOO_LOCKFILE
    assert pins == {normalise_url(s.entry.weights.url): Pin(sha(r18_source.data), len(r18_source.data))}

    monkeypatch.setenv("SSZOO_REQUIRE_HASHES", "1")
    load_pretrained(s.entry, True)  # the cached entry was made from the pinned file
    assert main(["ls"]) == 0 and "full-sha256" in capsys.readouterr().out
    cache.remove(s.entry.name)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedWeightsWarning)  # a pinned file is not weakly checked
        load_pretrained(s.entry, True)
    assert cache.lookup(s.entry.name).verification == "full-sha256"

    server.replace(s.path, r18_source.data + b"\0")  # the server now has another file under the same name
    cache.remove(s.entry.name)
    with pytest.raises(HashMismatchError, match="lock file pins"):
        load_pretrained(s.entry, True)
    assert os.listdir(home / "downloads") == []


def test_strict_mode_refuses_what_is_not_pinned_before_any_request(hub_env, r18_source, tmp_path, monkeypatch):
    server, home = hub_env
    s = serve_oracle_checkpoint(server, r18_source)
    monkeypatch.setenv("SSZOO_REQUIRE_HASHES", "1")
    with pytest.raises(HashRequiredError, match=r"no full sha256.*prefix-32bit.*python -m sszoo.hub lock"):
        load_pretrained(s.entry, True)
    unpublished = dataclasses.replace(s.entry, name="x.nohash", weights=WeightsInfo(url="https://github.com/x/y.pth"))
    with pytest.raises(HashRequiredError, match="none"):
        load_pretrained(unpublished, True)
    with pytest.raises(HashRequiredError):
        load_pretrained(s.entry, "hf-hub:org/repo@main")
    assert server.requests == []


def test_provenance_written_before_levels_still_reads(hub_env, r18_source, monkeypatch):
    server, home = hub_env
    s = serve_oracle_checkpoint(server, r18_source)
    load_pretrained(s.entry, True)
    path = home / "weights" / s.entry.name / "provenance.json"
    for flag, level in ((True, "prefix-32bit"), (False, "none")):
        d = json.loads(path.read_text())
        for k in ("verification", "source_key", "source_size"):
            d.pop(k, None)
        d["source_verified"] = flag
        path.write_text(json.dumps(d))
        assert cache.lookup(s.entry.name).verification == level
        load_pretrained(s.entry, True)  # still a cache hit
    assert server.gets(s.path) == 1


def test_url_with_a_prefix_warns_without_a_mirror(hub_env, r18_source, monkeypatch):
    server, home = hub_env
    s = serve_oracle_checkpoint(server, r18_source)
    monkeypatch.delenv("SSZOO_MIRROR")
    with pytest.warns(WeakHashWarning, match="8-hex-digit"):
        load_pretrained(s.entry, server.url + s.path)


def test_hf_hub_files_are_checked_against_their_pin(hub_env, tmp_path, monkeypatch):
    import huggingface_hub.constants
    hf_cache = tmp_path / "hf-cache"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hf_cache / "models--org--repo"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "model.safetensors").write_bytes(b"weights")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hf_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from sszoo.hub.sources import hf_file
    lock = tmp_path / "sszoo.lock"
    monkeypatch.setenv("SSZOO_LOCKFILE", str(lock))
    write_pins(str(lock), {f"hf-hub:org/repo@{commit}": Pin(sha(b"weights"), 7), "hf-hub:org/repo": Pin("0" * 64, 7)})
    assert open(hf_file(f"hf-hub:org/repo@{commit}"), "rb").read() == b"weights"
    with pytest.raises(HashMismatchError, match="hf-hub:org/repo: .* the lock file pins 0000"):
        hf_file("hf-hub:org/repo")


def test_unreadable_lock_file_is_one_clear_error(hub_env, r18_source, tmp_path, monkeypatch):
    server, home = hub_env
    s = serve_oracle_checkpoint(server, r18_source)
    bad = tmp_path / "bad.lock"
    bad.write_text('{"sources": {"https://x/y.pth": {"sha256": "abc"}}}')
    monkeypatch.setenv("SSZOO_LOCKFILE", str(bad))
    with pytest.raises(HubError, match="unreadable lock file .*64 hex digits"):
        load_pretrained(s.entry, True)
    monkeypatch.setenv("SSZOO_LOCKFILE", str(tmp_path / "missing.lock"))
    with pytest.raises(HubError, match="does not exist"):
        load_pretrained(s.entry, True)
    assert server.requests == []
