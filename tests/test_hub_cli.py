"""python -m sszoo.hub: download, ls, verify, rm, convert; and hf-hub: loading from a Hugging Face cache offline."""
import json
import os

import pytest
import torch

import sszoo
from hub_helpers import (assert_same_state, hub_env, register, serve_oracle_checkpoint,  # noqa: F401
                         r18_source, oracle_source, logits, assert_close_to_reference)
from sszoo.hub import OfflineError
from sszoo.hub.cli import main


def test_download_ls_verify_rm(hub_env, r18_source, monkeypatch, capsys):
    server, home = hub_env
    s = serve_oracle_checkpoint(server, r18_source)
    register(monkeypatch, s.entry)
    assert main(["download", "-q", s.entry.name]) == 0
    assert "[prefix-32bit]" in capsys.readouterr().out
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    assert s.entry.name in out and "prefix-32bit" in out and "1 entries" in out
    assert "2^32" in out  # what a prefix proves
    assert main(["verify"]) == 0
    assert "OK" in capsys.readouterr().out
    f = home / "weights" / s.entry.name / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-10])
    assert main(["verify"]) == 1
    assert "CORRUPT" in capsys.readouterr().out
    assert main(["verify", "--delete"]) == 1
    assert not f.exists()
    assert main(["download", "-q", s.entry.name]) == 0 and server.gets(s.path) == 2
    assert main(["rm", s.entry.name]) == 0
    assert not (home / "weights" / s.entry.name).exists()
    assert main(["rm", s.entry.name]) == 1  # not cached any more
    assert "not cached" in capsys.readouterr().err


def test_unknown_name_is_a_clear_error(hub_env, capsys):
    assert main(["download", "pspnet_r999_cityscapes"]) == 1
    assert "unknown model" in capsys.readouterr().err


def test_push_without_token_explains(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-empty"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert main(["push", "pspnet_r18_d8_cityscapes", "--repo", "me/x"]) == 2
    assert "huggingface-cli login" in capsys.readouterr().err


def test_convert_then_load_from_a_hugging_face_cache_offline(hub_env, oracle_source, tmp_path, monkeypatch):
    """convert writes a Hub-ready folder; placed in a Hugging Face cache it loads by hf-hub:org/repo[@rev]."""
    server, home = hub_env
    s = serve_oracle_checkpoint(server, oracle_source)
    register(monkeypatch, s.entry)
    out = tmp_path / "folder"
    assert main(["convert", s.local, "--name", s.entry.name, "--out", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["entry"] == s.entry.name and config["num_classes"] == 19 and len(config["class_names"]) == 19
    assert (out / "README.md").read_text().startswith("---\nlicense: apache-2.0")

    # the Hugging Face cache layout: models--org--repo/{refs/main, snapshots/<commit>/...}
    import huggingface_hub.constants
    hf_cache = tmp_path / "hf-cache"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hf_cache / "models--my-org--pspnet-r18"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in os.listdir(out):
        (snap / f).write_bytes((out / f).read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hf_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    model = sszoo.create_model(s.entry.name, pretrained="hf-hub:my-org/pspnet-r18")
    assert_close_to_reference(logits(model, s.x), s.ref)
    pinned = sszoo.create_model(s.entry.name, pretrained=f"hf-hub:my-org/pspnet-r18@{commit}")
    assert_same_state(pinned.state_dict(), model.state_dict())
    with pytest.raises(OfflineError, match="huggingface-cli download my-org/other"):
        sszoo.create_model(s.entry.name, pretrained="hf-hub:my-org/other")
    assert server.requests == []  # nothing downloaded: convert read the local file, hf-hub its cache
