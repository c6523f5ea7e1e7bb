"""Shared pieces of the hub tests: a served MMSegmentation checkpoint with a matching zoo entry."""
from __future__ import annotations

import atexit
import dataclasses
import functools
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass

import pytest
import torch

import sszoo
from oracle_weights import oracle_checkpoint
from sszoo.registry import WeightsInfo, ZooEntry

CASE = "pspnet_r18_d8"  # an R-18 golden case of tests/golden/parity (MMSegmentation 1.2.2 logits)
PUBLISHED_HOST = "https://download.openmmlab.com"


@dataclass
class Source:
    """The golden case's checkpoint, written once per test session."""

    local: str
    data: bytes
    x: torch.Tensor
    ref: torch.Tensor
    info: dict
    state_dict: dict


@functools.lru_cache(maxsize=1)
def _oracle_source_once() -> Source:
    # one per test session, shared by every module that imports the fixture (a 51 MB R-18 checkpoint)
    folder = tempfile.mkdtemp(prefix="sszoo-hub-oracle-")
    atexit.register(shutil.rmtree, folder, True)
    local = os.path.join(folder, "source.pth")
    x, ref, info = oracle_checkpoint(CASE, local)
    sd = torch.load(local, map_location="cpu", weights_only=True)["state_dict"]
    return Source(local, open(local, "rb").read(), x, ref, info, sd)


@pytest.fixture
def oracle_source() -> Source:
    return _oracle_source_once()


@functools.lru_cache(maxsize=1)
def _r18_source_once() -> Source:
    # the golden case's weights with CLASSES in their meta: the smallest checkpoint that fits a zoo network,
    # which the hub now checks before caching (51 MB, written once per test session)
    oracle = _oracle_source_once()
    folder = tempfile.mkdtemp(prefix="sszoo-hub-r18-")
    atexit.register(shutil.rmtree, folder, True)
    local = os.path.join(folder, "r18.pth")
    torch.save({"meta": {"CLASSES": ("road", "sidewalk"), "PALETTE": [[128, 64, 128], [244, 35, 232]],
                         "mmcv_version": "1.2.1", "iter": 80000}, "state_dict": oracle.state_dict}, local)
    return Source(local, open(local, "rb").read(), oracle.x, oracle.ref, oracle.info, oracle.state_dict)


@pytest.fixture
def r18_source() -> Source:
    """A checkpoint in MMSegmentation's published layout that fits the served test entry (R-18 PSPNet)."""
    return _r18_source_once()


@dataclass
class Served:
    entry: ZooEntry
    path: str            # URL path on the server (and under the published host)
    data: bytes
    local: str           # the same checkpoint on disk
    x: torch.Tensor      # golden input
    ref: torch.Tensor    # golden logits from MMSegmentation


def serve_oracle_checkpoint(server, source: Source, *, name: str = "pspnet_r18_d8_cityscapes.hubtest",
                            hash_prefix: str | None = None) -> Served:
    """Serve the golden case's checkpoint under a published-style name carrying its sha256 prefix."""
    local, data, x, ref, info = source.local, source.data, source.x, source.ref, source.info
    prefix = hash_prefix or hashlib.sha256(data).hexdigest()[:8]
    path = f"/mmsegmentation/v0.5/pspnet/pspnet_r18-d8_512x1024_80k_cityscapes_20201225_021458-{prefix}.pth"
    server.add(path, data)
    base = sszoo.get_entry(info["config"])
    entry = dataclasses.replace(base, name=name, arch=base.arch.with_num_classes(info["num_classes"]),
                                weights=WeightsInfo(url=PUBLISHED_HOST + path, sha256_prefix=prefix))
    return Served(entry, path, data, local, x, ref)


def register(monkeypatch, *entries: ZooEntry) -> None:
    """Make create_model (and the CLI) resolve these test entries by name."""
    import sszoo.factory
    import sszoo.registry
    real = sszoo.registry.get_entry
    table = {e.name: e for e in entries}

    def get_entry(name):
        return table[name] if name in table else real(name)
    monkeypatch.setattr(sszoo.factory, "get_entry", get_entry)
    monkeypatch.setattr(sszoo.registry, "get_entry", get_entry)
    real_resolve = sszoo.registry.resolve_name
    monkeypatch.setattr(sszoo.registry, "resolve_name", lambda n: n if n in table else real_resolve(n))


@pytest.fixture
def hub_env(tmp_path, monkeypatch):
    """A private cache root and fast retries; no offline switches, lock file or limits inherited from the
    environment; the working directory is the test's own (no ./sszoo.lock from elsewhere)."""
    from hub_server import FileServer
    home = tmp_path / "sszoo-home"
    monkeypatch.setenv("SSZOO_HOME", str(home))
    monkeypatch.setenv("SSZOO_RETRIES", "1")
    monkeypatch.setenv("SSZOO_BACKOFF", "0")
    monkeypatch.setenv("SSZOO_TIMEOUT", "10")
    for var in ("SSZOO_OFFLINE", "HF_HUB_OFFLINE", "SSZOO_MIRROR", "SSZOO_LOCKFILE", "SSZOO_REQUIRE_HASHES",
                "SSZOO_ALLOW_NONFINITE", "SSZOO_DEADLINE", "SSZOO_MAX_DOWNLOAD", "SSZOO_LOCK_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    server = FileServer()
    monkeypatch.setenv("SSZOO_MIRROR", server.url)
    yield server, home
    server.close()


def logits(model, x):
    with torch.no_grad():
        return model(x)


def assert_same_state(state: dict, reference: dict) -> None:
    """Every tensor of ``reference`` present in ``state`` with identical values (nothing else in ``state``)."""
    assert set(state) == set(reference)
    for k, v in reference.items():
        assert torch.equal(state[k], v), k


def assert_close_to_reference(out: torch.Tensor, ref: torch.Tensor) -> None:
    tol = 1e-4 * max(1.0, ref.abs().max().item())
    assert out.shape == ref.shape
    assert (out - ref).abs().max().item() <= tol
