"""pretrained=True end to end over a real socket: verify, convert, cache, re-verify, mirror, offline, URL."""
import dataclasses
import json
import os
import shutil
import warnings

import pytest
import torch

import sszoo
from hub_helpers import (PUBLISHED_HOST, assert_close_to_reference, assert_same_state, hub_env,  # noqa: F401
                         logits, oracle_source, register, serve_oracle_checkpoint, r18_source)
from sszoo.hub import HashMismatchError, OfflineError, load_pretrained, mirror_url
from sszoo.hub import cache


def weights_dir(home, key):
    return home / "weights" / key


def test_published_checkpoint_downloads_verifies_converts_and_caches(hub_env, oracle_source, tmp_path, monkeypatch):
    server, home = hub_env
    s = serve_oracle_checkpoint(server, oracle_source)
    register(monkeypatch, s.entry)

    model = sszoo.create_model(s.entry.name, pretrained=True)
    out = logits(model, s.x)
    assert_close_to_reference(out, s.ref)  # same logits as MMSegmentation for these weights
    direct = sszoo.create_model(s.entry.name, pretrained=s.local)  # the .pth loaded directly
    assert torch.equal(out, logits(direct, s.x))
    assert server.gets(s.path) == 1

    folder = weights_dir(home, s.entry.name)
    assert sorted(os.listdir(folder)) == ["model.safetensors", "provenance.json"]
    prov = json.loads((folder / "provenance.json").read_text())
    import hashlib
    assert prov["source_sha256"] == hashlib.sha256(s.data).hexdigest()
    assert prov["verification"] == "prefix-32bit" and prov["entry"] == s.entry.name
    assert prov["source_url"].startswith(PUBLISHED_HOST + s.path) and server.url in prov["source_url"]
    assert prov["sszoo_version"] == sszoo.__version__ and prov["source_format"] == "mmseg"
    assert prov["sha256"] == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert os.listdir(home / "downloads") == []  # the original .pth is not kept beside the safetensors

    again = sszoo.create_model(s.entry.name, pretrained=True)
    assert server.gets(s.path) == 1  # the second load made no HTTP request
    assert_same_state(again.state_dict(), model.state_dict())


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_cache_is_detected_and_fetched_again(hub_env, r18_source, tmp_path, monkeypatch, damage):
    server, home = hub_env
    s = serve_oracle_checkpoint(server, r18_source)
    register(monkeypatch, s.entry)
    load_pretrained(s.entry, True)
    f = weights_dir(home, s.entry.name) / "model.safetensors"
    raw = bytearray(f.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0xFF  # one byte inside a tensor: the file still parses
    else:
        raw = raw[: len(raw) - 1000]
    f.write_bytes(bytes(raw))
    with pytest.warns(RuntimeWarning, match="failed verification"):
        state = load_pretrained(s.entry, True)
    assert server.gets(s.path) == 2
    assert_same_state(state, r18_source.state_dict)
    prov = cache.lookup(s.entry.name)  # re-verified entry
    assert prov.classes == ["road", "sidewalk"]  # CLASSES from the checkpoint's meta, kept as provenance


def test_wrong_hash_leaves_nothing_in_the_cache(hub_env, r18_source, tmp_path, monkeypatch):
    server, home = hub_env
    s = serve_oracle_checkpoint(server, r18_source, hash_prefix="deadbeef")
    with pytest.raises(HashMismatchError, match="expected a hash starting with deadbeef"):
        load_pretrained(s.entry, True)
    assert not weights_dir(home, s.entry.name).exists()
    assert os.listdir(home / "downloads") == []


def test_mirror_replaces_scheme_and_host(monkeypatch):
    monkeypatch.setenv("SSZOO_MIRROR", "http://10.0.0.5:8080/zoo/")
    assert mirror_url("https://download.openmmlab.com/mmsegmentation/v0.5/x-12345678.pth") == \
        "http://10.0.0.5:8080/zoo/mmsegmentation/v0.5/x-12345678.pth"
    monkeypatch.setenv("SSZOO_MIRROR", "10.0.0.5")
    with pytest.raises(ValueError, match="SSZOO_MIRROR"):
        mirror_url("https://a/b.pth")


def test_without_mirror_the_published_host_is_used(hub_env, r18_source, tmp_path, monkeypatch):
    server, home = hub_env
    s = serve_oracle_checkpoint(server, r18_source)
    monkeypatch.delenv("SSZOO_MIRROR")
    monkeypatch.setenv("SSZOO_TIMEOUT", "2")
    # this machine cannot reach download.openmmlab.com: the failure proves the request went there, not here
    with pytest.raises(sszoo.hub.DownloadError, match="download.openmmlab.com"):
        load_pretrained(s.entry, True)
    assert server.gets(s.path) == 0


@pytest.mark.parametrize("switch", ["SSZOO_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_uses_a_warm_cache_and_explains_a_cold_one(hub_env, r18_source, tmp_path, monkeypatch, switch):
    server, home = hub_env
    s = serve_oracle_checkpoint(server, r18_source)
    register(monkeypatch, s.entry)
    load_pretrained(s.entry, True)
    monkeypatch.setenv(switch, "1")
    assert_same_state(load_pretrained(s.entry, True), r18_source.state_dict)  # warm: works, no request
    assert server.gets(s.path) == 1

    cold = tmp_path / "cold-home"
    monkeypatch.setenv("SSZOO_HOME", str(cold))
    with pytest.raises(OfflineError) as e:
        sszoo.create_model(s.entry.name, pretrained=True)
    msg = str(e.value)
    file_name = s.path.rsplit("/", 1)[1]
    assert str(cold / "weights" / s.entry.name / "model.safetensors") in msg  # where it looked
    assert str(cold / "downloads" / file_name) in msg                     # where to put the file by hand
    assert s.entry.weights.url in msg and switch in msg
    assert server.gets(s.path) == 1

    # following the message: the original file put there by hand is verified and converted offline
    os.makedirs(cold / "downloads")
    shutil.copy(s.local, cold / "downloads" / file_name)
    assert_same_state(load_pretrained(s.entry, True), r18_source.state_dict)
    assert server.gets(s.path) == 1
    assert cache.lookup(s.entry.name).source_verified


def test_offline_refuses_a_hand_placed_file_with_the_wrong_hash(hub_env, r18_source, tmp_path, monkeypatch):
    server, home = hub_env
    s = serve_oracle_checkpoint(server, r18_source)
    monkeypatch.setenv("SSZOO_OFFLINE", "1")
    file_name = s.path.rsplit("/", 1)[1]
    os.makedirs(home / "downloads")
    (home / "downloads" / file_name).write_bytes(b"not the checkpoint")
    with pytest.raises(OfflineError, match="expected"):
        load_pretrained(s.entry, True)
    assert not (home / "downloads" / file_name).exists()


def test_pretrained_url_and_local_folder(hub_env, r18_source, tmp_path, monkeypatch):
    server, home = hub_env
    s = serve_oracle_checkpoint(server, r18_source)
    register(monkeypatch, s.entry)
    assert_same_state(load_pretrained(s.entry, server.url + s.path), r18_source.state_dict)
    from sszoo.hub.sources import _url_key
    key = _url_key(server.url + s.path)
    assert key.startswith("url--" + s.path.rsplit("/", 1)[1][: -len(".pth")] + "-")  # file stem + source id
    assert (home / "weights" / key / "model.safetensors").is_file()
    load_pretrained(s.entry, server.url + s.path)
    assert server.gets(s.path) == 1
    # a folder holding model.safetensors (the cache entry, or the output of `convert`) loads too
    assert_same_state(load_pretrained(s.entry, str(home / "weights" / key)), r18_source.state_dict)


def test_bad_pretrained_arguments(hub_env, tmp_path):
    entry = sszoo.get_entry("pspnet_r18_d8_cityscapes")
    with pytest.raises(FileNotFoundError, match="hf-hub:org/repo"):
        load_pretrained(entry, str(tmp_path / "nope.pth"))
    with pytest.raises(TypeError, match="pretrained must be"):
        load_pretrained(entry, 3)
    with pytest.raises(ValueError, match="bad Hugging Face spec"):
        load_pretrained(entry, "hf-hub:not a repo")
    no_url = dataclasses.replace(entry, weights=dataclasses.replace(entry.weights, url=None))
    with pytest.raises(sszoo.hub.CheckpointError, match="no published checkpoint"):
        load_pretrained(no_url, True)


def test_default_cache_root(monkeypatch, tmp_path):
    monkeypatch.delenv("SSZOO_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.hub_dir() == str(tmp_path / "xdg" / "sszoo")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache.hub_dir() == os.path.join(str(tmp_path), ".cache", "sszoo")
